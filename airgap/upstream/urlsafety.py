"""Path components that stay where they are put: prefixes, channel names, and the URLs built from them.

A client decodes a URL before it resolves it: ``%2e%2e`` is ``..`` to rattler (``s3://b/%2e%2e/x``
reads another bucket), and ``?`` or ``#`` cut a path short (``a?b#c`` is ``a``). So a prefix or
channel name holds none of them, and a URL handed to a client is checked to stay under its base.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

from ..errors import UsageError

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_UNSAFE_CHARS = set("?#\\\0")


def unsafe_component(part: str) -> str | None:
    """Why ``part`` (one path component of a prefix or a channel name) is refused, or None."""
    if part in (".", ".."):
        return f"{part!r} (a dot segment)"
    if _ENCODED.search(part) or "%" in part:
        return f"{part!r} (percent-encoding: a client decodes it, %2e%2e is '..')"
    bad = sorted(set(part) & _UNSAFE_CHARS)
    if bad:
        return f"{part!r} ({' '.join(map(repr, bad))}: a client cuts the path there)"
    return None


def check_prefix(prefix: str, what: str) -> list[str]:
    """The components of ``prefix``; a UsageError naming the first unsafe one."""
    parts = [p for p in prefix.split("/") if p]
    for p in parts:
        why = unsafe_component(p)
        if why is not None:
            raise UsageError(f"{what}: expected a prefix of plain path components, found {why} in {prefix!r}")
    return parts


def check_under(base: str, url: str) -> str:
    """``url`` itself, if it stays under ``base`` once decoded and resolved as a client would; else a UsageError."""
    b, u = urlsplit(base), urlsplit(url)
    if b.query or b.fragment or "?" in base or "#" in base:
        raise UsageError(f"URL: expected no '?' or '#' in {base!r} (a client cuts the path there)")
    check_prefix(b.path, "URL")

    def resolved(path: str) -> str:
        p = posixpath.normpath("/" + unquote(path))
        return p.rstrip("/") + "/"

    if (
        u.query
        or u.fragment
        or "?" in url
        or "#" in url
        or (b.scheme, b.netloc) != (u.scheme, u.netloc)
        or not resolved(u.path).startswith(resolved(b.path))
        or resolved(u.path) == resolved(b.path)
    ):
        raise UsageError(f"expected a channel URL under {base}, found {url!r} (it leaves the prefix); check the URL and channel names")
    return url
