"""A file:// upstream's small files are checked on the export's own thread, and still checked twice.

Collect reads each small file once, inline (no thread-pool future per file: for 300,000 files of
60 bytes the hand-off cost ten times the read); large files still go to the pool. The archive
writer reads every file again and refuses one that changed in between, whatever changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

import airgap.archive.writer
import airgap.ops.collect
import airgap.ops.export
from airgap.ops.local_files import INLINE_MAX
from airgap.testing.condapkg import PackageSpec, write_channel


def _channel(tmp_path: Path, specs: list[PackageSpec]) -> tuple[Path, Path, dict[str, str]]:
    up = tmp_path / "up" / "main"
    repodata = write_channel(up, specs, subdirs=("linux-64",))
    shas = {
        fn: rec["sha256"] for sub in repodata.values() for section in ("packages", "packages.conda") for fn, rec in sub[section].items()
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    return up, cfg, shas


class _CountingPool(ThreadPoolExecutor):
    submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        _CountingPool.submitted.append(str(args[1]) if len(args) > 1 else "?")  # download(fetcher, url, ...)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    _CountingPool.submitted = []
    monkeypatch.setattr(airgap.ops.collect, "ThreadPoolExecutor", _CountingPool)
    return _CountingPool.submitted


def test_small_file_upstream_files_need_no_thread(tmp_path: Path, pool: list[str]) -> None:
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(6)])
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    assert pool == []  # every file was read and hashed inline
    r = cli("import", tmp_path / "m.tar", "--into", tmp_path / "dest", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    for fn in shas:
        assert (tmp_path / "dest" / "main" / "linux-64" / fn).read_bytes() == (up / "linux-64" / fn).read_bytes()


def test_a_large_file_upstream_file_goes_to_the_pool(tmp_path: Path, pool: list[str]) -> None:
    big = PackageSpec("big", "1.0", subdir="linux-64", padding=INLINE_MAX + 1)
    up, cfg, shas = _channel(tmp_path, [big, PackageSpec("small", "1.0", subdir="linux-64")])
    large = [fn for fn in shas if (up / "linux-64" / fn).stat().st_size > INLINE_MAX]
    assert large and len(large) < len(shas)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    assert sorted(u.rsplit("/", 1)[1] for u in pool) == sorted(large)


@pytest.mark.parametrize("change", ["same size, other bytes", "one byte more", "one byte less"])
def test_a_file_changed_between_collect_and_archive_fails_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)])
    victim = up / "linux-64" / sorted(shas)[1]
    real = airgap.archive.writer.write_archive

    def change_then_write(*args: Any, **kwargs: Any) -> None:
        data = bytearray(victim.read_bytes())  # collect has read and checked it by now
        if change == "same size, other bytes":
            data[-1] ^= 1
        elif change == "one byte more":
            data += b"\0"
        else:
            del data[-1]
        victim.write_bytes(bytes(data))
        real(*args, **kwargs)

    monkeypatch.setattr(airgap.ops.export, "write_archive", change_then_write)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0
    assert str(victim) in r.output
    assert not (tmp_path / "m.tar").exists() and not list(tmp_path.glob("m.tar*"))


def test_a_file_of_the_wrong_size_is_refused_before_it_is_read(tmp_path: Path) -> None:
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(2)])
    victim = up / "linux-64" / sorted(shas)[0]
    size = victim.stat().st_size
    victim.write_bytes(victim.read_bytes() + b"x")
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0
    assert f"expected {size} bytes (repodata), found {size + 1}" in r.output
    assert not (tmp_path / "m.tar").exists()


def test_no_cycle_collection_while_the_export_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections walked every record again and again (2.8 s of a 30,000-file export); back on afterwards."""
    import gc

    _up, cfg, _shas = _channel(tmp_path, [PackageSpec("p", "1.0", subdir="linux-64")])
    real = airgap.archive.writer.write_archive
    seen: list[bool] = []

    def record_then_write(*args: Any, **kwargs: Any) -> None:
        seen.append(gc.isenabled())
        real(*args, **kwargs)

    monkeypatch.setattr(airgap.ops.export, "write_archive", record_then_write)
    assert gc.isenabled()
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    assert seen == [False] and gc.isenabled()
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "missing-dir" / "m.tar")
    assert r.exit_code != 0 and gc.isenabled()  # also after a failed export
