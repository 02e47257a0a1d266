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

That is for sync, which publishes what collect checked. An export does not read a ``file://``
file whose record has a sha256 and a size at all before the archive (:func:`take_unread`): the
manifest holds what the record says, and the archive writer reads each file once, where it lies,
checking size and sha256 as it streams it (tar does no less: open, read, close). A file that fails
there fails the export, the archive is removed, and :func:`check_unread` reads every such file to
name each bad one, as collect would have.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from itertools import groupby, repeat
from operator import attrgetter, itemgetter
from typing import cast

from ..core.manifest import BlobEntry, PackageEntry
from ..errors import DownloadError, UpstreamError
from ..upstream.cache import BlobCache, Expected
from ..upstream.channels import package_url
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


def all_unread(wants: list[Want]) -> tuple[list[str], list[str], list[str], list[int]] | None:
    """``(sha256s, folder URLs, file names, sizes)`` of ``wants`` when every one is a ``file://`` upstream's file
    with a sha256 and a size (what :func:`take_unread` takes unread), else None. Column by column, at C speed."""
    shas, bases, names, sizes = (list(map(attrgetter(f), wants)) for f in ("sha256", "base", "filename", "size"))
    if all(shas) and None not in sizes and all(b.startswith("file:") for b in set(bases)):
        return shas, bases, names, sizes
    return None


def take_unread(cache: BlobCache, todo: list[Want], actual: dict[tuple[str, str], dict[str, str]], sizes: dict[str, int]) -> list[Want]:
    """Export: the ``file://`` files of ``todo`` with a sha256 and a size, taken as their records say
    (in ``actual``, by subdir, and ``sizes``, not read: the archive writer checks them); returns the rest."""
    rest: list[Want] = []
    taken: list[tuple[str, str, str, int]] = []
    for place, group in groupby(todo, key=itemgetter(0, 1)):  # a plan's wants come a subdir at a time
        wants = list(group)
        found = actual.setdefault(place, {})
        columns = all_unread(wants)
        if columns is not None:
            shas, bases, names, lengths = columns
            found.update(zip(names, shas, strict=True))
            sizes.update(zip(shas, lengths, strict=True))
            taken += zip(bases, names, shas, lengths, strict=True)
            continue
        for w in wants:
            _, _, filename, base, sha, _, size = w
            if sha and size is not None and base.startswith("file:"):
                taken.append((base, filename, sha, size))
                found[filename] = sha
                sizes[sha] = size
            else:
                rest.append(w)
    cache.in_place_unread(taken)
    return rest


def check_unread(cache: BlobCache, unwritten: str) -> DownloadError | None:
    """After the archive writer refused a file: read every file :func:`take_unread` took, and name
    each that is not what its record says (one error, as collect gives); None if all are."""
    failures: list[str] = []
    for base, filename, sha, size in cache.unread:
        try:
            cache.check_in_place(package_url(base, filename), Expected(sha, None, size))
        except UpstreamError as exc:
            failures.append(str(exc))
    if not failures:
        return None
    failures.sort()
    return DownloadError(f"{len(failures)} of {len(cache.unread)} downloads failed; {unwritten} (first: {failures[0]})", failures)


def all_travel(
    names: list[str], found: dict[str, str], sizes: dict[str, int], size_of: Callable[[str], int], blobs: dict[str, BlobEntry]
) -> list[PackageEntry]:
    """A subdir's package entries when each of ``names`` travels (no base holds any): its sha256 in ``found``, its
    size in ``sizes`` (else ``size_of(sha256)``, the cache's); each blob added to ``blobs`` unless there. Column by
    column, at C speed (300,000 files: a pass of dict lookups and struct calls per file cost 0.25 s)."""
    shas = list(map(found.__getitem__, names))  # collect found every selected file (a KeyError is a bug)
    known = list(map(sizes.get, shas))
    # None: a file taken from the cache, not from a record
    lengths = cast(list[int], known) if None not in known else [size_of(s) if n is None else n for s, n in zip(shas, known, strict=True)]
    entries = list(map(PackageEntry, names, shas, lengths))
    made = dict(zip(shas, map(BlobEntry, shas, lengths, repeat("package")), strict=True))
    if not blobs.keys().isdisjoint(made):
        made = {sha: b for sha, b in made.items() if sha not in blobs}  # the first entry of a blob stays, as setdefault keeps it
    blobs.update(made)
    return entries
