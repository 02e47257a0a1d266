"""Collect's cheap paths for many small files: a cache looked up by one listing, ``file://`` files read inline.

A full export of a ``file://`` upstream of 300,000 small files cannot afford, per file, a
``stat`` of a cache path that does not exist (the cache holds none of them: they are read where
they lie) nor a thread-pool future: its thread hand-off, lock and result cost ten times the
open, read and hash of a 60-byte file. So the cache's blob folder is listed once
(:func:`cached_shas`), and small ``file://`` files are read and hashed on the calling thread
(:func:`read_here`), one ``read`` each; only large ones (worth a second core) and downloads go to
the pool. Either way each file is checked against its record now, and again by the archive
writer as it streams it (it may change in between: :meth:`BlobCache.hashed_here`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ..errors import UpstreamError
from ..upstream.cache import BlobCache
from ..upstream.fetch import Fetcher
from .plan import Want

log = logging.getLogger(__name__)

INLINE_MAX = 256 << 10  # file:// files up to this size are read on the calling thread


def cached_shas(cache: BlobCache) -> frozenset[str]:
    """The names in the cache's ``blobs/sha256`` folder, listed once (a miss then costs no ``stat``)."""
    try:
        return frozenset(os.listdir(cache.sha_dir))
    except OSError:
        return frozenset()


def split_local(todo: list[Want]) -> tuple[list[Want], list[Want]]:
    """``(small file:// files with a sha256 to read here, the rest for the pool)``."""
    here: list[Want] = []
    pool: list[Want] = []
    for w in todo:
        e = w.expected
        if e.sha256 and e.size is not None and e.size <= INLINE_MAX and w.url.startswith("file:"):
            here.append(w)
        else:
            pool.append(w)
    return here, pool


def read_here(
    cache: BlobCache,
    fetcher: Fetcher,
    wants: list[Want],
    found: Callable[[Want, str], None],
    failed: Callable[[str], None],
    on_bytes: Callable[[int], None] | None,
    on_file: Callable[[], None],
) -> None:
    """Check each small ``file://`` file against its record on this thread (size, sha256; not copied)."""
    for w in wants:
        try:
            sha = cache.download(fetcher, w.url, w.expected, on_bytes)  # read in place: file: with a sha256
        except UpstreamError as exc:
            failed(str(exc))
            log.info("%s", exc)
        else:
            found(w, sha)
        on_file()
