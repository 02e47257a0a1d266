"""The tar header checks the archive reader and the import's blob child make on every member."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from airgap.archive.tarheader import byte_sum, checksum_ok


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 511, 512, 513, 1024, 1500])
def test_byte_sum_is_the_sum_of_the_bytes_up_to_the_largest(size: int) -> None:
    for data in (os.urandom(size), b"\xff" * size, b"\x00" * size, bytes(range(256)) * (size // 256) + bytes(size % 256)):
        assert byte_sum(data) == sum(data)


def _header(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return out.getvalue()[:512]


def _with_checksum(header: bytes, value: int) -> bytes:
    return header[:148] + b"%06o\0 " % value + header[156:]


def test_a_header_checks_only_with_its_exact_checksum() -> None:
    header = _header("blobs/sha256/" + "ab" * 32)
    assert checksum_ok(header)
    true = int(header[148:154], 8)
    assert checksum_ok(_with_checksum(header, true))
    # a sum taken modulo adler32's 65,521 (or 256, or anything short of the whole) would let these through
    for wrong in (true + 65521, true - 1, true + 256, true + 1):
        assert not checksum_ok(_with_checksum(header, wrong))
    for at in (0, 100, 200, 300, 511):  # any byte changed
        damaged = bytearray(header)
        damaged[at] ^= 0x41
        assert not checksum_ok(bytes(damaged))


def test_a_header_of_high_bytes_checks() -> None:
    header = bytearray(_header("x"))
    header[157:257] = b"\xff" * 100  # the link name and the prefix: a sum over 65,521 (tarfile reads them as text)
    header[345:500] = b"\xff" * 155
    true = sum(header[:148]) + 8 * 32 + sum(header[156:])
    assert true > 65521
    assert checksum_ok(_with_checksum(bytes(header), true))
    assert not checksum_ok(_with_checksum(bytes(header), true - 65521))
