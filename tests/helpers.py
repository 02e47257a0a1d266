"""Small helpers several test modules share (imported as ``helpers``; pytest puts tests/ on the path).

Test modules import only from here, servers.py and conftest.py fixtures, never from each other.
Archives built by hand (``build_archive``, ``tar_bytes``) are used by test_hostile.py,
test_crash.py, test_fuzz.py and test_archive_io.py.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from click.testing import CliRunner, Result

from airgap.archive.layout import blob_member
from airgap.archive.writer import write_archive
from airgap.cli import main
from airgap.compress import zstd_compress
from airgap.core.manifest import canonical_json
from airgap.signing import Signer
from airgap.testing.condapkg import PackageSpec, build_conda, build_tar_bz2

DATA_DIR = Path(__file__).resolve().parent / "data"
#: what a published subdir holds besides its package files: the index files (CEP-16 shards, run_exports.json too), the page and names/ (the package-name pages)
NOT_PACKAGES = {"repodata.json", "repodata.json.zst", "index.html", "repodata_shards.msgpack.zst", "shards", "run_exports.json", "names"}


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def published(dest: Path) -> dict[str, Any]:
    """What clients see: each subdir's records and the sha256 of each file, checking that the
    repodata lists exactly the package files that are there."""
    out: dict[str, Any] = {}
    for rd_path in sorted(dest.glob("*/*/repodata.json")):
        doc = json.loads(rd_path.read_bytes())
        listed = sorted([*doc["packages"], *doc["packages.conda"]])
        files = sorted(p.name for p in rd_path.parent.iterdir() if p.name not in NOT_PACKAGES)
        assert listed == files, f"{rd_path.parent}: listed {listed} but holds {files}"
        hashes = {fn: hashlib.sha256((rd_path.parent / fn).read_bytes()).hexdigest() for fn in files}
        out[str(rd_path.relative_to(dest))] = (doc["packages"], doc["packages.conda"], doc.get("removed"), hashes)
    return out


def shared_repodata() -> Path:
    """The real public repodata snapshots the tests read, kept in the repository (tests/data/repodata,
    see tests/data/PROVENANCE.md): a fresh clone has everything its tests need."""
    return DATA_DIR / "repodata"


def snapshot_bytes(path: Path) -> bytes:
    """A repodata snapshot of tests/data/repodata, decompressed (``.bz2``, ``.zst`` or plain JSON)."""
    import bz2

    import zstandard

    raw = path.read_bytes()
    if path.name.endswith(".bz2"):
        return bz2.decompress(raw)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
    return raw


# --- archives built by hand -------------------------------------------------------------

MTIME = 1700000000
BLOCK = 512


@dataclass
class Built:
    """An archive's parts: edit them, then ``write`` (or ``tar_bytes`` for hostile members)."""

    manifest: dict[str, Any]
    blobs: dict[str, bytes]  # sha256 -> bytes, in manifest order
    repodata: dict[str, dict[str, Any]] = field(default_factory=dict)  # subdir -> document

    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest)

    def members(self, signer: Signer | None) -> list[tuple[tarfile.TarInfo, bytes]]:
        """The regular members in archive order: manifest, signature, blobs."""
        m = self.manifest_bytes()
        out = [(reg("manifest.json", m), m)]
        if signer is not None:
            sig = signer.sign(m)
            out.append((reg("manifest.sig", sig), sig))
        for sha, data in self.blobs.items():
            out.append((reg(blob_member(sha), data), data))
        return out

    def write(self, path: Path, signer: Signer | None) -> Path:
        """Write with the real writer (blob files go to a directory beside ``path``)."""
        d = path.with_name(path.name + ".blobs")
        d.mkdir(exist_ok=True)
        files = []
        for sha, data in self.blobs.items():
            (d / sha).write_bytes(data)
            files.append((sha, len(data), d / sha))
        m = self.manifest_bytes()
        write_archive(path, m, signer.sign(m) if signer else None, files, MTIME)
        return path


def reg(name: str, data: bytes) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.type = len(data), MTIME, 0o644, tarfile.REGTYPE
    return ti


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], fmt: Literal[0, 1, 2] = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    """Raw tar bytes, header by header: headers may lie about sizes and types."""
    out = bytearray()
    for ti, data in entries:
        out += ti.tobuf(fmt, "utf-8", "surrogateescape")
        out += data + b"\0" * (-len(data) % BLOCK)
    if end:
        out += b"\0" * (2 * BLOCK)
    return bytes(out)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def specs(n: int = 3, padding: int = 0) -> list[PackageSpec]:
    out = [PackageSpec("hostile-data", "1.0", subdir="noarch", padding=padding)]
    out += [PackageSpec(f"hostile{i:03d}", "1.0", build="h0_0", subdir="linux-64", padding=padding) for i in range(n)]
    return out


def build_archive(
    package_specs: list[PackageSpec],
    channel: str = "main",
    formats: tuple[str, ...] = ("conda", "tar.bz2"),
    archive_id: str = "0123456789abcdef0123456789abcdef",
) -> Built:
    """A valid airgap/1 archive's parts for ``package_specs`` (every subdir they use, plus noarch)."""
    builders = {"conda": (build_conda, "packages.conda"), "tar.bz2": (build_tar_bz2, "packages")}
    docs: dict[str, dict[str, Any]] = {}
    pkg_blobs: dict[str, dict[str, tuple[str, bytes]]] = {}  # subdir -> filename -> (sha, data)
    for spec in package_specs:
        for sub in ("noarch", spec.subdir):
            docs.setdefault(sub, {"info": {"subdir": sub}, "packages": {}, "packages.conda": {}, "removed": [], "repodata_version": 1})
            pkg_blobs.setdefault(sub, {})
        for fmt in formats:
            build, section = builders[fmt]
            filename, data, record = build(spec)
            docs[spec.subdir][section][filename] = record
            pkg_blobs[spec.subdir][filename] = (hashlib.sha256(data).hexdigest(), data)
    built = Built({}, {}, docs)
    built.manifest = _manifest(built, channel, pkg_blobs, archive_id)
    return built


def _manifest(built: Built, channel: str, pkg_blobs: dict[str, dict[str, tuple[str, bytes]]], archive_id: str) -> dict[str, Any]:
    blobs: list[dict[str, Any]] = []
    subdirs = []
    for sub, doc in sorted(built.repodata.items()):
        raw = json.dumps(doc, separators=(",", ":")).encode()
        packed = zstd_compress(raw)
        rsha = hashlib.sha256(packed).hexdigest()
        built.blobs[rsha] = packed
        blobs.append({"sha256": rsha, "size": len(packed), "kind": "repodata"})
        pkgs = []
        for filename, (sha, data) in sorted(pkg_blobs[sub].items()):
            pkgs.append({"filename": filename, "sha256": sha, "size": len(data)})
            if sha not in built.blobs:
                built.blobs[sha] = data
                blobs.append({"sha256": sha, "size": len(data), "kind": "package"})
        subdirs.append(
            {"subdir": sub, "repodata": {"sha256": rsha, "size": len(packed), "raw_size": len(raw)}, "packages": pkgs, "source": {}}
        )
    return {
        "format": "airgap/1",
        "archive_id": archive_id,
        "created": "2026-11-24T00:00:00Z",
        "tool": "airgap test",
        "base": None,
        "filters": {},
        "channels": [{"name": channel, "url": "https://example.invalid/main/", "subdirs": subdirs}],
        "blobs": blobs,
        "totals": {},
    }


def counted_import(tmp_path: Path, keyring: dict[str, Any], monkeypatch: Any, names: int, patch: Callable[[Any, Path], None]) -> None:
    """Import a signed archive of ``specs(names)`` into a fresh directory while ``patch(m, dest)`` (``m``: a
    ``monkeypatch.context()``) has put its counters in place; checks that every package file was published."""
    archive = build_archive(specs(names)).write(tmp_path / f"a{names}.tar", keyring["good"])
    dest = tmp_path / f"d{names}"
    with monkeypatch.context() as m:
        patch(m, dest)
        r = cli("import", archive, "--into", dest, "--trusted-key", keyring["good.pub"])
        assert r.exit_code == 0, r.output
    assert len(published(dest)["main/linux-64/repodata.json"][3]) == 2 * names  # .conda and .tar.bz2 of each name
