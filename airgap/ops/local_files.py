"""Collect's cheap paths for many small files: a cache looked up by one listing, ``file://`` files in batches.

A full export of a ``file://`` upstream of 300,000 small files cannot afford, per file, a
``stat`` of a cache path that does not exist (the cache holds none of them: they are read where
they lie) nor a thread-pool future: its hand-off, locks and result cost ten times the open,
read and hash of a 60-byte file. So the cache's blob folder is listed once (:func:`cached_shas`),
and small ``file://`` files go to the pool :data:`BATCH` at a time (:func:`batches`), each read
with one ``read``: a few hundred futures instead of 300,000, and still several reads in flight
when the files are not in the page cache (a cold disk, a network file system). Large files and
downloads go one by one. Either way each file is checked against its record now, and again by
the archive writer as it streams it (it may change in between: :meth:`BlobCache.hashed_here`).
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

SMALL = 256 << 10  # file:// files up to this size are read in batches
BATCH = 512  # small file:// files per pool job


def cached_shas(cache: BlobCache) -> frozenset[str]:
    """The names in the cache's ``blobs/sha256`` folder, listed once (a miss then costs no ``stat``)."""
    try:
        return frozenset(os.listdir(cache.sha_dir))
    except OSError:
        return frozenset()


def batches(todo: list[Want]) -> list[list[Want]]:
    """The work for the pool: small ``file://`` files with a sha256 in batches of :data:`BATCH`, everything else one by one."""
    here: list[Want] = []
    alone: list[list[Want]] = []
    for w in todo:
        e = w.expected
        if e.sha256 and e.size is not None and e.size <= SMALL and w.url.startswith("file:"):
            here.append(w)
        else:
            alone.append([w])
    return [here[i : i + BATCH] for i in range(0, len(here), BATCH)] + alone


def fetch_batch(
    cache: BlobCache, fetcher: Fetcher, wants: list[Want], on_bytes: Callable[[int], None] | None
) -> list[tuple[Want, str | None, str | None]]:
    """Each file checked against its record (read in place or downloaded): ``(want, sha256, None)`` or ``(want, None, error)``."""
    out: list[tuple[Want, str | None, str | None]] = []
    for w in wants:
        try:
            out.append((w, cache.download(fetcher, w.url, w.expected, on_bytes), None))
        except UpstreamError as exc:
            log.info("%s", exc)  # the error names every failure, once, at the end
            out.append((w, None, str(exc)))
    return out
