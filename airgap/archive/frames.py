"""A long list handed to a child process a frame at a time, in an unlinked temporary file.

A conda-forge subdir's 300,000 package members, sent in one message, are 300,000 Python objects
decoded at once in the child (some 170 MB for an export's) and the message itself in both
processes. Written as msgpack frames of :data:`FRAME` entries, each behind its length, the list
costs one frame in either process; the child reads it through the inherited descriptor
(:mod:`.forked`, :mod:`.blobchild`).
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import msgspec

FRAME = 4096  # entries per frame
_LENGTH = struct.Struct("<I")


def listing(frames: Iterable[list[Any]], prefix: str, directory: str | None = None) -> tuple[IO[bytes], int]:
    """An unlinked temporary file (in ``directory``, else the system's) holding ``frames``, at its start, and how many
    entries they hold; the caller closes it once the child holds its own descriptor."""
    fh = tempfile.TemporaryFile(prefix=prefix, dir=directory)
    try:
        return fh, write(fh, frames)
    except BaseException:
        fh.close()
        raise


def write(fh: IO[bytes], frames: Iterable[list[Any]]) -> int:
    """Each list of ``frames`` written to ``fh`` as a frame; ``fh`` is left at its start. How many entries were written."""
    count = 0
    encode = msgspec.msgpack.Encoder().encode
    for frame in frames:
        if frame:
            data = encode(frame)
            fh.write(_LENGTH.pack(len(data)))
            fh.write(data)
            count += len(frame)
    fh.flush()
    fh.seek(0)
    return count


def chunked(entries: Iterable[Any]) -> Iterator[list[Any]]:
    """``entries`` :data:`FRAME` at a time (a caller that can make its frames at C speed gives them to :func:`write`)."""
    it = iter(entries)
    while frame := list(islice(it, FRAME)):
        yield frame


def read(fh: IO[bytes], kind: Any) -> Iterator[Any]:
    """Each frame of ``fh`` from where it stands, decoded as ``kind`` (a ``list[...]`` type)."""
    decode = msgspec.msgpack.Decoder(kind).decode
    while head := fh.read(_LENGTH.size):
        if len(head) < _LENGTH.size:
            raise ValueError("the list of entries ends inside a frame's length")
        (size,) = _LENGTH.unpack(head)
        data = fh.read(size)
        if len(data) < size:
            raise ValueError("the list of entries ends inside a frame")
        yield decode(data)
