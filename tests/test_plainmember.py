"""The blob child's one-read path for a plain small member (airgap.archive.plainmember), and where it steps aside."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from airgap.archive.plainmember import PlainStream
from airgap.archive.writer import header
from airgap.core.manifest import BlobEntry
from airgap.errors import ArchiveFormatError

BLOCK = 512


def _blob(data: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(data).hexdigest(), data


def _plain(sha: str, data: bytes) -> bytes:
    """A member as airgap's writer makes it."""
    return header(f"blobs/sha256/{sha}", len(data), 0) + data + bytes(-len(data) % BLOCK)


def _pax(sha: str, data: bytes) -> bytes:
    """The same member behind a pax header, as another tar writer may make it: valid, not plain."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"blobs/sha256/{sha}")
        info.size = len(data)
        info.pax_headers = {"comment": "written elsewhere"}
        tar.addfile(info, io.BytesIO(data))
        end = tar.offset  # the member's end: tarfile's end blocks and record padding follow
    return out.getvalue()[:end]


def _stream(tmp_path: Path, *members: bytes) -> PlainStream:
    path = tmp_path / "a.tar"
    path.write_bytes(b"".join(members) + bytes(2 * BLOCK))
    return PlainStream(path)


def test_plain_members_are_read_at_once_and_others_the_careful_way(tmp_path: Path) -> None:
    blobs = [_blob(b"first"), _blob(b"plain one"), _blob(b"behind a pax header" * 40), _blob(b"plain again")]
    (s0, d0), (s1, d1), (s2, d2), (s3, d3) = blobs
    stream = _stream(tmp_path, _plain(s0, d0), _plain(s1, d1), _pax(s2, d2), _plain(s3, d3))
    entries = {sha: BlobEntry(sha, len(data), "package") for sha, data in blobs}
    members = stream.members(entries.get)
    try:
        assert stream.plain_member(s0, len(d0)) is None  # the first header is read as the stream opens: careful
        entry, fh = next(members)
        assert entry.sha256 == s0 and fh.read() == d0
        assert stream.plain_member(s2, len(d1)) is None  # not the blob due: stepped aside, nothing consumed
        assert stream.plain_member(s1, len(d1) + 1) is None  # not its size
        assert stream.plain_member(s1, len(d1)) == d1  # at once
        assert stream.plain_member(s2, len(d2)) is None  # a pax header: careful
        entry, fh = next(members)
        assert entry.sha256 == s2 and fh.read() == d2
        assert stream.plain_member(s3, len(d3)) == d3
        assert next(members, None) is None  # the end, where the careful reader finds it
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("where", "value", "says"),
    [
        (148, b"0000001\0", "bad header checksum"),  # the checksum field
        (156, b"2", "to be a regular file, found a symlink"),  # ustar type 2 where a file was due
        (345, b"x", "expected only blobs"),  # a prefix: another name
    ],
)
def test_a_damaged_header_is_judged_by_the_careful_reader(tmp_path: Path, where: int, value: bytes, says: str) -> None:
    (s0, d0), (s1, d1) = _blob(b"first"), _blob(b"second")
    bad = bytearray(_plain(s1, d1))
    bad[where : where + len(value)] = value
    if where != 148:  # a changed header with its checksum made right again: only its meaning differs
        bad[148:156] = b"%06o\0 " % (sum(bad[:148]) + 8 * 32 + sum(bad[156:BLOCK]))
    stream = _stream(tmp_path, _plain(s0, d0), bytes(bad))
    members = stream.members({s0: BlobEntry(s0, len(d0), "package"), s1: BlobEntry(s1, len(d1), "package")}.get)
    try:
        next(members)[1].read()
        assert stream.plain_member(s1, len(d1)) is None
        with pytest.raises(ArchiveFormatError, match=says):
            next(members)
    finally:
        stream.close()
