"""A trusted destination index keeps its records as bytes (decision 0010): what it writes is what the dict path writes.

An import into a subdir whose ``repodata.json`` is airgap's own decodes the records of the changed
names only; ``repodata.json``, the shards and the pages come out byte for byte as when every
record is a dict. Counted (records decoded), never timed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import cli, snapshot_bytes

from airgap.core import rawindex, shards
from airgap.core.rawindex import Head, LazyRecords, trusted_repodata
from airgap.core.repodata import Repodata, merge, parse_repodata
from airgap.destinations.base import load_receipt, parse_index
from airgap.destinations.memory import MemoryDestination, MemoryStore, clone
from airgap.ops.import_plan import DestinationView
from airgap.ops.index_change import changed_names
from airgap.site.html import group_by_name, name_pages, rows_of, subdir_pages

DATA = Path(__file__).resolve().parent / "data" / "repodata"
# the shared fixtures (archives): tests/remote.py
pytest_plugins = ("remote", "ociparts")


def _subdir(path: Path) -> str:
    return path.name.split("_")[1]


def _rec(name: str, version: str, build: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "build": build, "sha256": "a" * 64, "size": len(name) + 10, "timestamp": 1, **extra}


def _index(*names: str) -> Repodata:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for n in names:
        for v in ("1.0", "1.1"):
            rd.put(f"{n}-{v}-0.conda", _rec(n, v, license="MIT"))
        rd.put(f"{n}-1.0-0.tar.bz2", _rec(n, "1.0", depends=["python >=3.9"], x=1.5))
    return rd


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The package name of every record a LazyRecords decodes."""
    seen: list[str] = []
    real = rawindex._record

    def counting(raw: msgspec.Raw) -> dict[str, Any]:
        record = real(raw)
        seen.append(record["name"])
        return record

    monkeypatch.setattr(rawindex, "_record", counting)
    return seen


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_repodata_bytes_are_those_of_the_dict_path(path: Path) -> None:
    """Real snapshots, as airgap publishes them: parsed as bytes, written back and merged, the same bytes as with dicts."""
    subdir = _subdir(path)
    published = parse_repodata(snapshot_bytes(path), subdir, "t", keep_unreadable=True).to_bytes()  # airgap's own output
    lazy = trusted_repodata(published, subdir, "t")
    strict = parse_index(published, subdir, "t")
    assert lazy is not None and strict is not None
    assert isinstance(lazy.packages, LazyRecords) and isinstance(lazy.packages_conda, LazyRecords)
    assert lazy.to_bytes() == published == strict.to_bytes()
    assert len(lazy) == len(strict) and lazy.opaque == strict.opaque and lazy.info == strict.info
    some = sorted(f for f, _ in strict.records())[::7]
    incoming = Repodata(subdir, {"subdir": subdir}, repodata_version=1, removed=["zz-1-0.conda"])
    incoming.put("zz-1-0.conda", _rec("zz", "1", subdir=subdir))
    assert merge(lazy.without(set(some)), incoming).to_bytes() == merge(strict.without(set(some)), incoming).to_bytes()


def test_an_import_decodes_only_the_records_of_changed_names(decoded: list[str]) -> None:
    base = _index("alpha", "beta", "gamma", "delta", "eps")
    published = base.to_bytes()
    old = trusted_repodata(published, "linux-64", "t")
    assert old is not None
    incoming = _index("beta")
    incoming.put("beta-2.0-0.conda", _rec("beta", "2.0", license="MIT"))
    new = merge(old.without({"gamma-1.1-0.conda"}), incoming)
    changed = changed_names(old, new)
    assert changed == {"beta", "gamma"}

    dict_new = merge(base.without({"gamma-1.1-0.conda"}), incoming)
    assert new.to_bytes() == dict_new.to_bytes()
    full_before = shards.render("linux-64", base.to_document())
    kept = shards.decode_index(full_before.index, "t").shards
    from airgap.destinations.formats import Shards

    assert Shards().render_changed("linux-64", new, changed, kept) == Shards().render_changed("linux-64", dict_new, changed, kept)
    lazy_groups, dict_groups = group_by_name(new), group_by_name(dict_new)
    assert subdir_pages("c", "linux-64", rows_of(lazy_groups), len(new), None) == subdir_pages(
        "c", "linux-64", rows_of(dict_groups), len(dict_new), None
    )
    for name in changed:
        items = [(fn, new.get(fn) or rec) for fn, rec in lazy_groups[name]]
        assert name_pages("c", "linux-64", name, items) == name_pages("c", "linux-64", name, dict_groups[name])
    assert decoded and set(decoded) <= changed, decoded  # alpha, delta, eps: kept as bytes throughout


def test_records_airgap_cannot_read_stay_opaque_as_with_the_strict_parse() -> None:
    doc = json.loads(_index("a").to_bytes())
    doc["packages.conda"]["nobuild-1-0.conda"] = {"name": "nobuild", "version": "1"}
    doc["packages.conda"]["other-1-0.conda"] = {"name": "other", "version": "1", "build": "0", "subdir": "osx-64"}
    doc["packages.conda"]["../up-1-0.conda"] = {"name": "up", "version": "1", "build": "0"}
    doc["packages"]["wrong-1-0.conda"] = {"name": "wrong", "version": "1", "build": "0"}
    doc["packages"] = dict(sorted(doc["packages"].items()))
    doc["packages.conda"] = dict(sorted(doc["packages.conda"].items()))
    data = msgspec.json.encode(doc)
    lazy, strict = trusted_repodata(data, "linux-64", "t"), parse_index(data, "linux-64", "t")
    assert lazy is not None and strict is not None
    assert lazy.opaque == strict.opaque and set(lazy.opaque["packages.conda"]) == {
        "nobuild-1-0.conda",
        "other-1-0.conda",
        "../up-1-0.conda",
    }
    assert dict(lazy.records()) == dict(strict.records())
    assert lazy.to_bytes() == strict.to_bytes() == data


@pytest.mark.parametrize(
    "filename, odd",
    [
        ("nobuild-1-0.conda", {"name": "nobuild", "version": "1"}),  # the decoder refuses the section's heads
        ("numver-1-0.conda", {"name": "numver", "version": 1, "build": "0"}),
        ("other-1-0.conda", {"name": "other", "version": "1", "build": "0", "subdir": "osx-64"}),  # heads fine, subdir not
        ("../up-1-0.conda", {"name": "up", "version": "1", "build": "0"}),  # heads fine, file name not
    ],
)
def test_one_odd_record_sends_its_section_the_careful_way(filename: str, odd: dict[str, Any]) -> None:
    doc = json.loads(_index("a", "b").to_bytes())
    doc["packages.conda"][filename] = odd
    doc["packages.conda"] = dict(sorted(doc["packages.conda"].items()))
    data = msgspec.json.encode(doc)
    lazy, strict = trusted_repodata(data, "linux-64", "t"), parse_index(data, "linux-64", "t")
    assert lazy is not None and strict is not None
    assert set(lazy.opaque["packages.conda"]) == set(strict.opaque["packages.conda"]) == {filename}
    assert isinstance(lazy.packages_conda, LazyRecords) and filename not in lazy.packages_conda
    assert all(isinstance(lazy.packages_conda.head(f), Head) for f in lazy.packages_conda)  # the others: plain heads
    assert dict(lazy.records()) == dict(strict.records()) and lazy.to_bytes() == strict.to_bytes() == data


@pytest.mark.parametrize(
    "data",
    [b'{"packages": {"a-1-0.tar.bz2": [1]}}', b'{"packages": null}', b'\xef\xbb\xbf{"packages": {}}', b"[1]", b'{"packages": {"a": NaN}}'],
)
def test_an_unusual_document_goes_the_strict_path(data: bytes) -> None:
    assert trusted_repodata(data, "linux-64", "t") is None


def test_only_airgaps_own_index_is_read_as_bytes(archives: dict[str, Path], tmp_path: Path) -> None:
    """After an import the index is airgap's: read as bytes. Edited by someone else: parsed strictly and vetted."""
    name = "raw-own"
    assert cli("import", archives["v1"], "--into", f"memory://{name}", "--trusted-key", archives["pub"]).exit_code == 0
    dest = MemoryDestination(MemoryStore(name))
    own = DestinationView(dest, load_receipt(dest), recheck=False).index("main", "linux-64")
    assert own is not None and isinstance(own.packages_conda, LazyRecords) and len(own) > 0
    edited = "raw-edited"
    clone(name, edited)
    store = MemoryStore(edited)
    doc = json.loads(store.get("main/linux-64/repodata.json") or b"")
    doc["packages.conda"]["ghost-1.0-0.conda"] = {"name": "ghost", "version": "1.0", "build": "0", "sha256": "0" * 64, "size": 1}
    store.put("main/linux-64/repodata.json", msgspec.json.encode(doc))
    other = MemoryDestination(store)
    vetted = DestinationView(other, load_receipt(other), recheck=False).index("main", "linux-64")
    assert vetted is not None and type(vetted.packages_conda) is dict  # the strict parse
    assert vetted.get("ghost-1.0-0.conda") is None  # and the vetting, which drops a record of a file not there


@pytest.mark.parametrize("lazy", [False, True])
def test_without_takes_out_only_the_names_given_and_keeps_the_order(lazy: bool) -> None:
    rd = _index(*(f"pkg{i}" for i in range(40)))
    if lazy:
        rd = trusted_repodata(rd.to_bytes(), rd.subdir, "t") or rd
        assert isinstance(rd.packages, LazyRecords)
    files = [f for f, _ in rd.records()]
    gone = {files[3], files[17], files[-1], "not-there-1-0.tar.bz2"}
    out = rd.without(gone)
    assert [f for f, _ in out.records()] == [f for f in files if f not in gone]
    assert out.to_bytes() == rd.subset({f for f in files if f not in gone}).to_bytes()
    assert [f for f, _ in rd.records()] == files  # the original is left as it was
    if lazy:
        assert all(rawindex.entry(out.packages, f) is rawindex.entry(rd.packages, f) for f in out.packages)  # entries shared


def test_heads_give_each_records_head_or_the_record_it_became() -> None:
    rd = trusted_repodata(_index(*(f"pkg{i}" for i in range(30))).to_bytes(), "linux-64", "t")
    assert rd is not None and isinstance(rd.packages_conda, LazyRecords)
    section = rd.packages_conda
    files = list(section)
    read = section[files[4]]  # decoded: the record stands for its head from now on
    section[files[9]] = _rec("other", "9")  # replaced by a dict
    assert not isinstance(rawindex.heads(section), list)  # made a chunk at a time, never every pair at once
    got = list(rawindex.heads(section, chunk=4))  # entries 4 and 9 open a chunk: patched all the same
    assert got == section.heads()
    assert [f for f, _ in got] == files
    assert got[4][1] is read and got[9][1] == _rec("other", "9")
    assert all(id(h) == id(section.head(f)) if type(h) is Head else h == section.head(f) for f, h in got)
    assert sum(type(h) is Head for _, h in got) == len(files) - 2
