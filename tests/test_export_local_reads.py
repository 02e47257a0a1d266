"""A file:// upstream's files: read once by an export, in batches by sync.

An export does not read them before the archive: the archive writer reads each once, where it
lies, and refuses one that is not what its record says, whatever changed; the export then names
every bad file and leaves no archive. Sync (no archive) reads each small file at collect, in jobs of
many files (no thread-pool future per file: for 300,000 files of 60 bytes the hand-off cost ten
times the read); a large file is a job of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

import airgap.archive.writer
import airgap.ops.collect
import airgap.ops.export
import airgap.ops.local_files
from airgap.ops.local_files import SMALL
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
    submitted: list[list[str]] = []  # the file names of each job

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        _CountingPool.submitted.append([w.filename for w in args[2]])  # fetch_batch(cache, fetcher, wants, on_bytes)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    _CountingPool.submitted = []
    monkeypatch.setattr(airgap.ops.collect, "ThreadPoolExecutor", _CountingPool)
    return _CountingPool.submitted


def test_small_file_upstream_files_go_to_the_pool_in_batches(
    tmp_path: Path, pool: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(airgap.ops.local_files, "BATCH", 5)
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(6)])
    r = cli("sync", "-f", cfg, "--into", tmp_path / "dest")
    assert r.exit_code == 0, r.output
    assert sorted(len(job) for job in pool) == [2, 5, 5]  # 12 files (.conda and .tar.bz2), not 12 jobs
    assert sorted(fn for job in pool for fn in job) == sorted(shas)
    for fn in shas:
        assert (tmp_path / "dest" / "main" / "linux-64" / fn).read_bytes() == (up / "linux-64" / fn).read_bytes()


def test_a_large_file_upstream_file_is_a_job_of_its_own(tmp_path: Path, pool: list[list[str]]) -> None:
    big = PackageSpec("big", "1.0", subdir="linux-64", padding=SMALL + 1)
    up, cfg, shas = _channel(tmp_path, [big, PackageSpec("small", "1.0", subdir="linux-64")])
    large = [fn for fn in shas if (up / "linux-64" / fn).stat().st_size > SMALL]
    assert large and len(large) < len(shas)
    r = cli("sync", "-f", cfg, "--into", tmp_path / "dest")
    assert r.exit_code == 0, r.output
    assert sorted(sorted(job) for job in pool) == sorted([[fn] for fn in large] + [sorted(set(shas) - set(large))])


def test_an_export_reads_each_file_once(tmp_path: Path, pool: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    big = PackageSpec("big", "1.0", subdir="linux-64", padding=SMALL + 1)
    quoted = PackageSpec("q", "2.0+cpu", subdir="linux-64")  # a name its URL quotes
    up, cfg, shas = _channel(tmp_path, [big, quoted, *(PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3))])
    assert any("+" in fn for fn in shas)
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    monkeypatch.undo()
    assert r.exit_code == 0, r.output
    assert pool == []  # nothing read before the archive
    assert sorted(p for p in opened if p.startswith(str(up / "linux-64")) and not p.endswith(".json")) == sorted(
        str(up / "linux-64" / fn) for fn in shas
    )
    r = cli("import", tmp_path / "m.tar", "--into", tmp_path / "dest", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    for fn in shas:
        assert (tmp_path / "dest" / "main" / "linux-64" / fn).read_bytes() == (up / "linux-64" / fn).read_bytes()


def test_an_export_names_every_bad_file(tmp_path: Path) -> None:
    big = PackageSpec("big", "1.0", subdir="linux-64", padding=SMALL + 1)
    up, cfg, shas = _channel(tmp_path, [big, *(PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3))])
    names = sorted(shas)
    large = next(fn for fn in names if (up / "linux-64" / fn).stat().st_size > SMALL)
    small = [fn for fn in names if fn != large]
    (up / "linux-64" / small[0]).unlink()
    for fn in (small[1], large):  # same size, other bytes
        data = bytearray((up / "linux-64" / fn).read_bytes())
        data[-1] ^= 1
        (up / "linux-64" / fn).write_bytes(bytes(data))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 1
    assert f"3 of {len(names)} downloads failed; no archive was written" in r.output
    assert f"{small[0]}: not found" in r.output
    for fn in (small[1], large):
        assert f"{fn}: expected sha256 {shas[fn]}" in r.output
    assert not list(tmp_path.glob("*.tar*")) and not list(tmp_path.glob(".m.tar*"))


@pytest.mark.parametrize("change", ["same size, other bytes", "one byte more", "one byte less"])
def test_a_file_changed_between_collect_and_archive_fails_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)])
    victim = up / "linux-64" / sorted(shas)[1]
    real = airgap.archive.writer.write_archive

    def change_then_write(*args: Any, **kwargs: Any) -> None:
        data = bytearray(victim.read_bytes())  # the plan is made: the manifest says what the file held
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


@pytest.mark.parametrize("ending", [False, True])
def test_what_the_export_made_is_frozen_out_of_collection_only_when_the_program_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: bool
) -> None:
    """Re-enabling the collector would walk all the export made at the next allocation: skipped (frozen) when the
    process ends with the command; in-process callers keep the collector as it was, nothing frozen for good."""
    import gc

    import airgap.leftovers

    _up, cfg, _shas = _channel(tmp_path, [PackageSpec("p", "1.0", subdir="linux-64")])
    monkeypatch.setattr(airgap.leftovers, "_enabled", ending)
    monkeypatch.setattr(airgap.leftovers, "_kept", [])  # what the command keeps: dropped with the test
    frozen: list[int] = []
    real_freeze = gc.freeze

    def counting_freeze() -> None:
        frozen.append(1)
        real_freeze()

    monkeypatch.setattr(gc, "freeze", counting_freeze)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    assert len(frozen) == (2 if ending else 1)  # the command's own freeze (airgap/cli/_gc.py), then the export's
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the command unfroze all when it returned


def test_an_archive_that_cannot_be_written_reads_no_file_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(2)])
    checked: list[object] = []
    monkeypatch.setattr(airgap.ops.export, "check_unread", lambda *a: checked.append(a))

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(airgap.ops.export, "write_archive", full_disk)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0 and "could not write the archive (the medium is full)" in r.output
    assert checked == []  # only a blob the writer refused sends the export back to the files


def test_take_unread_takes_whole_subdirs_at_once_and_mixed_ones_file_by_file(tmp_path: Path) -> None:
    """Every want of a subdir taken (the fast path) or some (the loop): the same places, sizes, rest and
    unread list; a taken file's path is found only when asked for, and such a file is never "hashed here"."""
    from airgap.ops.plan import Want
    from airgap.upstream.cache import BlobCache

    a, b, c, d = (f"{i:02x}" * 32 for i in range(1, 5))
    up = (tmp_path / "up").as_uri() + "/"
    wants = [
        Want("ch", "linux-64", "x-1-0.tar.bz2", up + "linux-64/", a, None, 10),
        Want("ch", "linux-64", "y-1-0.conda", up + "linux-64/", b, None, 20),
        Want("ch", "noarch", "z-1-0.tar.bz2", up + "noarch/", c, None, 30),
        Want("ch", "noarch", "m-1-0.tar.bz2", up + "noarch/", None, "ab" * 16, 40),  # md5 only: read, not taken
        Want("ch", "noarch", "h-1-0.tar.bz2", "https://example.invalid/noarch/", d, None, 50),  # not file://
    ]
    cache = BlobCache(tmp_path / "cache")
    actual: dict[tuple[str, str], dict[str, str]] = {}
    sizes: dict[str, int] = {}
    rest = airgap.ops.local_files.take_unread(cache, wants, actual, sizes)
    assert rest == wants[3:]
    assert actual == {("ch", "linux-64"): {"x-1-0.tar.bz2": a, "y-1-0.conda": b}, ("ch", "noarch"): {"z-1-0.tar.bz2": c}}
    assert sizes == {a: 10, b: 20, c: 30}
    assert cache.unread == [(w.base, w.filename, w.sha256, w.size) for w in wants[:3]]
    assert cache._external == {}  # no path found yet
    assert cache.hashed_here(a) == () and cache.hashed_here(d) == (d,)
    assert cache.file(c) == str(tmp_path / "up" / "noarch" / "z-1-0.tar.bz2") and list(cache._external) == [c]
    assert cache.file(d) == str(cache.sha_dir / d)  # not taken: the cache's own file


def test_the_blobs_an_export_writes_into_the_cache_are_not_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repodata and SBOM blobs were hashed as this export wrote them: the archive writer takes them as
    fresh. One found in the cache already (written by an earlier export) is not known good: hashed again."""
    up, cfg, shas = _channel(tmp_path, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)])
    fresh_seen: list[set[str]] = []
    real = airgap.archive.writer.write_archive

    def spy(*args: Any, **kwargs: Any) -> None:
        fresh_seen.append(set(kwargs["fresh"]))
        real(*args, **kwargs)

    monkeypatch.setattr(airgap.ops.export, "write_archive", spy)
    for name in ("one.tar", "two.tar"):
        r = cli("export", "-f", cfg, "--unsigned", tmp_path / name)
        assert r.exit_code == 0, r.output
        r = cli("verify", tmp_path / name, "--allow-unsigned")
        assert r.exit_code == 0, r.output
    heads = [_head_blobs(tmp_path / n) for n in ("one.tar", "two.tar")]
    assert heads[0] and heads[0] <= fresh_seen[0] and not set(shas.values()) & fresh_seen[0]  # packages: read where they lie
    sbom = {sha for sha in heads[1] if sha not in heads[0]}  # each export's SBOM is its own (its archive id)
    assert sbom and fresh_seen[1] == sbom  # the repodata blob was in the cache already: hashed again


def _head_blobs(archive: Path) -> set[str]:
    import tarfile

    from airgap.core.manifest import parse_manifest

    with tarfile.open(archive) as tf:
        member = tf.extractfile("manifest.json")
        assert member is not None
        manifest = parse_manifest(member.read())
    return {b.sha256 for b in manifest.blobs if b.kind != "package"}


def test_all_travel_makes_the_entries_and_blobs_the_file_by_file_pass_made() -> None:
    """Column by column: sizes from the records or else the cache's, a blob listed once, a blob already there kept."""
    from airgap.core.manifest import BlobEntry, PackageEntry

    names = ["a-1-0.tar.bz2", "b-1-0.conda", "c-1-0.tar.bz2", "d-1-0.conda"]
    found = {"a-1-0.tar.bz2": "1" * 64, "b-1-0.conda": "2" * 64, "c-1-0.tar.bz2": "3" * 64, "d-1-0.conda": "2" * 64}
    sizes = {"1" * 64: 10, "2" * 64: 20}
    asked: list[str] = []

    def size_of(sha: str) -> int:
        asked.append(sha)
        return 30

    before = BlobEntry("1" * 64, 10, "package", volume=None)
    blobs = {"1" * 64: before}
    got = airgap.ops.local_files.all_travel(names, found, sizes, size_of, blobs)
    assert got == [
        PackageEntry("a-1-0.tar.bz2", "1" * 64, 10),
        PackageEntry("b-1-0.conda", "2" * 64, 20),
        PackageEntry("c-1-0.tar.bz2", "3" * 64, 30),
        PackageEntry("d-1-0.conda", "2" * 64, 20),
    ]
    assert asked == ["3" * 64]  # only the file no record sized
    assert blobs == {"1" * 64: before, "2" * 64: BlobEntry("2" * 64, 20, "package"), "3" * 64: BlobEntry("3" * 64, 30, "package")}
    assert blobs["1" * 64] is before
    with pytest.raises(KeyError):  # a selected file collect never found is a bug, not a silent gap
        airgap.ops.local_files.all_travel(["e-1-0.conda"], found, sizes, size_of, {})
