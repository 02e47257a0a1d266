"""Crashes: SIGKILL a real ``airgap import`` process at many points; the destination stays consistent.

After each kill: every file each ``repodata.json`` lists is there with the listed sha256, and
``repodata.json.zst`` holds the same bytes (or, only while the killed run's publish journal is
still there, an index that is itself complete). Then an import of the same archive completes
and leaves no staging area, no temporary file and no file the repodata does not list.

Kill times are picked from a measured run (when the staging area and the publish journal
appear, when the process ends), so the test covers start-up, streaming and publishing on a
slow machine and on a fast one alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import NOT_PACKAGES, build_archive, cli, specs

KILLS = int(os.environ.get("AIRGAP_CRASH_KILLS", "20"))
TEMP_SUFFIXES = (".airgap-tmp", ".tmp")


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory: pytest.TempPathFactory, keyring: dict[str, Any]) -> dict[str, Any]:
    """A destination holding an older archive, and a 300-package archive that overlaps it."""
    d = tmp_path_factory.mktemp("crash")
    pub = keyring["good.pub"]
    old = build_archive(specs(60, padding=4096), archive_id="01d" * 10).write(d / "old.tar", keyring["good"])
    new = build_archive(specs(150, padding=16384), archive_id="2e2" * 10).write(d / "new.tar", keyring["good"])
    base = d / "base"
    r = cli("import", old, "--into", base, "--trusted-key", pub)
    assert r.exit_code == 0, r.output
    sub = base / "main" / "linux-64"
    (sub / "current_repodata.json").write_bytes(b'{"stale": true}')  # the import removes it (and a rollback restores it)
    for i in (70, 71):  # unlisted files where the new archive puts packages: replaced, and restored by a rollback
        (sub / f"hostile{i:03d}-1.0-h0_0.conda").write_bytes(b"stray")
    assert_consistent(base)
    return {"dir": d, "base": base, "archive": new, "pub": pub}


def import_command(archive: Path, dest: Path, pub: Path) -> list[str]:
    return [sys.executable, "-m", "airgap", "import", str(archive), "--into", str(dest), "--trusted-key", str(pub), "-q"]


def listed(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**(doc.get("packages") or {}), **(doc.get("packages.conda") or {})}


def check_index(subdir: Path, doc: dict[str, Any]) -> None:
    for filename, record in listed(doc).items():
        path = subdir / filename
        assert path.is_file(), f"{path} is listed but missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"], f"{path} does not match its record"


def in_flight(dest: Path) -> bool:
    """Is a killed run's publish journal still there (so .zst and .json may be one step apart)?"""
    return any((dest / ".airgap").glob("staging-*/journal.json"))


def assert_consistent(dest: Path, strict: bool = True) -> None:
    for repodata in sorted(dest.glob("*/*/repodata.json")):
        raw = repodata.read_bytes()
        check_index(repodata.parent, json.loads(raw))
        zst = repodata.with_name("repodata.json.zst")
        assert zst.is_file(), f"{zst} is missing"
        unpacked = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(zst.read_bytes())).read()
        if unpacked != raw:
            assert not strict and in_flight(dest), f"{zst} and {repodata} differ"
            check_index(repodata.parent, json.loads(unpacked))


def assert_tidy(dest: Path, archive_id: str) -> None:
    assert not list((dest / ".airgap").glob("staging-*")), "a staging area was left behind"
    leftovers = [p for p in dest.rglob(".*") if p.name.endswith(TEMP_SUFFIXES)]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    for repodata in dest.glob("*/*/repodata.json"):
        names = set(listed(json.loads(repodata.read_bytes())))
        present = {p.name for p in repodata.parent.iterdir()} - NOT_PACKAGES
        assert present == names, (
            f"{repodata.parent}: files not listed: {sorted(present - names)[:5]}, listed but missing: {sorted(names - present)[:5]}"
        )
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert archive_id in [a["archive_id"] for a in receipt["archives"]]


class Watch:
    """Polls a destination for the phases of an import: staging area, journal, both gone."""

    def __init__(self, dest: Path) -> None:
        self.state = dest / ".airgap"
        self.seen: set[str] = set()

    def poll(self) -> set[str]:
        stagings = list(self.state.glob("staging-*"))
        if stagings:
            self.seen.add("staging")
            if any((s / "journal.json").exists() for s in stagings):
                self.seen.add("journal")
        elif "staging" in self.seen:
            self.seen.add("published")
        return self.seen


def measure(setup: dict[str, Any]) -> dict[str, float]:
    """One unkilled run: when the staging area appears, when the journal appears, when both are gone, the end."""
    dest = setup["dir"] / "measure"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(setup["base"], dest, symlinks=True)
    marks: dict[str, float] = {}
    watch = Watch(dest)
    t0 = time.monotonic()
    proc = subprocess.Popen(import_command(setup["archive"], dest, setup["pub"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        for event in watch.poll():
            marks.setdefault(event, time.monotonic() - t0)
        time.sleep(0.0002)
    marks["end"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    marks.setdefault("staging", marks["end"] * 0.5)  # too quick to see: spread the kills anyway
    marks.setdefault("published", marks["end"])
    marks.setdefault("journal", (marks["staging"] + marks["published"]) / 2)
    return marks


def kill_plan(marks: dict[str, float], n: int) -> list[tuple[str, float]]:
    """``(event, delay after it)``: a fifth of the kills while streaming, a tenth after publishing,
    the rest while publishing (the delicate part). Timed from the events, not from the start, so
    a slow start-up on a loaded machine does not push them all past the end."""
    early, after = max(1, n // 5), max(1, n // 10)
    during = n - early - after
    spans = {
        "staging": marks["journal"] - marks["staging"],
        "journal": marks["published"] - marks["journal"],
        "published": marks["end"] - marks["published"],
    }
    return (
        [("staging", spans["staging"] * (i + 0.5) / early) for i in range(early)]
        + [("journal", spans["journal"] * (i + 0.5) / during) for i in range(during)]
        + [("published", spans["published"] * (i + 0.5) / after) for i in range(after)]
    )


def kill_after(proc: subprocess.Popen[bytes], dest: Path, event: str, delay: float) -> None:
    watch = Watch(dest)
    while proc.poll() is None and event not in watch.poll():
        time.sleep(0.0002)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def _kills(marks: dict[str, float], landed: dict[str, int]) -> Iterator[tuple[str, float]]:
    """The planned kills, then (on a machine slower than the measured run, so that too few landed
    while publishing) more kills right after the journal appears, each sooner than the last."""
    yield from kill_plan(marks, KILLS)
    span = marks["published"] - marks["journal"]
    for extra in range(KILLS):
        if landed["in publish"] >= KILLS // 4:
            return
        yield "journal", span * (extra % 4 + 0.5) / 4 / 2 ** (extra // 4)


def test_sigkill_at_any_point_leaves_a_consistent_destination(crash_setup: dict[str, Any]) -> None:
    marks = measure(crash_setup)
    landed = {"in publish": 0}
    for n, (event, delay) in enumerate(_kills(marks, landed)):
        dest = crash_setup["dir"] / f"kill{n}"
        shutil.copytree(crash_setup["base"], dest, symlinks=True)
        proc = subprocess.Popen(
            import_command(crash_setup["archive"], dest, crash_setup["pub"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kill_after(proc, dest, event, delay)
        landed["in publish"] += in_flight(dest)
        where = f"kill {n}, {delay * 1000:.1f} ms after {event} (measured: {marks})"
        try:
            assert_consistent(dest, strict=False)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        r = cli("import", crash_setup["archive"], "--into", dest, "--trusted-key", crash_setup["pub"])
        assert r.exit_code == 0, f"{where}: rerun failed: {r.output}"
        try:
            assert_consistent(dest)
            assert_tidy(dest, "2e2" * 10)
        except AssertionError as exc:
            raise AssertionError(f"{where}: after the rerun: {exc}") from None
        shutil.rmtree(dest)
    assert landed["in publish"] >= KILLS // 4, f"only {landed['in publish']} kills landed while publishing (measured: {marks})"


KILL_AFTER_FIRST_INDEX = """
import os, signal, sys
from airgap.destinations.engine import StoreChange
real = StoreChange.publish_index
def publish_index(self, *args):
    real(self, *args)
    os.kill(os.getpid(), signal.SIGKILL)  # packages placed, one subdir's new repodata published, the rest not
StoreChange.publish_index = publish_index
from airgap.cli import main
main(prog_name="airgap", args=sys.argv[1:])
"""


def test_next_import_rolls_back_a_killed_publish(crash_setup: dict[str, Any]) -> None:
    """A run killed after placing packages and publishing one new index is undone before anything else.

    The next import here is of a *different* (older, already applied) archive, so nothing of
    the killed run survives unless the rollback failed: its packages are gone, the old
    indexes, the stale current_repodata.json and the unlisted files are back.
    """
    dest = crash_setup["dir"] / "rollback"
    shutil.copytree(crash_setup["base"], dest, symlinks=True)
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file() and ".airgap" not in p.parts}
    command = import_command(crash_setup["archive"], dest, crash_setup["pub"])
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_INDEX, *command[3:]], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert_consistent(dest, strict=False)
    assert (dest / "main" / "linux-64" / "hostile149-1.0-h0_0.conda").exists()  # the killed run got that far
    r = cli("import", crash_setup["dir"] / "old.tar", "--into", dest, "--trusted-key", crash_setup["pub"])
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file() and ".airgap" not in p.parts}
    assert sorted(map(str, after)) == sorted(map(str, before))
    assert after == before
    assert not list((dest / ".airgap").glob("staging-*"))


def test_leftovers_of_killed_runs_are_removed_under_the_lock(crash_setup: dict[str, Any], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    shutil.copytree(crash_setup["base"], dest, symlinks=True)
    sub = dest / "main" / "linux-64"
    leftovers = [
        sub / ".repodata.json.k2j4h5g6.tmp",
        sub / ".hostile001-1.0-h0_0.conda.airgap-tmp",
        dest / ".airgap" / ".receipt.json.abcdefgh.tmp",
    ]
    kept = [sub / ".notes.tmp", sub / "README.tmp", dest / ".airgap" / "notes"]
    for p in leftovers + kept:
        p.write_bytes(b"partial")
    dead = dest / ".airgap" / "staging-0123456789ab-999999"  # killed while streaming: no journal yet
    (dead / "backup").mkdir(parents=True)
    (dead / ("ab" * 32)).write_bytes(b"half a blob")
    r = cli("import", crash_setup["dir"] / "old.tar", "--into", dest, "--trusted-key", crash_setup["pub"])
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    assert not any(p.exists() for p in leftovers) and not dead.exists()
    assert all(p.exists() for p in kept)


@pytest.mark.parametrize("entry", [["../outside", None], ["/etc/passwd", None], ["main/linux-64/x.conda", "../../x"]])
def test_a_journal_pointing_outside_the_destination_is_refused(entry: list[Any], crash_setup: dict[str, Any], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    shutil.copytree(crash_setup["base"], dest, symlinks=True)
    (tmp_path / "outside").write_bytes(b"not airgap's")
    staging = dest / ".airgap" / "staging-0123456789ab-999999"
    (staging / "backup").mkdir(parents=True)
    (staging / "journal.json").write_text(json.dumps({"format": "airgap-journal/1", "entries": [entry], "dirs": []}))
    r = cli("import", crash_setup["dir"] / "old.tar", "--into", dest, "--trusted-key", crash_setup["pub"])
    assert r.exit_code == 1 and "journal.json: expected" in r.output and "then remove" in r.output, r.output
    assert (tmp_path / "outside").read_bytes() == b"not airgap's" and staging.exists()


@pytest.mark.parametrize("case", ["rebuilt under old names", "receipt lost"])
def test_every_step_of_a_publish_leaves_a_consistent_destination(
    case: str, crash_setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked after each file placed and each index published.

    "rebuilt under old names": the new archive brings 61 packages under names the destination
    lists with other bytes; they wait for an interim index that does not list them. "receipt
    lost": every file is placed again, with the same bytes: no interim index, nothing hidden.
    """
    from airgap.destinations.engine import StoreChange
    from airgap.destinations.localstore import LocalStore

    dest = tmp_path / "dest"
    shutil.copytree(crash_setup["base"], dest, symlinks=True)
    if case == "receipt lost":
        assert cli("import", crash_setup["archive"], "--into", dest, "--trusted-key", crash_setup["pub"]).exit_code == 0
        (dest / ".airgap" / "receipt.json").unlink()
    calls = {"put_blob": 0, "take": 0, "publish_index": 0}
    for name in calls:
        owner: Any = StoreChange if name == "publish_index" else LocalStore  # a package file is placed by one of the store's two
        real = getattr(owner, name)

        def checked(self: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> None:
            _real(self, *args, **kwargs)
            if _name != "publish_index" and args[0].rpartition("/")[2] in ("repodata.json", "repodata.json.zst", "receipt.json"):
                return  # written as files too (decision 0017): inside publish_index, or the receipt; not a package step
            calls[_name] += 1
            assert_consistent(dest)

        monkeypatch.setattr(owner, name, checked)
    r = cli("import", crash_setup["archive"], "--into", dest, "--trusted-key", crash_setup["pub"])
    assert r.exit_code == 0, r.output
    assert calls["put_blob"] + calls["take"] == 2 * 151  # every file of the archive
    assert calls["publish_index"] == (4 if case == "rebuilt under old names" else 2)  # linux-64 and noarch (interim, final)
    assert_tidy(dest, "2e2" * 10)


def test_sigkill_during_clean_leaves_a_consistent_destination(crash_setup: dict[str, Any], tmp_path: Path) -> None:
    """clean republishes repodata before it deletes files: a kill anywhere leaves every listed file there."""
    full = crash_setup["dir"] / "clean-base"
    if not full.exists():
        shutil.copytree(crash_setup["base"], full, symlinks=True)
        r = cli("import", crash_setup["archive"], "--into", full, "--trusted-key", crash_setup["pub"])
        assert r.exit_code == 0, r.output
    cfg = tmp_path / "clean.yaml"
    cfg.write_text(json.dumps({"platforms": ["linux-64"], "pkg_list": [f"hostile{i:03d}" for i in range(10)]}))
    command = [sys.executable, "-m", "airgap", "clean", "-q", "-f", str(cfg), "--into"]
    dest = tmp_path / "measure"
    shutil.copytree(full, dest, symlinks=True)
    t0 = time.monotonic()
    subprocess.run([*command, str(dest)], check=True, capture_output=True)
    total = time.monotonic() - t0
    kills = max(4, KILLS // 3)
    for n in range(kills):
        dest = tmp_path / f"kill{n}"
        shutil.copytree(full, dest, symlinks=True)
        proc = subprocess.Popen([*command, str(dest)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(total * (0.3 + 0.7 * (n + 0.5) / kills))  # start-up is most of it: spread over the rest
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_consistent(dest, strict=False)
        r = cli("clean", "-f", cfg, "--into", dest)
        assert r.exit_code == 0, r.output
        assert_consistent(dest)
        assert not list((dest / ".airgap").glob("staging-*"))
        rd = json.loads((dest / "main" / "linux-64" / "repodata.json").read_bytes())
        assert {r["name"] for r in listed(rd).values()} == {f"hostile{i:03d}" for i in range(10)}
        files = {p.name for p in (dest / "main" / "linux-64").iterdir()} - NOT_PACKAGES
        assert files == set(listed(rd))  # a kill after the index changed left files; the rerun removed them
        shutil.rmtree(dest)
