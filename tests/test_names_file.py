"""A subdir's names table, kept beside its index (decision 0016): the next import reads it instead of every head.

An import keeps each published index's names table (one row per package name: its files, latest version and
size) in ``.airgap/names/<channel>/<subdir>.msgpack`` and records its sha256 in the receipt. The next import into
that index, when the file is the recorded one and names the index, decodes no head it is not asked for, makes
only the changed names' rows, and publishes the same bytes as without it. Counted, never timed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from helpers import snapshot_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from airgap.core import published, rawindex
from airgap.core.rawindex import trusted_repodata
from airgap.core.receipt import receipt_json
from airgap.core.repodata import Repodata, parse_repodata
from airgap.destinations.base import load_receipt
from airgap.destinations.memory import MemoryDestination, MemoryStore, clone
from airgap.ops.import_ import run_import
from airgap.ops.index_change import changed_names
from airgap.ops.options import ImportOptions
from airgap.ops.shards_check import check_destination_subdir
from airgap.site import names_file
from airgap.site.html import Row

DATA = Path(__file__).resolve().parent / "data" / "repodata"
SUBDIR = "main/linux-64/"
_runs = iter(range(1_000_000))


def fresh(prefix: str) -> str:
    return f"{prefix}{next(_runs)}"


NAMES = ".airgap/" + names_file.document("main", "linux-64")


@pytest.fixture
def every_head(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a section's heads were all decoded from a destination's index (the archive's blob, read
    the same way by airgap/core/archive_index.py, is not counted)."""
    calls: list[int] = []
    real = rawindex._heads

    def counting(raw: Any) -> Any:
        if "archive_index" not in sys._getframe(2).f_code.co_filename:  # parse_trusted's caller
            calls.append(1)
        return real(raw)

    monkeypatch.setattr(rawindex, "_heads", counting)
    return calls


def _import(world: dict[str, Any], start: str) -> str:
    name = fresh("names-")
    clone(start, name)
    run_import(world["delta"], MemoryDestination(MemoryStore(name)), world["trusted"], ImportOptions(lock_timeout=1))
    return name


def _table_fits(name: str) -> None:
    """The kept table is the recorded one, names the index, and holds the rows made from every record of it."""
    store = MemoryStore(name)
    index, data = store.get(SUBDIR + "repodata.json"), store.get(NAMES)
    assert index is not None and data is not None
    recorded = published.recorded(load_receipt(MemoryDestination(store)), "main", "linux-64")
    assert recorded[names_file.KEY] == hashlib.sha256(data).hexdigest()
    assert recorded["repodata.json"] == hashlib.sha256(index).hexdigest()
    assert names_file.read(data, recorded["repodata.json"]) == names_file.every_row(parse_repodata(index, "linux-64", "t"))


def _pages(name: str) -> dict[str, bytes | None]:
    """The subdir's name pages (its index.html says when it was imported: left out)."""
    store = MemoryStore(name)
    return {k: store.get(k) for k, _ in store.list_prefix(SUBDIR + "names/")}


def test_an_import_keeps_the_names_table_of_the_index_it_published(delta_world: dict[str, Any]) -> None:
    _table_fits(delta_world["base"])  # the full import's
    _table_fits(_import(delta_world, delta_world["base"]))  # the delta's: the changed names' rows made anew


def test_the_next_import_reads_the_kept_table_and_publishes_the_same_bytes(delta_world: dict[str, Any], every_head: list[int]) -> None:
    with_table = _import(delta_world, delta_world["base"])
    assert every_head == []  # no section's heads decoded: the kept rows stood for them
    start = fresh("no-table-")
    clone(delta_world["base"], start)
    MemoryStore(start).delete([NAMES])
    without = _import(delta_world, start)
    assert every_head  # no table: every head decoded and checked, as before
    for key in ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst"):
        assert MemoryStore(with_table).get(SUBDIR + key) == MemoryStore(without).get(SUBDIR + key), key
    assert _pages(with_table) == _pages(without) and _pages(with_table)
    assert check_destination_subdir(MemoryDestination(MemoryStore(with_table)), "main", "linux-64") == []
    _table_fits(without)  # the import without one keeps one


def _liar(rows: dict[str, Row]) -> dict[str, Row]:
    """The rows with the first name's latest version changed: used, the subdir page would show it."""
    first = next(iter(rows))
    return {**rows, first: Row(rows[first].files, "999.liar", rows[first].size)}


@pytest.mark.parametrize("tamper", ["not the recorded bytes", "another index's", "not msgpack"])
def test_a_table_that_does_not_fit_is_not_used(delta_world: dict[str, Any], every_head: list[int], tamper: str) -> None:
    start = fresh("tampered-")
    clone(delta_world["base"], start)
    store = MemoryStore(start)
    index, kept = store.get(SUBDIR + "repodata.json"), store.get(NAMES)
    assert index is not None and kept is not None
    sha = hashlib.sha256(index).hexdigest()
    rows = names_file.read(kept, sha)
    assert rows is not None
    data = {
        "not the recorded bytes": msgspec.msgpack.encode({"format": names_file.FORMAT, "repodata_sha256": sha, "names": _liar(rows)}),
        "another index's": msgspec.msgpack.encode({"format": names_file.FORMAT, "repodata_sha256": "0" * 64, "names": _liar(rows)}),
        "not msgpack": b"{}",
    }[tamper]
    store.put(NAMES, data)
    if tamper != "not the recorded bytes":  # the receipt names these very bytes: only what they say is wrong
        receipt = load_receipt(MemoryDestination(store))
        files = {**published.recorded(receipt, "main", "linux-64"), names_file.KEY: hashlib.sha256(data).hexdigest()}
        published.record(receipt, "main", "linux-64", files)
        store.put(".airgap/receipt.json", receipt_json(receipt.to_json()))
    name = _import(delta_world, start)
    assert every_head  # not used: every head decoded and checked
    assert check_destination_subdir(MemoryDestination(MemoryStore(name)), "main", "linux-64") == []
    assert b"999.liar" not in (MemoryStore(name).get(SUBDIR + "index.html") or b"")
    _table_fits(name)


def _record(name: str, version: str, size: int) -> dict[str, Any]:
    return {"name": name, "version": version, "build": "0", "size": size, "timestamp": 1}


_NAMES = st.sampled_from(["a", "b", "c", "d"])
_FILES = st.builds(
    lambda n, v, ext: f"{n}-{v}-0{ext}", _NAMES, st.sampled_from(["1.0", "1.10", "2.0b1", "2.0"]), st.sampled_from([".conda", ".tar.bz2"])
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(_FILES, st.tuples(_NAMES, st.integers(0, 9)), max_size=12),
    st.lists(_FILES, max_size=4),
    st.dictionaries(_FILES, st.tuples(_NAMES, st.integers(0, 9)), max_size=4),
)
def test_the_changed_names_rows_are_the_rows_made_from_every_record(
    before: dict[str, tuple[str, int]], gone: list[str], brought: dict[str, tuple[str, int]]
) -> None:
    """Files removed, added, replaced, and moved to another name (a record whose name is not its file's)."""
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for fn, (name, size) in before.items():
        rd.put(fn, _record(name, fn.split("-")[1], size))
    old = trusted_repodata(rd.to_bytes(), "linux-64", "t", plain=True)
    assert old is not None
    rows = names_file.every_row(old)
    new = old.without(set(gone))
    for fn, (name, size) in brought.items():
        new.put(fn, _record(name, fn.split("-")[1], size))
    touched = frozenset(gone) | frozenset(brought)
    assert names_file.changed_rows(rows, new, changed_names(old, new, touched), touched) == names_file.every_row(new)


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_a_plain_index_read_without_checks_is_the_index_read_with_them(path: Path, every_head: list[int]) -> None:
    """Real snapshots, as airgap publishes them: the same records, heads and bytes; heads decoded only when asked."""
    subdir = path.name.split("_")[1]
    rd = parse_repodata(snapshot_bytes(path), subdir, "t", keep_unreadable=True)
    index = rd.to_bytes()
    if any(rd.opaque.values()):  # never read as plain: no names table is kept for it
        assert names_file.render(names_file.every_row(rd), rd, hashlib.sha256(index).hexdigest()) is None
        return
    fast = trusted_repodata(index, subdir, "t", plain=True)
    assert fast is not None and every_head == []
    slow = trusted_repodata(index, subdir, "t")
    assert slow is not None
    for a, b in ((fast.packages, slow.packages), (fast.packages_conda, slow.packages_conda)):
        some = next(iter(a), None)
        if some is not None:
            assert a.head(some) == b.head(some)  # type: ignore[attr-defined]
        calls = len(every_head)
        assert list(rawindex.heads(a)) == list(rawindex.heads(b))
        assert len(every_head) == calls + (1 if a else 0)  # all of them, once asked for all
    assert fast.to_bytes() == slow.to_bytes() == index


def test_an_index_with_an_opaque_record_gets_no_table() -> None:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    rd.put("a-1-0.conda", _record("a", "1", 1))
    assert names_file.render(names_file.every_row(rd), rd, "0" * 64) is not None
    rd.opaque["packages"] = {"x-1-0.tar.bz2": {"name": 7}}
    assert names_file.render(names_file.every_row(rd), rd, "0" * 64) is None


def test_every_row_is_the_rows_of_every_records_pair_for_an_index_kept_as_bytes_with_dicts_among_them() -> None:
    """The names table's grouping keeps two lists per name, not a pair per record (19 MB at 300,000): the same rows."""
    from airgap.site.html import group_by_name, rows_of

    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for i in range(40):
        rd.put(f"n{i % 7}-1.{i}-0.{'conda' if i % 2 else 'tar.bz2'}", _record(f"n{i % 7}", f"1.{i}", i))
    trusted = trusted_repodata(rd.to_bytes(), "linux-64", "t", plain=True)
    assert trusted is not None
    trusted.put("n1-9.0-0.conda", _record("n1", "9.0", 100))  # a dict among the bytes
    _ = trusted.packages_conda["n3-1.3-0.conda"]  # and one decoded
    rows = names_file.every_row(trusted)
    assert rows == rows_of(dict(sorted(group_by_name(trusted).items()))) and list(rows) == sorted(rows)
    assert rows["n1"].latest == "9.0" and rows["n1"].size == sum(i for i in range(40) if i % 7 == 1) + 100


@pytest.mark.parametrize("count", [0, 5, 15, 16, 40])
def test_the_file_is_the_whole_table_encoded_at_once_then_compressed(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Encoded a few rows at a time (here 3) and compressed as it goes: once decompressed, the very msgpack of the
    table encoded at once; read back, the same rows."""
    monkeypatch.setattr(names_file, "CHUNK", 3)
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for i in range(count):
        rd.put(f"n{i:02d}-1.{i}-0.conda", _record(f"n{i:02d}", f"1.{i}", i))
    rows = names_file.every_row(rd)
    data = names_file.render(rows, rd, "a" * 64)
    assert data is not None and len(rows) == count
    whole = msgspec.msgpack.encode({"format": names_file.FORMAT, "repodata_sha256": "a" * 64, "names": rows})
    assert zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 20) == whole
    assert names_file.read(data, "a" * 64) == rows == names_file.read(whole, "a" * 64)  # a plain one, as written before, too


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_a_map_header_is_the_one_msgspec_writes(n: int) -> None:
    header = names_file._map_header(n)
    encoded = msgspec.msgpack.encode(dict.fromkeys(range(n), 0))
    assert encoded.startswith(header)
    assert encoded[len(header) :] == b"".join(msgspec.msgpack.encode(i) + b"\x00" for i in range(n))  # then the members


def test_a_table_that_decompresses_beyond_any_index_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for i in range(50):
        rd.put(f"n{i}-1-0.conda", _record(f"n{i}", "1", i))
    data = names_file.render(names_file.every_row(rd), rd, "a" * 64)
    assert data is not None and names_file.read(data, "a" * 64) is not None
    monkeypatch.setattr(names_file, "MAX_BYTES", 100)
    assert names_file.read(data, "a" * 64) is None
    assert names_file.read(data[:-5], "a" * 64) is None  # cut short: not used either
