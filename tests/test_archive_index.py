"""An archive's repodata kept as verbatim bytes (airgap/core/archive_index.py, decision 0018): the same
records, the same published bytes as the strict parse, and every hostile blob sent the strict way."""

from __future__ import annotations

import functools
import json
import mmap
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from helpers import cli

from airgap import _safepath
from airgap.core import rawindex
from airgap.core.archive_index import read_records
from airgap.core.rawindex import LazyRecords
from airgap.core.repodata import merge, parse_repodata

# the shared fixtures (archives): tests/remote.py
pytest_plugins = ("remote", "ociparts")


class Entry(NamedTuple):
    sha256: str
    size: int


def _rec(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "build": "0", "sha256": name[0] * 64, "size": 10 + len(version), **extra}


def _doc() -> dict[str, Any]:
    return {
        "info": {"subdir": "linux-64"},
        "packages": {"a-1.0-0.tar.bz2": _rec("a", "1.0", depends=["python >=3.9"], x=1.5)},
        "packages.conda": {f"{n}-{v}-0.conda": _rec(n, v, license="MIT", timestamp=1700000000000) for n in "bcd" for v in ("1.0", "2.0")},
        "removed": ["a-0.9-0.tar.bz2"],
        "repodata_version": 1,
    }


def _listed(doc: dict[str, Any]) -> dict[str, Entry]:
    return {f: Entry(r["sha256"], r["size"]) for s in ("packages", "packages.conda") for f, r in doc.get(s, {}).items()}


def test_records_are_kept_as_bytes_and_equal_the_strict_parse() -> None:
    doc = _doc()
    data = msgspec.json.encode(doc)  # as an export writes it: compact (a record's bytes are published as they are)
    rd = read_records(data, "linux-64", "t", _listed(doc))
    strict = parse_repodata(data, "linux-64", "t")
    assert rd is not None and isinstance(rd.packages_conda, LazyRecords)
    assert all(type(v) is msgspec.Raw for v in rawindex.entries(rd.packages_conda).values())
    assert dict(rd.records()) == dict(strict.records())
    assert rd.to_bytes() == strict.to_bytes()
    assert (rd.info, rd.removed, rd.repodata_version, rd.extra) == (strict.info, strict.removed, strict.repodata_version, strict.extra)


def _edit(path: tuple[str, ...], value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


C = "b-1.0-0.conda"
SPLICE = "@splice@"  # where a value json.dumps cannot write goes
HOSTILE: dict[str, Any] = {
    "a number no float holds": (_edit(("packages.conda", C, "x"), SPLICE), b"1e999"),
    "invalid UTF-8 in a string": (_edit(("packages.conda", C, "license"), SPLICE), b'"\xed\xa0\x80"'),
    "a lone surrogate": (_edit(("packages.conda", C, "license"), SPLICE), b'"\\ud800"'),
    "NaN": (_edit(("packages.conda", C, "x"), SPLICE), b"NaN"),
    "a name that is no string": (_edit(("packages.conda", C, "name"), 5), None),
    "another subdir": (_edit(("packages.conda", C, "subdir"), "osx-64"), None),
    "a subdir that is a list": (_edit(("packages.conda", C, "subdir"), ["linux-64"]), None),
    "a record that is no object": (_edit(("packages.conda", C), ["b"]), None),
    "an unsafe file name": (_edit(("packages.conda", "../b-9-0.conda"), _rec("b", "9")), None),
    "a .conda name among .tar.bz2": (_edit(("packages", "b-9-0.conda"), _rec("b", "9")), None),
    "another sha256": (_edit(("packages.conda", C, "sha256"), "f" * 64), None),
    "another size": (_edit(("packages.conda", C, "size"), 999), None),
    "info that is no object": (_edit(("info",), []), None),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_blob_goes_the_strict_way(case: str) -> None:
    """Anything the strict parse would skip, refuse or report sends the blob there (None), so its message is as ever."""
    edit, splice = HOSTILE[case]
    doc = _doc()
    listed = _listed(doc)
    edit(doc)
    data = json.dumps(doc).encode()
    if splice is not None:
        data = data.replace(f'"{SPLICE}"'.encode(), splice)
        assert splice in data
    assert read_records(data, "linux-64", "t", listed) is None


def test_a_file_the_manifest_does_not_list_or_lists_beyond_the_records() -> None:
    doc = _doc()
    data = json.dumps(doc).encode()
    listed = _listed(doc)
    assert read_records(data, "linux-64", "t", {**listed, "z-1-0.conda": Entry("z" * 64, 1)}) is None
    del listed[C]
    assert read_records(data, "linux-64", "t", listed) is None


def test_a_full_import_publishes_what_the_strict_parse_did_and_holds_no_record_decoded(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same files, byte for byte, as when the archive's repodata was parsed to dicts; no record decoded to be kept."""
    import airgap.ops._archive as archive_ops
    import airgap.ops.import_ as import_ops

    # one clock for both imports: the receipt and the pages record when an archive was imported (to the second)
    monkeypatch.setattr(import_ops, "run_import", functools.partial(import_ops.run_import, clock=lambda: 1_800_000_000.0))
    kept: list[str] = []
    real_getitem = LazyRecords.__getitem__

    def getitem(self: LazyRecords, filename: str) -> dict[str, Any]:
        kept.append(filename)
        return real_getitem(self, filename)

    monkeypatch.setattr(LazyRecords, "__getitem__", getitem)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1)  # the blob decompressed to a mapped file, as a big one is
    assert cli("import", archives["v1"], "--into", tmp_path / "raw", "--trusted-key", archives["pub"]).exit_code == 0
    assert kept == []  # shards, digests and pages decoded each record alone, for the moment it was read
    monkeypatch.setattr(archive_ops, "read_records", lambda *a: None)
    assert cli("import", archives["v1"], "--into", tmp_path / "strict", "--trusted-key", archives["pub"]).exit_code == 0

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    raw, strict = files(tmp_path / "raw"), files(tmp_path / "strict")
    assert raw.keys() == strict.keys() and any(k.endswith("repodata_shards.msgpack.zst") for k in raw)
    assert [k for k in raw if raw[k] != strict[k]] == []  # the receipt too: its name index digests the same records
    assert json.loads(raw[".airgap/receipt.json"])["name_index"]


def test_an_archives_records_merged_into_a_plain_index_leave_its_heads_undecoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A delta's records merged into an index read on its plain path: none of the index's heads decoded by the merge;
    when every head is asked for, a replaced record's head is the archive's."""
    sections: list[str] = []
    real = rawindex._section_heads

    def counting(data: bytes, section: str) -> dict[str, rawindex.Head]:
        sections.append(section)
        return real(data, section)

    monkeypatch.setattr(rawindex, "_section_heads", counting)
    doc = _doc()
    published = parse_repodata(msgspec.json.encode(doc), "linux-64", "t").to_bytes()
    old = rawindex.trusted_repodata(published, "linux-64", "t", plain=True)
    assert old is not None
    delta = {"info": {"subdir": "linux-64"}, "packages.conda": {C: _rec("b", "1.0", license="BSD", timestamp=5)}}
    data = msgspec.json.encode(delta)
    incoming = read_records(data, "linux-64", "t", _listed(delta))
    assert incoming is not None
    merged = merge(old, incoming)
    assert sections == []
    heads = dict(rawindex.heads(merged.packages_conda))
    assert sections == ["packages.conda"]  # asked for: decoded then, once
    assert heads[C].timestamp == 5 and heads["c-2.0-0.conda"].name == "c"
    assert merged.get(C) == _rec("b", "1.0", license="BSD", timestamp=5)


def test_a_big_blob_is_spilled_to_a_mapped_file_whose_pages_can_be_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    pieces = [bytes([i]) * 1000 for i in range(50)]
    assert _safepath.spill(iter(pieces), 50_000) == b"".join(pieces)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1000)
    small = _safepath.spill(iter(pieces[:1]), 999)
    assert type(small) is bytes and small == pieces[0]
    mapped = _safepath.spill(iter(pieces), 50_000)
    assert isinstance(mapped, mmap.mmap) and mapped in _safepath._VIEWS
    views = [memoryview(mapped)[i * 1000 : i * 1000 + 1000] for i in range(50)]  # what msgspec.Raw holds
    _safepath.release_views(mapped)
    assert [bytes(v) for v in views] == pieces  # given back, read again from the page cache (or the disk)
    assert _safepath.spill(iter([]), 5000) == b""


def test_a_document_with_another_top_level_key_is_read_in_two_passes_the_same() -> None:
    """One pass where the blob holds only an index's keys; another key (kept in the envelope) takes two, same records."""
    doc = {**_doc(), "x_site_note": {"kept": True}}
    data = msgspec.json.encode(doc)
    rd = read_records(data, "linux-64", "t", _listed(doc))
    strict = parse_repodata(data, "linux-64", "t")
    assert rd is not None and rd.extra == strict.extra and rd.extra.get("x_site_note") == {"kept": True}
    assert rd.to_bytes() == strict.to_bytes()


def test_a_mapped_blobs_pages_are_given_back_while_its_records_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob leaves the resident set after the scan and every RELEASE_EVERY records (it was the peak with the heads)."""
    import airgap.core.archive_index as archive_index

    given: list[object] = []
    monkeypatch.setattr(archive_index, "release_views", given.append)
    monkeypatch.setattr(archive_index, "RELEASE_EVERY", 2)
    doc = _doc()  # 7 records: 1 .tar.bz2, 6 .conda
    data = msgspec.json.encode(doc)
    assert read_records(data, "linux-64", "t", _listed(doc)) is not None
    assert given == [data] * (1 + 0 + 3)  # after the scan; none among one .tar.bz2 record; three times among six


def test_an_archives_repodata_and_sbom_blobs_are_kept_mapped_until_read(archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Big in-memory blobs go to an unlinked temporary file, mapped (37 MB of heap at 300,000 files); small ones stay bytes."""
    from airgap.ops._archive import load_repodata_blob, open_verified, stream_blobs
    from airgap.progress import null_progress
    from airgap.signing import load_trusted_keys

    def blobs() -> tuple[Any, dict[str, bytes | mmap.mmap]]:
        opened = open_verified(archives["v1"], load_trusted_keys([str(archives["pub"])]))
        with opened.stream:
            return opened.manifest, stream_blobs(opened, null_progress, "t")

    manifest, small = blobs()
    monkeypatch.setattr(_safepath, "MAP_FROM", 1)
    _, mapped = blobs()
    kinds = {b.sha256: b.kind for b in manifest.blobs}
    assert sorted(kinds[s] for s in mapped) == sorted(kinds[s] for s in small) and "repodata" in kinds.values()
    assert all(type(v) is bytes for v in small.values()) and all(isinstance(v, mmap.mmap) for v in mapped.values())
    assert {s: v[:] for s, v in mapped.items()} == small
    sub = manifest.channels[0].subdirs[0]
    one, two = (load_repodata_blob(b[sub.repodata.sha256], sub, "c", "t") for b in (small, mapped))
    assert one.to_bytes() == two.to_bytes()


def test_before_a_big_index_is_split_the_compressed_blob_and_the_free_heap_are_given_back(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split of a mapped index touches every page of its records at once (123 MB at 300,000 records: a full
    import's peak): the compressed blob's pages and the heap's free memory go back before it, not after."""
    import airgap._heap
    import airgap.ops._archive as archive_ops

    events: list[str] = []
    real_read, real_release, real_give = read_records, _safepath.release_views, airgap._heap.give_back

    def read(*args: Any) -> Any:
        events.append("split")
        return real_read(*args)

    def release(*only: object) -> None:
        events.append("release " + ",".join(type(m).__name__ for m in only))
        real_release(*only)

    def give() -> bool:
        events.append("give back")
        return real_give()

    monkeypatch.setattr(archive_ops, "read_records", read)
    monkeypatch.setattr(archive_ops, "release_views", release)
    monkeypatch.setattr(archive_ops, "give_back", give)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1)  # the blob decompressed to a mapped file, as a big one is
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    first = events.index("split")
    assert events[first - 2 : first] == ["release mmap", "give back"], events
    events.clear()
    monkeypatch.setattr(_safepath, "MAP_FROM", 1 << 40)  # a small index, read into memory: nothing to give back first
    assert cli("import", archives["v1"], "--into", tmp_path / "e", "--trusted-key", archives["pub"]).exit_code == 0
    assert "give back" not in events[: events.index("split")]
