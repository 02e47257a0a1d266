"""The tar headers an airgap/1 archive may hold, decoded by hand and refused when they are anything else.

``tarfile``'s per-member cost dominated an import of many small files, so the reader
(:mod:`airgap.archive.reader`) parses headers with these pieces: ustar headers (POSIX or GNU
magic) with a valid checksum and octal or base-256 numbers, and pax extended header records.
Anything malformed is :class:`Damaged` (the reader turns it into ``ArchiveFormatError``).
"""

from __future__ import annotations

import tarfile
import zlib

BLOCK = 512
MAX_PAX_HEADER_BYTES = 64 << 10  # a pax header of a blob member needs ~200 bytes
ZERO_BLOCK = bytes(BLOCK)
FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
REFUSED_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
KINDS = {
    tarfile.SYMTYPE: "a symlink",
    tarfile.LNKTYPE: "a hardlink",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.DIRTYPE: "a directory",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a GNU sparse file",
    tarfile.GNUTYPE_LONGNAME: "a GNU long-name header",
    tarfile.GNUTYPE_LONGLINK: "a GNU long-link header",
    tarfile.XGLTYPE: "a pax global header",
    tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
    tarfile.XHDTYPE: "a pax header",
}
OCTAL = b"01234567"


def describe_type(kind: bytes) -> str:
    return KINDS.get(kind, f"a member of type {kind!r}")


class Damaged(Exception):
    """A header that is not what airgap/1 allows; the message says what and where."""


class NotTar(Damaged):
    """The first header is no tar header at all."""


class Member:
    """One tar member as the header (and a pax header before it) describes it."""

    __slots__ = ("name", "size", "type", "offset", "offset_data")

    def __init__(self, name: str, size: int, kind: bytes, offset: int, offset_data: int) -> None:
        self.name = name
        self.size = size
        self.type = kind
        self.offset = offset  # of its first header block (the pax header, if any)
        self.offset_data = offset_data

    def is_file(self) -> bool:
        """A plain regular file: not a link, device, directory or contiguous file (sparse ones are refused earlier)."""
        return self.type in FILE_TYPES


def field_number(field: bytes, what: str, offset: int) -> int:
    """A numeric header field: octal digits (NUL or space terminated) or GNU base-256."""
    if field[0] in (0x80, 0xFF):  # base-256, positive or negative (two's complement)
        n = int.from_bytes(field[1:], "big")
        return n - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else n
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if digits.strip(OCTAL):
        raise Damaged(f"expected an octal number in the {what} field of the header at byte {offset}, found {field!r}")
    return int(digits, 8) if digits else 0


def byte_sum(buf: bytes) -> int:
    """The sum of ``buf``'s bytes (unsigned), for a 512-byte header at C speed: adler32's low half is 1 + that sum
    modulo 65,521, exact for 256 bytes or fewer (at most 65,280). ``sum(buf)`` makes an int per byte: 0.5 s of a
    child staging 300,000 blobs (docs/performance.md, twenty-sixth session)."""
    view = memoryview(buf)
    if len(view) == 512:  # a header: two calls, no loop
        return (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2
    return sum((zlib.adler32(view[at : at + 256]) & 0xFFFF) - 1 for at in range(0, len(view), 256))


def checksum_ok(buf: bytes) -> bool:
    """The header's checksum field matches the (unsigned) sum of its bytes, the field counted as spaces."""
    try:
        return field_number(buf[148:156], "checksum", 0) == byte_sum(buf) - sum(buf[148:156]) + 256
    except Damaged:
        return False


def field_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def pax_records(data: bytes, offset: int) -> dict[bytes, bytes]:
    """The ``"<len> <key>=<value>\\n"`` records of a pax header; anything malformed is refused."""
    out: dict[bytes, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos, min(end, pos + 12))
        length_text = data[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise Damaged(f"expected a valid pax header, found a damaged one at byte {offset} (record at {pos} has no length)")
        stop = pos + int(length_text)
        if stop > end or stop <= space + 1 or data[stop - 1] != 0x0A:
            raise Damaged(f"expected a valid pax header, found a damaged one at byte {offset} (record at {pos} has a wrong length)")
        key, eq, value = data[space + 1 : stop - 1].partition(b"=")
        if not eq or not key:
            raise Damaged(f"expected a valid pax header, found a damaged one at byte {offset} (record at {pos} has no key=value)")
        if key.startswith(b"GNU.sparse."):
            raise Damaged(
                f"expected a valid pax header, found a damaged one at byte {offset} (GNU sparse records; airgap/1 has no sparse members)"
            )
        out[key] = value
        pos = stop
    return out
