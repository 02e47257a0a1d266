"""Installers (cas-mirror's fetch_installers / dir_names) cross the air gap like packages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from airgap.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_installers_round_trip(tmp_path: Path, http_server: Callable[[Path], str]) -> None:
    remote = tmp_path / "remote"
    (remote / "archive").mkdir(parents=True)
    linux = remote / "archive" / "Miniforge3-24.1.0-0-Linux-x86_64.sh"
    linux.write_bytes(b"#!/bin/sh\necho installer\n" + bytes(range(256)) * 64)
    (remote / "archive" / "Miniforge3-24.1.0-0-Windows-x86_64.exe").write_bytes(b"MZ" * 100)
    (remote / "archive" / "README.txt").write_text("not an installer")
    extra = tmp_path / "tool-1.0.pkg"
    extra.write_bytes(b"pkg" * 50)
    base = http_server(remote)
    cfg = tmp_path / "c.yaml"
    conf = {
        "channels": [str(SAMPLES / "channel")],
        "platforms": ["linux-64"],
        "mirror_dir": str(tmp_path / "cache"),
        "remote_url": base + "/",
        "fetch_installers": True,
        "dir_names": ["archive"],
        "installer_patterns": ["Miniforge3-*-Linux-x86_64.sh"],
        "installers": [{"url": str(extra), "sha256": hashlib.sha256(extra.read_bytes()).hexdigest(), "dir": "extra"}],
    }
    cfg.write_text(json.dumps(conf))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    r = cli("inspect", tmp_path / "m.tar", "--json")
    names = sorted((i["dir"], i["filename"]) for i in json.loads(r.stdout)["installers"])
    assert names == [("archive", linux.name), ("extra", "tool-1.0.pkg")]
    dest = tmp_path / "dest"
    r = cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert (dest / "archive" / linux.name).read_bytes() == linux.read_bytes()
    assert (dest / "extra" / "tool-1.0.pkg").read_bytes() == extra.read_bytes()
    assert not (dest / "archive" / "README.txt").exists()
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert receipt["installers"]["archive"][linux.name]["sha256"] == hashlib.sha256(linux.read_bytes()).hexdigest()
    r = cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0 and "nothing to do" in r.output
    (dest / "archive" / linux.name).unlink()  # lost on the isolated side: a re-import restores it
    r = cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0 and (dest / "archive" / linux.name).exists()


def test_installer_mistakes_are_refused(tmp_path: Path) -> None:
    extra = tmp_path / "tool.sh"
    extra.write_bytes(b"x")
    cfg = tmp_path / "c.yaml"
    base = {"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}
    cfg.write_text(json.dumps({**base, "fetch_installers": True, "dir_names": ["archive"]}))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 2 and "expected installer_patterns" in r.output
    cfg.write_text(json.dumps({**base, "installers": [{"url": str(extra), "sha256": "0" * 64}]}))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 1 and "expected sha256 " + "0" * 64 in r.output and not (tmp_path / "m.tar").exists()
    cfg.write_text(json.dumps({**base, "installers": [{"url": str(extra), "md5": "x"}]}))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 2 and "unknown key 'md5'" in r.output
