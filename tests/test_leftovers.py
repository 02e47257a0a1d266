"""The airgap program ends without freeing what a command kept (airgap/leftovers.py), and says everything first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airgap import leftovers
from airgap.testing.condapkg import PackageSpec, write_channel


def _program(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
    return subprocess.run([sys.executable, "-m", "airgap", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_in_process_nothing_is_kept() -> None:
    leftovers.keep(object(), [1, 2, 3])
    assert leftovers._kept == []  # tests and library callers free as usual


def test_the_program_flushes_what_it_printed_before_it_ends(tmp_path: Path) -> None:
    up = tmp_path / "up" / "main"
    repodata = write_channel(up, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)], subdirs=("linux-64",))
    files = sum(len(sub[section]) for sub in repodata.values() for section in ("packages", "packages.conda"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    r = _program("export", "-f", cfg, "--unsigned", "--json", tmp_path / "m.tar", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is a pipe (block-buffered): all of it arrived before the process ended
    assert doc["packages"] == files > 0 and Path(doc["archive"]).stat().st_size == doc["archive_bytes"]
    v = _program("verify", tmp_path / "m.tar", "--allow-unsigned", cwd=tmp_path)
    assert v.returncode == 0, v.stderr


def test_the_program_exit_codes_are_the_commands(tmp_path: Path) -> None:
    r = _program("verify", tmp_path / "missing.tar", "--allow-unsigned", cwd=tmp_path)
    assert r.returncode != 0 and "missing.tar" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _program("--version", cwd=tmp_path).returncode == 0
