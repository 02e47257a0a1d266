"""The index and the receipt written in pieces, never held whole (decision 0017): the same bytes as ever.

``json_pieces`` concatenated is ``Repodata.to_bytes`` (dict records, records kept as bytes, opaque
ones, sections of one piece and of many), refusing what ``to_bytes`` refuses before anything is
written; ``write_file`` leaves a ``.zst`` byte-identical to a one-call compression, or nothing at
all; ``receipt_pieces`` is ``receipt_json``; the mapped pages of an index read go back to the page
cache; the engine publishes into a remote store from a scratch folder it removes.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import snapshot_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from airgap._safepath import release_views, view_nofollow
from airgap.compress import INDEX_LEVEL, zstd_compress
from airgap.core.held_bytes import receipt_pieces
from airgap.core.rawindex import trusted_repodata
from airgap.core.receipt import Held, Receipt, receipt_json
from airgap.core.receipt_fast import parse_receipt_fast
from airgap.core.repodata import Repodata, parse_repodata
from airgap.core.repodata_stream import json_pieces
from airgap.destinations.memory import MemoryDestination, MemoryStore
from airgap.destinations.streamed import SCRATCH, scratch_folder, write_file, write_index
from airgap.errors import IntegrityError

DATA = Path(__file__).resolve().parent / "data" / "repodata"
SHA = "ab" * 32


def _rec(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "build": "0", "sha256": SHA, "size": 10, "timestamp": 1, **extra}


def _index(n: int, **extra: Any) -> Repodata:
    rd = Repodata("linux-64", {"subdir": "linux-64", "base_url": "https://x/"}, repodata_version=1, extra={"metadata": {"k": "v"}})
    for i in range(n):
        rd.put(f"p{i % 7}-{i}-0.conda", _rec(f"p{i % 7}", str(i), **extra))
        rd.put(f"p{i % 5}-{i}-0.tar.bz2", _rec(f"p{i % 5}", str(i), depends=["python >=3.9"], f=1.5))
    rd.removed = ["gone-1-0.tar.bz2"]
    return rd


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.dictionaries(
        st.from_regex(r"[a-z]{1,4}-[0-9]-0\.(conda|tar\.bz2)", fullmatch=True), st.dictionaries(texts, values), max_size=30
    ),
    chunk=st.integers(1, 8),
    keep_base_url=st.booleans(),
    opaque=st.booleans(),
)
def test_the_pieces_are_to_bytes(records: dict[str, dict[str, Any]], chunk: int, keep_base_url: bool, opaque: bool) -> None:
    rd = Repodata("noarch", {"subdir": "noarch", "base_url": "../x/"}, extra={"z": [1, {"a": None}]}, repodata_version=2)
    for fn, record in records.items():
        rd.put(fn, record)
    if opaque and records:
        fn = sorted(records)[0]
        rd.drop(fn)
        rd.opaque["packages.conda" if fn.endswith(".conda") else "packages"] = {fn: {"odd": True}}
    pieces = list(json_pieces(rd, keep_base_url, chunk=chunk))
    assert b"".join(pieces) == rd.to_bytes(keep_base_url)


@pytest.mark.parametrize("snapshot", ["main_noarch_2018-08.repodata.json", "r_linux-64_2018-08.repodata.json.zst"])
def test_an_index_read_as_bytes_comes_out_whole_in_pieces_none_of_them_big(snapshot: str) -> None:
    subdir = snapshot.split("_")[1]
    strict = parse_repodata(snapshot_bytes(DATA / snapshot), subdir, snapshot)
    raw = strict.to_bytes()
    trusted = trusted_repodata(raw, subdir, snapshot)
    assert trusted is not None
    trusted.put("zz-new-1-0.conda", _rec("zz-new", "1"))  # a delta: one record a dict among the bytes
    trusted.drop(sorted(trusted.packages_conda or trusted.packages)[0])
    pieces = list(json_pieces(trusted, chunk=64))
    assert b"".join(pieces) == trusted.to_bytes()
    assert len(pieces) > 4 and max(map(len, pieces)) < len(raw) / 4  # never the index at once


@pytest.mark.parametrize("n", [3, 6_000])  # the few dicts looked at first; many: each piece holding a null
def test_a_value_json_cannot_carry_is_refused_as_to_bytes_refuses_it_and_nothing_is_left(n: int, tmp_path: Path) -> None:
    rd = _index(n)
    rd.put("bad-1-0.conda", _rec("bad", "1", score=math.nan))
    with pytest.raises(ValueError) as whole:
        rd.to_bytes()
    with pytest.raises(ValueError) as pieces:
        write_index(json_pieces(rd), tmp_path)
    assert str(pieces.value) == str(whole.value) and "not finite" in str(pieces.value)
    assert list(tmp_path.iterdir()) == []  # neither file stays


def test_the_files_written_are_the_blobs_they_say_and_the_zst_is_a_one_call_compression(tmp_path: Path) -> None:
    rd = _index(3_000)
    files = dict(write_index(json_pieces(rd, chunk=100), tmp_path))
    assert list(files) == ["repodata.json", "repodata.json.zst"]
    data = {name: Path(blob.path).read_bytes() for name, blob in files.items()}
    for name, blob in files.items():
        assert (blob.offset, blob.size, blob.sha256) == (0, len(data[name]), hashlib.sha256(data[name]).hexdigest())
    assert data["repodata.json"] == rd.to_bytes()
    assert data["repodata.json.zst"] == zstd_compress(rd.to_bytes(), INDEX_LEVEL)  # what other backends write
    assert zstandard.get_frame_parameters(data["repodata.json.zst"]).content_size == len(data["repodata.json"])
    (plain,) = write_file([b"ab", memoryview(b"cd")], tmp_path, "receipt.json")
    assert Path(plain.path).read_bytes() == b"abcd" and Path(plain.path).parent == tmp_path


def _receipt(n: int) -> Receipt:
    r = Receipt()
    for i in range(n):
        r.hold("main", "linux-64", f"p-{i}-0.conda", SHA, i, "main" if i % 2 else None)
    r.hold("main", "noarch", "n-1-0.conda", SHA, 1, None)
    r.installers = {"inst": {"a.sh": Held(SHA, 3)}}
    r.extra = {"note": "ünïcode"}
    return r


def test_the_receipt_in_pieces_is_the_receipt() -> None:
    careful = _receipt(300)
    data = receipt_json(careful.to_json(encodable=True))
    fast = parse_receipt_fast(data, "receipt.json")  # sections kept as bytes, spliced when written
    fast.forget("main", "linux-64", "p-7-0.conda")
    fast.hold("main", "linux-64", "p-700-0.conda", SHA, 700, "main")
    careful.forget("main", "linux-64", "p-7-0.conda")
    careful.hold("main", "linux-64", "p-700-0.conda", SHA, 700, "main")
    for receipt in (fast, careful):
        doc = receipt.to_json(encodable=True)
        assert b"".join(receipt_pieces(doc)) == receipt_json(doc)
    assert b"".join(receipt_pieces(fast.to_json(encodable=True))) == receipt_json(careful.to_json(encodable=True))
    plain = {"format": "airgap-receipt/1", "channels": {"c": {"s": {"f": {"sha256": SHA, "size": 1}}}}, "archives": []}
    assert b"".join(receipt_pieces(plain)) == receipt_json(plain)  # nothing kept as bytes: one piece


def _mapped_kib(path: Path) -> int:
    """This process's resident KiB of its maps of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            first = line.split()[0] if line.strip() else ""
            if "-" in first and not first.endswith(":"):
                inside = line.rstrip().endswith(str(path))
            elif inside and first == "Rss:":
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not (hasattr(mmap, "MADV_DONTNEED") and os.path.exists("/proc/self/smaps")), reason="Linux maps")
def test_the_pages_of_a_mapped_index_go_back_and_its_bytes_stay(tmp_path: Path) -> None:
    path = tmp_path / "repodata.json"
    path.write_bytes(b"x" * (8 << 20))
    mapped = view_nofollow(path)
    assert isinstance(mapped, mmap.mmap)
    assert hashlib.sha256(mapped).hexdigest()  # every page touched
    before = _mapped_kib(path)
    release_views()
    after = _mapped_kib(path)
    assert before >= 8 << 10 and after < before // 8
    assert mapped[: 1 << 20] == b"x" * (1 << 20)  # read again from the page cache


def test_a_remote_store_gets_its_index_from_a_scratch_folder_that_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dest = MemoryDestination(MemoryStore("streamed-remote"))
    rd = _index(500)
    with dest.locked():
        change = dest.begin("import")
        change.plan([], [("main", "linux-64")])
        change.publish_index("main", "linux-64", rd)
        change.write_receipt(Receipt().to_json(encodable=True))
        change.commit()
        published = change.published_files("main", "linux-64")
    store = MemoryStore("streamed-remote")
    raw = store.get("main/linux-64/repodata.json")
    assert raw == rd.to_bytes() and store.get("main/linux-64/repodata.json.zst") == zstd_compress(raw, INDEX_LEVEL)
    assert published["repodata.json"] == hashlib.sha256(raw).hexdigest()
    assert store.get(".airgap/receipt.json") == receipt_json(Receipt().to_json(encodable=True))
    assert list(tmp_path.iterdir()) == []  # the scratch folders are gone


def test_a_document_in_pieces_is_kept_whole_or_not_at_all() -> None:
    store = MemoryStore("streamed-document")
    dest = MemoryDestination(store)

    def failing() -> Iterator[bytes]:
        yield b"{"
        raise IntegrityError("sbom blob: expected 10 bytes once decompressed, found 11")

    with dest.locked():
        change = dest.begin("import")
        change.plan([], [])
        assert change.put_document("sbom/a.cdx.json", iter([b'{"a":', b"1}"])) == ".airgap/sbom/a.cdx.json"
        with pytest.raises(IntegrityError):
            change.put_document("sbom/b.cdx.json", failing())
        change.rollback()
    assert store.get(".airgap/sbom/a.cdx.json") is None and store.get(".airgap/sbom/b.cdx.json") is None  # undone
    with dest.locked():
        change = dest.begin("import")
        change.plan([], [])
        change.put_document("sbom/a.cdx.json", iter([b'{"a":', b"1}"]))
        change.write_receipt(Receipt().to_json(encodable=True))
        change.commit()
    assert store.get(".airgap/sbom/a.cdx.json") == b'{"a":1}'


def test_scratch_folders_a_killed_upload_left_are_swept_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"{SCRATCH}999999999-abc"  # above any pid_max: no such process
    alive = tmp_path / f"{SCRATCH}{os.getpid()}-def"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "receipt.json").write_bytes(b"{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_bytes(b"x")
    (tmp_path / f"{SCRATCH}999999998-link").symlink_to(elsewhere)
    (tmp_path / "airgap-upload-notapid-x").mkdir()
    with scratch_folder() as made:
        assert Path(made).parent == tmp_path and Path(made).name.startswith(f"{SCRATCH}{os.getpid()}-")
    assert not dead.exists() and (alive / "receipt.json").exists() and (elsewhere / "keep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, "elsewhere", f"{SCRATCH}999999998-link", "airgap-upload-notapid-x"]
    )


def test_the_pieces_read_a_trusted_sections_own_mapping_never_a_copy() -> None:
    """300,000 entries copied were 10 MB held while ``repodata.json`` was written (issue 15); shared, never changed."""
    rd = _index(40)
    trusted = trusted_repodata(rd.to_bytes(), "linux-64", "test")
    assert trusted is not None
    section = trusted.packages_conda.encodable()  # type: ignore[attr-defined]
    before = dict(section)
    doc = trusted.to_document(raw=True, shared=True)
    assert doc["packages.conda"] is section  # in key order, nothing opaque: the mapping itself
    assert trusted.to_document(raw=True)["packages.conda"] is not section  # a caller may change its document
    assert b"".join(json_pieces(trusted, chunk=3)) == trusted.to_bytes() == rd.to_bytes()
    assert section == before  # read, never changed
    rd.opaque["packages.conda"] = {"odd-1-0.conda": {"name": 1}}
    assert rd.to_document(raw=True, shared=True)["packages.conda"] is not rd.packages_conda  # merged: a new dict


def test_each_formats_leftovers_go_back_before_the_next_is_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shards' freed heap (~50 MB at 300,000 records) was still resident while repodata.json was written."""
    import airgap.destinations.engine as engine

    events: list[str] = []
    real = engine.StoreChange._publish_format

    def publish_format(self: engine.StoreChange, fmt: Any, *args: Any) -> None:
        events.append(fmt.name)
        real(self, fmt, *args)

    monkeypatch.setattr(engine.StoreChange, "_publish_format", publish_format)

    def give_back() -> bool:
        events.append("give back")
        return True

    monkeypatch.setattr(engine, "give_back", give_back)
    dest = MemoryDestination(MemoryStore("streamed-give-back"))
    with dest.locked():
        change = dest.begin("import")
        change.plan([], [("main", "linux-64")])
        change.publish_index("main", "linux-64", _index(20))
        change.rollback()
    assert events == ["shards", "give back", "repodata", "give back"]


def test_the_pieces_freed_heap_goes_back_as_the_index_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A section's members are handed on as encoded (no slice, no join: two copies of ~1.7 MB a piece), and the heap
    their buffers freed goes back every ``RELEASE_EVERY`` bytes (~40 MB stayed resident at 300,000 records)."""
    import airgap.destinations.streamed as streamed

    rd = _index(300)
    pieces = list(json_pieces(rd, chunk=50))
    assert sum(isinstance(p, memoryview) for p in pieces) >= 10  # each piece of members as msgspec wrote it
    calls: list[int] = []

    def give_back() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(streamed, "give_back", give_back)
    monkeypatch.setattr(streamed, "RELEASE_EVERY", 4096)
    files = dict(write_index(json_pieces(rd, chunk=50), tmp_path))
    assert Path(files["repodata.json"].path).read_bytes() == rd.to_bytes()
    assert len(calls) >= len(rd.to_bytes()) // 4096 // 2  # every few KiB here, as every 16 MiB of a big index
