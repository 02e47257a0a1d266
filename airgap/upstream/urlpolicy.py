"""Where a URL fetched from upstream may send us next, and which credentials go along.

Two things upstream controls can point elsewhere: an HTTP redirect (``Location``) and a
repodata document's ``info.base_url`` (CEP-15). Both obey one rule, :func:`check_link`:

* a remote (``http``/``https``) resource may point only to ``http``/``https``: never to
  ``file://`` (that would make the connected host read, and probe, its own files) nor any
  other scheme;
* never from ``https`` down to ``http``;
* a local (``file://``) channel may point to ``file://`` or ``http(s)``.

Credentials: a URL's userinfo (``https://user:password@host/``) becomes an
``Authorization: Basic`` header (:func:`request_parts`) and is sent only to the origin
(scheme, host, port) that URL names; a redirect to another origin drops it
(:func:`headers_for_hop`). Pure, no I/O.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping

from ..errors import UpstreamError
from ..redact import redact

REMOTE_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# headers that carry a credential: never sent to an origin other than the one they were meant for
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def check_link(source: str, target: str, what: str) -> None:
    """Refuse ``target`` (absolute) as a place ``source`` may point to; ``what`` names the pointer."""
    src, dst = _scheme(source), _scheme(target)
    if src in REMOTE_SCHEMES:
        if dst not in REMOTE_SCHEMES:
            raise UpstreamError(
                f"{redact(source)}: {what} points to {redact(target)}; a remote channel may point only to "
                f"http:// or https:// URLs, found {dst or 'no'} scheme; refusing it"
            )
        if src == "https" and dst == "http":
            raise UpstreamError(
                f"{redact(source)}: {what} points to {redact(target)}; expected https, found a downgrade to plain http; refusing it"
            )
    elif src == "file":
        if dst not in ("file", *REMOTE_SCHEMES):
            raise UpstreamError(f"{redact(source)}: {what} points to {redact(target)}; expected a file:// or http(s):// URL, found {dst!r}")
    else:
        raise UpstreamError(f"{redact(source)}: expected an http(s):// or file:// URL, found scheme {src!r}")


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def request_parts(url: str) -> tuple[str, dict[str, str]]:
    """The URL to request and the headers its own credentials call for (userinfo → Basic auth)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    return strip_userinfo(url), {"Authorization": "Basic " + base64.b64encode(token).decode("ascii")}


def headers_for_hop(current: str, target: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers to send to ``target`` when ``current`` redirects there: credentials stay with their origin."""
    if origin(current) == origin(target):
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def redirect_target(current: str, location: str | None, hop: int) -> str:
    """The absolute URL a redirect from ``current`` leads to, after :func:`check_link`; ``hop`` counts from 1."""
    if not location:
        raise UpstreamError(f"{redact(current)}: expected a Location header on a redirect, found none")
    if hop > MAX_REDIRECTS:
        raise UpstreamError(f"{redact(current)}: expected at most {MAX_REDIRECTS} redirects, found more; refusing to follow")
    target = urllib.parse.urljoin(current, location.strip())
    check_link(current, target, "a redirect")
    return strip_userinfo(target)  # credentials handed out by a redirect are never used
