"""A long list handed to a child process a frame at a time, in an unlinked temporary file.

A conda-forge subdir's 300,000 package members, sent in one message, are 300,000 Python objects
decoded at once in the child (some 170 MB for an export's) and the message itself in both
processes. Written as msgpack frames of :data:`FRAME` entries, each behind its length, the list
costs one frame in either process; the child reads it through the inherited descriptor
(:mod:`.forked`, :mod:`.blobchild`).
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import msgspec

FRAME = 4096  # entries per frame
_FOLLOW_WAIT = 0.001  # seconds between looks at a growing list's end
_LENGTH = struct.Struct("<I")


def listing(frames: Iterable[list[Any]], prefix: str, directory: str | None = None) -> tuple[IO[bytes], int]:
    """An unlinked temporary file (in ``directory``, else the system's) holding ``frames``, at its start, and how many
    entries they hold; the caller closes it once the child holds its own descriptor."""
    whole = Growing(prefix, directory)
    try:
        whole.write(frames)  # pwrite: the file stays at its start
    except BaseException:
        whole.close()
        raise
    return whole.fh, whole.count


def chunked(entries: Iterable[Any]) -> Iterator[list[Any]]:
    """``entries`` :data:`FRAME` at a time (a caller that can make its frames at C speed gives them to :class:`Growing` or :func:`listing`)."""
    it = iter(entries)
    while frame := list(islice(it, FRAME)):
        yield frame


def read(fh: IO[bytes], kind: Any, count: int | None = None) -> Iterator[Any]:
    """Each frame of ``fh`` from where it stands, decoded as ``kind`` (a ``list[...]`` type). ``count``: the entries a
    :class:`Growing` list will hold, read as they are written (the end of the file is only where the writer is)."""
    decode = msgspec.msgpack.Decoder(kind).decode
    got = 0
    while count is None or got < count:
        head = _exactly(fh, _LENGTH.size, count is not None)
        if not head:
            return
        if len(head) < _LENGTH.size:
            raise ValueError("the list of entries ends inside a frame's length")
        (size,) = _LENGTH.unpack(head)
        data = _exactly(fh, size, count is not None)
        if len(data) < size:
            raise ValueError("the list of entries ends inside a frame")
        frame = decode(data)
        got += len(frame)
        if count is not None and got > count:
            raise ValueError(f"the list of entries holds more than the {count} it was said to")
        yield frame


def _exactly(fh: IO[bytes], n: int, follow: bool) -> bytes:
    """``n`` bytes of ``fh``, or fewer at its end; ``follow``: the end moves, wait for the writer (it writes them all,
    or the process reading is stopped by the one writing)."""
    data = fh.read(n)
    while follow and len(data) < n:
        time.sleep(_FOLLOW_WAIT)
        data += fh.read(n - len(data))
    return data


class Growing:
    """A list of frames in an unlinked temporary file that its reader (a child given the descriptor) may read while it
    is still written: the import's blob child starts on the first frames, not after 300,000 entries (0.4 s).

    The frames are appended with ``pwrite``: the reader's offset, which the inherited descriptor shares, moves only as
    it reads. The reader is told the number of entries ahead and follows the file until it has them all
    (:func:`read` with ``count``); the writer says them all, or stops the reader."""

    def __init__(self, prefix: str, directory: str | None = None) -> None:
        self.fh = tempfile.TemporaryFile(prefix=prefix, dir=directory)
        self.count = 0  # entries written
        self._end = 0

    def fileno(self) -> int:
        return self.fh.fileno()

    def write(self, frames: Iterable[list[Any]]) -> None:
        encode = msgspec.msgpack.Encoder().encode
        fd = self.fh.fileno()
        for frame in frames:
            if frame:
                data = encode(frame)
                piece = memoryview(_LENGTH.pack(len(data)) + data)
                while piece:
                    n = os.pwrite(fd, piece, self._end)
                    piece, self._end = piece[n:], self._end + n
                self.count += len(frame)

    def close(self) -> None:
        self.fh.close()
