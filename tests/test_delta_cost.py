"""A delta import costs what changed (issue 15): counted in store calls on ``memory://``, never timed.

Into a subdir whose index airgap published last (its sha256 in the receipt), a delta lists no
package folder, renders only the changed names' shards and reads back only what it wrote; the
shards it keeps are byte for byte what a full render would give. An index someone else edited is
listed once, shared by the plan, the vetting and the change, and vetted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airgap.config import load_config
from airgap.core import published, shards
from airgap.core.rawindex import trusted_repodata
from airgap.core.receipt import receipt_json
from airgap.core.repodata import Repodata, parse_repodata
from airgap.core.repodata_stream import decoded_parts
from airgap.destinations.base import IndexChange, load_receipt
from airgap.destinations.memory import Faults, MemoryDestination, MemoryStore, clone
from airgap.ops.clean import run_clean
from airgap.ops.export import filters_from_config
from airgap.ops.import_ import run_import
from airgap.ops.import_plan import DestinationView
from airgap.ops.options import CleanOptions, ImportOptions
from airgap.ops.shards_check import check_destination_subdir

_names = iter(range(1_000_000))
SUBDIR = "main/linux-64/"


def fresh(prefix: str = "dc") -> str:
    return f"{prefix}{next(_names)}"


def _import_delta(world: dict[str, Any], start: str) -> tuple[str, list[str]]:
    name = fresh("run-")
    clone(start, name)
    faults = Faults()
    run_import(world["delta"], MemoryDestination(MemoryStore(name, faults)), world["trusted"], ImportOptions(lock_timeout=1))
    return name, faults.log


def _subdir_listings(log: list[str]) -> list[str]:
    return [call for call in log if call == f"list {SUBDIR}"]


def test_a_delta_into_airgaps_own_index_lists_no_package_folder_and_renders_only_changed_shards(delta_world: dict[str, Any]) -> None:
    dest = MemoryDestination(MemoryStore(delta_world["base"]))
    assert published.recorded(load_receipt(dest), "main", "linux-64").get("repodata.json")  # the import recorded what it published
    shard_files = {k for k, _ in MemoryStore(delta_world["base"]).list_prefix(SUBDIR + "shards/")}
    name, log = _import_delta(delta_world, delta_world["base"])
    assert _subdir_listings(log) == [], log  # sizes of the archive's files asked one by one, no listing
    written = {call[len("put ") :] for call in log if call.startswith(f"put {SUBDIR}shards/")}
    read = {call[len("get ") :] for call in log if call.startswith(f"get {SUBDIR}shards/")}
    store = MemoryStore(name)
    raw = store.get(SUBDIR + "repodata.json")
    assert raw is not None
    rd = parse_repodata(raw, "linux-64", "test")
    full = shards.render("linux-64", rd.to_document())
    assert store.get(SUBDIR + shards.INDEX) == full.index  # what a full render gives, byte for byte
    new_shards = {SUBDIR + shards.shard_file(h) for h in full.shards}
    assert written and written <= new_shards, "\n".join(log)
    assert read and read <= shard_files | new_shards, "\n".join(log)  # the changed names' current shards: what they list
    assert shard_files <= {k for k, _ in store.list_prefix(SUBDIR + "shards/")}  # old shards stay (a later clean removes them)
    assert check_destination_subdir(MemoryDestination(store), "main", "linux-64") == []


def test_an_index_someone_else_edited_is_listed_once_and_vetted(delta_world: dict[str, Any]) -> None:
    start = fresh("edited-")
    clone(delta_world["base"], start)
    store = MemoryStore(start)
    doc = json.loads(store.get(SUBDIR + "repodata.json") or b"")
    doc["packages.conda"]["ghost-1.0-0.conda"] = {"name": "ghost", "version": "1.0", "build": "0", "sha256": "0" * 64, "size": 1}
    store.put(SUBDIR + "repodata.json", json.dumps(doc).encode())
    name, log = _import_delta(delta_world, start)
    assert len(_subdir_listings(log)) == 1, log  # plan, vetting and the change share one listing
    after = json.loads(MemoryStore(name).get(SUBDIR + "repodata.json") or b"")
    assert "ghost-1.0-0.conda" not in after["packages.conda"]
    assert check_destination_subdir(MemoryDestination(MemoryStore(name)), "main", "linux-64") == []


def _publish(dest: MemoryDestination, rd: Repodata, changed: IndexChange | None) -> dict[str, str]:
    with dest.locked(timeout=1):
        change = dest.begin("t")
        change.plan([], [("main", "linux-64")])
        change.publish_index("main", "linux-64", rd, changed)
        change.commit()
        return change.published_files("main", "linux-64")


def _records(*names: str) -> Repodata:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for n in names:
        rd.put(f"{n}-1.0-0.conda", {"name": n, "version": "1.0", "build": "0", "sha256": "a" * 64, "size": 1, "timestamp": 1})
    return rd


def test_shards_follow_the_change_and_a_missing_shard_is_rendered_again() -> None:
    name = fresh("unit-")
    dest = MemoryDestination(MemoryStore(name))
    recorded = _publish(dest, _records("a", "b", "c", "d"), None)
    assert set(recorded) >= {"repodata.json", shards.INDEX}
    store = MemoryStore(name)
    index = shards.decode_index(store.get(SUBDIR + shards.INDEX) or b"", "test")
    store.delete([SUBDIR + shards.shard_file(index.shards["d"])])  # lost: the next publish renders it again
    faults = Faults()
    new = _records("a", "b", "c", "d", "e")
    after = _publish(MemoryDestination(MemoryStore(name, faults)), new, IndexChange(frozenset({"e"}), recorded))
    touched = {call.split(" ", 1)[1] for call in faults.log if call.split(" ")[0] in ("put", "get") and "/shards/" in call}
    full = shards.render("linux-64", new.to_document())
    expected = shards.decode_index(full.index, "test").shards
    assert touched == {SUBDIR + shards.shard_file(expected[n]) for n in ("d", "e")}, faults.log  # a, b, c: neither rendered nor read
    assert store.get(SUBDIR + shards.INDEX) == full.index and after[shards.INDEX] != recorded[shards.INDEX]
    assert check_destination_subdir(MemoryDestination(store), "main", "linux-64") == []


def test_a_shard_index_that_is_not_the_one_recorded_renders_every_shard() -> None:
    name = fresh("unit-")
    recorded = _publish(MemoryDestination(MemoryStore(name)), _records("a", "b"), None)
    faults = Faults()
    other = {**recorded, shards.INDEX: "0" * 64}  # someone else's shard index: its hashes are not taken
    _publish(MemoryDestination(MemoryStore(name, faults)), _records("a", "b", "c"), IndexChange(frozenset({"c"}), other))
    assert len([c for c in faults.log if c.startswith(f"get {SUBDIR}shards/")]) == 3, faults.log  # a and b compared as before, c read back


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_repodata_bytes_never_hold_a_number_json_cannot_carry(value: float) -> None:
    """msgspec writes NaN as null: the guard refuses it (records from a msgpack shard could carry one)."""
    rd = _records("a")
    rd.put("b-1.0-0.conda", {"name": "b", "version": "1.0", "build": "0", "license": None, "x": value})
    with pytest.raises(ValueError, match="not finite"):
        rd.to_bytes()
    rd.drop("b-1.0-0.conda")
    rd.put("c-1.0-0.conda", {"name": "c", "version": "1.0", "build": "0", "license": None, "x": 1e16, "é": "ü"})
    assert json.loads(rd.to_bytes()) == json.loads(json.dumps(rd.to_document(), ensure_ascii=False))


@pytest.mark.parametrize("decoded", [1, 10_001])
@pytest.mark.parametrize("where", ["a record", "the envelope"])
def test_the_guard_finds_them_among_records_kept_as_bytes(decoded: int, where: str) -> None:
    """An index read as bytes with a few records (then many) put as dicts: those alone are looked at, then all."""
    kept = trusted_repodata(_records(*(f"p{i}" for i in range(20))).to_bytes(), "linux-64", "t", plain=True)
    assert kept is not None
    for i in range(decoded):
        kept.put(f"n{i}-1.0-0.conda", {"name": f"n{i}", "version": "1.0", "build": "0", "license": None})
    parts = decoded_parts(kept.to_document(raw=True))
    assert (parts is None) == (decoded > 10_000)  # the few records put looked at alone; the 20 kept as bytes never
    assert parts is None or len([p for p in parts if isinstance(p, dict) and "name" in p]) == decoded
    bad = {"name": "z", "version": "1.0", "build": "0", "x": float("nan")}
    if where == "a record":
        kept.put("z-1.0-0.conda", bad)
    else:
        kept.extra["metadata"] = {"x": [float("inf")]}
    with pytest.raises(ValueError, match="not finite"):
        kept.to_bytes()


def test_receipt_bytes_are_json_dumps_sorted_bytes() -> None:
    doc = {"format": "airgap-receipt/1", "b": {"z": 1, "a": [None, True, 2]}, "a": "x"}
    assert receipt_json(doc) == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    doc["a"] = "née"  # non-ASCII: escaped as json.dumps escapes it
    assert receipt_json(doc) == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_a_clean_drops_the_record_so_the_next_import_vets(archives: dict[str, Path], delta_world: dict[str, Any]) -> None:
    name = fresh("clean-")
    clone(delta_world["base"], name)
    dest = MemoryDestination(MemoryStore(name))
    filters = filters_from_config(load_config(archives["clean"]))
    result = run_clean(dest, CleanOptions(filters, dry_run=False, lock_timeout=1))
    cleaned = {(r.channel, r.subdir) for r in result.remove}
    assert cleaned, "the clean config removes something"
    receipt = load_receipt(dest)
    for channel, subdir in cleaned:
        assert published.recorded(receipt, channel, subdir) == {}


def test_a_recheck_trusts_no_published_record(delta_world: dict[str, Any]) -> None:
    """``sync --reset`` hashes every file rather than believe the receipt: it vets the index too."""
    dest = MemoryDestination(MemoryStore(delta_world["base"]))
    receipt = load_receipt(dest)
    assert DestinationView(dest, receipt, recheck=False).trusted("main", "linux-64")
    assert not DestinationView(dest, receipt, recheck=True).trusted("main", "linux-64")
