"""The bundled sample: up to date with its generator, and the README's main job works on it."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

ROOT = Path(__file__).resolve().parents[1]


def _content(path: Path) -> Any:
    """What a file says, independent of the zstd library's exact output (it may change between versions)."""
    if path.name.endswith(".conda"):
        with zipfile.ZipFile(path) as zf:
            return {
                n: (zstandard.ZstdDecompressor().stream_reader(io.BytesIO(zf.read(n))).read() if n.endswith(".zst") else zf.read(n))
                for n in zf.namelist()
            }
    if path.name == "repodata.json.zst":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()
    if path.name == "repodata.json":
        doc = json.loads(path.read_bytes())
        for rec in doc["packages.conda"].values():
            for key in ("md5", "sha256", "size"):
                rec.pop(key)
        return doc
    return path.read_bytes()


def tree_contents(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): _content(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_channel_is_what_make_samples_writes(tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    copy.mkdir()
    shutil.copy(ROOT / "samples" / "make_samples.py", copy)
    subprocess.run(
        [sys.executable, str(copy / "make_samples.py")], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    fresh, committed = tree_contents(copy / "channel"), tree_contents(ROOT / "samples" / "channel")
    assert fresh.keys() == committed.keys()
    for name in fresh:
        if name.endswith("repodata.json.zst"):  # its JSON lists .conda hashes, which follow the zstd version
            continue
        assert fresh[name] == committed[name], name


def test_demo_then_a_conda_client_runs_the_package(
    tmp_path: Path, http_server: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airgap.testing.rattler_client import install

    work = tmp_path / "repo"
    shutil.copytree(ROOT / "samples", work / "samples", ignore=shutil.ignore_patterns("__pycache__"))
    wrapper = tmp_path / "airgap"  # the installed package, whichever venv runs the tests
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m airgap "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "AIRGAP": str(wrapper)}
    r = subprocess.run(["bash", str(work / "samples" / "demo.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to do" in r.stdout  # the second import is a no-op
    channel = work / "out" / "conda" / "anaconda"
    assert (channel / "noarch" / "repodata.json").exists()
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    url = http_server(work / "out" / "conda") + "/anaconda"
    names = install([url], ["airgap-hello"], tmp_path / "env", tmp_path / "cache")
    assert names == ["airgap-demo-data", "airgap-hello"]
    out = subprocess.run([str(tmp_path / "env" / "bin" / "airgap-hello")], capture_output=True, text=True, check=True)
    assert out.stdout == "Hello again from across the air gap.\n"
