"""The manifest's fast reader (typed, checked a list at a time) gives what the careful one gives, or its very error.

Table-driven: one good manifest (packages, present files, volumes, an SBOM, an installer), then
each field of a blob or a package entry made wrong in turn; ``parse_manifest`` must accept
exactly what the careful reader (the fast one turned off) accepts, with the same result, and
refuse the rest with the same message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airgap.core.manifest import BlobEntry, ChannelEntry, Manifest, PackageEntry, RepodataBlob, SbomRef, SubdirEntry, parse_manifest
from airgap.core.manifest import parse as parse_module
from airgap.core.manifest.fast import NotPlain, typed_doc
from airgap.errors import ArchiveFormatError

R1, R2, P1, P2, P3, S = ("1a" * 32, "2b" * 32, "3c" * 32, "4f" * 32, "5d" * 32, "6e" * 32)


def _good() -> dict[str, Any]:
    sub = SubdirEntry(
        "linux-64",
        RepodataBlob(R1, 10, 100),
        (PackageEntry("a-1-0.conda", P1, 5), PackageEntry("b-2-0.tar.bz2", P2, 6)),
        {"url": "u", "sha256": "0" * 64},
        present=(PackageEntry("c-1-0.conda", "7" * 64, 9),),
        removals=("d-1-0.conda",),
    )
    noarch = SubdirEntry("noarch", RepodataBlob(R2, 11, 50), (PackageEntry("e-1-0.conda", P3, 7),))
    blobs = (
        BlobEntry(R1, 10, "repodata", 1),
        BlobEntry(R2, 11, "repodata", 1),
        BlobEntry(P1, 5, "package", 1),
        BlobEntry(P2, 6, "package", 2),
        BlobEntry(P3, 7, "package", 2),
        BlobEntry(S, 3, "sbom", 2),
    )
    m = Manifest("id1", "2026-01-01T00:00:00Z", "airgap test", (ChannelEntry("main", "http://h/main/", (sub, noarch)),), blobs)
    doc: dict[str, Any] = json.loads(m.to_bytes())
    doc["sbom"] = SbomRef(S, 3, "CycloneDX-1.6").to_json()
    return doc


def _at(*path: Any) -> Callable[[dict[str, Any]], Any]:
    def get(doc: dict[str, Any]) -> Any:
        for p in path:
            doc = doc[p]
        return doc

    return get


BLOB = _at("blobs", 3)
PKG = _at("channels", 0, "subdirs", 0, "packages", 1)
PRESENT = _at("channels", 0, "subdirs", 0, "present", 0)
SUB = _at("channels", 0, "subdirs", 0)


def _set(where: Callable[[dict[str, Any]], Any], key: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: where(doc).__setitem__(key, value)


def _pop(where: Callable[[dict[str, Any]], Any], key: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: where(doc).pop(key)


CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "good": lambda doc: None,
    "blob sha upper case": _set(BLOB, "sha256", P2.upper()),
    "blob sha short": _set(BLOB, "sha256", P2[:-1]),
    "blob sha with spaces": _set(BLOB, "sha256", "4f" * 31 + "  "),  # bytes.fromhex skips the spaces
    "blob sha not hex": _set(BLOB, "sha256", "g" * 64),
    "blob sha non-ascii digits": _set(BLOB, "sha256", "\u0664" * 64),
    "blob sha a number": _set(BLOB, "sha256", 4),
    "blob size negative": _set(BLOB, "size", -1),
    "blob size a bool": _set(BLOB, "size", True),
    "blob size a float": _set(BLOB, "size", 6.0),
    "blob size huge": _set(BLOB, "size", 10**30),
    "blob kind unknown": _set(BLOB, "kind", "script"),
    "blob volume zero": _set(BLOB, "volume", 0),
    "blob volume too big": _set(BLOB, "volume", 10000),
    "blob volume a bool": _set(BLOB, "volume", True),
    "blob volume missing": _pop(BLOB, "volume"),
    "blob listed twice": lambda doc: doc["blobs"].append(dict(BLOB(doc))),
    "blob an array": _set(_at("blobs"), 3, [P2, 6, "package"]),
    "blob extra key": _set(BLOB, "colour", "blue"),
    "blobs not a list": lambda doc: doc.__setitem__("blobs", {}),
    "package name unsafe": _set(PKG, "filename", "../b-2-0.tar.bz2"),
    "package name no suffix": _set(PKG, "filename", "b-2-0.zip"),
    "package name dots": _set(PKG, "filename", "b..2-0.tar.bz2"),
    "package name newline": _set(PKG, "filename", "b-2-0.tar.bz2\n"),
    "package name twice": _set(PKG, "filename", "a-1-0.conda"),
    "package name also present": _set(PKG, "filename", "c-1-0.conda"),
    "package sha not in blobs": _set(PKG, "sha256", "8" * 64),
    "package sha of a repodata blob": _set(PKG, "sha256", R1),
    "package size differs": _set(PKG, "size", 7),
    "package size negative": _set(PKG, "size", -6),
    "package missing sha": _pop(PKG, "sha256"),
    "package extra key": _set(PKG, "depends", ["x"]),
    "packages missing": _pop(SUB, "packages"),
    "packages not a list": _set(SUB, "packages", {"a": 1}),
    "present sha upper case": _set(PRESENT, "sha256", "F" * 64),
    "present name unsafe": _set(PRESENT, "filename", "/c-1-0.conda"),
    "present not a list": _set(SUB, "present", "c-1-0.conda"),
    "removal also a package": _set(SUB, "removals", ["a-1-0.conda"]),
    "subdir unsafe": _set(SUB, "subdir", "../x"),
    "channel name unsafe": _set(_at("channels", 0), "name", ".."),
    "channels not a list": lambda doc: doc.__setitem__("channels", {}),
    "format wrong": lambda doc: doc.__setitem__("format", "airgap/9"),
    "unknown top key": lambda doc: doc.__setitem__("comment", {"x": [1, 2]}),
    "sbom unreferenced": lambda doc: doc.pop("sbom"),
    "a float in source": _set(_at("channels", 0, "subdirs", 0, "source"), "fetched", 1e16),
}


def _outcome(data: bytes) -> Any:
    try:
        return parse_manifest(data)
    except ArchiveFormatError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_reader_gives_what_the_careful_one_gives(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _good()
    CASES[case](doc)
    data = json.dumps(doc).encode()
    fast = _outcome(data)
    monkeypatch.setattr(parse_module, "typed_doc", lambda data: None)
    careful = _outcome(data)
    assert fast == careful
    if case in ("good", "blob extra key", "package extra key", "unknown top key", "a float in source"):
        assert isinstance(careful, Manifest)  # accepted: the comparison above compared manifests
    else:
        assert isinstance(careful, tuple)


def test_a_good_manifest_takes_the_fast_path() -> None:
    data = json.dumps(_good()).encode()
    doc = typed_doc(data)
    assert doc is not None and isinstance(doc["blobs"][0], BlobEntry)
    assert isinstance(doc["channels"][0]["subdirs"][0]["packages"][0], PackageEntry)
    parse_module._parse(doc, fast=True)  # raises NotPlain if a list check refused it


@pytest.mark.parametrize("case", ["blob sha upper case", "package name unsafe", "package size differs", "blob volume zero"])
def test_list_checks_refuse_what_the_entry_checks_refuse(case: str) -> None:
    doc = _good()
    CASES[case](doc)
    typed = typed_doc(json.dumps(doc).encode())
    assert typed is not None
    with pytest.raises(NotPlain):
        parse_module._parse(typed, fast=True)


def test_duplicate_keys_read_alike() -> None:
    """JSON with a key twice: both readers take the last value (a signed manifest means one thing)."""
    data = json.dumps(_good()).encode()
    twice = data.replace(b'"format": "airgap/1"', b'"format": "airgap/9", "format": "airgap/1"', 1)
    assert twice != data
    assert parse_manifest(twice) == parse_manifest(data)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize("volume", [None, 2])
def test_the_manifest_written_from_its_structs_is_what_json_dumps_gives(volume: int | None) -> None:
    man = parse_manifest(json.dumps(_good()).encode())
    blobs = tuple(BlobEntry(b.sha256, b.size, b.kind, volume) for b in man.blobs)
    man = Manifest(man.archive_id, man.created, "airgap tést", man.channels, blobs, sbom=man.sbom)  # non-ASCII kept
    assert man.to_bytes() == _dumps(man.to_json())
    assert (b'"volume"' in man.to_bytes()) == (volume is not None)


@pytest.mark.parametrize(
    "package, blob",
    [
        (PackageEntry("a-1-0.conda", P1, 1e16), None),  # type: ignore[arg-type]  # a float: json writes 1e+16, msgspec 1e16
        (PackageEntry("a-1-0.conda", P1, True), None),  # a bool is no int
        (None, BlobEntry(P1, 5, "package", 1e-7)),  # type: ignore[arg-type]  # json: 1e-07
    ],
)
def test_an_entry_built_with_other_types_goes_through_json(package: PackageEntry | None, blob: BlobEntry | None) -> None:
    sub = SubdirEntry("linux-64", RepodataBlob(R1, 10, 100), (package or PackageEntry("a-1-0.conda", P1, 5),))
    blobs = (BlobEntry(R1, 10, "repodata"), blob or BlobEntry(P1, 5, "package"))
    man = Manifest("id1", "2026-01-01T00:00:00Z", "airgap test", (ChannelEntry("main", "http://h/main/", (sub,)),), blobs)
    assert man.to_bytes() == _dumps(man.to_json())


@pytest.mark.parametrize("where", [0, 4095, 4096, 9000])
def test_all_hex64_finds_a_bad_hash_in_any_chunk(where: int) -> None:
    from airgap.core.manifest import all_hex64, model

    shas = [f"{i:064x}" for i in range(9001)]
    assert model.HEX_CHUNK == 4096 and all_hex64(shas)  # 3 chunks, the last of one hash
    for bad in (shas[where].upper().replace("0", "A"), shas[where][:-1], shas[where][:-2] + " 0", shas[where][:-1] + "g"):
        assert not all_hex64([*shas[:where], bad, *shas[where + 1 :]]), bad
    assert all_hex64([])
