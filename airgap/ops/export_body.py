"""An export's package members written by a child process (:mod:`airgap.archive.forked`) beside the parent's work.

The child starts at one of two moments, only where :func:`airgap.archive.forked.worth_it` says
the double write of the body pays:

- **early** (:func:`start_early`), right after the plan, when the plan alone says what the
  package members are: a full export (no ``--since``) whose every selected file is a ``file://``
  upstream's with a sha256 and a size, none of them already in the cache, no installers. The
  child then writes while the parent collects (builds the manifest) and renders the SBOM. After
  collect, :func:`matching` checks that the child writes exactly the manifest's package blobs
  (sha256 and size, in order); if it does not, the child is stopped and the export goes on
  without it.
- **late** (:func:`start_late`), after collect, from the manifest: the child writes while the
  SBOM renders.

Either way the parent writes the head and appends the child's members
(:func:`airgap.ops.export._write_volumes` with the child): the same archive, byte for byte, as
one process writes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from pathlib import Path

from ..archive import forked, frames
from ..clock import Clock
from ..config import Config
from ..progress import Bar
from ..upstream.cache import BlobCache
from .collect import Collected
from .local_files import all_unread, cached_shas
from .options import ExportOptions
from .plan import Plan


class Tally:
    """Progress from two threads (the child reports on one), held until a bar is attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bar: Bar | None = None
        self._bytes = self._files = 0

    def attach(self, bar: Bar) -> Bar:
        with self._lock:
            self._bar = bar
            bar.update(self._bytes)
            bar.files_done(self._files)
        return bar

    def update(self, n: int) -> None:
        with self._lock:
            if self._bar is None:
                self._bytes += n
            else:
                self._bar.update(n)

    def file_done(self) -> None:
        self.files_done(1)

    def files_done(self, n: int) -> None:
        with self._lock:
            if self._bar is None:
                self._files += n
            else:
                self._bar.files_done(n)


@dataclass
class Child:
    """A running child, how many members it writes (the manifest's last blobs, in the order of their
    sha256) and their mtime; an early one also what the plan said they are: their sha256 and sizes, in that order."""

    process: forked.BodyChild
    tally: Tally
    mtime: int
    count: int
    planned: tuple[list[str], list[int]] | None = None


def start_early(
    plan: Plan, config: Config, options: ExportOptions, archive: Path, clock: Clock, stack: contextlib.ExitStack
) -> Child | None:
    """The child, started from the plan, where the plan alone says what the package members are (see above); else None."""
    if not options.sbom or options.volume_size is not None or plan.installers or not forked.AVAILABLE:
        return None
    columns = all_unread(plan.wants)
    if columns is None:
        return None  # a download: collect decides what the archive holds
    shas, bases, names, sizes = columns
    # sha256 -> (size, folder URL, file name): the last record wins, as in collect
    files: dict[str, tuple[int, str, str]] = dict(zip(shas, zip(sizes, bases, names, strict=True), strict=True))
    if not cached_shas(BlobCache(Path(config.mirror_dir))).isdisjoint(files):
        return None  # collect takes such a file from the cache: leave it the choice
    if not forked.worth_it(len(files), sum(map(itemgetter(0), files.values()))):
        return None
    order = sorted(files)  # the manifest's order
    kept = list(map(files.__getitem__, order))  # (size, folder URL, file name) in that order
    folders = numbered(kept)
    planned = (order, list(map(itemgetter(0), kept)))
    return _start(archive, _early_frames(order, kept, folders), list(folders), clock, planned, stack)


def numbered(kept: list[tuple[int, str, str]]) -> dict[str, int]:
    """Each folder URL of ``kept`` once, numbered in the order met: the child is told each once, entries name it by number."""
    return {base: n for n, base in enumerate(dict.fromkeys(map(itemgetter(1), kept)))}


def _early_frames(order: list[str], kept: list[tuple[int, str, str]], folders: dict[str, int]) -> Iterator[list[forked.Sent]]:
    """The child's list, a frame at a time, made at C speed (300,000 entries: a generator per entry cost 0.8 s)."""
    for at in range(0, len(order), frames.FRAME):
        part = kept[at : at + frames.FRAME]
        where = zip(map(folders.__getitem__, map(itemgetter(1), part)), map(itemgetter(2), part), strict=True)
        yield list(zip(order[at : at + frames.FRAME], map(itemgetter(0), part), where, repeat(False), strict=False))  # paths: the child's


def matching(early: Child, got: Collected) -> Child | None:
    """``early`` if it writes exactly the manifest's package blobs; else it is stopped and None. The manifest
    lists blobs sorted by sha256 and once each, as the child writes them: the same sha256 and sizes in the same order
    (two list comparisons at C speed; the strings are mostly the plan's own, compared by identity) say it."""
    body = [b for b in got.manifest.blobs if b.kind != "repodata"]
    shas, sizes = early.planned or ([], [])
    if list(map(attrgetter("sha256"), body)) == shas and list(map(attrgetter("size"), body)) == sizes:
        return early
    early.process.close()
    return None


def start_late(got: Collected, archive: Path, clock: Clock, stack: contextlib.ExitStack) -> Child | None:
    """The child, started from the manifest, where it pays; else None."""
    body = [b for b in got.manifest.blobs if b.kind != "repodata"]
    if not forked.worth_it(len(body), sum(b.size for b in body)):
        return None
    fresh, file = got.fresh, got.cache.file
    entries: Iterator[forked.Sent] = ((b.sha256, b.size, file(b.sha256), b.sha256 in fresh) for b in body)  # paths
    return _start(archive, frames.chunked(entries), [], clock, None, stack)


def _start(
    archive: Path,
    framed: Iterable[list[forked.Sent]],
    folders: list[str],
    clock: Clock,
    planned: tuple[list[str], list[int]] | None,
    stack: contextlib.ExitStack,
) -> Child:
    tally, mtime = Tally(), int(clock())
    process = stack.enter_context(forked.BodyChild(archive.parent, framed, folders, mtime, tally.update, tally.files_done))
    return Child(process, tally, mtime, process.count, planned)
