"""An import's package blobs checked and staged by a second process while this one does the index work.

The importing process reads the archive's documents (its repodata and SBOM, the first blobs), then
hands the rest to :class:`airgap.archive.blobchild.BlobChild`, told where each blob is staged (the
same ``keep`` the one-process stream asks), and goes on: it checks the archive's index against the
manifest, journals the change, and renders the index files of each new subdir into the folder
staged for it (shards, ``repodata.json``, the names table). Before anything a client can see
changes (a folder placed, a package file moved, an index written), it waits for the child
(:meth:`Pending.wait`): a damaged blob still fails the import, and the destination is as it was.

Only where it pays and is possible (:func:`beside`): a destination whose blobs are staged on this
host, an archive in one regular file (a second reader at the same offset), and at least
:data:`MIN_BLOBS` blobs after the documents (a fresh interpreter costs some 0.1 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Protocol

from .._heap import give_back
from ..archive import frames
from ..archive.blobchild import BlobChild, Entry
from ..archive.reader import ArchiveStream
from ..core.manifest import BlobEntry
from ..progress import Bar
from ._archive import Beside, Pending
from .needed import Needed

AVAILABLE = os.name == "posix"  # descriptors passed to the child (pass_fds)
MIN_BLOBS = 10_000
MIN_ENV = "AIRGAP_CHILD_MIN_BLOBS"  # another threshold (tests: 1, a child for any archive; 0 and below: never one)

Keep = Callable[[BlobEntry, "tuple[Path, int] | None"], "str | os.PathLike[str] | None"]
#: keep() for a frame of blobs at once, where it can say at C speed (each bound for a new subdir's folder); else None
KeepMany = Callable[[list[BlobEntry]], "list[str] | None"]
_sha, _size = attrgetter("sha256"), attrgetter("size")


class _Child:
    """The running child and the progress bar it reports to."""

    def __init__(self, child: BlobChild, bar: Bar) -> None:
        self._child: BlobChild | None = child
        self._bar = bar

    def wait(self) -> None:
        try:
            assert self._child is not None
            self._child.wait()
        finally:
            self.close()

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close()
            self._bar.close()


def beside(keep: Keep, keep_many: KeepMany | None = None) -> Beside:
    """What :func:`~._archive.stream_beside` asks once the documents are read: a child for the rest, where it pays."""

    def start(rest: list[BlobEntry], stream: ArchiveStream, seen: list[str], bar: Bar) -> Pending | None:
        least = int(os.environ[MIN_ENV]) if os.environ.get(MIN_ENV, "").lstrip("-").isdigit() else MIN_BLOBS
        if not AVAILABLE or least <= 0 or len(rest) < least or not stream.seekable:
            return None
        try:
            fd = os.open(stream.path, os.O_RDONLY | os.O_CLOEXEC)  # the child's own offset in the same file
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != stream.identity:
                return None  # replaced since it was opened: read on here
            framed = _framed(rest, keep, keep_many)  # keep() as the stream asks it, in order
            child = BlobChild(
                stream.path, fd, stream.member_offset, framed, len(rest), len(rest) + len(seen), seen, bar.update, bar.files_done
            )
        finally:
            os.close(fd)
        give_back()  # the 300,000 targets made and written: their heap back before the index work's peak
        return _Child(child, bar)

    return start


def _framed(rest: list[BlobEntry], keep: Keep, keep_many: KeepMany | None) -> Iterator[list[Entry]]:
    """The child's list, a frame at a time: each frame's targets from ``keep_many`` where it says them (a new subdir's
    300,000 blobs: 0.5 s less before the child starts), else from ``keep`` blob by blob."""
    for at in range(0, len(rest), frames.FRAME):
        chunk = rest[at : at + frames.FRAME]
        many = keep_many(chunk) if keep_many is not None else None
        targets: list[str | None] = [_text(keep(b, None)) for b in chunk] if many is None else list(many)
        yield list(zip(map(_sha, chunk), map(_size, chunk), targets, strict=True))


def new_folder_targets(needed: Needed, folder_of: Callable[[tuple[str, str]], Path | None], result: Written) -> KeepMany:
    """``keep_many`` for a stage whose ``keep`` stages a blob with one place in a new subdir as ``<folder>/<file name>``
    (``folder_of``), counting its bytes in ``result``: the same targets, for a frame at a time."""

    def prefix(key: tuple[str, str]) -> str | None:
        return None if (folder := folder_of(key)) is None else f"{folder}/"

    def keep_many(chunk: list[BlobEntry]) -> list[str] | None:
        targets = needed.only_places(list(map(_sha, chunk)), prefix)
        if targets is not None:
            result.bytes_written += sum(map(_size, chunk))
        return targets

    return keep_many


class Written(Protocol):
    bytes_written: int


def _text(target: str | os.PathLike[str] | None) -> str | None:
    return None if target is None else os.fspath(target)
