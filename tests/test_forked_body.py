"""An export's package members written by a child process while the SBOM is rendered (airgap.archive.forked).

The archive must be byte for byte what one process writes; every failure of the child must fail
the export with one line, leave no archive and no temporary file, and leave no process behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.archive import forked, frames
from airgap.config import load_config
from airgap.ops import export_body as body
from airgap.ops import review
from airgap.ops.export import run_export
from airgap.ops.options import ExportOptions
from airgap.progress import Bar, null_progress
from airgap.signing import Signer, load_signer
from airgap.testing.condapkg import PackageSpec, write_channel

pytestmark = pytest.mark.skipif(
    not forked.AVAILABLE, reason="POSIX only (a descriptor passed to the child); elsewhere one process writes the archive"
)


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    up = tmp_path / "up" / "main"
    specs = [
        PackageSpec(f"p{i}", f"1.{i % 3}", subdir="linux-64" if i % 4 else "noarch", depends=(f"p{i - 1}",) if i else ()) for i in range(12)
    ]
    write_channel(up, specs, subdirs=("linux-64", "noarch"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    return cfg


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[forked.BodyChild]]:
    """Every export forks (no minimum of files); the children made are listed."""
    made: list[forked.BodyChild] = []
    real = forked.BodyChild

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(forked, "MIN_FILES", 1)
    monkeypatch.setattr(forked, "BodyChild", Spy)
    yield made


class _Counting:
    def __init__(self) -> None:
        self.bytes = self.files = self.calls = 0
        self.total: int | None = None
        self.files_total: int | None = None

    def __call__(self, desc: str, total: int | None, unit: str = "B", files: int | None = None) -> Bar:
        if desc != "archive":
            return null_progress(desc, total, unit, files)
        self.total, self.files_total = total, files
        return self

    def update(self, n: int) -> None:
        self.bytes += n

    def file_done(self) -> None:
        self.files += 1
        self.calls += 1

    def files_done(self, n: int) -> None:
        self.files += n
        self.calls += 1

    def close(self) -> None:
        pass


def _export(cfg: Path, out: Path, monkeypatch: pytest.MonkeyPatch, signer: Signer | None = None, progress: Any = None) -> None:
    ids = iter([uuid.UUID(int=7)])
    monkeypatch.setattr("airgap.ops.collect.uuid.uuid4", lambda: next(ids))
    monkeypatch.setattr("airgap.upstream.channels.timestamp", lambda: "2023-11-14T22:13:20Z")  # the SBOM names it
    kwargs = {"progress": progress} if progress is not None else {}
    run_export(load_config(cfg), ExportOptions(out, signer), clock=lambda: 1_700_000_000.0, **kwargs)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def test_the_archive_is_the_one_a_single_process_writes(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    key = tmp_path / "key"
    assert cli("keygen", key).exit_code == 0
    signer = load_signer(key)
    counted = _Counting()
    _export(channel, tmp_path / "forked.tar", monkeypatch, signer, counted)
    assert len(children) == 1
    assert counted.bytes == counted.total and counted.files == counted.files_total  # the child's progress arrived
    assert counted.calls < counted.files  # in counts, not a call per file (they took the GIL from the export's own work)
    monkeypatch.setattr(forked, "AVAILABLE", False)
    _export(channel, tmp_path / "single.tar", monkeypatch, signer)
    assert len(children) == 1  # the second export wrote in one process
    forked_bytes, single = (tmp_path / "forked.tar").read_bytes(), (tmp_path / "single.tar").read_bytes()
    assert hashlib.sha256(forked_bytes).hexdigest() == hashlib.sha256(single).hexdigest()
    assert _leftovers(tmp_path) == []
    r = cli("verify", tmp_path / "forked.tar", "--trusted-key", f"{key}.pub")
    assert r.exit_code == 0, r.output


def test_without_a_kernel_copy_the_body_is_read_and_written(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    _export(channel, tmp_path / "copied.tar", monkeypatch)

    def no_copy(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", no_copy)  # the writer calls os.copy_file_range
    _export(channel, tmp_path / "read.tar", monkeypatch)
    assert len(children) == 2
    assert (tmp_path / "copied.tar").read_bytes() == (tmp_path / "read.tar").read_bytes()


def test_a_file_changed_under_its_record_fails_in_the_child(channel: Path, tmp_path: Path, children: list[forked.BodyChild]) -> None:
    victim = sorted((tmp_path / "up" / "main" / "linux-64").glob("p*"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1  # same size, other bytes
    victim.write_bytes(bytes(data))
    r = cli("export", "-f", channel, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0 and len(children) == 1
    assert "expected sha256" in r.output and str(victim) in r.output
    assert not (tmp_path / "m.tar").exists() and _leftovers(tmp_path) == []


def test_a_child_killed_fails_the_export(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    monkeypatch.setenv("AIRGAP_FAULT", "kill@1")  # the child's first fault point: before it writes (airgap/faults.py)
    r = cli("export", "-f", channel, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0 and len(children) == 1
    assert "ended by signal 9; no archive was written" in r.output
    assert not (tmp_path / "m.tar").exists() and _leftovers(tmp_path) == []


def test_a_failed_write_in_the_child_is_named(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    monkeypatch.setenv("AIRGAP_FAULT", "fail@1")  # an OSError, as from a full medium
    r = cli("export", "-f", channel, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0 and len(children) == 1
    assert f"{tmp_path / 'm.tar'}: could not write the archive (injected fault at store call 1 (archive body))" in r.output
    assert not (tmp_path / "m.tar").exists() and _leftovers(tmp_path) == []


def test_an_interrupt_while_the_sbom_renders_stops_the_child(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(review, "attach_sbom", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _export(channel, tmp_path / "m.tar", monkeypatch)
    assert len(children) == 1
    child = children[0]
    assert child._child is not None and child._child._proc is None and child._fd == -1  # waited for, its file let go
    assert not (tmp_path / "m.tar").exists() and _leftovers(tmp_path) == []


def test_only_many_small_files_are_worth_a_child() -> None:
    n = forked.MIN_FILES
    assert forked.worth_it(n, 900 * n) == forked.AVAILABLE
    assert not forked.worth_it(n - 1, 900 * (n - 1))  # too few: the SBOM is quick
    assert not forked.worth_it(n, forked.MAX_AVERAGE * n)  # large on average: the copy costs more
    assert not forked.worth_it(forked.MAX_BODY // 1024, 900 * (forked.MAX_BODY // 1024))  # the body would leave the page cache


def _single(channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(forked, "AVAILABLE", False)
        _export(channel, tmp_path / "single.tar", monkeypatch)
    return (tmp_path / "single.tar").read_bytes()


def test_a_file_already_in_the_cache_leaves_the_child_to_after_collect(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    single = _single(channel, tmp_path, monkeypatch)
    assert children == []
    one = sorted((tmp_path / "up" / "main" / "linux-64").glob("p*"))[0]
    sha = hashlib.sha256(one.read_bytes()).hexdigest()
    (tmp_path / "cache" / "blobs" / "sha256" / sha).write_bytes(one.read_bytes())  # collect takes this one from the cache
    started: list[int] = []
    real = body.start_late

    def late(*args: Any, **kwargs: Any) -> body.Child | None:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(body, "start_late", late)
    _export(channel, tmp_path / "late.tar", monkeypatch)
    assert started == [1] and len(children) == 1  # no early child: the one after collect
    assert (tmp_path / "late.tar").read_bytes() == single


@pytest.mark.parametrize("how", ["one fewer", "one size", "one sha256"])
def test_an_early_child_that_writes_other_blobs_is_stopped(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild], how: str
) -> None:
    single = _single(channel, tmp_path, monkeypatch)
    real = body.start_early

    def off(*args: Any, **kwargs: Any) -> body.Child | None:
        child = real(*args, **kwargs)
        assert child is not None
        assert child.planned is not None
        # as if the plan had said other files than collect found (the child writes its own copy)
        shas, sizes = child.planned
        if how == "one fewer":
            del shas[-1], sizes[-1]
        elif how == "one size":
            sizes[-1] += 1
        else:
            shas[-1] = "f" * 64
        return child

    monkeypatch.setattr(body, "start_early", off)
    _export(channel, tmp_path / "m.tar", monkeypatch)
    assert (
        len(children) == 2 and children[0]._child is not None and children[0]._child._proc is None and children[0]._fd == -1
    )  # stopped, then one after collect
    assert (tmp_path / "m.tar").read_bytes() == single and _leftovers(tmp_path) == []


def test_the_list_reaches_the_child_a_few_entries_at_a_time(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[forked.BodyChild]
) -> None:
    single = _single(channel, tmp_path, monkeypatch)
    monkeypatch.setattr(frames, "FRAME", 2)  # the package members, two in each frame
    _export(channel, tmp_path / "framed.tar", monkeypatch)
    packages = [p for p in (tmp_path / "up" / "main").glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))]
    assert len(children) == 1 and children[0].count == len(packages) > 2 * 2
    assert (tmp_path / "framed.tar").read_bytes() == single and _leftovers(tmp_path) == []


def test_while_a_member_is_written_fresh_says_whether_it_was_hashed_already() -> None:
    listed: list[forked.Sent] = [(f"{i:064x}", i, f"/p/{i}", i % 3 == 0) for i in range(7)]
    sent = [e for frame in frames.chunked(listed) for e in frame]
    fresh: set[str] = set()
    seen = []
    for sha, size, path in forked._where((sent[i : i + 2] for i in range(0, 7, 2)), [], fresh):
        seen.append((sha, size, path, sha in fresh))
        assert len(fresh) <= 2  # a frame's, not every one met so far
    assert seen == listed


def test_a_folder_url_is_sent_once_and_each_entry_names_it_by_number(tmp_path: Path) -> None:
    base = (tmp_path / "linux-64").as_uri() + "/"
    other = (tmp_path / "noarch").as_uri() + "/"
    kept = [(1, base, "x.conda"), (2, other, "y.conda"), (3, base, "z.conda")]  # as start_early has them, in the child's order
    folders = body.numbered(kept)
    sent = [e for frame in body._early_frames(["a" * 64, "b" * 64, "c" * 64], kept, folders) for e in frame]
    assert list(folders) == [base, other] and [at for _, _, at, _ in sent] == [(0, "x.conda"), (1, "y.conda"), (0, "z.conda")]
    paths = [path for _, _, path in forked._where([sent], list(folders), set())]
    assert paths == [str(tmp_path / "linux-64" / "x.conda"), str(tmp_path / "noarch" / "y.conda"), str(tmp_path / "linux-64" / "z.conda")]
