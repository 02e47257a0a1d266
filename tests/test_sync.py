"""sync = export + import in one step, incremental, with --reset re-checking every file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from helpers import cli, published

from airgap.testing.condapkg import PackageSpec, write_channel


def test_sync_equals_export_plus_import(tmp_path: Path, http_server: Callable[[Path], str]) -> None:
    up = tmp_path / "up" / "main"
    specs = [PackageSpec(f"p{i}", "1.0", subdir="linux-64", depends=("base",)) for i in range(8)]
    specs.append(PackageSpec("base", "1.0", subdir="noarch"))
    write_channel(up, specs, subdirs=("linux-64",))
    url = http_server(up.parent) + "/main/"
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        json.dumps(
            {
                "channels": [url],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "cache"),
                "into": str(tmp_path / "synced"),
                "pkg_list": ["p1", "p2", "base"],
            }
        )
    )
    r = cli("sync", "-f", cfg, "--json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["packages_added"] == 6 and first["downloaded"] == 6

    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar").exit_code == 0
    assert cli("import", tmp_path / "m.tar", "--into", tmp_path / "imported", "--allow-unsigned").exit_code == 0
    assert published(tmp_path / "synced") == published(tmp_path / "imported")

    r = cli("sync", "-f", cfg, "--json")  # nothing changed upstream: nothing downloaded or written
    again = json.loads(r.stdout)
    assert r.exit_code == 0 and again["packages_added"] == 0 and again["downloaded"] == 0 and again["packages_present"] == 6

    victim = next((tmp_path / "synced" / "main" / "linux-64").glob("p1-*.conda"))
    good = victim.read_bytes()
    victim.write_bytes(bytes(len(good)))  # damaged in place, same size: the receipt cannot tell
    r = cli("sync", "-f", cfg, "--json")
    assert json.loads(r.stdout)["packages_added"] == 0 and victim.read_bytes() != good
    r = cli("sync", "-f", cfg, "--reset", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["packages_added"] == 1  # only what differs is written
    assert victim.read_bytes() == good

    write_channel(up, [*specs, PackageSpec("p1", "2.0", subdir="linux-64")], subdirs=("linux-64",))
    r = cli("sync", "-f", cfg, "--json")  # upstream grew: only the new files travel
    grew = json.loads(r.stdout)
    assert grew["downloaded"] == 2 and grew["packages_added"] == 2
    names = json.loads((tmp_path / "synced" / "main" / "linux-64" / "repodata.json").read_bytes())["packages.conda"]
    assert "p1-2.0-0.conda" in names
