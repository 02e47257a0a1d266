"""An archive's repodata blob in lines of records, split a line at a time (airgap/core/lined.py, decision 0021)."""

from __future__ import annotations

import json
import mmap
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.core import archive_index, lined, rawindex
from airgap.core.jsonbytes import ENCODER, encode
from airgap.testing.condapkg import PackageSpec, write_channel


def _doc(n: int, conda: int = 0) -> dict[str, Any]:
    rec = {"name": "p", "version": "1", "build": "0", "build_number": 0, "depends": ["a >=1"], "subdir": "linux-64", "size": 5}
    return {
        "info": {"subdir": "linux-64"},
        "packages": {f"p{k}-1-0.tar.bz2": {**rec, "name": f"p{k}", "sha256": f"{k:064x}"} for k in range(n)},
        "packages.conda": {f"q{k}-1-0.conda": {**rec, "name": f"q{k}"} for k in range(conda)},
        "removed": ["x-1-0.tar.bz2"],
        "repodata_version": 1,
    }


def _mapped(data: bytes) -> mmap.mmap:
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.flush()
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)


def _as_bytes(split: Any) -> Any:
    envelope, sections = split
    return envelope, {s: [(f, bytes(r)) for f, r in raws.items()] for s, raws in sections.items()}


def _one_pass(data: bytes) -> Any:
    try:
        return _as_bytes(rawindex.read_top(data))
    except (msgspec.DecodeError, RecursionError):
        return None


@pytest.fixture
def small_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lined, "LINE", 3)


def test_the_lines_are_the_same_document(small_lines: None) -> None:
    doc = _doc(10, conda=7)
    data = bytes(lined.encode_lined(doc, ENCODER))
    assert data.count(b"\n") == 2 * 2 + (4 - 1) + (3 - 1)  # each section opens and closes a line; 4 and 3 lines of records
    assert json.loads(data) == doc and data.replace(b"\n", b"") == encode(doc)


@pytest.mark.parametrize("n", [4, 6, 9])
def test_any_count_of_records_makes_the_same_document(small_lines: None, n: int) -> None:
    doc = _doc(n)
    data = bytes(lined.encode_lined(doc, ENCODER))
    assert json.loads(data) == doc and data.count(b"\n") == 2 + (n + 2) // 3 - 1 and data.replace(b"\n", b"") == encode(doc)
    got = archive_index._split_lined(_mapped(data))
    assert got is not None and _as_bytes(got) == _one_pass(data)


def test_a_section_of_a_line_or_less_stays_inline(small_lines: None) -> None:
    doc = _doc(3, conda=2)
    assert bytes(lined.encode_lined(doc, ENCODER)) == encode(doc)


def test_a_lined_blob_splits_as_one_pass_would_and_is_given_back_as_it_was(small_lines: None) -> None:
    data = bytes(lined.encode_lined(_doc(10, conda=2), ENCODER))
    mapped = _mapped(data)
    got = archive_index._split_lined(mapped)
    assert got is not None and _as_bytes(got) == _one_pass(data)
    assert mapped[:] == data


def test_the_pages_go_back_between_lines(small_lines: None, monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[object] = []
    monkeypatch.setattr(lined, "release_views", lambda *maps: given.append(maps))
    assert lined.split_lined(_mapped(bytes(lined.encode_lined(_doc(30), ENCODER)))) is not None
    assert len(given) >= 10  # after each of the 10 lines of records (and the scan for newlines)


def _variants(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Blobs near the layout: each either split as one pass would, or left to it."""
    lines = data.split(b"\n")
    yield "trailing comma", data.replace(b"\n}", b",\n}", 1)
    yield "no comma between lines", data.replace(b",\n", b"\n", 1)
    yield "a record across two lines", data.replace(b'"name":', b'"name":\n', 1)
    yield "a line broken after a key", data.replace(b'":{"name"', b'":\n{"name"', 1)
    yield (
        "a nested packages opening a line",
        data.replace(b'{"info":{"subdir":"linux-64"}', b'{"info":{"subdir":"linux-64","packages":{\n}}', 1),
    )
    yield "the same name on two lines", data.replace(b'"p4-1-0.tar.bz2"', b'"p0-1-0.tar.bz2"', 1)
    yield "a second packages key", data[:-1] + b',"packages":{"z-1-0.tar.bz2":{"name":"z","version":"1","build":"0"}}}'
    yield "another top-level key", data[:-1] + b',"other":1}'
    yield "crlf", data.replace(b"\n", b"\r\n")
    yield "a blank line", data.replace(b",\n", b",\n\n", 1)
    yield "a blank line before a section's end", data.replace(b"\n}", b",\n\n}", 1)
    yield "a line of an empty object", data.replace(b"\n}", b",\n{}\n}", 1)
    yield "garbage after a section", data.replace(b"\n}", b"\n}]", 1)
    yield "lines swapped", b"\n".join([lines[0], lines[2], lines[1], *lines[3:]])
    yield "a section never closed", b"\n".join(lines[:-1])
    yield "a line of no records", data.replace(b",\n", b",\n1,\n", 1)
    yield "invalid UTF-8 in a record", data.replace(b'"name":"p5"', b'"name":"p\xff"', 1)
    yield "a lone surrogate", data.replace(b'"name":"p6"', b'"name":"\\ud800"', 1)
    yield "a line only a comma", data.replace(b",\n", b"\n,\n", 1)
    for at in range(0, len(data), max(1, len(data) // 40)):  # a byte changed, here and there
        for byte in (b"{", b"}", b",", b"\n", b'"'):
            yield f"byte {byte!r} at {at}", data[:at] + byte + data[at + 1 :]


def test_near_misses_split_as_one_pass_would_or_not_at_all(small_lines: None) -> None:
    data = bytes(lined.encode_lined(_doc(12, conda=4), ENCODER))
    taken = 0
    for what, variant in _variants(data):
        mapped = _mapped(variant)
        got = archive_index._split_lined(mapped)
        assert mapped[:] == variant, what  # every byte put back
        if got is not None:
            taken += 1
            assert _as_bytes(got) == _one_pass(variant), what
    assert taken > 5  # the harmless changes (a byte in a value, a name twice) still go a line at a time


def test_an_import_splits_the_exported_blob_a_line_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Export and import through the CLI: the same published index as from a blob of one line."""
    specs = [PackageSpec(f"tool{k:02d}", v, subdir="linux-64") for k in range(12) for v in ("1.0", "1.1")]
    write_channel(tmp_path / "up", specs, subdirs=("linux-64", "noarch"))
    keys = tmp_path / "key"
    assert CliRunner().invoke(main, ["keygen", str(keys)]).exit_code == 0
    cfg = tmp_path / "export.yaml"
    cfg.write_text(json.dumps({"channels": [(tmp_path / "up").as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "m")}))
    splits: list[bool] = []
    real = archive_index._split_lined

    def spy(data: mmap.mmap) -> Any:
        got = real(data)
        splits.append(got is not None)
        return got

    monkeypatch.setattr(archive_index, "_split_lined", spy)
    monkeypatch.setattr("airgap._safepath.MAP_FROM", 0)  # every blob mapped, as a big one is
    published = []
    for line in (5, 8192):
        monkeypatch.setattr(lined, "LINE", line)
        archive, dest = tmp_path / f"{line}.tar", tmp_path / f"dest{line}"
        r = CliRunner().invoke(main, ["export", str(archive), "-f", str(cfg), "--sign-key", str(keys)])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["import", str(archive), "--into", str(dest), "--trusted-key", f"{keys}.pub"])
        assert r.exit_code == 0, r.output
        published.append((dest / "up" / "linux-64" / "repodata.json").read_bytes())
    assert True in splits  # the lined blob went a line at a time
    assert (
        published[0] == published[1] and len(json.loads(published[0])["packages.conda"]) + len(json.loads(published[0])["packages"]) == 48
    )
