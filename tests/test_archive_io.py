"""The hand-written tar reader and writer next to Python's tarfile.

The reader parses headers itself (tarfile's per-member cost dominated imports of many small
files) and the writer builds them itself: each must agree with tarfile on every archive
airgap/1 allows, and refuse what test_hostile.py lists plus what tarfile used to pass over
silently (a damaged header in the middle read as the end of the archive).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from helpers import BLOCK, MTIME, pax_record, reg, tar_bytes

from airgap.archive.hashing import PIPE_MIN, HashPipe
from airgap.archive.layout import blob_member
from airgap.archive.reader import ArchiveStream, copy_verified
from airgap.archive.writer import header, write_archive
from airgap.core.manifest import BlobEntry, Manifest
from airgap.errors import AirgapError, ArchiveFormatError, IntegrityError


def _manifest(blobs: dict[str, bytes]) -> Manifest:
    entries = tuple(BlobEntry(sha, len(data), "package") for sha, data in blobs.items())
    return Manifest(
        archive_id="0" * 32, created="2026-01-01T00:00:00Z", tool="test", channels=(), blobs=entries, filters={}, installers=(), base=None
    )


def _blobs(sizes: list[int]) -> dict[str, bytes]:
    out = {}
    for i, n in enumerate(sizes):
        data = hashlib.sha256(str(i).encode()).digest() * (n // 32 + 1)
        out[hashlib.sha256(data[:n]).hexdigest()] = data[:n]
    return out


SIZES = [0, 1, 511, 512, 513, 16 << 10, (1 << 20) + 7, 3 << 20]


def _write(tmp_path: Path, blobs: dict[str, bytes], name: str = "a.tar") -> Path:
    d = tmp_path / "cache"
    d.mkdir(exist_ok=True)
    for sha, data in blobs.items():
        (d / sha).write_bytes(data)
    target = tmp_path / name
    write_archive(target, b'{"m":1}', b"sig", [(sha, len(data), d / sha) for sha, data in blobs.items()], MTIME)
    return target


def _read_all(path: Path, manifest: Manifest) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with ArchiveStream(path) as s:
        assert s.read_header() == (b'{"m":1}', b"sig")
        for entry, fh in s.blobs(manifest):
            buf = io.BytesIO()
            copy_verified(fh, entry, buf, "t")
            out[entry.sha256] = buf.getvalue()
    return out


def test_written_archive_is_what_tarfile_wrote_before(tmp_path: Path) -> None:
    """Same bytes as the tarfile-based writer (PAX format, 20-block records) produced."""
    blobs = _blobs(SIZES)
    path = _write(tmp_path, blobs)
    ref = io.BytesIO()
    with tarfile.open(fileobj=ref, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("manifest.json", b'{"m":1}'), ("manifest.sig", b"sig"), *((blob_member(s), d) for s, d in blobs.items())]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), MTIME, 0o644, 0, 0, "", ""
            tar.addfile(ti, io.BytesIO(data))
    assert path.read_bytes() == ref.getvalue()


def test_reader_agrees_with_tarfile_and_locations_point_at_the_bytes(tmp_path: Path) -> None:
    blobs = _blobs(SIZES)
    path = _write(tmp_path, blobs)
    manifest = _manifest(blobs)
    assert _read_all(path, manifest) == blobs
    with tarfile.open(path) as tar:
        want = {m.name: m.offset_data for m in tar.getmembers()}
    raw = path.read_bytes()
    with ArchiveStream(path) as s:
        s.read_header()
        for entry, fh in s.blobs(manifest):  # not read at all: the stream skips to the next header itself
            assert fh.location == (path, want[blob_member(entry.sha256)])
            assert raw[fh.location[1] : fh.location[1] + entry.size] == blobs[entry.sha256]


def test_partly_read_blobs_are_skipped(tmp_path: Path) -> None:
    blobs = _blobs(SIZES)
    path = _write(tmp_path, blobs)
    seen = []
    with ArchiveStream(path) as s:
        s.read_header()
        for entry, fh in s.blobs(_manifest(blobs)):
            assert fh.read(100) == blobs[entry.sha256][:100]
            seen.append(entry.sha256)
        assert fh.read(10) == b""  # a finished member reads nothing more
    assert seen == list(blobs)


def test_long_names_pax_records_and_gnu_numbers_are_read_like_tarfile(tmp_path: Path) -> None:
    """Headers airgap's writer does not make but tarfile does: pax path/size/comment, ustar prefix, base-256."""
    blobs = _blobs([100, 200, 300])
    (a, da), (b, db), (c, dc) = blobs.items()
    m, sig = reg("manifest.json", b'{"m":1}'), reg("manifest.sig", b"sig")
    t1 = reg("x" * 10, da)
    t1.pax_headers = {"path": blob_member(a), "comment": "hello", "mtime": "1.5"}
    t2 = reg(blob_member(b), db)
    t2.pax_headers = {"size": str(len(db))}
    out = bytearray(tar_bytes([(m, b'{"m":1}'), (sig, b"sig"), (t1, da), (t2, db)], end=False))
    t3 = reg(blob_member(c), dc)
    gnu = bytearray(t3.tobuf(tarfile.USTAR_FORMAT))
    gnu[124:136] = b"\x80" + len(dc).to_bytes(11, "big")  # base-256 size
    gnu[148:156] = b" " * 8
    gnu[148:156] = b"%06o\0 " % sum(gnu)
    out += gnu + dc + b"\0" * (-len(dc) % BLOCK) + b"\0" * 1024
    path = tmp_path / "x.tar"
    path.write_bytes(bytes(out))
    assert _read_all(path, _manifest(blobs)) == blobs


def _good(tmp_path: Path) -> tuple[Path, Manifest, bytes]:
    blobs = _blobs([1000, 2000, 3000])
    path = _write(tmp_path, blobs)
    return path, _manifest(blobs), path.read_bytes()


def _header_offsets(raw: bytes) -> list[int]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [m.offset for m in tar.getmembers()]


@pytest.mark.parametrize(
    "case",
    [
        "bad checksum",
        "not octal",
        "short header",
        "pax bad length",
        "pax sparse",
        "pax at end",
        "pax size not a number",
        "pax size of 5,000 digits",
        "empty file",
        "not a tar",
    ],
)
def test_damaged_headers_are_refused(case: str, tmp_path: Path) -> None:
    path, manifest, raw = _good(tmp_path)
    third = _header_offsets(raw)[3]
    data = bytearray(raw)
    if case == "bad checksum":  # tarfile took this for the end of the archive
        data[third + 10] ^= 1
        message = "bad header checksum at byte"
    elif case == "not octal":
        data[third + 124 : third + 136] = b"0000000009x\0"
        data[third + 148 : third + 156] = b" " * 8
        data[third + 148 : third + 156] = b"%06o\0 " % sum(data[third : third + BLOCK])
        message = "expected an octal number in the size field"
    elif case == "short header":
        del data[third + 200 :]
        message = "a header cut short"
    elif case.startswith("pax"):
        records = {
            "pax bad length": b"99 path=x\n",
            "pax sparse": pax_record("GNU.sparse.map", "0,10"),
            "pax at end": pax_record("comment", "x"),
            "pax size not a number": pax_record("size", "-1"),
            "pax size of 5,000 digits": pax_record("size", "9" * 5000),
        }[case]
        x = tarfile.TarInfo("././@PaxHeader")
        x.type, x.size = tarfile.XHDTYPE, len(records)
        blob = x.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * (-len(records) % BLOCK)
        after_last = _header_offsets(raw)[-1] + BLOCK + -(-3000 // BLOCK) * BLOCK  # the last blob has 3000 bytes
        at = after_last if case == "pax at end" else third
        data[at:at] = blob
        message = {
            "pax bad length": "has a wrong length",
            "pax sparse": "GNU sparse records",
            "pax at end": "found the end of the archive",
            "pax size not a number": "expected a valid pax header",
            "pax size of 5,000 digits": "expected a valid pax header",
        }[case]
    elif case == "empty file":
        data = bytearray()
        message = "expected a tar archive (airgap/1), found something else (an empty file)"
    else:
        data = bytearray(b"PK\3\4" + b"x" * 2000)
        message = "expected a tar archive (airgap/1), found something else"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _read_all(path, manifest)


def test_truncated_blob_and_wrong_size(tmp_path: Path) -> None:
    path, manifest, raw = _good(tmp_path)
    last = _header_offsets(raw)[-1]
    path.write_bytes(raw[: last + BLOCK + 100])
    with pytest.raises(ArchiveFormatError, match="truncated"):
        _read_all(path, manifest)
    wrong = Manifest(**{**manifest.__dict__, "blobs": (BlobEntry(manifest.blobs[0].sha256, 999, "package"), *manifest.blobs[1:])})
    path.write_bytes(raw)
    with pytest.raises(IntegrityError, match="expected 999 bytes"):
        _read_all(path, wrong)


@pytest.mark.parametrize(
    ("name", "size"),
    [(blob_member("a" * 64), 0), (blob_member("b" * 64), 8**11 - 1), (blob_member("c" * 64), 8**11), ("d" * 101, 5), ("é", 5)],
)
def test_headers_are_tarfiles(name: str, size: int) -> None:
    """Fast path and fallback (pax header for a long or non-ASCII name, or a file of 8 GiB and more)."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, MTIME, 0o644, 0, 0, "", ""
    assert header(name, size, MTIME) == ti.tobuf(tarfile.PAX_FORMAT)


@pytest.mark.parametrize("size", [5000, 3 << 20])  # hashed inline, hashed on the second thread
def test_a_cache_file_changed_since_download_fails_the_export(tmp_path: Path, size: int) -> None:
    blobs = _blobs([size, size + 1, size + 2])
    files = []
    for i, (sha, data) in enumerate(blobs.items()):
        (tmp_path / f"f{i}").write_bytes(data[:-1] + b"!" if i == 1 else data)
        files.append((sha, len(data), tmp_path / f"f{i}"))
    with pytest.raises(AirgapError, match=f"cache file {tmp_path / 'f1'}: expected sha256"):
        write_archive(tmp_path / "a.tar", b"{}", None, files, MTIME)
    with pytest.raises(AirgapError, match=f"expected {size - 1} bytes, found {size}"):
        write_archive(tmp_path / "a.tar", b"{}", None, [(files[0][0], size - 1, files[0][2])], MTIME)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0", "f1", "f2"]  # no archive, no temporary file


def test_large_blobs_hashed_on_the_second_thread_are_still_checked(tmp_path: Path) -> None:
    """copy_verified with a HashPipe: a mismatch in a large blob is raised by check() or finish(), never lost."""
    blobs = _blobs([PIPE_MIN, 2 * PIPE_MIN + 3, 100])
    path = _write(tmp_path, blobs)
    raw = bytearray(path.read_bytes())
    second = _header_offsets(bytes(raw))[3]
    raw[second + BLOCK + 1000] ^= 1  # inside the second blob's bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="does not match its sha256"), HashPipe() as pipe, ArchiveStream(path) as s:
        s.read_header()
        for entry, fh in s.blobs(_manifest(blobs)):
            copy_verified(fh, entry, io.BytesIO(), "t", pipe=pipe)
            pipe.check()
        pipe.finish()


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_blobs_downloaded_by_this_run_are_copied_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool) -> None:
    """``fresh`` blobs (hashed as they arrived) skip the second hash; large ones go through copy_file_range when there is one."""
    blobs = _blobs(SIZES)
    plain = _write(tmp_path, blobs, "plain.tar")
    if not kernel_copy:

        def refuse(*args: object) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr("os.copy_file_range", refuse)
    d = tmp_path / "cache"
    target = tmp_path / "fresh.tar"
    write_archive(target, b'{"m":1}', b"sig", [(sha, len(data), d / sha) for sha, data in blobs.items()], MTIME, fresh=set(blobs))
    assert target.read_bytes() == plain.read_bytes()


def test_a_big_manifest_is_read_into_a_map_whose_pages_go_once_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """73 MB of manifest at 300,000 files stayed on the heap beside its 150 MB of entries (issue 15): now mapped, given back."""
    import mmap

    from airgap import _safepath
    from airgap.core.manifest import ChannelEntry, PackageEntry, RepodataBlob, SubdirEntry, parse_manifest
    from airgap.core.manifest import parse as manifest_parse

    rd, pkg = "1a" * 32, "2b" * 32
    sub = SubdirEntry("linux-64", RepodataBlob(rd, 10, 100), (PackageEntry("a-1-0.conda", pkg, 5),))
    blobs = (BlobEntry(rd, 10, "repodata"), BlobEntry(pkg, 5, "package"))
    manifest = Manifest("0" * 32, "2026-01-01T00:00:00Z", "test", (ChannelEntry("main", "http://h/main/", (sub,)),), blobs)
    data = manifest.to_bytes()
    path = tmp_path / "big.tar"
    write_archive(path, data, b"sig", [], MTIME)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1)  # as a manifest of a MiB or more is
    released: list[object] = []
    monkeypatch.setattr(manifest_parse, "release_views", lambda *only: released.extend(only))
    with ArchiveStream(path) as s:
        got, sig = s.read_header()
    assert isinstance(got, mmap.mmap) and got[:] == data and sig == b"sig"
    assert parse_manifest(got) == manifest == parse_manifest(data)
    assert released == [got]  # the map's pages, once: the bytes read in are never released
    raw = path.read_bytes()
    path.write_bytes(raw[: BLOCK + len(data) // 2])  # cut inside the manifest
    with ArchiveStream(path) as s, pytest.raises(ArchiveFormatError, match=f"truncated inside manifest.json: expected {len(data)} bytes"):
        s.read_header()


def test_a_kernel_copy_goes_a_piece_at_a_time_each_pieces_writeback_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export's body appended by copy_file_range: the disk is asked to write each piece as soon as it is copied,
    not the whole body at the final fsync; the bytes are the source's."""
    import airgap.archive.writer as writer

    src = tmp_path / "body"
    data = os.urandom(5 * writer.COPY_BUFSIZE + 123)
    src.write_bytes(data)
    monkeypatch.setattr(writer, "COPY_PIECE", 2 * writer.COPY_BUFSIZE)
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(writer, "start_writeback", lambda fd, offset=0, length=0: started.append((offset, length)))
    with (tmp_path / "out").open("wb") as fh, src.open("rb") as body:
        out = writer._Out(fh, MTIME)
        out.add(b"h" * 1000)  # a head before the body
        out.append_file(body.fileno(), len(data), "body")
        out.flush()
    assert (tmp_path / "out").read_bytes() == b"h" * 1000 + data
    if hasattr(os, "copy_file_range"):
        assert len(started) >= 3  # a piece at a time, not once at the end
        assert [o for o, _ in started] == [0] + [o + n for o, n in started[:-1]]  # contiguous, in order
