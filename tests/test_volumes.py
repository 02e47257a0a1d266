"""Volumes: an archive split to fit media; each volume verifies alone; import takes any order."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import NOT_PACKAGES

from airgap.cli import main
from airgap.testing.condapkg import PackageSpec, write_channel


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".airgap" not in p.parts and not p.name.endswith(".html")
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("vol")
    specs = [PackageSpec(f"big{i}", "1.0", subdir="linux-64", padding=60_000) for i in range(12)]
    write_channel(d / "up" / "main", specs, subdirs=("linux-64",), formats=("conda",))
    cfg = d / "c.yaml"
    cfg.write_text(json.dumps({"channels": [http_server(d / "up") + "/main/"], "platforms": ["linux-64"], "mirror_dir": str(d / "cache")}))
    assert cli("keygen", d / "k").exit_code == 0
    r = cli("export", "-f", cfg, "--sign-key", d / "k", d / "m.tar", "--volume-size", "200K", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert cli("export", "-f", cfg, "--sign-key", d / "k", d / "whole.tar").exit_code == 0
    return {"dir": d, "cfg": cfg, "volumes": [Path(v) for v in result["volumes"]], "pub": d / "k.pub"}


def test_volumes_fit_and_each_verifies_alone(setup: dict[str, Any]) -> None:
    vols = setup["volumes"]
    assert len(vols) >= 4 and [v.name for v in vols] == [f"m.tar.{n:03d}" for n in range(1, len(vols) + 1)]
    assert all(v.stat().st_size <= 200_000 for v in vols)
    for v in vols:
        r = cli("verify", v, "--trusted-key", setup["pub"], "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["of_volumes"] == len(vols)
    covered = sum(json.loads(cli("verify", v, "--trusted-key", setup["pub"], "--json").stdout)["blobs"] for v in vols)
    manifest_blobs = json.loads(cli("inspect", vols[0], "--json").stdout)["totals"]["blobs"]
    assert covered == manifest_blobs  # every blob in exactly one volume


def test_import_in_reverse_order_equals_the_whole_archive(setup: dict[str, Any], tmp_path: Path) -> None:
    r = cli("import", *reversed(setup["volumes"]), "--into", tmp_path / "a", "--trusted-key", setup["pub"])
    assert r.exit_code == 0, r.output
    r = cli("import", setup["dir"] / "whole.tar", "--into", tmp_path / "b", "--trusted-key", setup["pub"])
    assert r.exit_code == 0, r.output
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert len([k for k in tree(tmp_path / "a") if "/shards/" not in k and k.rsplit("/", 1)[1] not in NOT_PACKAGES]) == 12


def test_a_missing_volume_is_named_and_nothing_changes(setup: dict[str, Any], tmp_path: Path) -> None:
    vols = setup["volumes"]
    dest = tmp_path / "dest"
    r = cli("import", vols[0], vols[2], "--into", dest, "--trusted-key", setup["pub"])
    assert r.exit_code == 2, r.output
    assert f"missing {len(vols) - 2}: " in r.output and "m.tar.002" in r.output and f"m.tar.{len(vols):03d}" in r.output
    assert not dest.exists()
    r = cli("import", vols[0], vols[0], "--into", dest, "--trusted-key", setup["pub"])
    assert r.exit_code == 2 and "given twice" in r.output and not dest.exists()


def test_volumes_of_two_archives_do_not_mix(setup: dict[str, Any], tmp_path: Path) -> None:
    other = tmp_path / "o.tar"
    r = cli("export", "-f", setup["cfg"], "--sign-key", setup["dir"] / "k", other, "--volume-size", "200K", "--json")
    assert r.exit_code == 0
    others = [Path(v) for v in json.loads(r.stdout)["volumes"]]
    r = cli("import", setup["volumes"][0], *others[1:], "--into", tmp_path / "d", "--trusted-key", setup["pub"])
    assert r.exit_code == 3 and "expected a volume of archive" in r.output and not (tmp_path / "d").exists()


def test_volume_size_too_small_is_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    r = cli("export", "-f", setup["cfg"], "--unsigned", tmp_path / "x.tar", "--volume-size", "50K")
    assert r.exit_code == 2 and "expected room for the largest file" in r.output
    assert not [p for p in os.listdir(tmp_path) if p.startswith("x.tar")]
