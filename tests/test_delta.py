"""Delta archives: only what the destination lacks, plus removals; the result equals a full import."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, published

from airgap.testing.condapkg import PackageSpec, write_channel


def specs(version: int) -> list[PackageSpec]:
    names = [f"a{i}" for i in range(1, 7)]
    if version == 2:
        names = [n for n in names if n != "a2"] + ["a7"]  # a2 gone upstream, a7 new
    out = [
        PackageSpec(n, "1.0", subdir="linux-64", padding=2000, extra=(("patched", True),) if (version == 2 and n == "a3") else ())
        for n in names
    ]
    return out + [PackageSpec("d1", "1.0", subdir="noarch")]


@pytest.fixture
def world(tmp_path: Path, http_server: Callable[[Path], str]) -> dict[str, Any]:
    up = tmp_path / "up" / "main"
    write_channel(up, specs(1), subdirs=("linux-64",), formats=("conda",))
    url = http_server(up.parent) + "/main/"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("keygen", tmp_path / "k").exit_code == 0
    key, pub = tmp_path / "k", tmp_path / "k.pub"
    assert cli("export", "-f", cfg, "--sign-key", key, tmp_path / "v1.tar").exit_code == 0
    dest = tmp_path / "dest"
    assert cli("import", tmp_path / "v1.tar", "--into", dest, "--trusted-key", pub).exit_code == 0
    shutil.rmtree(up)
    write_channel(up, specs(2), subdirs=("linux-64",), formats=("conda",))  # upstream moves on
    return {"tmp": tmp_path, "cfg": cfg, "key": key, "pub": pub, "dest": dest}


def test_delta_carries_exactly_the_new_blobs_and_equals_a_full_import(world: dict[str, Any]) -> None:
    t = world["tmp"]
    receipt = t / "carried-back-receipt.json"
    shutil.copy(world["dest"] / ".airgap" / "receipt.json", receipt)
    r = cli("export", "-f", world["cfg"], "--sign-key", world["key"], t / "delta.tar", "--since", receipt, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["downloaded"] == 1  # only a7 travels over the network
    manifest = json.loads(cli("inspect", t / "delta.tar", "--json").stdout)
    assert [s["subdir"] for s in manifest["channels"][0]["subdirs"]] == ["linux-64"]  # noarch unchanged: left out
    assert manifest["base"] and manifest["totals"]["packages"] == 1
    full = json.loads(cli("inspect", t / "v1.tar", "--json").stdout)
    assert manifest["totals"]["blob_bytes"] < full["totals"]["blob_bytes"] / 2  # (file sizes round up to 10 KiB tar records)

    r = cli("import", t / "delta.tar", "--into", world["dest"], "--trusted-key", world["pub"], "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["packages_added"] == 1 and res["packages_removed"] == 1
    assert not (world["dest"] / "main" / "linux-64" / "a2-1.0-0.conda").exists()

    assert cli("export", "-f", world["cfg"], "--sign-key", world["key"], t / "v2.tar").exit_code == 0
    assert cli("import", t / "v2.tar", "--into", t / "fresh", "--trusted-key", world["pub"]).exit_code == 0
    assert published(world["dest"]) == published(t / "fresh")
    rec = json.loads((world["dest"] / "main" / "linux-64" / "repodata.json").read_bytes())["packages.conda"]["a3-1.0-0.conda"]
    assert rec["patched"] is True  # a repodata patch crossed although no file changed


def test_delta_without_its_base_is_refused_and_changes_nothing(world: dict[str, Any]) -> None:
    t = world["tmp"]
    receipt = world["dest"] / ".airgap" / "receipt.json"
    assert cli("export", "-f", world["cfg"], "--sign-key", world["key"], t / "delta.tar", "--since", receipt).exit_code == 0
    r = cli("import", t / "delta.tar", "--into", t / "elsewhere", "--trusted-key", world["pub"])
    # format airgap/2: a delta lists the base's files of changed names only; the base channel must be there at all
    assert r.exit_code == 1 and "and the destination holds no file there" in r.output, r.output
    assert not (t / "elsewhere").exists()
    victim = world["dest"] / "main" / "linux-64" / "a3-1.0-0.conda"  # a3's records changed: its file is the base's
    victim.unlink()
    before = {p: p.read_bytes() for p in world["dest"].rglob("*") if p.is_file()}
    r = cli("import", t / "delta.tar", "--into", world["dest"], "--trusted-key", world["pub"])
    assert r.exit_code == 1 and "1 are missing or different (first: main/linux-64/a3-1.0-0.conda)" in r.output
    assert {p: p.read_bytes() for p in world["dest"].rglob("*") if p.is_file()} == before


def test_bad_receipt_is_a_usage_error(world: dict[str, Any]) -> None:
    bad = world["tmp"] / "bad.json"
    bad.write_text('{"format": "something"}')
    r = cli("export", "-f", world["cfg"], "--unsigned", world["tmp"] / "x.tar", "--since", bad)
    assert r.exit_code == 2 and "expected an airgap receipt" in r.output


def test_cas_mirror_delta_keys(world: dict[str, Any]) -> None:
    cfg = json.loads(world["cfg"].read_text())
    world["cfg"].write_text(json.dumps({**cfg, "delta": True, "delta_dir": str(world["dest"] / ".airgap")}))
    r = cli("export", "-f", world["cfg"], "--unsigned", world["tmp"] / "d.tar", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages"] == 1  # a delta, as with --since
    world["cfg"].write_text(json.dumps({**cfg, "delta": True}))
    r = cli("export", "-f", world["cfg"], "--unsigned", world["tmp"] / "e.tar")
    assert r.exit_code == 2 and "expected delta_dir too" in r.output
