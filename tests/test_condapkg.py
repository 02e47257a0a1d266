"""airgap.testing.condapkg builds packages a real conda client (py-rattler) accepts and installs."""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from airgap.testing.condapkg import PackageSpec, build_conda, build_tar_bz2, write_channel
from airgap.testing.rattler_client import install

rattler = pytest.importorskip("rattler")

SCRIPT = b"#!/bin/sh\necho hello from tool\n"
DATA = PackageSpec(
    "demo-data", "1.2", build="0", files=(("share/demo-data/message.txt", b"hi\n"),), extra=(("custom_key", {"kept": True}),)
)
TOOL = PackageSpec(
    "demo-tool",
    "2.0",
    build="h0abc_3",
    build_number=3,
    subdir="linux-64",
    depends=("demo-data >=1.0",),
    constrains=("demo-other <2",),
    license="MIT",
    license_family="MIT",
    files=(("bin/demo-tool", SCRIPT), ("share/demo-tool/README", b"readme\n")),
    executables=("bin/demo-tool",),
)
FAKE_PYTHON = PackageSpec("python", "3.11.4", build="h0_0", subdir="linux-64", files=(("bin/python3.11", b"not really\n"),))
PYUTIL = PackageSpec(
    "demo-py", "0.3", build="pyh0_0", noarch="python", depends=("python >=3.8",), files=(("site-packages/demo_py/__init__.py", b"X = 1\n"),)
)
SPECS = [DATA, TOOL, FAKE_PYTHON, PYUTIL]
BUILDERS = [build_tar_bz2, build_conda]


def unpack(filename: str, data: bytes) -> dict[str, tarfile.TarInfo | bytes]:
    """Members of a package: ``{name: bytes}``, plus ``{name + ':info': TarInfo}``; also checks the container."""
    tars: list[bytes] = []
    if filename.endswith(".tar.bz2"):
        tars.append(bz2.decompress(data))
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
            stem = filename[: -len(".conda")]
            assert sorted(zf.namelist()) == sorted(["metadata.json", f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"])
            assert json.loads(zf.read("metadata.json")) == {"conda_pkg_format_version": 2}
            for part in ("info", "pkg"):
                raw = zf.read(f"{part}-{stem}.tar.zst")
                assert raw[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
                tars.append(zstandard.ZstdDecompressor().decompressobj().decompress(raw))
    out: dict[str, Any] = {}
    for t in tars:
        with tarfile.open(fileobj=io.BytesIO(t)) as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            info, payload = [n for n in names if n.startswith("info/")], [n for n in names if not n.startswith("info/")]
            assert names == sorted(info) + sorted(payload)
            for m in members:
                assert m.isfile() and m.uid == m.gid == 0 and m.mtime == members[0].mtime
                out[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
                out[m.name + ":info"] = m
    return out


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("spec", SPECS + [PackageSpec("big", "1", padding=200_000)], ids=lambda s: getattr(s, "name", ""))
def test_deterministic(builder: Callable[[PackageSpec], tuple[str, bytes, dict[str, Any]]], spec: PackageSpec) -> None:
    assert builder(spec) == builder(spec)
    # and not by accident: a different spec gives different bytes
    assert builder(spec)[1] != builder(PackageSpec(spec.name, spec.version, build=spec.build + "x"))[1]


def test_write_channel_is_deterministic(tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    write_channel(tmp_path / "a", SPECS, subdirs=("linux-64", "osx-arm64"))
    write_channel(tmp_path / "b", SPECS, subdirs=("linux-64", "osx-arm64"))
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_padding_is_incompressible_and_sized() -> None:
    _, small, _ = build_tar_bz2(PackageSpec("big", "1"))
    _, big, _ = build_tar_bz2(PackageSpec("big", "1", padding=300_000))
    assert len(big) - len(small) > 290_000
    members = unpack("big-1-0.tar.bz2", big)
    assert len(members["share/big/padding.bin"]) == 300_000  # type: ignore[arg-type]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_record_matches_bytes_and_index(builder: Callable[[PackageSpec], tuple[str, bytes, dict[str, Any]]], spec: PackageSpec) -> None:
    filename, data, record = builder(spec)
    assert filename == f"{spec.stem}.{'conda' if builder is build_conda else 'tar.bz2'}"
    assert record["size"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["md5"] == hashlib.md5(data).hexdigest()
    members = unpack(filename, data)
    index = json.loads(members["info/index.json"])  # type: ignore[arg-type]
    # the record is index.json without arch/platform, plus hashes, size and the extra keys
    expected = {k: v for k, v in index.items() if k not in ("arch", "platform")}
    expected.update(md5=record["md5"], sha256=record["sha256"], size=record["size"], **dict(spec.extra))
    assert record == expected
    assert list(record["depends"]) == list(spec.depends)
    assert ("constrains" in record) == bool(spec.constrains)
    assert record.get("noarch") == ("generic" if spec.subdir == "noarch" and spec.noarch is None else spec.noarch)
    if spec.subdir == "noarch":
        assert index["arch"] is None and index["platform"] is None
    else:
        assert (index["arch"], index["platform"]) == ("x86_64", "linux")


@pytest.mark.parametrize("builder", BUILDERS)
def test_info_files_describe_the_payload(builder: Callable[[PackageSpec], tuple[str, bytes, dict[str, Any]]]) -> None:
    filename, data, _ = builder(TOOL)
    m = unpack(filename, data)
    payload = {n: d for n, d in m.items() if not n.startswith("info/") and not n.endswith(":info")}
    assert sorted(payload) == ["bin/demo-tool", "share/demo-tool/README"]
    assert m["info/files"] == b"bin/demo-tool\nshare/demo-tool/README\n"
    paths = json.loads(m["info/paths.json"])  # type: ignore[arg-type]
    assert paths["paths_version"] == 1
    assert paths["paths"] == [
        {"_path": n, "path_type": "hardlink", "sha256": hashlib.sha256(d).hexdigest(), "size_in_bytes": len(d)}  # type: ignore[arg-type]
        for n, d in sorted(payload.items())
    ]
    assert stat.S_IMODE(m["bin/demo-tool:info"].mode) == 0o755  # type: ignore[union-attr]
    assert stat.S_IMODE(m["share/demo-tool/README:info"].mode) == 0o644  # type: ignore[union-attr]
    assert stat.S_IMODE(m["info/index.json:info"].mode) == 0o644  # type: ignore[union-attr]
    assert "info/link.json" not in m


def test_noarch_python_layout() -> None:
    filename, data, record = build_conda(PackageSpec("auto-py", "1.0", noarch="python"))
    m = unpack(filename, data)
    assert json.loads(m["info/link.json"]) == {"noarch": {"type": "python"}, "package_metadata_version": 1}  # type: ignore[arg-type]
    assert "site-packages/auto_py/__init__.py" in m
    assert record["noarch"] == "python" and record["subdir"] == "noarch"


def test_default_payload() -> None:
    m = unpack(*build_tar_bz2(PackageSpec("plain", "0.1"))[:2])
    assert m["share/plain/plain-0.1.txt"] == b"plain 0.1 0\n"


@pytest.mark.parametrize(
    "bad",
    [
        PackageSpec("x", "1", subdir="linux-64", noarch="python"),
        PackageSpec("x", "1", noarch="weird"),
        PackageSpec("x", "1", files=(("../escape", b""),)),
        PackageSpec("x", "1", files=(("a", b""),), executables=("b",)),
    ],
)
def test_invalid_specs_are_refused(bad: PackageSpec) -> None:
    with pytest.raises(ValueError):
        build_conda(bad)


def test_write_channel_layout(tmp_path: Path) -> None:
    docs = write_channel(tmp_path, [DATA, TOOL], formats=("conda",), subdirs=("win-64",), extra_info={"base_url": "x"})
    assert sorted(docs) == ["linux-64", "noarch", "win-64"]
    for subdir, doc in docs.items():
        raw = (tmp_path / subdir / "repodata.json").read_bytes()
        assert raw == json.dumps(doc, indent=2, sort_keys=True).encode()
        assert zstandard.ZstdDecompressor().decompressobj().decompress((tmp_path / subdir / "repodata.json.zst").read_bytes()) == raw
        assert doc["info"] == {"subdir": subdir, "base_url": "x"}
        assert doc["removed"] == [] and doc["repodata_version"] == 1 and doc["packages"] == {}
        for fn, rec in doc["packages.conda"].items():
            data = (tmp_path / subdir / fn).read_bytes()
            assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["size"] == len(data)
    assert docs["win-64"]["packages.conda"] == {}
    assert list(docs["noarch"]["packages.conda"]) == ["demo-data-1.2-0.conda"]
    assert docs["noarch"]["packages.conda"]["demo-data-1.2-0.conda"]["custom_key"] == {"kept": True}
    assert sorted(p.name for p in (tmp_path / "linux-64").iterdir()) == [
        "demo-tool-2.0-h0abc_3.conda",
        "repodata.json",
        "repodata.json.zst",
    ]
    with pytest.raises(ValueError):
        write_channel(tmp_path / "bad", [DATA], formats=("zip",))
    with pytest.raises(ValueError):
        write_channel(tmp_path / "dup", [DATA, DATA])


# --- rattler reads what we build ------------------------------------------------------------


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_rattler_reads_package_metadata(
    tmp_path: Path, builder: Callable[[PackageSpec], tuple[str, bytes, dict[str, Any]]], spec: PackageSpec
) -> None:
    filename, data, record = builder(spec)
    m = unpack(filename, data)
    (tmp_path / "index.json").write_bytes(m["info/index.json"])  # type: ignore[arg-type]
    pr = rattler.PackageRecord.from_index_json(tmp_path / "index.json", size=record["size"], sha256=record["sha256"], md5=record["md5"])
    assert pr.name.normalized == spec.name and str(pr.version) == spec.version and str(pr.build) == spec.build
    assert pr.build_number == spec.build_number and pr.subdir == spec.subdir and list(pr.depends) == list(spec.depends)
    assert list(pr.constrains) == list(spec.constrains)
    assert rattler.IndexJson.from_path(tmp_path / "index.json").name.normalized == spec.name

    pkg = tmp_path / filename
    pkg.write_bytes(data)
    ij = rattler.IndexJson.from_package_archive(pkg)
    assert ij.name.normalized == spec.name and str(ij.build) == spec.build
    pj = rattler.PathsJson.from_package_archive(pkg)
    assert sorted(str(p.relative_path) for p in pj.paths) == sorted(p for p, _ in spec.files)
    rec = asyncio.run(rattler.RepoDataRecord.from_package_archive(pkg))
    assert rec.sha256 is not None and rec.sha256.hex() == record["sha256"] and rec.size == record["size"]
    assert rec.file_name == filename


def test_rattler_reads_channel_repodata(tmp_path: Path) -> None:
    write_channel(tmp_path, SPECS, subdirs=("linux-64",))
    rd = rattler.RepoData.from_path(tmp_path / "noarch" / "repodata.json")
    records = rd.into_repo_data(rattler.Channel(tmp_path.as_uri()))
    assert sorted(r.file_name for r in records) == sorted(
        f"{s.stem}.{ext}" for s in SPECS if s.subdir == "noarch" for ext in ("tar.bz2", "conda")
    )
    data = next(r for r in records if r.file_name == f"{DATA.stem}.conda")
    assert data.url == f"{tmp_path.as_uri()}/noarch/{DATA.stem}.conda"


# --- a real client installs from the channel, over file:// and http:// ------------------------


@pytest.fixture
def rattler_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler-cache"))
    return tmp_path


def channel_url(root: Path, how: str, serve: Callable[[Path], str]) -> str:
    return root.as_uri() if how == "file" else serve(root)


def check_installed(prefix: Path, spec: PackageSpec) -> None:
    for path, content in spec.files:
        assert (prefix / path).read_bytes() == content, path
    meta = prefix / "conda-meta" / f"{spec.stem}.json"
    assert json.loads(meta.read_text())["name"] == spec.name


@pytest.mark.parametrize("how", ["file", "http"])
@pytest.mark.parametrize("fmt", ["conda", "tar.bz2"])
def test_rattler_installs_dependency_chain(rattler_env: Path, http_server: Callable[[Path], str], how: str, fmt: str) -> None:
    """A linux-64 package depending on a noarch one, from a channel holding one format only."""
    root = rattler_env / "channel"
    write_channel(root, [DATA, TOOL, PackageSpec("demo-data", "0.9")], formats=(fmt,), subdirs=("linux-64",))
    prefix = rattler_env / "env"
    names = install([channel_url(root, how, http_server)], ["demo-tool"], prefix, rattler_env / "cache")
    assert names == ["demo-data", "demo-tool"]
    check_installed(prefix, TOOL)
    check_installed(prefix, DATA)  # the newest demo-data, not 0.9
    assert not (prefix / "share" / "demo-data" / "demo-data-0.9.txt").exists()
    assert os.access(prefix / "bin" / "demo-tool", os.X_OK)
    assert not os.access(prefix / "share" / "demo-tool" / "README", os.X_OK)
    meta = json.loads((prefix / "conda-meta" / f"{TOOL.stem}.json").read_text())
    assert meta["fn"] == f"{TOOL.stem}.{fmt}"
    assert meta["sha256"] == hashlib.sha256((root / "linux-64" / meta["fn"]).read_bytes()).hexdigest()


def test_rattler_honours_constrains_and_prefers_conda(rattler_env: Path, http_server: Callable[[Path], str]) -> None:
    root = rattler_env / "channel"
    other = [PackageSpec("demo-other", "1.5"), PackageSpec("demo-other", "2.5")]
    write_channel(root, [DATA, TOOL, *other], subdirs=("linux-64",))
    prefix = rattler_env / "env"
    names = install([http_server(root)], ["demo-tool", "demo-other"], prefix, rattler_env / "cache")
    assert names == ["demo-data", "demo-other", "demo-tool"]
    check_installed(prefix, other[0])  # demo-tool constrains demo-other <2
    assert json.loads((prefix / "conda-meta" / f"{TOOL.stem}.json").read_text())["fn"].endswith(".conda")


@pytest.mark.parametrize("fmt", ["conda", "tar.bz2"])
def test_rattler_installs_noarch_python(rattler_env: Path, http_server: Callable[[Path], str], fmt: str) -> None:
    root = rattler_env / "channel"
    script = ("python-scripts/demo-py-cli", b"#!/usr/bin/env python\nprint('hi')\n")
    spec = PackageSpec(
        PYUTIL.name, PYUTIL.version, build=PYUTIL.build, noarch="python", depends=PYUTIL.depends, files=(*PYUTIL.files, script)
    )
    write_channel(root, [FAKE_PYTHON, spec], formats=(fmt,), subdirs=("linux-64",))
    prefix = rattler_env / "env"
    assert install([http_server(root)], ["demo-py"], prefix, rattler_env / "cache") == ["demo-py", "python"]
    assert (prefix / "lib" / "python3.11" / "site-packages" / "demo_py" / "__init__.py").read_bytes() == b"X = 1\n"
    assert (prefix / "bin" / "demo-py-cli").exists()  # python-scripts/ -> bin/


def test_rattler_client_platforms(rattler_env: Path) -> None:
    """The helper solves for the platform it is given (plus noarch) only."""
    root = rattler_env / "channel"
    arm = PackageSpec("demo-arm", "1", subdir="osx-arm64")
    write_channel(root, [DATA, TOOL, arm], formats=("conda",))
    names = install([root.as_uri()], ["demo-arm"], rattler_env / "env", rattler_env / "cache", platform="osx-arm64")
    assert names == ["demo-arm"]
    with pytest.raises(Exception, match="demo-tool"):
        install([root.as_uri()], ["demo-tool"], rattler_env / "env2", rattler_env / "cache", platform="osx-arm64")


def test_rattler_checks_record_sha256_over_http(rattler_env: Path, http_server: Callable[[Path], str]) -> None:
    """So the hashes we write are really checked: the client refuses bytes that do not match the record.

    (rattler 0.28 checks them for http:// channels; for file:// channels it does not.)
    """
    root = rattler_env / "channel"
    write_channel(root, [DATA], formats=("conda",))
    path = root / "noarch" / "repodata.json"
    doc = json.loads(path.read_text())
    doc["packages.conda"][f"{DATA.stem}.conda"]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    path.write_text(json.dumps(doc))
    (root / "noarch" / "repodata.json.zst").unlink()
    with pytest.raises(Exception, match="(?i)hash mismatch|checksum"):
        install([http_server(root)], ["demo-data"], rattler_env / "env", rattler_env / "cache")
