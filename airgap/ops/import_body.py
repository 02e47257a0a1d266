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
from collections.abc import Callable
from pathlib import Path

from .._heap import give_back
from ..archive.blobchild import BlobChild
from ..archive.reader import ArchiveStream
from ..core.manifest import BlobEntry
from ..progress import Bar
from ._archive import Beside, Pending

AVAILABLE = os.name == "posix"  # descriptors passed to the child (pass_fds)
MIN_BLOBS = 10_000
MIN_ENV = "AIRGAP_CHILD_MIN_BLOBS"  # another threshold (tests: 1, a child for any archive; 0 and below: never one)

Keep = Callable[[BlobEntry, "tuple[Path, int] | None"], "str | os.PathLike[str] | None"]


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


def beside(keep: Keep) -> Beside:
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
            entries = ((b.sha256, b.size, _text(keep(b, None))) for b in rest)  # keep() as the stream asks it, in order
            child = BlobChild(stream.path, fd, stream.member_offset, entries, len(rest) + len(seen), seen, bar.update, bar.file_done)
        finally:
            os.close(fd)
        give_back()  # the 300,000 targets made and written: their heap back before the index work's peak
        return _Child(child, bar)

    return start


def _text(target: str | os.PathLike[str] | None) -> str | None:
    return None if target is None else os.fspath(target)
