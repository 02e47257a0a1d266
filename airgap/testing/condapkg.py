"""Build small, valid conda packages and channels — for the tests, samples and benchmarks.

Not used by the airgap commands. Packages are deterministic (fixed mtimes, sorted members,
uid/gid 0, fixed compression levels), so building the same spec twice gives the same bytes and
therefore the same sha256. Both formats are produced:

* ``.tar.bz2``: a bzip2 tar with ``info/`` (index.json, paths.json, files, link.json for
  ``noarch: python``) and the payload files;
* ``.conda``: an uncompressed zip holding ``metadata.json``, ``pkg-<stem>.tar.zst`` (payload)
  and ``info-<stem>.tar.zst`` (metadata).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

MTIME = 1700000000
ZIP_DATE = (2023, 11, 14, 22, 13, 20)


@dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    subdir: str = "noarch"
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    license: str = "BSD-3-Clause"
    license_family: str | None = "BSD"
    noarch: str | None = None  # None, "generic" or "python"
    files: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 1700000000000
    extra: tuple[tuple[str, object], ...] = ()
    padding: int = 0
    executables: tuple[str, ...] = ()  # paths among ``files`` written with mode 0755

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def noarch_kind(self) -> str | None:
        if self.noarch:
            return self.noarch
        return "generic" if self.subdir == "noarch" else None


def _payload(spec: PackageSpec) -> list[tuple[str, bytes]]:
    files = list(spec.files)
    if not files:
        files = [(f"share/{spec.name}/{spec.name}-{spec.version}.txt", f"{spec.name} {spec.version} {spec.build}\n".encode())]
    if spec.padding:
        seed = f"{spec.name}/{spec.version}/{spec.build}".encode()
        files.append((f"share/{spec.name}/padding.bin", hashlib.shake_256(seed).digest(spec.padding)))
    return sorted(files)


def _index(spec: PackageSpec) -> dict[str, Any]:
    arch, platform = None, None
    if spec.subdir != "noarch":
        platform, _, machine = spec.subdir.partition("-")
        arch = {"64": "x86_64", "32": "x86", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le"}.get(machine, machine)
    index: dict[str, Any] = {
        "arch": arch,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "license": spec.license,
        "name": spec.name,
        "platform": platform,
        "subdir": spec.subdir,
        "timestamp": spec.timestamp,
        "version": spec.version,
    }
    if spec.constrains:
        index["constrains"] = list(spec.constrains)
    if spec.license_family:
        index["license_family"] = spec.license_family
    if spec.noarch_kind:
        index["noarch"] = spec.noarch_kind
    return index


def _info_files(spec: PackageSpec, payload: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    paths = [
        {"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(d).hexdigest(), "size_in_bytes": len(d)}
        for p, d in payload
    ]
    info = [
        ("info/files", "".join(p + "\n" for p, _ in payload).encode()),
        ("info/index.json", json.dumps(_index(spec), indent=2, sort_keys=True).encode()),
        ("info/paths.json", json.dumps({"paths": paths, "paths_version": 1}, indent=2, sort_keys=True).encode()),
    ]
    if spec.noarch_kind == "python":
        link = {"noarch": {"type": "python"}, "package_metadata_version": 1}
        info.append(("info/link.json", json.dumps(link, indent=2, sort_keys=True).encode()))
    return sorted(info)


def _tar(members: list[tuple[str, bytes]], executables: tuple[str, ...]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = MTIME
            ti.mode = 0o755 if name in executables else 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _record(spec: PackageSpec, data: bytes) -> dict[str, Any]:
    record = _index(spec)
    for key in ("arch", "platform"):
        if record[key] is None:
            del record[key]
    record.update({
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    })
    record.update(dict(spec.extra))
    return record


def build_tar_bz2(spec: PackageSpec) -> tuple[str, bytes, dict[str, Any]]:
    """Return ``(filename, package bytes, repodata record)`` for the ``.tar.bz2`` form."""
    payload = _payload(spec)
    data = bz2.compress(_tar(_info_files(spec, payload) + payload, spec.executables), compresslevel=9)
    return f"{spec.stem}.tar.bz2", data, _record(spec, data)


def build_conda(spec: PackageSpec) -> tuple[str, bytes, dict[str, Any]]:
    """Return ``(filename, package bytes, repodata record)`` for the ``.conda`` form."""
    payload = _payload(spec)
    zstd = zstandard.ZstdCompressor(level=3)
    inner = [
        ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
        (f"pkg-{spec.stem}.tar.zst", zstd.compress(_tar(payload, spec.executables))),
        (f"info-{spec.stem}.tar.zst", zstd.compress(_tar(_info_files(spec, payload), ()))),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in inner:
            zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    data = buf.getvalue()
    return f"{spec.stem}.conda", data, _record(spec, data)


def write_channel(
    root: Path,
    specs: Iterable[PackageSpec],
    *,
    formats: tuple[str, ...] = ("tar.bz2", "conda"),
    subdirs: Iterable[str] = ("noarch",),
    extra_info: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Write a channel at ``root`` and return ``{subdir: repodata}``; noarch always exists."""
    root = Path(root)
    docs: dict[str, dict[str, Any]] = {}

    def doc(subdir: str) -> dict[str, Any]:
        if subdir not in docs:
            docs[subdir] = {"info": {"subdir": subdir, **(extra_info or {})}, "packages": {}, "packages.conda": {},
                            "removed": [], "repodata_version": 1}
        return docs[subdir]

    for s in ("noarch", *subdirs):
        doc(s)
    builders = {"tar.bz2": (build_tar_bz2, "packages"), "conda": (build_conda, "packages.conda")}
    for spec in specs:
        d = root / spec.subdir
        d.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            build, section = builders[fmt]
            filename, data, record = build(spec)
            (d / filename).write_bytes(data)
            doc(spec.subdir)[section][filename] = record
    for subdir, repodata in docs.items():
        d = root / subdir
        d.mkdir(parents=True, exist_ok=True)
        raw = json.dumps(repodata, indent=2, sort_keys=True).encode()
        (d / "repodata.json").write_bytes(raw)
        (d / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor(level=10).compress(raw))
    return docs
