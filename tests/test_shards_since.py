"""Incremental shards (``shards.Since``): a delta renders its changed names' shards without a pass over the subdir.

The changed names' records are found from what their current shards list plus the files the import
touched; the result must be what a full render of the new records gives (``created_at`` aside, which
never goes back), and anything the shortcut cannot vouch for falls back to the full pass.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airgap.core import shards
from airgap.core.repodata import from_document
from airgap.ops.index_change import changed_names

SHA = "c" * 64


def record(name: str, version: str, ts: int = 1_600_000_000) -> dict[str, Any]:
    return {"name": name, "version": version, "build": "0", "build_number": 0, "depends": [], "sha256": SHA, "timestamp": ts}


def before() -> dict[str, Any]:
    return {
        "info": {"subdir": "linux-64"},
        "packages": {"old-1.0-0.tar.bz2": record("old", "1.0")},
        "packages.conda": {
            "a-1.0-0.conda": record("a", "1.0", 1_700_000_000),
            "a-1.1-0.conda": record("a", "1.1"),
            "a-b-1.0-0.conda": record("a-b", "1.0"),  # shares a's prefix: never taken for a's
            "c-1.0-0.conda": record("c", "1.0"),
            "odd-1.0-0.conda": record("renamed", "1.0"),  # its record names another package
        },
        "removed": [],
        "repodata_version": 1,
    }


def run(doc: dict[str, Any], change: Any) -> tuple[shards.Rendered, shards.Rendered, frozenset[str], set[str]]:
    """The incremental render of ``change(doc)`` against the full render of it (and the names that changed)."""
    old_full = shards.render("linux-64", doc)
    old_index = shards.decode_index(old_full.index, "old")
    new = copy.deepcopy(doc)
    touched = change(new)
    old_rd = from_document(doc, "linux-64", "t")
    new_rd = old_rd.subset({f for f, _ in old_rd.records()})  # as a merge makes it: untouched records shared
    for filename in touched:
        new_rd.drop(filename)
        if (rec := new["packages"].get(filename) or new["packages.conda"].get(filename)) is not None:
            new_rd.put(filename, rec)
    changed = changed_names(old_rd, new_rd, touched)
    assert changed == changed_names(old_rd, new_rd), "the touched files tell the same names as a look at every file"
    kept = {n: d for n, d in old_index.shards.items() if n not in changed}
    reads: set[str] = set()

    def shard_files(name: str) -> list[str] | None:
        reads.add(name)
        digest = old_index.shards.get(name)
        if digest is None:
            return []
        shard = shards.decode_shard(old_full.shards[digest.hex()], name)
        return [*shard.packages, *shard.packages_conda]

    since = shards.Since(frozenset(touched), shard_files, old_index.created_at)
    return shards.render_changed("linux-64", new, changed, kept, since), shards.render("linux-64", new), changed, reads


def _index(rendered: shards.Rendered) -> shards.ShardIndex:
    return shards.decode_index(rendered.index, "t")


def _same_as_the_full_pass(partial: shards.Rendered, full: shards.Rendered, rendered: set[str] | frozenset[str]) -> None:
    """Byte for byte the full render's index (created_at from every record), and the shards of ``rendered`` names."""
    assert partial.index == full.index
    assert set(partial.shards) == {h.hex() for n, h in _index(full).shards.items() if n in rendered}
    assert all(full.shards[h] == data for h, data in partial.shards.items())


def _add(new: dict[str, Any]) -> set[str]:
    new["packages.conda"]["a-2.0-0.conda"] = record("a", "2.0")
    new["packages.conda"]["fresh-1.0-0.conda"] = record("fresh", "1.0")
    return {"a-2.0-0.conda", "fresh-1.0-0.conda"}


def _remove_a_name(new: dict[str, Any]) -> set[str]:
    del new["packages"]["old-1.0-0.tar.bz2"]
    return {"old-1.0-0.tar.bz2"}


def _rename(new: dict[str, Any]) -> set[str]:
    new["packages.conda"]["c-1.0-0.conda"] = record("a", "9.9")  # patched upstream: now a's
    return {"c-1.0-0.conda"}


def _patch_odd(new: dict[str, Any]) -> set[str]:
    new["packages.conda"]["odd-1.0-0.conda"] = {**record("renamed", "1.0"), "depends": ["x"]}
    return {"odd-1.0-0.conda"}


@pytest.mark.parametrize("change", [_add, _remove_a_name, _rename, _patch_odd])
def test_the_changed_names_shards_are_those_a_full_render_gives(change: Any) -> None:
    partial, full, changed, reads = run(before(), change)
    assert reads == set(changed)  # the changed names' current shards are read; no other
    assert _index(partial).shards == _index(full).shards
    assert set(partial.shards) == {h.hex() for n, h in _index(full).shards.items() if n in changed}
    assert all(full.shards[h] == data for h, data in partial.shards.items())
    assert _index(partial).created_at == _index(full).created_at  # the newest record (a-1.0) is still there


def test_created_at_does_not_go_back_when_the_newest_record_goes() -> None:
    def drop_newest(new: dict[str, Any]) -> set[str]:
        del new["packages.conda"]["a-1.0-0.conda"]
        return {"a-1.0-0.conda"}

    partial, full, _, _ = run(before(), drop_newest)
    assert _index(partial).shards == _index(full).shards
    assert _index(partial).created_at == "2023-11-14T22:13:20Z"  # the index it follows
    assert (_index(full).created_at or "") < (_index(partial).created_at or "")


def test_a_newer_record_moves_created_at_on() -> None:
    def newer(new: dict[str, Any]) -> set[str]:
        new["packages.conda"]["c-2.0-0.conda"] = record("c", "2.0", 1_800_000_000_000)  # milliseconds
        return {"c-2.0-0.conda"}

    partial, full, _, _ = run(before(), newer)
    assert _index(partial).created_at == _index(full).created_at == "2027-01-15T08:00:00Z"


def test_an_unreadable_current_shard_falls_back_to_the_full_pass() -> None:
    doc = before()
    new = copy.deepcopy(doc)
    touched = _add(new)
    old_index = shards.decode_index(shards.render("linux-64", doc).index, "old")
    changed = frozenset({"a", "fresh"})
    kept = {n: d for n, d in old_index.shards.items() if n not in changed}
    since = shards.Since(frozenset(touched), lambda name: None, old_index.created_at)
    _same_as_the_full_pass(shards.render_changed("linux-64", new, changed, kept, since), shards.render("linux-64", new), changed)


def test_a_record_of_a_name_neither_changed_nor_kept_falls_back_to_the_full_pass() -> None:
    doc = before()
    new = copy.deepcopy(doc)
    new["packages.conda"]["c-1.0-0.conda"] = record("elsewhere", "1.0")  # touched, but its names not told as changed
    old_index = shards.decode_index(shards.render("linux-64", doc).index, "old")
    kept = {n: d for n, d in old_index.shards.items() if n != "c"}
    since = shards.Since(frozenset({"c-1.0-0.conda"}), lambda name: [], old_index.created_at)
    _same_as_the_full_pass(shards.render_changed("linux-64", new, {"c"}, kept, since), shards.render("linux-64", new), {"c", "elsewhere"})
