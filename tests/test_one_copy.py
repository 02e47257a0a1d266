"""Per-file strings held once at a full import (issue 15): 300,000 files make every extra copy tens of MB."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import cast

import msgspec

from airgap.archive.reader import ArchiveStream
from airgap.core import rawindex
from airgap.core.manifest import parse_manifest
from airgap.core.repodata import Repodata
from airgap.destinations.listings import ask_keys
from airgap.destinations.memory import MemoryDestination, MemoryStore

# the shared fixtures (archives): tests/remote.py
pytest_plugins = ("remote", "ociparts")


def test_a_manifest_holds_one_string_per_sha256_and_per_kind(archives: dict[str, Path]) -> None:
    stream = ArchiveStream(archives["v1"])
    try:
        data, _sig = stream.read_header()
    finally:
        stream.close()
    manifest = parse_manifest(data)
    blobs = {b.sha256: b for b in manifest.blobs}
    packages = [p for c in manifest.channels for s in c.subdirs for p in s.packages]
    assert packages and all(p.sha256 is blobs[p.sha256].sha256 for p in packages)
    assert all(p.size is blobs[p.sha256].size for p in packages)  # one int per size too
    kinds = {b.kind for b in manifest.blobs}
    assert kinds >= {"package", "repodata"} and len({id(b.kind) for b in manifest.blobs}) == len(kinds)
    assert parse_manifest(data) == manifest  # equal values: only copies were dropped


def test_heads_are_keyed_by_the_records_own_file_name_strings() -> None:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for i in range(50):
        rd.put(f"p{i}-1.0-0.conda", {"name": f"p{i}", "version": "1.0", "build": "0", "subdir": "linux-64", "size": i})
    parsed = rawindex.parse_trusted(msgspec.json.encode(rd.to_document()), "linux-64")
    assert parsed is not None
    section = parsed[1]["packages.conda"]
    assert list(section) == sorted(f"p{i}-1.0-0.conda" for i in range(50))  # as written: in file name order
    heads = dict(section.heads())
    assert all(heads[f].name == f.rsplit("-", 2)[0] and heads[f].size == int(f[1:].split("-")[0]) for f in section)
    assert all(a is b for a, b in zip(section, section._heads, strict=True))


def test_ask_keys_notes_the_callers_own_key_strings() -> None:
    store = MemoryStore(f"one-copy-{uuid.uuid4().hex[:8]}")
    store.put("c/linux-64/a-1-0.conda", b"x")
    dest = MemoryDestination(store)
    keys = ["/".join(["c", "linux-64", f"{n}-1-0.conda"]) for n in "ab"]  # made at run time: not interned constants
    known: dict[str, bool] = {}
    ask_keys(dest, keys, set(), known)
    assert known == {"c/linux-64/a-1-0.conda": True, "c/linux-64/b-1-0.conda": False}
    assert [k for k in known if not any(k is key for key in keys)] == []


def test_an_archives_heads_share_their_subdir_name_version_and_size() -> None:
    from airgap.core.archive_index import read_records
    from airgap.core.manifest import PackageEntry

    records = {}
    for i in range(6):
        name, version = f"n{i % 2}", "1.0" if i % 3 else "2.0"
        fn = f"{name}-{version}-{i}.conda"
        records[fn] = {"name": name, "version": version, "build": f"b{i % 2}", "subdir": "linux-64", "size": 1000 + i % 2}
    listed = {fn: PackageEntry(fn, "a" * 64, int(str(r["size"]))) for fn, r in records.items()}
    subdir = "".join(["linux", "-64"])  # the caller's string, made at run time
    rd = read_records(msgspec.json.encode({"packages.conda": records}), subdir, "t", listed)
    assert rd is not None
    section = rd.packages_conda
    assert isinstance(section, rawindex.LazyRecords)
    heads = [h for fn in records if isinstance(h := cast(object, section.head(fn)), rawindex.Head)]
    assert len(heads) == len(records) and all(h.subdir is subdir for h in heads)
    for field in ("name", "version", "build"):
        firsts: dict[str, object] = {}
        assert all(firsts.setdefault(getattr(h, field), getattr(h, field)) is getattr(h, field) for h in heads)
    assert all(h.size is listed[fn].size for h, fn in zip(heads, records, strict=True))
    assert [rd.packages_conda[fn] for fn in records] == list(records.values())  # the records themselves unchanged


def test_the_manifests_entries_keep_the_records_file_name_strings() -> None:
    from airgap.core.archive_index import read_records
    from airgap.core.manifest import PackageEntry

    records = {f"p{i}-1.0-0.conda": {"name": f"p{i}", "version": "1.0", "build": "0", "size": 7} for i in range(5)}
    listed = {fn: PackageEntry("".join([fn[:3], fn[3:]]), "a" * 64, 7) for fn in records}  # copies made at run time
    before = [e.filename for e in listed.values()]
    rd = read_records(msgspec.json.encode({"packages.conda": records}), "linux-64", "t", listed)
    assert rd is not None and isinstance(rd.packages_conda, rawindex.LazyRecords)
    keys = list(rd.packages_conda)
    assert [e.filename for e in listed.values()] == before  # equal values
    assert all(e.filename is key for e, key in zip(listed.values(), keys, strict=True))  # one string: the record's key


def test_a_change_asking_about_its_keys_leaves_no_copy_of_the_names_in_the_destination() -> None:
    store = MemoryStore(f"one-copy-{uuid.uuid4().hex[:8]}")
    store.put("c/linux-64/a-1-0.conda", b"x")
    dest = MemoryDestination(store)
    dest.remember_listings(True)  # under the lock
    try:
        known: dict[str, bool] = {}
        ask_keys(dest, ["c/linux-64/a-1-0.conda", "c/linux-64/b-1-0.conda"], set(), known)
        assert known == {"c/linux-64/a-1-0.conda": True, "c/linux-64/b-1-0.conda": False}
        assert dest._sized == {}  # the change keeps the answers; the destination does not keep them again
        assert dest.sizes_in("c/linux-64", ["a-1-0.conda", "c-1-0.conda"]) == {"a-1-0.conda": 1}
        assert dest._sized == {"c/linux-64": {"a-1-0.conda": 1, "c-1-0.conda": None}}  # a plain question is remembered
        store.delete(["c/linux-64/a-1-0.conda"])
        assert dest.files_among("c/linux-64", ["c/linux-64/a-1-0.conda"]) == {"c/linux-64/a-1-0.conda"}  # from what it kept
    finally:
        dest.remember_listings(False)
