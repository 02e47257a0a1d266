"""What a full import into a directory costs per file: counted, so that a regression fails.

Issue 15: a full import of many small files must approach ``tar xf && sync``. The kernel's
cost per file (a create, a rename) cannot go, but what airgap adds per file can: an fsync per
written shard or page (two, with the folder's), a journal save per file, a check per file. Two
imports of archives that differ only in how many package names (and so files, shards and pages)
they carry must make the same number of fsyncs, syncfs calls and journal saves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import counted_import

from airgap.destinations import journal as journal_mod
from airgap.destinations import localbatch, localstore


def _count_flushes(m: pytest.MonkeyPatch, counts: dict[str, int]) -> None:
    """Count ``os.fsync`` and ``syncfs`` calls into ``counts`` while ``m`` is in effect."""
    real_fsync, real_syncfs = os.fsync, localbatch.syncfs

    def fsync(fd: int) -> None:
        counts["fsync"] += 1
        real_fsync(fd)

    def syncfs(path: str) -> None:
        counts["syncfs"] += 1
        real_syncfs(path)

    m.setattr(os, "fsync", fsync)
    m.setattr(localstore, "syncfs", syncfs)
    m.setattr(localbatch, "syncfs", syncfs)


def _counted_import(tmp_path: Path, keyring: dict[str, Any], monkeypatch: pytest.MonkeyPatch, names: int) -> dict[str, int]:
    counts = {"fsync": 0, "syncfs": 0, "journal saves": 0}
    real_save = journal_mod.Journal.save

    def save(self: journal_mod.Journal) -> None:
        counts["journal saves"] += 1
        real_save(self)

    def patch(m: pytest.MonkeyPatch, dest: Path) -> None:
        _count_flushes(m, counts)
        m.setattr(journal_mod.Journal, "save", save)

    counted_import(tmp_path, keyring, monkeypatch, names, patch)
    return counts


def test_a_full_import_makes_as_many_fsyncs_and_journal_saves_for_40_names_as_for_8(
    tmp_path: Path, keyring: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _counted_import(tmp_path, keyring, monkeypatch, 8)
    large = _counted_import(tmp_path, keyring, monkeypatch, 40)
    assert large == small, f"8 names: {small}; 40 names: {large}"
    assert small["journal saves"] <= 4, small  # the plan, the index files' batch, the receipt: not one per file
    assert small["syncfs"] <= 6, small


def test_put_many_flushes_once_and_leaves_no_temporary_file_even_when_a_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = localstore.LocalStore(tmp_path)
    items = [(f"c/linux-64/shards/{i:02d}.msgpack.zst", bytes([i]) * 100) for i in range(20)]
    counts = {"fsync": 0, "syncfs": 0}
    real_replace = os.replace

    with monkeypatch.context() as m:
        _count_flushes(m, counts)
        store.put_many(items)
    assert counts["syncfs"] == 1 and counts["fsync"] <= 4, counts  # the folders, not the 20 files
    for key, data in items:
        assert (tmp_path / key).read_bytes() == data and (tmp_path / key).stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / ".airgap" / "tmp").exists()  # the temp folder goes again

    calls = []

    def failing_replace(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError):
            store.put_many([(f"c/linux-64/pages/{i}.html", b"page") for i in range(6)])
    left = [p for p in tmp_path.rglob("*") if p.name.endswith(".airgap-tmp")]
    assert left == [] and not (tmp_path / ".airgap" / "tmp").exists()
    assert sorted(p.name for p in (tmp_path / "c/linux-64/pages").iterdir()) == ["0.html", "1.html"]
