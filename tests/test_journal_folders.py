"""A new subdir made whole is one journal entry (decision 0022): its rollback removes the folder, nothing else.

At 300,000 files a first import's journal held a name per file (10 MB) and saved them all (15 MB of
JSON) to undo what one rename placed. The folder is now journaled once, as absent when the change
began: its files need no entry, a rollback (now, or by the next run after a kill) removes everything
under it once renamed into place (nothing while still staged), and a hostile ``new`` list is refused first.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from airgap.destinations.journal import AREA_PREFIX, JOURNAL_FOLDERS, JOURNAL_NEW, STAGED_DIR, Journal, recover
from airgap.destinations.localstore import LocalStore
from airgap.destinations.memory import MemoryStore
from airgap.errors import DestinationError


def _store() -> MemoryStore:
    store = MemoryStore(f"journal-folders-{uuid.uuid4().hex[:8]}")
    store.put("main/noarch/kept-1-0.conda", b"old")
    return store


def test_a_new_folder_is_one_entry_and_its_rollback_removes_everything_under_it() -> None:
    store = _store()
    journal = Journal(store, f"{AREA_PREFIX}j-1/")
    journal.prepare_folder("main/linux-64")
    journal.prepare("main/noarch/kept-1-0.conda", True)
    journal.prepare("main/linux-64/shards/ab.msgpack.zst", False)  # deeper: an entry of its own
    journal.prepare_all([("main/linux-64", "a-1-0.conda", False), ("main/linux-64", "repodata.json", False)])
    journal.save()
    assert "main/linux-64/a-1-0.conda" in journal and journal.backup_of("main/linux-64/a-1-0.conda") is None
    assert "main/linux-64" not in journal.folders  # no entry per file of the new folder
    saved = json.loads(store.get(journal.key) or b"{}")
    assert saved["format"] == JOURNAL_NEW and saved["new"] == ["main/linux-64"]
    for name in ("a-1-0.conda", "b-1-0.tar.bz2", "repodata.json", "shards/ab.msgpack.zst"):  # the change's writes
        store.put(f"main/linux-64/{name}", b"new")
    store.put("main/noarch/kept-1-0.conda", b"replaced")
    store.put("main/linux-640/other-1-0.conda", b"not under it")  # a name that only starts alike
    assert recover(store) == ["rolled back the interrupted change of staging-j-1", "removed staging-j-1"]
    assert {k: store.get(k) for k, _ in store.list_prefix("")} == {
        "main/noarch/kept-1-0.conda": b"old",
        "main/linux-640/other-1-0.conda": b"not under it",
    }


def test_a_folder_still_staged_is_left_alone_and_a_journal_without_new_folders_is_format_2() -> None:
    """Until the rename, whatever is at the folder's key is not this change's (another writer's, after a kill)."""
    store = _store()
    journal = Journal(store, f"{AREA_PREFIX}j-2/")
    journal.save()
    assert json.loads(store.get(journal.key) or b"{}") == {"format": JOURNAL_FOLDERS, "folders": {}}
    journal.prepare_folder("main/linux-64")
    store.put(f"{AREA_PREFIX}j-2/{STAGED_DIR}/main/linux-64/a-1-0.conda", b"staged")  # never renamed into place
    store.put("main/linux-64/theirs-1-0.conda", b"theirs")
    assert recover(store) == ["rolled back the interrupted change of staging-j-2", "removed staging-j-2"]
    assert {k: store.get(k) for k, _ in store.list_prefix("")} == {
        "main/noarch/kept-1-0.conda": b"old",
        "main/linux-64/theirs-1-0.conda": b"theirs",
    }


@pytest.mark.parametrize("new", [[""], [".airgap"], [".airgap/staging-x/"], ["../x"], [3], "main/linux-64", None])
def test_a_hostile_list_of_new_folders_is_refused_before_anything_is_undone(new: object) -> None:
    store = _store()
    area = f"{AREA_PREFIX}j-3/"
    store.put(area + "journal.json", json.dumps({"format": JOURNAL_NEW, "folders": {}, "new": new}).encode())
    with pytest.raises(DestinationError, match="expected an airgap journal, found a malformed one"):
        recover(store)
    assert store.get("main/noarch/kept-1-0.conda") == b"old"


@pytest.mark.parametrize("folder", ["", ".airgap", ".airgap/names"])
def test_only_a_folder_outside_airgaps_state_can_be_made_whole(folder: str) -> None:
    with pytest.raises(DestinationError, match="expected a new folder outside .airgap"):
        Journal(_store(), f"{AREA_PREFIX}j-4/").prepare_folder(folder)


def test_an_empty_staged_folder_is_still_staged_in_a_directory(tmp_path: Path) -> None:
    """Decision 0023: with a second process staging the packages, the journal may name a folder before its first file
    is written; a directory store answers for the folder itself, so what is at its key after a kill stays."""
    (tmp_path / "d" / ".airgap").mkdir(parents=True)
    store = LocalStore(tmp_path / "d")
    area = f"{AREA_PREFIX}j-5/"
    staged = store.stage_folder(store.staging_dir(area), "main/linux-64")
    assert staged is not None and staged.is_dir() and not any(staged.iterdir())  # made, nothing in it yet
    journal = Journal(store, area)
    journal.prepare_folder("main/linux-64")
    journal.save()
    store.put("main/linux-64/theirs-1-0.conda", b"theirs")  # copied there by hand after the kill
    assert recover(store) == ["rolled back the interrupted change of staging-j-5", "removed staging-j-5"]
    assert {k: store.get(k) for k, _ in store.list_prefix("") if not k.startswith(".airgap/")} == {
        "main/linux-64/theirs-1-0.conda": b"theirs"
    }
