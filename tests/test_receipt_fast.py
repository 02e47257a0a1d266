"""``parse_receipt_fast`` (a delta export reading its base) gives parse_receipt_bytes's receipt, or its very error.

Table-driven: one good receipt, then each field of a held file (and the names around it) made
wrong in turn; the fast reader must accept exactly what the careful one accepts, with the same
result, and refuse the rest with the same message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airgap.core import receipt as receipt_module
from airgap.core.manifest import FILENAME, is_safe_package_filename
from airgap.core.receipt import Receipt, ReceiptError, parse_receipt_bytes
from airgap.core.receipt_check import plainly_valid, typed_files
from airgap.core.receipt_fast import parse_receipt_fast
from airgap.destinations import open_destination
from airgap.destinations.base import load_receipt
from airgap.errors import AirgapError

SHA = "0123456789abcdef" * 4


def _good() -> dict[str, Any]:
    r = Receipt()
    for i in range(5):
        r.hold("main", "linux-64", f"pkg{i}-1.0-0.tar.bz2", SHA, i, "main" if i % 2 else None)
    r.hold("main", "noarch", "x-1-0.conda", SHA, None, "up")
    r.hold("other", "linux-64", "y-1-0.conda", SHA, 3, "other")
    r.sources = {"main": {"linux-64": SHA}}
    r.map_channel("main", "main")
    r.extra["name_index"] = {"main": {"linux-64": {"source": SHA, "names": {"pkg0": "ab"}}}}
    return r.to_json()


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["channels"]["main"]["linux-64"]["pkg1-1.0-0.tar.bz2"]
    return entry


def _set(key: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        _entry(doc)[key] = value

    return change


def _rename(path: tuple[str, ...], new: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        where = doc
        for p in path[:-1]:
            where = where[p]
        where[new] = where.pop(path[-1])

    return change


CASES: dict[str, Any] = {
    "good": lambda doc: None,
    "sha upper case": _set("sha256", SHA.upper()),
    "sha short": _set("sha256", SHA[:-1]),
    "sha not hex": _set("sha256", SHA[:-1] + "g"),
    "sha a number": _set("sha256", 5),
    "sha missing": lambda doc: _entry(doc).pop("sha256"),
    "size negative": _set("size", -1),
    "size a bool": _set("size", True),
    "size a float": _set("size", 1.0),
    "size null": _set("size", None),
    "size huge": _set("size", 10**30),
    "origin null": _set("from", None),
    "origin unsafe": _set("from", "../x"),
    "origin a list": _set("from", ["main"]),
    "unknown key kept out": _set("colour", "blue"),
    "entry a list": lambda doc: doc["channels"]["main"]["linux-64"].__setitem__("pkg1-1.0-0.tar.bz2", [SHA, 1]),
    "file name unsafe": _rename(("channels", "main", "linux-64", "pkg1-1.0-0.tar.bz2"), "../pkg1-1.0-0.tar.bz2"),
    "file name no suffix": _rename(("channels", "main", "linux-64", "pkg1-1.0-0.tar.bz2"), "pkg1-1.0-0.zip"),
    "file name dots": _rename(("channels", "main", "linux-64", "pkg1-1.0-0.tar.bz2"), "pkg1..0-0.tar.bz2"),
    "file name newline": _rename(("channels", "main", "linux-64", "pkg1-1.0-0.tar.bz2"), "pkg1-1.0-0.tar.bz2\n"),
    "subdir unsafe": _rename(("channels", "main", "linux-64"), "Linux 64"),
    "channel unsafe": _rename(("channels", "main"), ".."),
    "channels a list": lambda doc: doc.__setitem__("channels", []),
    "channels missing": lambda doc: doc.pop("channels"),
    "format wrong": lambda doc: doc.__setitem__("format", "other/1"),
    "applied wrong": lambda doc: doc.__setitem__("applied", {"main": "x"}),
}


def _outcome(parse: Any, data: bytes) -> Any:
    try:
        return parse(data, "receipt.json").to_json()
    except ReceiptError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_reader_gives_what_the_careful_one_gives(case: str) -> None:
    doc = _good()
    CASES[case](doc)
    data = json.dumps(doc).encode()
    careful = _outcome(parse_receipt_bytes, data)
    assert _outcome(parse_receipt_fast, data) == careful
    if case in ("good", "size null", "origin null", "unknown key kept out", "channels missing"):
        assert not isinstance(careful, tuple)  # accepted, so the comparison above compared receipts
    elif case not in ("size huge",):
        assert isinstance(careful, tuple)


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b'{"format": "airgap-receipt/1", "channels": {"a": {"b": {"c": 1}}}}', b"\xff"])
def test_fast_reader_refuses_what_the_careful_one_refuses(data: bytes) -> None:
    with pytest.raises(ReceiptError) as careful:
        parse_receipt_bytes(data, "r")
    with pytest.raises(ReceiptError) as fast:
        parse_receipt_fast(data, "r")
    assert str(fast.value) == str(careful.value)


@pytest.mark.parametrize(
    "name",
    ["a-1-0.tar.bz2", "a-1-0.conda", "_a-1-0.conda", "a..b-1-0.conda", "a-1-0.tar.bz2x", ".a-1-0.conda", "a b-1-0.conda", "é-1-0.conda"],
)
def test_filename_pattern_is_the_manifests_rule(name: str) -> None:
    assert bool(FILENAME.match(name)) == is_safe_package_filename(name)
    assert bool(FILENAME.match("a" * 250 + ".conda")) == is_safe_package_filename("a" * 250 + ".conda")
    assert bool(re.compile(FILENAME.pattern).match("a" * 260 + ".conda")) is False


@pytest.mark.parametrize("case", sorted(CASES))
def test_typed_check_gives_what_the_per_file_check_gives(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_receipt checks held files by msgspec first; with that check off, every file is checked one by one."""
    doc = _good()
    CASES[case](doc)
    data = json.dumps(doc).encode()
    typed = _outcome(parse_receipt_bytes, data)
    monkeypatch.setattr(receipt_module, "typed_files", lambda files: None)
    assert _outcome(parse_receipt_bytes, data) == typed


def test_a_good_receipt_takes_the_typed_check() -> None:
    files = _good()["channels"]["main"]["linux-64"]
    typed = typed_files(files)
    assert typed is not None and plainly_valid("main", "linux-64", typed)
    assert typed_files({"a-1-0.conda": {"sha256": SHA, "size": True}}) is None  # a bool is no size
    assert typed_files([files]) is None


def test_a_destination_receipt_is_read_from_its_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = open_destination(str(tmp_path))
    dest.write_receipt(_good())
    assert dest.stored_receipt() is not None
    typed = load_receipt(dest).to_json()
    monkeypatch.setattr(type(dest), "stored_receipt", lambda self: None)  # the dict path, as before
    assert load_receipt(dest).to_json() == typed == parse_receipt_bytes(json.dumps(_good()).encode(), "r").to_json()


@pytest.mark.parametrize("case", ["sha short", "format wrong", "channels a list"])
def test_a_bad_destination_receipt_fails_as_it_did(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _good()
    CASES[case](doc)
    dest = open_destination(str(tmp_path))
    (tmp_path / ".airgap").mkdir(exist_ok=True)
    (tmp_path / ".airgap" / "receipt.json").write_text(json.dumps(doc))
    with pytest.raises(AirgapError) as fast:
        load_receipt(dest)
    monkeypatch.setattr(type(dest), "stored_receipt", lambda self: None)
    with pytest.raises(AirgapError) as careful:
        load_receipt(dest)
    assert (type(fast.value), str(fast.value)) == (type(careful.value), str(careful.value))


@pytest.mark.parametrize("where", [0, 4095, 4096, 9000])
def test_a_bad_hash_in_any_chunk_of_a_big_subdir_is_found(where: int) -> None:
    from airgap.core.manifest import model
    from airgap.core.receipt_check import Held

    files = {f"p{i}-1.0-0.conda": Held(SHA, i) for i in range(9001)}
    assert model.HEX_CHUNK == 4096 and plainly_valid("main", "linux-64", files)  # 3 chunks, the last of one hash
    files[f"p{where}-1.0-0.conda"] = Held(SHA.upper(), 1)
    assert not plainly_valid("main", "linux-64", files)
    doc = {"format": "airgap-receipt/1", "channels": {"main": {"linux-64": {f: h.to_json() for f, h in files.items()}}}}
    with pytest.raises(ReceiptError, match="sha256") as careful:
        parse_receipt_bytes(json.dumps(doc).encode(), "r")
    with pytest.raises(ReceiptError) as fast:
        parse_receipt_fast(json.dumps(doc).encode(), "r")
    assert str(fast.value) == str(careful.value)
