"""Upstream channels: names, URLs and their repodata.

A channel is given as ``http(s)://…``, ``file://…`` or a path; it is named after the last
part of its URL (``…/pkgs/main/`` → ``main``). ``repodata.json.zst`` is preferred where the
channel has it; ``repodata.json`` otherwise. Both are bounded: the document as fetched and as
decompressed may hold at most ``max_repodata_size`` bytes (config key, default
:data:`MAX_REPODATA_BYTES`). A ``base_url`` in the repodata obeys :func:`airgap.upstream.urlpolicy.check_link`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..clock import timestamp
from ..compress import zstd_decompress_bounded
from ..core.manifest import is_safe_channel_name
from ..core.repodata import Repodata, parse_repodata
from ..errors import NotFound, UpstreamError, UsageError
from ..redact import MARKER, redact
from .fetch import Fetcher, url_to_path
from .urlpolicy import check_link

log = logging.getLogger(__name__)

# The default bound of one subdir's repodata.json, decompressed (config: max_repodata_size).
# conda-forge linux-64, the largest public subdir, is 254 MB (2025) and has grown by roughly a
# quarter a year: 1 GiB leaves it years of room, while a zstd bomb stops there instead of taking
# every gigabyte the host has (parsing costs about 5x the document in memory).
MAX_REPODATA_BYTES = 1 << 30


@dataclass(frozen=True)
class Channel:
    url: str  # normalized, ends with "/"
    name: str

    def subdir_url(self, subdir: str) -> str:
        return urllib.parse.urljoin(self.url, subdir + "/")


def channel_from_string(value: str) -> Channel:
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in ("http", "https", "file"):
            raise UsageError(f"channel {value!r}: expected an http(s):// or file:// URL or a path, found scheme {scheme!r}")
        url = value
    else:
        url = Path(os.path.abspath(os.path.expanduser(value))).as_uri()
    if not url.endswith("/"):
        url += "/"
    parts = [p for p in urllib.parse.urlparse(redact(url)).path.split("/") if p]  # never named after a token
    name = parts[-1] if parts and parts[-1] != MARKER else ""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    if not is_safe_channel_name(name):
        raise UsageError(f"channel {value!r}: cannot name it after the last part of its URL; set dest_channel")
    return Channel(url=url, name=name)


URL_SAFE = re.compile(r"[A-Za-z0-9._~/-]*\Z")  # what urllib.parse.quote leaves as it is


def package_url(base: str, filename: str) -> str:
    """The URL of ``filename`` in the folder ``base`` (ends with "/")."""
    # most names need no quoting; quote() costs ~15 µs a name, which 300,000 records notice
    return base + (filename if URL_SAFE.match(filename) else urllib.parse.quote(filename))


@dataclass
class FetchedRepodata:
    channel: Channel
    subdir: str
    url: str
    sha256: str  # of the bytes as fetched
    size: int
    fetched: str
    repodata: Repodata

    def package_url(self, filename: str) -> str:
        return package_url(self.packages_base, filename)

    @functools.cached_property
    def packages_base(self) -> str:
        """The URL the package files are under: CEP-15 ``base_url`` if given, else the subdir's."""
        return packages_base(self.url, self.repodata, self.channel.subdir_url(self.subdir))


def packages_base(repodata_url: str, repodata: Repodata, default: str) -> str:
    """Where ``repodata``'s packages are: its CEP-15 ``base_url`` if it has one, else ``default``.

    A remote channel may point only to http(s), never from https to http (:func:`check_link`).
    """
    base = repodata.base_url()
    if not base:
        return default
    base = urllib.parse.urljoin(repodata_url, base)
    check_link(repodata_url, base, "info.base_url")
    return base if base.endswith("/") else base + "/"


def decode_repodata(raw: bytes, url: str, subdir: str, max_bytes: int = MAX_REPODATA_BYTES) -> Repodata:
    """Upstream repodata bytes as fetched from ``url`` (``.zst`` or plain) → :class:`Repodata`.

    Pure. Decompression stops at ``max_bytes``; a ``base_url`` that may not be followed is an
    :class:`UpstreamError` here, before any package is planned.
    """
    if url.endswith(".zst"):
        data = zstd_decompress_bounded(raw, max_bytes, url, UpstreamError)
    elif len(raw) > max_bytes:
        raise UpstreamError(f"{url}: expected at most {max_bytes} bytes of repodata (max_repodata_size), found {len(raw)}")
    else:
        data = raw
    rd = parse_repodata(data, subdir, url)
    packages_base(url, rd, url)
    return rd


def fetch_repodata(fetcher: Fetcher, channel: Channel, subdir: str, max_bytes: int = MAX_REPODATA_BYTES) -> FetchedRepodata | None:
    """Fetch one subdir's repodata; None when the channel has no such subdir."""
    base = channel.subdir_url(subdir)
    for name in ("repodata.json.zst", "repodata.json"):
        url = base + name
        try:
            raw = fetcher.get_bytes(url, max_bytes)
        except NotFound:
            continue
        fetched = timestamp()
        rd = decode_repodata(raw, url, subdir, max_bytes)
        log.info("%s: %d records", url, len(rd))
        return FetchedRepodata(channel, subdir, url, hashlib.sha256(raw).hexdigest(), len(raw), fetched, rd)
    return None


def fetch_channel(
    fetcher: Fetcher, channel: Channel, subdirs: list[str], max_bytes: int = MAX_REPODATA_BYTES
) -> dict[str, FetchedRepodata]:
    out: dict[str, FetchedRepodata] = {}
    for subdir in subdirs:
        got = fetch_repodata(fetcher, channel, subdir, max_bytes)
        if got is None:
            log.warning("%s has no %s/repodata.json; treating %s as empty", redact(channel.url), subdir, subdir)
            continue
        out[subdir] = got
    if not out:
        raise UpstreamError(f"{channel.url}: expected a conda channel (repodata.json in any of {', '.join(subdirs)}), found none")
    return out


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def list_directory(fetcher: Fetcher, url: str) -> list[str]:
    """File names directly inside a directory URL: ``file://`` listing, or an HTTP index page's links."""
    if not url.endswith("/"):
        url += "/"
    if url.startswith("file:"):
        path = Path(url_to_path(url))
        if not path.is_dir():
            raise UpstreamError(f"{url}: expected a directory of installers, found none")
        return sorted(p.name for p in path.iterdir() if p.is_file())
    try:
        page = fetcher.get_bytes(url, 64 << 20)
    except NotFound:
        raise UpstreamError(f"{url}: expected a directory listing of installers, found HTTP 404") from None
    parser = _Hrefs()
    parser.feed(page.decode("utf-8", "replace"))
    names = set()
    for href in parser.hrefs:
        target = urllib.parse.urljoin(url, href)
        if target.startswith(url) and "/" not in target[len(url) :] and target[len(url) :]:
            names.add(urllib.parse.unquote(target[len(url) :]))
    return sorted(names)
