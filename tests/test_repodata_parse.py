"""The fast parser (msgspec) reads repodata exactly as ``json`` does, and hands what it refuses to the careful one."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pytest
import zstandard

from airgap.core.repodata import load_json, parse_repodata

DATA = Path(__file__).resolve().parent / "data" / "repodata"


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".bz2"):
        return bz2.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_real_snapshots_parse_as_json_parses_them(path: Path) -> None:
    raw = _raw(path)
    doc, suspect = load_json(raw, path.name)
    assert not suspect and doc == json.loads(raw)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"1e400", b'"\\ud800"'], ids=["nan", "infinity", "too-large", "lone-surrogate"])
def test_what_the_fast_parser_refuses_only_skips_the_record_holding_it(value: bytes) -> None:
    raw = (
        b'{"info":{"subdir":"noarch"},"packages":{'
        b'"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","x":' + value + b"},"
        b'"b-1-0.tar.bz2":{"name":"b","version":"1","build":"0"}}}'
    )
    rd = parse_repodata(raw, "noarch", "test")
    assert [fn for fn, _ in rd.records()] == ["b-1-0.tar.bz2"]


def test_a_byte_order_mark_is_accepted() -> None:
    doc, suspect = load_json(b'\xef\xbb\xbf{"packages":{}}', "test")
    assert doc == {"packages": {}} and not suspect
