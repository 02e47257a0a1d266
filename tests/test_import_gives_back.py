"""What a full import gives back as it goes (issue 15): at 300,000 files, each thing held to the end is tens of MB.

Mapped records' pages go back during each pass over them (the shards, the receipt's digests, the pages), the
receipt's held files are written a chunk at a time, and the staged blobs' references are made when asked.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap import _safepath
from airgap.core import delta_index, held_bytes, shards
from airgap.core.jsonbytes import encode_sorted
from airgap.core.rawindex import LazyRecords, trusted_repodata
from airgap.core.receipt import Held, Receipt, receipt_json
from airgap.core.repodata import Repodata, parse_repodata
from airgap.destinations.base import BlobRef
from airgap.ops.pages import write_pages
from airgap.ops.publish import Blobs

# the shared fixtures (archives): tests/remote.py
pytest_plugins = ("remote", "ociparts")

SHA = "ab" * 32


def _receipt(n: int) -> Receipt:
    r = Receipt()
    for i in range(n):
        r.hold("main", "linux-64", f"pkg{i:03d}-1.0-0.tar.bz2", SHA, i, "main" if i % 3 else None)
    r.hold("main", "noarch", "x-1-0.conda", SHA, None)
    return r


def test_a_big_held_section_is_written_in_chunks_with_the_bytes_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = receipt_json(_receipt(20).to_json(encodable=True))  # 20 entries: one chunk
    monkeypatch.setattr(held_bytes, "CHUNK", 3)
    r = _receipt(20)
    files = r.channels["main"]["linux-64"]
    section = held_bytes.Section(files)
    pieces = [bytes(p) for p in section.pieces()]
    assert b"".join(pieces) == encode_sorted(files)
    assert section.sha256 == hashlib.sha256(encode_sorted(files)).hexdigest()
    assert max(p.count(b'"sha256"') for p in pieces) == 3  # never more than a chunk's entries in one piece
    doc = r.to_json(encodable=True)
    assert receipt_json(doc) == whole  # the same receipt, held_sha256 included
    assert b"".join(held_bytes.receipt_pieces(r.to_json(encodable=True))) == whole


def test_a_section_of_a_chunk_or_none_is_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(held_bytes, "CHUNK", 3)
    for n in (0, 1, 3):
        files = {f"p{i}-1-0.conda": Held(SHA, i) for i in range(n)}
        assert [bytes(p) for p in held_bytes.Section(files).pieces()] == [encode_sorted(files)]


def _document(names: int) -> dict[str, Any]:
    packages: dict[str, dict[str, Any]] = {}
    for i in range(names):
        for v in ("1.0", "2.0"):
            packages[f"n{i:02d}-{v}-0.tar.bz2"] = {"name": f"n{i:02d}", "version": v, "build": "0", "build_number": 0, "depends": []}
    return {"packages": packages, "packages.conda": {}}


def test_the_shards_pass_calls_every_and_renders_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document(9)
    plain = shards.render_changed("linux-64", doc, None, {})
    calls: list[int] = []
    monkeypatch.setattr(shards, "EVERY", 2)
    out = shards.render_changed("linux-64", doc, None, {}, every=lambda: calls.append(1))
    assert out == plain
    assert len(calls) == 4  # after the 1st, 3rd, 5th and 7th shard of 9


def test_the_digests_pass_calls_every_and_digests_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rd = Repodata("linux-64", {"subdir": "linux-64"}, repodata_version=1)
    for fn, rec in _document(9)["packages"].items():
        rd.put(fn, rec)
    plain = delta_index.digests(rd)
    calls: list[int] = []
    monkeypatch.setattr(delta_index, "EVERY", 3)
    assert delta_index.digests(rd, lambda: calls.append(1)) == plain
    assert len(plain) == 9 and len(calls) == 3


def test_a_full_import_gives_back_mapped_pages_during_each_pass(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shards, the digests and the pages each give back the records' pages as they go, not only once done."""
    import airgap.destinations.formats as formats
    import airgap.ops.pages as pages
    import airgap.ops.publish as publish

    callers: list[str] = []
    real = _safepath.release_views

    def release(*only: object) -> None:
        callers.append(sys._getframe(1).f_code.co_name)
        real(*only)

    for module in (formats, pages, publish):
        monkeypatch.setattr(module, "release_views", release)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1)  # the archive's repodata spilled to a map, as a big one is
    monkeypatch.setattr(shards, "EVERY", 1)
    monkeypatch.setattr(delta_index, "EVERY", 1)
    monkeypatch.setattr(pages, "_BATCH", 1)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    assert {"render_changed", "_digests", "_name_pages"} <= set(callers)


def test_staged_blobs_are_referenced_when_asked(tmp_path: Path) -> None:
    blobs = Blobs()
    blobs.folder = f"{tmp_path}/"
    size = 123456789
    blobs.staged["a" * 64] = size
    remote = BlobRef(tmp_path / "archive.tar", 512, 7, "b" * 64, (1, 2, 3, 4))
    blobs.refs["b" * 64] = remote
    assert blobs["a" * 64] == BlobRef(f"{tmp_path}/{'a' * 64}", 0, size, "a" * 64)
    assert blobs["a" * 64].size is size  # the manifest's int, not a copy
    assert blobs["b" * 64] is remote
    assert sorted(blobs) == ["a" * 64, "b" * 64] and len(blobs) == 2
    with pytest.raises(KeyError):
        blobs["c" * 64]
    blobs.clear()
    assert len(blobs) == 0 and not blobs.staged and not blobs.refs


def test_a_new_subdirs_index_is_the_one_its_digests_read(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty destination, the receipt's digests read the new index itself, not a second copy of the archive's."""
    import airgap.ops.publish as publish

    carried: dict[tuple[str, str], Repodata] = {}
    published: dict[tuple[str, str], Repodata] = {}
    real_record, real_pages = delta_index.record, write_pages

    def record(receipt: Receipt, manifest: Any, target_rd: dict[tuple[str, str], Repodata], **kw: Any) -> None:
        carried.update(target_rd)
        real_record(receipt, manifest, target_rd, **kw)

    def pages(dest: Any, channels: Any, origin: Any, new_index: dict[tuple[str, str], Repodata], *rest: Any) -> None:
        published.update(new_index)
        real_pages(dest, channels, origin, new_index, *rest)

    monkeypatch.setattr(delta_index, "record", record)
    monkeypatch.setattr(publish, "write_pages", pages)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    subdirs = [key for key in carried if key[1] != "noarch" or len(carried[key])]
    assert subdirs and all(any(carried[key] is rd for rd in published.values()) for key in subdirs)
    receipt = json.loads((tmp_path / "d" / ".airgap" / "receipt.json").read_bytes())
    published_json = (tmp_path / "d" / "main" / "linux-64" / "repodata.json").read_bytes()
    names = delta_index.digests(parse_repodata(published_json, "linux-64", "t"))  # what the archive's own records digest to
    assert names and receipt["name_index"]["main"]["linux-64"]["names"] == names


def test_the_archives_documents_go_once_read_for_the_last_time(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compressed repodata and SBOM blobs are held until the SBOM is kept, not to the end of the import."""
    import airgap.ops.publish as publish
    from airgap.ops.review import keep_sbom

    seen: list[tuple[Any, int]] = []

    def spy(change: Any, manifest: Any, blobs: dict[str, bytes]) -> str | None:
        seen.append((blobs, len(blobs)))
        return keep_sbom(change, manifest, blobs)

    monkeypatch.setattr(publish, "keep_sbom", spy)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    [(blobs, held)] = seen
    assert held >= 2 and blobs == {}  # the repodata and the SBOM were there when it was kept, then let go
    assert list((tmp_path / "d" / ".airgap" / "sbom").iterdir())  # and the SBOM was kept all the same


def test_a_file_replaced_in_place_is_found_by_size_where_its_record_has_no_sha256() -> None:
    """The manifest's sizes are looked up only for such a record (no dict of every blob otherwise)."""
    from types import SimpleNamespace
    from typing import cast

    from airgap.core.manifest import Manifest, PackageEntry
    from airgap.ops.import_plan import ImportPlan
    from airgap.ops.publish import _replaced_in_place

    current = Repodata("linux-64", {"subdir": "linux-64"})
    current.put("a-1-0.conda", {"name": "a", "version": "1", "build": "0", "size": 5})  # no sha256: compared by size
    current.put("b-1-0.conda", {"name": "b", "version": "1", "build": "0", "size": 6, "sha256": "cd" * 32})
    current.put("c-1-0.conda", {"name": "c", "version": "1", "build": "0", "size": 7})
    names = ("a-1-0.conda", "b-1-0.conda", "c-1-0.conda")
    brought = [PackageEntry(fn, sha * 32, size) for fn, sha, size in zip(names, ("11", "22", "33"), (9, 6, 7), strict=True)]
    # the package entries' sizes: an import has let the package blobs' entries go (Manifest.forget_package_blobs)
    manifest = cast(Manifest, SimpleNamespace(blobs=(), channels=[SimpleNamespace(subdirs=[SimpleNamespace(packages=brought)])]))
    plan = cast(ImportPlan, SimpleNamespace(index=lambda tc, subdir: current if (tc, subdir) == ("c", "linux-64") else None))
    order = [(p.sha256, ("c", "linux-64", p.filename)) for p in brought]
    listed, interim, dropped = _replaced_in_place(plan, manifest, order)
    assert [place[2] for _, place in listed] == ["a-1-0.conda", "b-1-0.conda"]  # a: 5 bytes listed, 9 brought; b: other sha256
    assert dropped == {("c", "linux-64"): {"a-1-0.conda", "b-1-0.conda"}}
    assert list(interim[("c", "linux-64")].packages_conda) == ["c-1-0.conda"]


def test_the_placements_go_once_every_file_is_placed(archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict and a tuple per file (~24 MB at 300,000 files) are not held through the indexes and the receipt."""
    from airgap.ops.index_change import IndexPublisher

    seen: list[int] = []
    real = IndexPublisher.publish

    def publish(self: IndexPublisher, channel: str, subdir: str, *args: Any, **kwargs: Any) -> None:
        seen.append(len(self.plan.needed))
        real(self, channel, subdir, *args, **kwargs)

    monkeypatch.setattr(IndexPublisher, "publish", publish)
    dest = tmp_path / "d"
    assert cli("import", archives["v1"], "--into", dest, "--trusted-key", archives["pub"]).exit_code == 0
    assert seen and set(seen) == {0}
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert receipt["archives"] and any(receipt["channels"].values())  # the receipt still says what was brought


def test_the_package_blobs_entries_go_once_every_blob_is_streamed(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300,000 blob entries (17 MB) are not held through the indexes and the receipt; the totals and volumes stay."""
    from airgap.ops import publish

    seen: list[tuple[set[str], int, int, int]] = []
    real = publish.publish

    def spy(dest: Any, change: Any, plan: Any, blobs: Any, repodata_blobs: Any, opened: Any, *rest: Any) -> Any:
        m = opened.manifest
        seen.append(
            ({b.kind for b in m.blobs}, m.totals()["blobs"], m.volumes, sum(len(s.packages) for c in m.channels for s in c.subdirs))
        )
        return real(dest, change, plan, blobs, repodata_blobs, opened, *rest)

    monkeypatch.setattr(publish, "publish", spy)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    [(kinds, blobs, volumes, packages)] = seen
    assert "package" not in kinds and "repodata" in kinds  # the other blobs' entries stay
    assert blobs > packages > 0 and volumes == 1  # counted before they went


def test_the_digests_of_an_index_kept_as_bytes_are_those_of_its_pairs() -> None:
    """Digested a name at a time from its file names (no pair per record held): the digests of :func:`by_name`'s pairs."""
    doc = {
        "info": {"subdir": "linux-64"},
        "packages": {
            f"{n}-{v}-0.tar.bz2": {"name": n, "version": v, "build": "0", "build_number": 0, "depends": [], "size": 1}
            for n in ("a", "b-c", "d")
            for v in ("1", "2")
        },
        "packages.conda": {
            f"{n}-{v}-0.conda": {"name": n, "version": v, "build": "0", "build_number": 0, "depends": [], "size": 2}
            for n in ("b-c", "e")
            for v in ("2", "1")
        },
    }
    rd = trusted_repodata(json.dumps(doc).encode(), "linux-64", "test")  # records kept as their bytes
    assert rd is not None and isinstance(rd.packages, LazyRecords)
    assert delta_index.digests(rd) == delta_index.digests_of(delta_index.by_name(rd, as_stored=True))
    assert list(delta_index.digests(rd)) == ["a", "b-c", "d", "e"]


def test_the_sboms_copy_is_given_back_before_the_digests(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SBOM's copy left ~24 MB of freed heap at 300,000 files, resident while the receipt's digests were made."""
    from airgap.ops import publish

    events: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(publish, "keep_sbom", spy("sbom", getattr(publish, "keep_sbom")))  # noqa: B009 (mypy: not exported)
    monkeypatch.setattr(publish, "give_back", spy("give back", getattr(publish, "give_back")))  # noqa: B009
    monkeypatch.setattr(delta_index, "record", spy("digests", delta_index.record))
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    assert events[events.index("sbom") : events.index("digests") + 1] == ["sbom", "give back", "digests"]


def test_a_new_subdir_asks_no_file_whether_its_index_lists_it_otherwise(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subdir with no index yet lists nothing: its places are not looked at one by one (300,000 calls: 0.5 s)."""
    from airgap.ops import publish

    given: list[int] = []
    real = publish._replaced_in_place

    def spy(plan: Any, manifest: Any, order: Any) -> Any:
        order = list(order)
        given.append(len(order))
        return real(plan, manifest, order)

    monkeypatch.setattr(publish, "_replaced_in_place", spy)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    assert given == [0] and any((tmp_path / "d").rglob("*.conda"))
