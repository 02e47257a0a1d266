"""One blob member checked and written to the file an import stages it in (or only checked).

Shared by the importing process (:func:`airgap.ops._archive.stream_blobs`) and the second process
that streams an import's package blobs beside it (:mod:`airgap.archive.blobchild`): the same
checks, the same writes, whichever process makes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .._fs import WRITE_SLICE, named, start_writeback, write_all
from ..core.manifest import BlobEntry
from .hashing import HashPipe
from .reader import _Guarded, copy_verified, read_verified

# Staged files this large start their writeback at once (measured: 500 x 1 MiB import 1.75 s -> 1.0 s);
# for small files the per-file request costs more than it saves (10,000 x 16 KiB: 2.9 s -> 3.5 s).
WRITEBACK_MIN = 256 << 10
SMALL = 64 << 10  # blobs up to this size are read whole and hashed before their staged file is created
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


class FdWriter:
    """``write`` straight to a file descriptor: no buffer object per staged file (there may be 100,000)."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str | os.PathLike[str]) -> None:
        self.fd, self.path = fd, path

    def write(self, data: bytes) -> int:
        try:
            if len(data) <= WRITE_SLICE:
                n = os.write(self.fd, data)  # a small blob: one call, no view
                if n < len(data):
                    write_all(self.fd, memoryview(data)[n:])
            else:
                write_all(self.fd, data)
        except OSError as exc:  # ENOSPC names no file: name the staged one
            raise named(exc, self.path) from None
        return len(data)


def copy_blob(
    entry: BlobEntry, fh: _Guarded, target: str | os.PathLike[str] | None, what: str, on_bytes: Callable[[int], None], pipe: HashPipe
) -> None:
    """The blob ``fh`` reads, checked against ``entry``, written to a new file ``target`` (None: only checked).
    A large blob's hash may still be pending on ``pipe`` when this returns (``pipe.check``/``finish`` say)."""
    if target is not None and entry.size <= SMALL:  # one read, hashed, then one write: no chunk loop per file
        stage_bytes(read_verified(fh, entry, what), target)
        on_bytes(entry.size)
    elif target is not None:
        fd = os.open(target, _CREATE, 0o666)
        try:
            copy_verified(fh, entry, FdWriter(fd, target), what, on_bytes, pipe)
            if entry.size >= WRITEBACK_MIN:
                start_writeback(fd)  # the disk starts now; the destination's one syncfs then waits for less
        finally:
            os.close(fd)
    else:
        copy_verified(fh, entry, None, what, on_bytes, pipe)


def stage_bytes(data: bytes, target: str | os.PathLike[str]) -> None:
    """A checked small blob written to its new staged file ``target``."""
    fd = os.open(target, _CREATE, 0o666)
    try:
        FdWriter(fd, target).write(data)
    finally:
        os.close(fd)
