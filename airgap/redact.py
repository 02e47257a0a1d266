"""Secrets in URLs, replaced by a marker before any text leaves the process.

A channel URL may carry a credential: ``https://user:password@host/…`` (userinfo),
``https://conda.anaconda.org/t/<TOKEN>/channel/`` (an anaconda.org token path segment), or a
signed query (``?token=…``, S3's ``X-Amz-Signature=…``). The URL itself is needed to fetch;
everything written — the manifest, logs, error messages, ``inspect`` — carries the redacted
form, where the secret is replaced by :data:`MARKER` and the rest (scheme, user name, host,
path) stays readable.

:func:`redact` is the one function that does it: it works on a single URL and on free text
(an error message or a log line that quotes a URL, or only its path). :class:`RedactingFilter`
applies it to every log record a handler emits. Pure, no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MARKER = "<redacted>"

# userinfo of any scheme://user[:password]@host
# (greedy up to the authority's last "@": a password with a raw "@" in it is hidden whole)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"<>]*)@")
# anaconda.org (and quetz) style token path segment: /t/<token>/
_TOKEN_SEGMENT = re.compile(r"(?P<prefix>/t/)(?P<token>[^/?#\s'\"<>]+)")
# query parameters that carry a secret (signed URLs, API keys)
_SECRET_QUERY = re.compile(
    r"(?P<prefix>[?&](?:token|access_token|api_key|apikey|key|auth|password|sig|signature|"
    r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)(?P<value>[^&#\s'\"<>]+)",
    re.IGNORECASE,
)


def _userinfo(m: re.Match[str]) -> str:
    info = m.group("userinfo")
    if not info:
        return m.group(0)
    user, sep, _password = info.partition(":")
    kept = f"{user}:{MARKER}" if sep else MARKER  # a lone user name may itself be a token
    return f"{m.group('scheme')}{kept}@"


def redact(text: str) -> str:
    """``text`` (a URL, or any message quoting URLs) with every credential replaced by :data:`MARKER`."""
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "/t/" in text:
        text = _TOKEN_SEGMENT.sub(lambda m: m.group("prefix") + (m.group("token") if m.group("token") == MARKER else MARKER), text)
    if "=" in text:
        text = _SECRET_QUERY.sub(lambda m: m.group("prefix") + MARKER, text)
    return text


# settings whose value is a secret (a site's api_key, a password, a token); *_env names a variable, not a secret
_SECRET_SETTING = re.compile(r"(?:^|_)(?:api_key|apikey|key|token|secret|password|passwd|credentials?)$", re.IGNORECASE)


def redact_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` with secret values (by key name) replaced by :data:`MARKER`, strings redacted."""
    return {k: MARKER if _SECRET_SETTING.search(str(k)) and v is not None else redact_doc(v) for k, v in settings.items()}


def redact_doc(doc: Any) -> Any:
    """A JSON-like value with :func:`redact` applied to every string in it (keys too)."""
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {redact_doc(k): redact_doc(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [redact_doc(v) for v in doc]
    return doc


def has_secret(url: str) -> bool:
    """Whether ``url`` carries something :func:`redact` would hide."""
    return redact(url) != url


class RedactingFilter(logging.Filter):
    """Redacts each record's final message; install it on every handler that writes somewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
