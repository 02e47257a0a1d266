"""A change asks whether a key existed only for keys its plan did not journal already (a full import: 300,000 placed files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airgap.destinations import open_destination
from airgap.destinations.base import BlobRef, Put
from airgap.destinations.engine import StoreChange


def _puts(change: StoreChange, names: list[str]) -> list[Put]:
    assert change.staging is not None
    puts = []
    for name in names:
        data = name.encode()
        sha = hashlib.sha256(data).hexdigest()
        (change.staging / sha).write_bytes(data)
        puts.append(Put("main", "linux-64", name, BlobRef(change.staging / sha, 0, len(data), sha)))
    return puts


def test_planned_files_are_placed_without_asking_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = open_destination(str(tmp_path / "dest"))
    (tmp_path / "dest" / "main" / "linux-64").mkdir(parents=True)
    (tmp_path / "dest" / "main" / "linux-64" / "b-1.0-0.conda").write_bytes(b"old")  # replaced: its backup is journaled
    with dest.locked(10):
        change = dest.begin("test")
        assert isinstance(change, StoreChange)
        puts = _puts(change, ["a-1.0-0.conda", "b-1.0-0.conda"])
        change.plan([(p.channel, p.subdir, p.filename) for p in puts], [])
        asked: list[str] = []
        exists = change._exists

        def counted(key: str) -> bool:
            asked.append(key)
            return exists(key)

        monkeypatch.setattr(change, "_exists", counted)
        change.put_packages(puts)
        assert asked == []  # every key was journaled by the plan
        late = _puts(change, ["c-1.0-0.conda"])
        change.put_packages(late)  # not planned: journaled now, after one question
        assert asked == ["main/linux-64/c-1.0-0.conda"]
        assert change.journal.backup_of("main/linux-64/c-1.0-0.conda") is None  # it did not exist: nothing to keep
        assert change.journal.backup_of("main/linux-64/b-1.0-0.conda") is not None  # the replaced file's backup
        change.rollback()
    assert (tmp_path / "dest" / "main" / "linux-64" / "b-1.0-0.conda").read_bytes() == b"old"
    assert not (tmp_path / "dest" / "main" / "linux-64" / "a-1.0-0.conda").exists()
    assert not (tmp_path / "dest" / "main" / "linux-64" / "c-1.0-0.conda").exists()


def test_the_journal_keeps_the_plans_own_names_and_no_key_strings(tmp_path: Path) -> None:
    """A full import journals 300,000 keys of one folder: the journal holds each name as the caller gave it (the
    manifest's string) under its folder, not a new ``channel/subdir/name`` string per file (38 MB at 300,000)."""
    dest = open_destination(str(tmp_path / "dest"))
    (tmp_path / "dest" / "main" / "linux-64").mkdir(parents=True)
    (tmp_path / "dest" / "main" / "linux-64" / "b-1.0-0.conda").write_bytes(b"old")
    with dest.locked(10):
        change = dest.begin("test")
        assert isinstance(change, StoreChange)
        puts = _puts(change, ["".join(["a-1.0", "-0.conda"]), "".join(["b-1.0", "-0.conda"])])  # built: not interned
        change.plan([(p.channel, p.subdir, p.filename) for p in puts], [("main", "linux-64")])
        journaled = change.journal.folders["main/linux-64"]
        held = {name: name for name in journaled}
        assert [held[p.filename] is p.filename for p in puts] == [True, True]
        assert "main/linux-64/a-1.0-0.conda" not in change._known  # answered by the journal from now on
        assert change._exists("main/linux-64/b-1.0-0.conda") and not change._exists("main/linux-64/a-1.0-0.conda")
        change.put_packages(puts)
        assert change._exists("main/linux-64/b-1.0-0.conda") and not change._exists("main/linux-64/a-1.0-0.conda")  # as it began
        assert "repodata.json" in journaled and ".airgap" in change.journal.folders  # the index's keys and the receipt's
        change.rollback()
    assert (tmp_path / "dest" / "main" / "linux-64" / "b-1.0-0.conda").read_bytes() == b"old"
    assert not (tmp_path / "dest" / "main" / "linux-64" / "a-1.0-0.conda").exists()


def test_a_key_at_the_root_is_journaled_under_its_own_name(tmp_path: Path) -> None:
    """A key with no folder ("" as the folder): checked and journaled as itself, not as "/name"."""
    dest = open_destination(str(tmp_path / "dest"))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "top.txt").write_bytes(b"there")
    with dest.locked(10):
        change = dest.begin("test")
        assert isinstance(change, StoreChange)
        change._journal_all([("", "top.txt"), ("", "new.txt")])
        assert change.journal.folders[""].keys() == {"top.txt", "new.txt"}
        assert change._exists("top.txt") and not change._exists("new.txt")
        assert dict(change.journal.items())["top.txt"] is not None  # its backup
        change.rollback()
    assert (tmp_path / "dest" / "top.txt").read_bytes() == b"there"
