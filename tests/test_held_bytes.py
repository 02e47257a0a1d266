"""A subdir's held files read as the receipt's bytes and spliced (airgap.core.held_bytes, issue 15).

The bytes path must give the same files, the same lookups and the same next receipt as decoding
every entry; a section whose bytes changed since airgap wrote them is read the careful way.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgap._safepath import view_nofollow
from airgap.core import held_bytes
from airgap.core.held_bytes import HeldFiles
from airgap.core.jsonbytes import encode_sorted
from airgap.core.receipt import HELD_SHA256, REBUILD, Held, Receipt, ReceiptError, parse_receipt_bytes, receipt_json
from airgap.core.receipt_fast import parse_receipt_fast

SHA = "0123456789abcdef" * 4

names = st.builds(
    lambda stem, ext: stem + ext,
    st.from_regex(r"[a-z_][a-z0-9_.+!=~,-]{0,12}", fullmatch=True).filter(lambda s: ".." not in s and not s.endswith(".")),
    st.sampled_from([".tar.bz2", ".conda"]),
)
helds = st.builds(
    Held,
    st.sampled_from([SHA, "f" * 64, "0" * 64]),
    st.one_of(st.none(), st.integers(0, 10**12)),
    st.sampled_from([None, "main", "conda-forge"]),
)


def _receipt_bytes(files: dict[str, Held], **more: dict[str, Held]) -> bytes:
    r = Receipt()
    for fn, h in files.items():
        r.hold("main", "linux-64", fn, h.sha256, h.size, h.origin)
    for subdir, extra in more.items():
        for fn, h in extra.items():
            r.hold("main", subdir, fn, h.sha256, h.size, h.origin)
    r.extra["note"] = "kept"
    return receipt_json(r.to_json(encodable=True))


@settings(max_examples=150, deadline=None)
@given(
    start=st.dictionaries(names, helds, max_size=40),
    changes=st.lists(st.tuples(st.booleans(), names, helds), max_size=25),
    probes=st.lists(names, max_size=10),
    inside=st.booleans(),
)
def test_splicing_writes_what_encoding_every_entry_writes(
    start: dict[str, Held], changes: list[tuple[bool, str, Held]], probes: list[str], inside: bool
) -> None:
    section = encode_sorted(start)
    if inside:  # a span of the receipt's own bytes (the fast reader maps the receipt and copies nothing)
        around = b'{"a":{"x.conda":{"sha256":"' + SHA.encode() + b'"}},"channels":'
        files = HeldFiles(around + section + b',"z":1}', "main", "linux-64", "receipt", (len(around), len(around) + len(section)))
    else:
        files = HeldFiles(section, "main", "linux-64", "receipt")
    expected = dict(start)
    for hold, fn, h in changes:
        if hold:
            files[fn] = h
            expected[fn] = h
        else:
            files.pop(fn, None)
            expected.pop(fn, None)
    for fn in [*probes, *start, *(fn for _, fn, _ in changes)]:
        assert files.get(fn) == expected.get(fn)
        assert (fn in files) == (fn in expected)
    assert bool(files) == bool(expected)
    assert files.encoded() == encode_sorted(expected)  # before anything read every entry: spliced
    assert dict(files.items()) == expected  # every entry decoded, changes applied
    assert files.encoded() == encode_sorted(expected)  # and encoded again from them


def test_a_receipt_written_by_airgap_is_read_as_its_bytes() -> None:
    files = {f"pkg{i:03d}-1.0-0.tar.bz2": Held(SHA, i, "main" if i % 3 else None) for i in range(200)}
    data = _receipt_bytes(files, noarch={"x-1-0.conda": Held(SHA, None, None)})
    doc = json.loads(data)
    section = encode_sorted(doc["channels"]["main"]["linux-64"])
    assert doc[HELD_SHA256]["main"]["linux-64"] == hashlib.sha256(section).hexdigest()
    fast = parse_receipt_fast(data, "receipt.json")
    assert isinstance(fast.channels["main"]["linux-64"], HeldFiles)
    careful = parse_receipt_bytes(data, "receipt.json")
    assert fast.to_json() == careful.to_json()
    assert HELD_SHA256 not in fast.extra and HELD_SHA256 not in careful.extra  # written afresh each time
    fast.forget("main", "linux-64", "pkg005-1.0-0.tar.bz2")
    fast.hold("main", "linux-64", "new-1-0.conda", SHA, 7, "main")
    careful.forget("main", "linux-64", "pkg005-1.0-0.tar.bz2")
    careful.hold("main", "linux-64", "new-1-0.conda", SHA, 7, "main")
    assert receipt_json(fast.to_json(encodable=True)) == receipt_json(careful.to_json(encodable=True))
    assert (
        receipt_json(fast.to_json(encodable=True))
        == json.dumps(fast.to_json() | {HELD_SHA256: _sums(fast)}, sort_keys=True, separators=(",", ":")).encode()
    )


def _sums(r: Receipt) -> dict[str, dict[str, str]]:
    return {c: {s: hashlib.sha256(encode_sorted(dict(f.items()))).hexdigest() for s, f in subs.items()} for c, subs in r.channels.items()}


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.replace('"size":5', '"size":6'), id="a size changed"),
        pytest.param(lambda t: t.replace('"pkg005-1.0-0.tar.bz2"', '"../pkg005-1.0-0.tar.bz2"'), id="a name made unsafe"),
        pytest.param(lambda t: t.replace('"size":5', '"size":-5'), id="a size made negative"),
        pytest.param(lambda t: t.replace(SHA, "g" * 64, 1), id="a hash made not hex"),
    ],
)
def test_a_section_changed_since_airgap_wrote_it_is_read_the_careful_way(edit: Any) -> None:
    files = {f"pkg{i:03d}-1.0-0.tar.bz2": Held(SHA, i, "main") for i in range(20)}
    data = edit(_receipt_bytes(files).decode()).encode()  # held_sha256 left as it was: what another writer leaves
    try:
        expected: Any = parse_receipt_bytes(data, "receipt.json").to_json()
    except ReceiptError as exc:
        expected = ("error", str(exc))
    try:
        got: Any = parse_receipt_fast(data, "receipt.json")
        assert not isinstance(got.channels["main"]["linux-64"], HeldFiles)
        got = got.to_json()
    except ReceiptError as exc:
        got = ("error", str(exc))
    assert got == expected
    assert expected != parse_receipt_bytes(_receipt_bytes(files), "receipt.json").to_json()  # the edit mattered


def test_a_bad_held_sha256_is_ignored_not_trusted() -> None:
    files = {f"pkg{i}-1.0-0.tar.bz2": Held(SHA, i, None) for i in range(3)}
    doc = json.loads(_receipt_bytes(files))
    for bad in ({"main": {"linux-64": 5}}, ["x"], {"main": {"linux-64": "0" * 64}}):
        doc[HELD_SHA256] = bad
        got = parse_receipt_fast(json.dumps(doc).encode(), "receipt.json")
        assert not isinstance(got.channels["main"]["linux-64"], HeldFiles)
        assert dict(got.channels["main"]["linux-64"].items()) == files


def test_a_section_that_hashes_right_but_is_not_airgaps_is_refused_in_one_line() -> None:
    """A writer who also rewrote the hash gets no crash and no wrong path: a clear ReceiptError where the bytes are read."""
    section = b'{"a-1-0.conda":{"sha256":"zz","size":1},"b-1-0.conda":{"sha256":"' + SHA.encode() + b'","size":"x"}}'
    doc = {"format": "airgap-receipt/1", "channels": {"main": {"linux-64": msgspec.Raw(section)}}}
    doc[HELD_SHA256] = {"main": {"linux-64": hashlib.sha256(section).hexdigest()}}
    r = parse_receipt_fast(msgspec.json.encode(doc), "receipt.json")
    files = r.channels["main"]["linux-64"]
    assert isinstance(files, HeldFiles)
    for fn in ("a-1-0.conda", "b-1-0.conda"):
        with pytest.raises(ReceiptError, match=r"receipt\.json: channels\.main\.linux-64") as err:
            files[fn]
        assert "\n" not in str(err.value) and str(err.value).endswith(REBUILD)
    assert "c-1-0.conda" not in files
    with pytest.raises(ReceiptError, match="do not read as") as err:
        list(files)
    assert str(err.value).endswith(REBUILD)


def test_many_lookups_decode_every_entry_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A delta export asks about every selected file: past MANY lookups the section is decoded once, then a dict."""
    monkeypatch.setattr(held_bytes, "MANY", 3)
    start = {f"p{i}-1-0.conda": Held(SHA, i, None) for i in range(10)}
    files = HeldFiles(encode_sorted(start), "main", "linux-64", "receipt")
    files["new-1-0.conda"] = Held(SHA, 99, "main")
    del files["p3-1-0.conda"]
    decoded: list[bool] = []
    real = held_bytes._files

    def counted(raw: bytes) -> Any:
        decoded.append(True)
        return real(raw)

    monkeypatch.setattr(held_bytes, "_files", counted)
    expected = {**start, "new-1-0.conda": Held(SHA, 99, "main")}
    del expected["p3-1-0.conda"]
    for fn in [*start, "new-1-0.conda", "nope-1-0.conda"] * 2:
        assert files.get(fn) == expected.get(fn)
    assert decoded == [True]  # once, after the third lookup by bisection
    assert files.encoded() == encode_sorted(expected)


def test_a_mapped_receipt_is_read_in_place_and_its_section_is_not_copied(tmp_path: Path) -> None:
    files = {f"pkg{i:03d}-1.0-0.tar.bz2": Held(SHA, i, "main") for i in range(300)}
    path = tmp_path / "receipt.json"
    path.write_bytes(_receipt_bytes(files) + b" " * (1 << 20))  # big enough to be mapped
    data = view_nofollow(path)
    assert isinstance(data, mmap.mmap)
    held = parse_receipt_fast(data, "receipt.json").channels["main"]["linux-64"]
    assert isinstance(held, HeldFiles) and held._raw is data  # the map itself, not a copy of the section
    assert held.get("pkg007-1.0-0.tar.bz2") == files["pkg007-1.0-0.tar.bz2"] and "nope-1-0.conda" not in held
    assert bytes(held.encoded()) == encode_sorted(files)
    del held["pkg007-1.0-0.tar.bz2"]
    assert bytes(held.encoded()) == encode_sorted({k: v for k, v in files.items() if k != "pkg007-1.0-0.tar.bz2"})
    assert dict(held.items()) == {k: v for k, v in files.items() if k != "pkg007-1.0-0.tar.bz2"}
