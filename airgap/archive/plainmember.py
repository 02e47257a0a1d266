"""A small blob member exactly as airgap writes it, read with its header in one call.

The import's blob child reads 300,000 members of ~60 bytes each. Through :meth:`ArchiveStream.members`
each is a header read, parsed field by field into a ``Member``, its name matched, its entry taken and
its bytes read through a guarded view: ~0.8 s of Python at 300,000 (docs/performance.md, twenty-sixth
session). The child knows which blob comes next (its list is in the archive's order) and its size, so
it reads header and bytes at once and accepts them only when the header is byte for byte what
``members`` would accept as that blob: the name field ``blobs/sha256/<hex>`` then NULs, no prefix, a
regular file, that size, a good checksum. Anything else (a pax header, another member, damage, the
end) is read again the careful way from the same header, which then accepts it or says why not.
"""

from __future__ import annotations

import tarfile

from .blobcopy import SMALL  # larger members go the careful way, as copy_blob reads them: hashed in pieces
from .layout import BLOB_PREFIX
from .reader import ArchiveStream
from .tarheader import BLOCK, Damaged, checksum_ok, field_number

_NO_PREFIX = bytes(155)


class PlainStream(ArchiveStream):
    def plain_member(self, sha256: str, size: int) -> bytes | None:
        """The ``size`` bytes of the next member if it is the plain member of blob ``sha256`` (not yet hashed);
        None, with nothing consumed, for anything else."""
        if self._pending is not None or self._ended or not self.seekable or not 0 <= size <= SMALL:
            return None
        self._skip_to(self._next_header)
        start = self._pos
        want = BLOCK + -(-size // BLOCK) * BLOCK
        try:
            buf = self._fh.read(want)
        except (OSError, ValueError):
            buf = b""
        if len(buf) == want and buf[:100] == (BLOB_PREFIX + sha256).encode().ljust(100, b"\0") and _plain(buf, size):
            self._pos = self._next_header = start + want
            self._current = None  # a view handed out before reads nothing more
            return buf[BLOCK : BLOCK + size]
        self._fh.seek(start)
        return None


def _plain(buf: bytes, size: int) -> bool:
    if buf[156:157] != tarfile.REGTYPE or buf[345:500] != _NO_PREFIX:
        return False
    try:
        return field_number(buf[124:136], "size", 0) == size and checksum_ok(buf[:BLOCK])
    except Damaged:
        return False
