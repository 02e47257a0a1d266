"""Hostile archives: each one is refused with exit code 3 and one clear line, and nothing is written.

The archives here are built by hand — manifest, signature and blobs — with
airgap.archive.writer and airgap.signing, so a case can be *correctly signed* and still
hostile (a zstd bomb, an unknown format, repodata that disagrees with the manifest), or
carry tar members the writer never makes (links, devices, FIFOs, GNU and pax trickery).
The builders (``build_archive``, ``tar_bytes``...) live in helpers.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import BLOCK, MTIME, Built, build_archive, cli, pax_record, reg, specs, tar_bytes

from airgap.archive.layout import blob_member
from airgap.compress import zstd_compress

# --- building archives by hand -------------------------------------------------------------


def raw_header(name: str, size: int, kind: bytes, linkname: str = "") -> bytes:
    """One ustar header block whose size field says ``size`` whatever follows."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.type, ti.linkname = size, MTIME, kind, linkname
    return ti.tobuf(tarfile.USTAR_FORMAT if 0 <= size < 8**11 else tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def replace_repodata(
    built: Built,
    subdir: str,
    doc: dict[str, Any] | None = None,
    *,
    raw: bytes | None = None,
    packed: bytes | None = None,
    raw_size: int | None = None,
) -> None:
    """Swap one subdir's repodata blob (re-pointing the manifest at it)."""
    if raw is None:
        raw = json.dumps(doc if doc is not None else built.repodata[subdir], separators=(",", ":")).encode()
    packed = zstd_compress(raw) if packed is None else packed
    sha = hashlib.sha256(packed).hexdigest()
    sub = next(s for s in built.manifest["channels"][0]["subdirs"] if s["subdir"] == subdir)
    old = sub["repodata"]["sha256"]
    sub["repodata"] = {"sha256": sha, "size": len(packed), "raw_size": len(raw) if raw_size is None else raw_size}
    built.blobs = {(sha if k == old else k): (packed if k == old else v) for k, v in built.blobs.items()}
    for b in built.manifest["blobs"]:
        if b["sha256"] == old:
            b.update(sha256=sha, size=len(packed))


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, keyring: dict[str, Any]) -> dict[str, Any]:
    """A good signed archive (to populate a destination) and the parts of another one to corrupt."""
    d = tmp_path_factory.mktemp("hostile")
    good = build_archive(specs(2), archive_id="aaaa" * 8).write(d / "good.tar", keyring["good"])
    return {"good": good, "dir": d}


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root`` (not following links) with its type, mode, size and content hash."""
    out: dict[str, Any] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            regular = p.is_file() and not p.is_symlink()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, hashlib.sha256(p.read_bytes()).hexdigest() if regular else None)
    return out


# --- the cases -----------------------------------------------------------------------------
# Each builder writes a hostile archive at ``path`` and returns nothing.

Case = Callable[[Path, dict[str, Any]], None]
LISTED = "linux-64"  # the subdir whose blobs the member cases impersonate


def _with_member(make: Callable[[Built], tarfile.TarInfo]) -> Case:
    """The good archive plus one extra member (after the signature), built by ``make``."""

    def case(path: Path, keys: dict[str, Any]) -> None:
        built = build_archive(specs())
        ms = built.members(keys["good"])
        ti = make(built)
        path.write_bytes(tar_bytes(ms[:2] + [(ti, b"")] + ms[2:]))

    return case


def _typed(kind: bytes, linkname: str = "") -> Callable[[Built], tarfile.TarInfo]:
    def make(built: Built) -> tarfile.TarInfo:
        shas = [b["sha256"] for b in built.manifest["blobs"] if b["kind"] == "package"]
        ti = tarfile.TarInfo(blob_member(shas[0]))
        ti.type, ti.mtime = kind, MTIME
        ti.linkname = blob_member(shas[1]) if kind == tarfile.LNKTYPE else linkname
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            ti.devmajor, ti.devminor = 1, 3  # /dev/null
        return ti

    return make


def _hardlink_manifest(path: Path, keys: dict[str, Any]) -> None:
    ti = tarfile.TarInfo("manifest.json")
    ti.type, ti.linkname = tarfile.LNKTYPE, "/etc/passwd"
    path.write_bytes(tar_bytes([(ti, b"")]))


def _zstd_bomb(path: Path, keys: dict[str, Any]) -> None:
    built = build_archive(specs())
    buf = io.BytesIO()
    writer = zstandard.ZstdCompressor(level=1).stream_writer(buf, closefd=False)
    zeros = b" " * (1 << 20)
    for _ in range(2048):  # 2 GiB of white space (valid JSON padding) in ~64 KiB
        writer.write(zeros)
    writer.flush(zstandard.FLUSH_FRAME)
    raw_size = len(json.dumps(built.repodata[LISTED], separators=(",", ":")))
    replace_repodata(built, LISTED, packed=buf.getvalue(), raw_size=raw_size)
    built.write(path, keys["good"])


def _oversized(name: str, size: int) -> Case:
    """A first (or second) member whose header announces ``size`` bytes; a few follow."""

    def case(path: Path, keys: dict[str, Any]) -> None:
        built = build_archive(specs())
        ms = built.members(keys["good"])
        head = b"" if name == "manifest.json" else tar_bytes(ms[:1], end=False)
        path.write_bytes(head + raw_header(name, size, tarfile.REGTYPE) + b"{" * BLOCK)

    return case


def _oversized_pax(path: Path, keys: dict[str, Any]) -> None:
    path.write_bytes(raw_header("././@PaxHeader", 1 << 40, tarfile.XHDTYPE) + b"99 path=x\n" * 100)


def _signed_manifest(edit: Callable[[Built], None]) -> Case:
    def case(path: Path, keys: dict[str, Any]) -> None:
        built = build_archive(specs())
        edit(built)
        built.write(path, keys["good"])

    return case


def _format(built: Built) -> None:
    built.manifest["format"] = "airgap/3"


def _extra_record(built: Built) -> None:
    doc = json.loads(json.dumps(built.repodata[LISTED]))
    rec = dict(next(iter(doc["packages.conda"].values())), name="smuggled")
    doc["packages.conda"]["smuggled-1.0-0.conda"] = rec
    replace_repodata(built, LISTED, doc)


def _missing_record(built: Built) -> None:
    doc = json.loads(json.dumps(built.repodata[LISTED]))
    doc["packages.conda"].pop(sorted(doc["packages.conda"])[0])
    replace_repodata(built, LISTED, doc)


def _record_other_hash(built: Built) -> None:
    doc = json.loads(json.dumps(built.repodata[LISTED]))
    next(iter(doc["packages.conda"].values()))["sha256"] = "0" * 64
    replace_repodata(built, LISTED, doc)


def _repodata_not_json(built: Built) -> None:
    replace_repodata(built, LISTED, raw=b'{"packages": 5, "info": {}}')


def _repodata_nested(built: Built) -> None:
    replace_repodata(built, LISTED, raw=b"[" * 100_000)


def _foreign_signer(path: Path, keys: dict[str, Any]) -> None:
    """Manifest and signature of another archive, signed by an untrusted key, with this one's blobs."""
    foreign = build_archive(specs(4), archive_id="f" * 32).members(keys["other"])
    path.write_bytes(tar_bytes(foreign[:2] + build_archive(specs()).members(keys["good"])[2:]))


def _foreign_signature(path: Path, keys: dict[str, Any]) -> None:
    """A trusted archive's blobs and manifest with the signature of another (trusted) archive."""
    built = build_archive(specs())
    other = build_archive(specs(), archive_id="b" * 32)
    ms = built.members(keys["good"])
    ms[1] = other.members(keys["good"])[1]
    path.write_bytes(tar_bytes(ms))


def _relabelled_signature(path: Path, keys: dict[str, Any]) -> None:
    """An untrusted key's signature relabelled with the trusted key's id."""
    built = build_archive(specs())
    ms = built.members(keys["other"])
    sig = json.loads(ms[1][1])
    sig["keyid"] = keys["good"].keyid
    data = json.dumps(sig).encode()
    ms[1] = (reg("manifest.sig", data), data)
    path.write_bytes(tar_bytes(ms))


def _pax_rename(index: int, to: str) -> Case:
    """A pax header renames member ``index`` (0: the manifest) to ``to``."""

    def case(path: Path, keys: dict[str, Any]) -> None:
        ms = build_archive(specs()).members(keys["good"])
        ti = ms[index][0]
        ti.pax_headers = {"path": to}
        path.write_bytes(tar_bytes(ms))

    return case


def _gnu_longname(path: Path, keys: dict[str, Any]) -> None:
    """A GNU long-name header (the writer never makes one) naming a listed blob."""
    ms = build_archive(specs()).members(keys["good"])
    ti, data = ms[2]
    long = ti.name.encode() + b"\0"
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, len(long)
    body = header.tobuf(tarfile.GNU_FORMAT) + long + b"\0" * (-len(long) % BLOCK)
    short = tarfile.TarInfo("x")
    short.size, short.mtime = len(data), MTIME
    body += short.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % BLOCK)
    path.write_bytes(tar_bytes(ms[:2], end=False) + body + tar_bytes(ms[3:]))


def _pax_global(path: Path, keys: dict[str, Any]) -> None:
    ms = build_archive(specs()).members(keys["good"])
    g = tarfile.TarInfo("pax_global_header")
    g.type = tarfile.XGLTYPE
    records = pax_record("path", "blobs/sha256/../../x")
    g.size = len(records)
    path.write_bytes(
        tar_bytes(ms[:2], end=False) + g.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * (-len(records) % BLOCK) + tar_bytes(ms[2:])
    )


def _pax_chain(path: Path, keys: dict[str, Any]) -> None:
    """Thousands of pax headers in a row (tarfile would recurse once per header)."""
    ms = build_archive(specs()).members(keys["good"])
    rec = b"13 comment=x\n"
    x = tarfile.TarInfo("././@PaxHeader")
    x.type, x.size = tarfile.XHDTYPE, len(rec)
    one = x.tobuf(tarfile.USTAR_FORMAT) + rec + b"\0" * (BLOCK - len(rec))
    path.write_bytes(tar_bytes(ms[:2], end=False) + one * 3000 + tar_bytes(ms[2:]))


def _pax_sparse(path: Path, keys: dict[str, Any]) -> None:
    """A pax header announcing a GNU 1.0 sparse map that is not there."""
    ms = build_archive(specs()).members(keys["good"])
    ms[2][0].pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "10"}
    path.write_bytes(tar_bytes(ms))


def _negative_size(path: Path, keys: dict[str, Any]) -> None:
    ms = build_archive(specs()).members(keys["good"])
    path.write_bytes(raw_header("manifest.json", -5, tarfile.REGTYPE) + tar_bytes(ms[1:]))


def _fifo_path(path: Path, keys: dict[str, Any]) -> None:
    os.mkfifo(path)  # opening it for reading would wait forever for a writer


HOSTILE: dict[str, tuple[Case, str]] = {
    "hardlink member": (_with_member(_typed(tarfile.LNKTYPE)), "to be a regular file, found a hardlink"),
    "hardlink as the manifest": (_hardlink_manifest, "expected 'manifest.json' to be a regular file, found a hardlink"),
    "character device member": (_with_member(_typed(tarfile.CHRTYPE)), "to be a regular file, found a character device"),
    "block device member": (_with_member(_typed(tarfile.BLKTYPE)), "to be a regular file, found a block device"),
    "FIFO member": (_with_member(_typed(tarfile.FIFOTYPE)), "to be a regular file, found a FIFO"),
    "directory member": (_with_member(_typed(tarfile.DIRTYPE)), "to be a regular file, found a directory"),
    "contiguous-file member": (_with_member(_typed(tarfile.CONTTYPE)), "to be a regular file, found a contiguous file"),
    "symlink member": (_with_member(_typed(tarfile.SYMTYPE, "/etc/passwd")), "to be a regular file, found a symlink"),
    "zstd repodata bomb (signed)": (_zstd_bomb, "refusing a zstd bomb"),
    "oversized manifest header": (
        _oversized("manifest.json", 2 << 30),
        "expected manifest.json of at most 1073741824 bytes, found 2147483648",
    ),
    "huge manifest header": (_oversized("manifest.json", 1 << 70), f"expected manifest.json of at most 1073741824 bytes, found {1 << 70}"),
    "oversized signature header": (_oversized("manifest.sig", 1 << 20), "expected manifest.sig of at most 4096 bytes, found 1048576"),
    "negative manifest size": (_negative_size, "expected manifest.json of at most 1073741824 bytes, found -5"),
    "oversized pax header": (_oversized_pax, "expected a pax header of at most 65536 bytes"),
    "unknown format (signed)": (_signed_manifest(_format), "expected format airgap/1 or airgap/2, found 'airgap/3'"),
    "repodata lists a package the manifest lacks (signed)": (_signed_manifest(_extra_record), "only in repodata: ['smuggled-1.0-0.conda']"),
    "manifest lists a package the repodata lacks (signed)": (
        _signed_manifest(_missing_record),
        "only in manifest: ['hostile000-1.0-h0_0.conda']",
    ),
    "repodata record with another sha256 (signed)": (_signed_manifest(_record_other_hash), "repodata says sha256 0000"),
    "malformed repodata (signed)": (_signed_manifest(_repodata_not_json), "expected 'packages' to be an object"),
    "deeply nested repodata (signed)": (_signed_manifest(_repodata_nested), "nested too deeply"),
    "manifest and signature by an untrusted key": (_foreign_signer, "which is not trusted"),
    "signature of another archive": (_foreign_signature, "manifest signature does not verify"),
    "untrusted signature relabelled as trusted": (_relabelled_signature, "manifest signature does not verify"),
    "pax header renames a blob to ../x": (
        _pax_rename(3, "../x"),
        "expected only blobs/sha256/<hex> members after the manifest, found '../x'",
    ),
    "pax header renames the manifest to ../x": (_pax_rename(0, "../x"), "expected manifest.json as the first member, found '../x'"),
    "pax header renames a blob to an absolute path": (_pax_rename(4, "/tmp/x"), "found '/tmp/x'"),
    "GNU long-name member": (_gnu_longname, "expected only pax (POSIX) headers, found a GNU long-name header"),
    "pax global header": (_pax_global, "expected only pax (POSIX) headers, found a pax global header"),
    "pax header after pax header": (_pax_chain, "found another pax header"),
    "pax sparse map that is not there": (_pax_sparse, "expected a valid pax header, found a damaged one"),
    "archive path is a FIFO": (_fifo_path, "expected a regular file (or a tape device), found a FIFO"),
}


@pytest.fixture
def populated(tmp_path: Path, base: dict[str, Any], keyring: dict[str, Any]) -> Path:
    dest = tmp_path / "dest"
    r = cli("import", base["good"], "--into", dest, "--trusted-key", keyring["good.pub"])
    assert r.exit_code == 0, r.output
    return dest


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_is_written(
    case: str, tmp_path: Path, populated: Path, keyring: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    make, message = HOSTILE[case]
    bad = tmp_path / "in" / "bad.tar"
    bad.parent.mkdir()
    make(bad, keyring)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for dest in (populated, tmp_path / "fresh"):
        before = snapshot(tmp_path)
        for command in ("verify", "import"):
            args = ["--into", dest] if command == "import" else []
            r = cli(command, bad, *args, "--trusted-key", keyring["good.pub"])
            assert r.exit_code == 3, r.output
            assert message in r.output, r.output
            assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
            assert snapshot(tmp_path) == before  # the destination, the archive's directory, the cwd: all unchanged


def test_zstd_bomb_is_refused_without_allocating_the_expansion(tmp_path: Path, keyring: dict[str, Any]) -> None:
    _zstd_bomb(tmp_path / "bomb.tar", keyring)
    tracemalloc.start()
    try:
        r = cli("import", tmp_path / "bomb.tar", "--into", tmp_path / "dest", "--trusted-key", keyring["good.pub"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.exit_code == 3 and "zstd bomb" in r.output, r.output
    assert peak < 32 << 20, f"peak Python allocation {peak} bytes"
    assert not (tmp_path / "dest").exists()


def test_oversized_manifest_is_refused_by_its_header_before_reading(tmp_path: Path, keyring: dict[str, Any]) -> None:
    """A sparse archive whose manifest really is 2 GiB (of holes): refused in a blink, never read."""
    bad = tmp_path / "big.tar"
    with open(bad, "wb") as fh:
        fh.write(raw_header("manifest.json", 2 << 30, tarfile.REGTYPE))
        fh.truncate(BLOCK + (2 << 30) + 2 * BLOCK)
    tracemalloc.start()
    try:
        r = cli("verify", bad, "--trusted-key", keyring["good.pub"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.exit_code == 3 and "at most 1073741824 bytes, found 2147483648" in r.output, r.output
    assert peak < 32 << 20


def test_hand_built_archive_is_accepted(tmp_path: Path, keyring: dict[str, Any]) -> None:
    """The builder itself makes valid archives (so each refusal above is about its one defect)."""
    built = build_archive(specs())
    for name, data in (("written.tar", None), ("raw.tar", tar_bytes(built.members(keyring["good"])))):
        path = tmp_path / name
        if data is None:
            built.write(path, keyring["good"])
        else:
            path.write_bytes(data)
        r = cli("import", path, "--into", tmp_path / "dest", "--trusted-key", keyring["good.pub"])
        assert r.exit_code == 0, r.output
    rd = json.loads((tmp_path / "dest" / "main" / "linux-64" / "repodata.json").read_bytes())
    assert len(rd["packages.conda"]) == 3 and len(rd["packages"]) == 3
