"""export --plan, installability checks, and clean, through the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from airgap.cli import main
from airgap.testing.condapkg import PackageSpec, write_channel


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> str:
    root = tmp_path_factory.mktemp("up") / "forge"
    specs = [
        PackageSpec("python", "3.11.4", build="h0_cpython", subdir="linux-64", depends=("python_abi 3.11.* *_cp311",)),
        PackageSpec("python", "3.12.1", build="h0_cpython", subdir="linux-64", depends=("python_abi 3.12.* *_cp312",)),
        PackageSpec("python_abi", "3.11", build="4_cp311", subdir="linux-64"),
        PackageSpec("python_abi", "3.12", build="4_cp312", subdir="linux-64"),
        PackageSpec(
            "numpy",
            "1.26.0",
            build="py311h0_0",
            subdir="linux-64",
            depends=("python >=3.11,<3.12.0a0", "python_abi 3.11.* *_cp311", "libopenblas >=0.3"),
        ),
        PackageSpec(
            "numpy",
            "1.26.0",
            build="py312h0_0",
            subdir="linux-64",
            depends=("python >=3.12,<3.13.0a0", "python_abi 3.12.* *_cp312", "libopenblas >=0.3"),
        ),
        PackageSpec("libopenblas", "0.3.25", build="h0_0", subdir="linux-64"),
        PackageSpec("readline", "8.2", build="h0_0", subdir="linux-64", license="GPL-3.0-only", license_family="GPL3"),
        PackageSpec("tqdm", "4.66", build="pyhd8ed1ab_0", subdir="noarch", noarch="python", depends=("python >=3.7",)),
    ]
    write_channel(root, specs, subdirs=("linux-64",), formats=("conda",))
    return http_server(root.parent) + "/forge/"


def config(tmp_path: Path, url: str, **kw: Any) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), **kw}))
    return p


def test_plan_json_downloads_nothing(tmp_path: Path, upstream: str) -> None:
    cfg = config(tmp_path, upstream, pkg_list=["numpy"], python_versions=["3.11"], with_dependencies=True, license_blacklist=["gpl"])
    r = cli("export", "-f", cfg, "--plan", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    names = sorted(p["filename"].rsplit("-", 2)[0] for p in doc["packages"])
    assert names == ["libopenblas", "numpy", "python", "python_abi"]
    assert {p["filename"] for p in doc["packages"]} >= {"numpy-1.26.0-py311h0_0.conda", "python-3.11.4-h0_cpython.conda"}
    assert doc["total_bytes"] == sum(p["size"] for p in doc["packages"])
    assert all(len(p["sha256"]) == 64 and p["channel"] == "forge" for p in doc["packages"])
    reasons = {e["filename"]: e["reason"] for e in doc["excluded"]}
    assert reasons["readline-8.2-h0_0.conda"] == "license_blacklist: GPL"
    assert reasons["numpy-1.26.0-py312h0_0.conda"].startswith("python_versions:")
    assert reasons["tqdm-4.66-pyhd8ed1ab_0.conda"] == "not in pkg_list"
    assert not (tmp_path / "cache" / "blobs").exists() or not any((tmp_path / "cache" / "blobs" / "sha256").iterdir())


def test_plan_media_size(tmp_path: Path, upstream: str) -> None:
    cfg = config(tmp_path, upstream)
    r = cli("export", "-f", cfg, "--plan", "--media-size", "4.7G")
    assert r.exit_code == 0 and "of 4.4 GiB" in r.output and "total    9 packages" in r.output, r.output
    r = cli("export", "-f", cfg, "--plan", "--media-size", "1K")
    assert r.exit_code == 2 and "expected the selection to fit in 1000 B" in r.output
    r = cli("export", "-f", cfg, "--plan", "--media-size", "big")
    assert r.exit_code == 2 and "expected a size such as 4.7G" in r.output


def test_installability_is_checked_before_downloading(tmp_path: Path, upstream: str) -> None:
    cfg = config(tmp_path, upstream, pkg_list=["numpy"], python_versions=["3.11", "3.12"])
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar", "--check-installable", "numpy")
    assert r.exit_code == 1, r.output
    assert "numpy: expected to be installable from the selection, but 2 of 2 solves failed" in r.output
    assert "No candidates were found for python 3.11" in r.output  # the solver's own explanation
    assert not (tmp_path / "m.tar").exists()
    cfg = config(tmp_path, upstream, pkg_list=["numpy"], python_versions=["3.11", "3.12"], with_dependencies=True, installable=["numpy"])
    r = cli("export", "-f", cfg, "--plan", "--json")
    assert r.exit_code == 0, r.output
    solves = json.loads(r.stdout)["installable"]
    assert [(s["platform"], s["python"], s["ok"]) for s in solves] == [("linux-64", "3.11", True), ("linux-64", "3.12", True)]
    r = cli("export", "-f", cfg, "--plan", "--check-installable", "readline", "--allow-unsolvable")
    assert r.exit_code == 0 and "FAILED" in r.output


def test_clean_dry_run_then_clean(tmp_path: Path, upstream: str) -> None:
    key = tmp_path / "k"
    assert cli("keygen", key).exit_code == 0
    cfg = config(tmp_path, upstream, python_versions=["3.11", "3.12"])
    assert cli("export", "-f", cfg, "--sign-key", key, tmp_path / "m.tar").exit_code == 0
    dest = tmp_path / "dest"
    assert cli("import", tmp_path / "m.tar", "--into", dest, "--trusted-key", f"{key}.pub").exit_code == 0
    narrower = config(tmp_path, upstream, python_versions=["3.11"], blacklist=["libopenblas"])
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    r = cli("clean", "-f", narrower, "--into", dest, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    removed = {x["filename"]: x["reason"] for x in doc["remove"]}
    assert removed["libopenblas-0.3.25-h0_0.conda"] == "blacklist: libopenblas"
    assert removed["python-3.12.1-h0_cpython.conda"].startswith("python_versions:")
    assert "numpy-1.26.0-py311h0_0.conda" not in removed and "tqdm-4.66-pyhd8ed1ab_0.conda" not in removed
    assert doc["keep"] == 9 - len(removed) and doc["bytes"] == sum(x["size"] for x in doc["remove"])
    assert {b["filename"] for b in doc["broken"]} == {"numpy-1.26.0-py311h0_0.conda"}  # loses libopenblas
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before  # --dry-run changed nothing

    r = cli("clean", "-f", narrower, "--into", dest)
    assert r.exit_code == 0 and "would lose its dependency 'libopenblas >=0.3'" in r.output, r.output
    rd = json.loads((dest / "forge" / "linux-64" / "repodata.json").read_bytes())
    left = set(rd["packages.conda"])
    assert left.isdisjoint(removed) and all((dest / "forge" / "linux-64" / f).exists() for f in left)
    assert not any((dest / "forge" / s / f).exists() for s in ("linux-64", "noarch") for f in removed)
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert set(receipt["channels"]["forge"]["linux-64"]) == left
    assert receipt["cleans"][0]["removed"] == len(removed)
    assert not list((dest / ".airgap").glob("staging-*"))
    r = cli("clean", "-f", narrower, "--into", dest, "--json")  # nothing left to do
    assert r.exit_code == 0 and json.loads(r.stdout)["remove"] == []


def test_clean_needs_a_destination(tmp_path: Path, upstream: str) -> None:
    r = cli("clean", "-f", config(tmp_path, upstream), "--into", tmp_path / "missing", "--dry-run")
    assert r.exit_code == 1 and "expected a destination holding channels" in r.output


def test_clean_removes_orphans_an_interrupted_run_left(tmp_path: Path, upstream: str) -> None:
    cfg = config(tmp_path, upstream, pkg_list=["tqdm"])
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar").exit_code == 0
    dest = tmp_path / "dest"
    assert cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    stray = dest / "forge" / "noarch" / "left-1.0-0.conda"
    stray.write_bytes(b"half a package")
    r = cli("clean", "-f", cfg, "--into", dest, "--dry-run", "--json")
    assert [(x["filename"], x["reason"]) for x in json.loads(r.stdout)["remove"]] == [
        ("left-1.0-0.conda", "orphan: no repodata lists it (left by an interrupted run)")
    ]
    assert stray.exists()
    assert cli("clean", "-f", cfg, "--into", dest).exit_code == 0 and not stray.exists()
    assert (dest / "forge" / "noarch" / "tqdm-4.66-pyhd8ed1ab_0.conda").exists()
