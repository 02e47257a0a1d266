"""Build small, valid conda packages and channels — for the tests, samples and benchmarks.

Not used by the airgap commands; depends only on the standard library and ``zstandard``.
Packages are deterministic (fixed mtimes, sorted members, uid/gid 0, fixed compression
levels), so building the same spec twice gives the same bytes and therefore the same sha256.
Both formats are produced, laid out like conda-build's output:

* ``.tar.bz2``: a bzip2 tar holding ``info/`` (``index.json``, ``paths.json``, ``files``, and
  ``link.json`` for ``noarch: python``) followed by the payload files;
* ``.conda``: an uncompressed (stored) zip holding ``metadata.json``, ``pkg-<stem>.tar.zst``
  (the payload) and ``info-<stem>.tar.zst`` (the ``info/`` files).

Files are mode 0644, those named in ``PackageSpec.executables`` 0755. ``noarch: python``
packages keep their files under ``site-packages/`` (and scripts under ``python-scripts/``):
the installer moves them into the environment's ``lib/pythonX.Y/site-packages``.
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

MTIME = 1700000000  # every tar member's mtime (2023-11-14T22:13:20Z)
ZIP_DATE = (2023, 11, 14, 22, 13, 20)  # the same instant, for the .conda zip entries
BZ2_LEVEL = 9
ZSTD_LEVEL = 3  # inner tars of .conda packages
REPODATA_ZSTD_LEVEL = 10  # repodata.json.zst

_ARCH = {"64": "x86_64", "32": "x86", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str
    build: str = "0"  # build string
    build_number: int = 0
    subdir: str = "noarch"  # "noarch" or e.g. "linux-64"
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    license: str = "BSD-3-Clause"
    license_family: str | None = "BSD"
    noarch: str | None = None  # None, "generic" or "python"; subdir "noarch" without it means "generic"
    files: tuple[tuple[str, bytes], ...] = ()  # (path inside the prefix, content); empty: one small text file
    timestamp: int = 1700000000000  # ms
    extra: tuple[tuple[str, object], ...] = ()  # extra keys copied into the repodata record
    padding: int = 0  # bytes of incompressible, deterministic data added as one more file
    executables: tuple[str, ...] = ()  # paths among ``files`` written with mode 0755

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def noarch_kind(self) -> str | None:
        if self.noarch:
            return self.noarch
        return "generic" if self.subdir == "noarch" else None


def _check(spec: PackageSpec) -> None:
    if spec.noarch not in (None, "generic", "python"):
        raise ValueError(f"{spec.stem}: noarch must be None, 'generic' or 'python', not {spec.noarch!r}")
    if spec.noarch and spec.subdir != "noarch":
        raise ValueError(f"{spec.stem}: a noarch package belongs in subdir 'noarch', not {spec.subdir!r}")
    for path, _ in spec.files:
        if not path or path.startswith("/") or ".." in path.split("/") or path.startswith("info/"):
            raise ValueError(f"{spec.stem}: bad payload path {path!r}")
    missing = set(spec.executables) - {p for p, _ in spec.files}
    if missing:
        raise ValueError(f"{spec.stem}: executables not among files: {sorted(missing)}")


def _payload(spec: PackageSpec) -> list[tuple[str, bytes]]:
    _check(spec)
    files = list(spec.files)
    if not files:
        text = f"{spec.name} {spec.version} {spec.build}\n".encode()
        if spec.noarch_kind == "python":
            files = [(f"site-packages/{spec.name.replace('-', '_')}/__init__.py", b"# " + text)]
        else:
            files = [(f"share/{spec.name}/{spec.name}-{spec.version}.txt", text)]
    if spec.padding:
        seed = f"{spec.name}/{spec.version}/{spec.build}".encode()
        files.append((f"share/{spec.name}/padding.bin", hashlib.shake_256(seed).digest(spec.padding)))
    if len({p for p, _ in files}) != len(files):
        raise ValueError(f"{spec.stem}: duplicate payload paths")
    return sorted(files)


def _index(spec: PackageSpec) -> dict[str, Any]:
    """``info/index.json`` as conda-build writes it (arch/platform null for noarch)."""
    arch, platform = None, None
    if spec.subdir != "noarch":
        platform, _, machine = spec.subdir.partition("-")
        arch = _ARCH.get(machine, machine)
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


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True).encode()


def _info_files(spec: PackageSpec, payload: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    paths = [{"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(d).hexdigest(), "size_in_bytes": len(d)} for p, d in payload]
    info = [
        ("info/files", "".join(p + "\n" for p, _ in payload).encode()),
        ("info/index.json", _dumps(_index(spec))),
        ("info/paths.json", _dumps({"paths": paths, "paths_version": 1})),
    ]
    if spec.noarch_kind == "python":
        info.append(("info/link.json", _dumps({"noarch": {"type": "python"}, "package_metadata_version": 1})))
    return sorted(info)


def _tar(members: list[tuple[str, bytes]], executables: Iterable[str]) -> bytes:
    executable = set(executables)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = MTIME
            ti.mode = 0o755 if name in executable else 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _record(spec: PackageSpec, data: bytes) -> dict[str, Any]:
    """The repodata record: index.json's keys (but arch/platform), hashes, size, then ``extra``."""
    record = _index(spec)
    del record["arch"], record["platform"]
    record.update(
        {
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    )
    record.update(dict(spec.extra))
    return record


def build_tar_bz2(spec: PackageSpec) -> tuple[str, bytes, dict[str, Any]]:
    """Return ``(filename, package bytes, repodata record)`` for the ``.tar.bz2`` form."""
    payload = _payload(spec)
    tar = _tar(_info_files(spec, payload) + payload, spec.executables)
    data = bz2.compress(tar, compresslevel=BZ2_LEVEL)
    return f"{spec.stem}.tar.bz2", data, _record(spec, data)


def build_conda(spec: PackageSpec) -> tuple[str, bytes, dict[str, Any]]:
    """Same for the ``.conda`` (v2) form: a stored zip of metadata.json, pkg-<stem>.tar.zst, info-<stem>.tar.zst."""
    payload = _payload(spec)
    zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    entries = [
        ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
        (f"pkg-{spec.stem}.tar.zst", zstd.compress(_tar(payload, spec.executables))),
        (f"info-{spec.stem}.tar.zst", zstd.compress(_tar(_info_files(spec, payload), ()))),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in entries:
            zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            zi.create_system = 3  # unix, wherever this runs
            zi.external_attr = 0o100644 << 16
            zf.writestr(zi, content)
    data = buf.getvalue()
    return f"{spec.stem}.conda", data, _record(spec, data)


_BUILDERS = {"tar.bz2": (build_tar_bz2, "packages"), "conda": (build_conda, "packages.conda")}


def write_channel(
    root: Path,
    specs: Iterable[PackageSpec],
    *,
    formats: tuple[str, ...] = ("tar.bz2", "conda"),
    subdirs: Iterable[str] = ("noarch",),
    extra_info: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Write a channel at ``root``; return ``{subdir: repodata}``.

    Each spec is written in each of ``formats`` to ``root/<subdir>/<filename>``. Every subdir
    in ``subdirs``, every subdir a spec uses, and ``noarch`` get a ``repodata.json`` (empty if
    no packages) and a ``repodata.json.zst`` of the same bytes.
    """
    unknown = set(formats) - set(_BUILDERS)
    if unknown:
        raise ValueError(f"unknown package formats {sorted(unknown)}; known: {sorted(_BUILDERS)}")
    root = Path(root)
    docs: dict[str, dict[str, Any]] = {}

    def doc(subdir: str) -> dict[str, Any]:
        if subdir not in docs:
            docs[subdir] = {
                "info": {"subdir": subdir, **(extra_info or {})},
                "packages": {},
                "packages.conda": {},
                "removed": [],
                "repodata_version": 1,
            }
        return docs[subdir]

    for s in ("noarch", *subdirs):
        doc(s)
    for spec in specs:
        d = root / spec.subdir
        d.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            build, section = _BUILDERS[fmt]
            filename, data, record = build(spec)
            if filename in doc(spec.subdir)[section]:
                raise ValueError(f"two specs make {spec.subdir}/{filename}")
            (d / filename).write_bytes(data)
            doc(spec.subdir)[section][filename] = record
    for subdir, repodata in docs.items():
        d = root / subdir
        d.mkdir(parents=True, exist_ok=True)
        raw = _dumps(repodata)
        (d / "repodata.json").write_bytes(raw)
        (d / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor(level=REPODATA_ZSTD_LEVEL).compress(raw))
    return docs
