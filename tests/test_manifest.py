"""The manifest: canonical bytes, strict parsing of hostile input."""

from __future__ import annotations

import json

import pytest

from airgap.core.manifest import BlobEntry, ChannelEntry, Manifest, PackageEntry, RepodataBlob, SubdirEntry, canonical_json, parse_manifest
from airgap.errors import ArchiveFormatError

A, B, C = "a" * 64, "b" * 64, "c" * 64


def sample() -> Manifest:
    sub = SubdirEntry("linux-64", RepodataBlob(A, 10, 100), (PackageEntry("x-1-0.conda", B, 5),), {"url": "u"})
    noarch = SubdirEntry("noarch", RepodataBlob(C, 11, 50), (PackageEntry("y-1-0.tar.bz2", B, 5),))
    return Manifest(
        "id1",
        "2026-01-01T00:00:00Z",
        "airgap test",
        (ChannelEntry("main", "http://h/main/", (sub, noarch)),),
        (BlobEntry(A, 10, "repodata"), BlobEntry(C, 11, "repodata"), BlobEntry(B, 5, "package")),
    )


def test_roundtrip_and_canonical() -> None:
    m = sample()
    data = m.to_bytes()
    assert data == canonical_json(json.loads(data))
    again = parse_manifest(data)
    assert again == m
    assert again.totals() == {"packages": 2, "package_bytes": 10, "blobs": 3, "blob_bytes": 26}


def test_sbom_is_optional_and_round_trips() -> None:
    import dataclasses

    from airgap.core.manifest import SbomRef

    plain = sample()
    assert "sbom" not in plain.to_json() and parse_manifest(plain.to_bytes()).sbom is None  # archives without one
    with_sbom = dataclasses.replace(plain, blobs=(*plain.blobs, BlobEntry("e" * 64, 7, "sbom")), sbom=SbomRef("e" * 64, 7, "CycloneDX-1.6"))
    assert parse_manifest(with_sbom.to_bytes()) == with_sbom


def mutate(path: list[object], value: object) -> bytes:
    doc = sample().to_json()
    target = doc
    for p in path[:-1]:
        target = target[p]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    return json.dumps(doc).encode()


PKG = ["channels", 0, "subdirs", 0, "packages", 0]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff\xfe", "expected UTF-8 JSON"),
        (b"[1]", "expected an object"),
        (mutate(["format"], "airgap/9"), "expected format airgap/1 or airgap/2, found 'airgap/9'"),
        (mutate(PKG + ["filename"], "../../etc/passwd.conda"), "expected a package file name"),
        (mutate(PKG + ["filename"], "/abs-1-0.conda"), "expected a package file name"),
        (mutate(PKG + ["filename"], "x-1-0.exe"), "expected a package file name"),
        (mutate(PKG + ["sha256"], "A" * 64), "64 lower-case hex"),
        (mutate(PKG + ["sha256"], "d" * 64), "a sha256 listed in blobs"),
        (mutate(PKG + ["size"], 6), "size 5 and kind package"),
        (mutate(PKG + ["size"], -1), "non-negative integer"),
        (mutate(["channels", 0, "name"], ".."), "expected a channel name"),
        (mutate(["channels", 0, "name"], "a/b"), "expected a channel name"),
        (mutate(["channels", 0, "subdirs", 0, "subdir"], "../x"), "conda subdir name"),
        (mutate(["blobs", 2, "kind"], "script"), "'repodata', 'package', 'installer' or 'sbom'"),
        (mutate(["sbom"], {"sha256": B, "size": 5, "format": "CycloneDX-1.6"}), "size 5 and kind package as in blobs"),
        (mutate(["sbom"], {"sha256": "e" * 64, "size": 1, "format": "CycloneDX-1.6"}), "a sha256 listed in blobs"),
        (mutate(["sbom"], {"sha256": B, "size": 5, "format": "evil"}), "sbom.format: expected CycloneDX-1.6"),
        (mutate(["sbom"], "x"), "sbom: expected an object"),
        (mutate(["blobs"], sample().to_json()["blobs"] + [{"sha256": "e" * 64, "size": 1, "kind": "sbom"}]), "every blob used"),
        (mutate(["blobs"], sample().to_json()["blobs"] + [{"sha256": "e" * 64, "size": 1, "kind": "package"}]), "every blob used"),
        (mutate(["blobs"], sample().to_json()["blobs"] + [sample().to_json()["blobs"][0]]), "each blob listed once"),
    ],
)
def test_hostile_manifests(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveFormatError) as exc:
        parse_manifest(data)
    assert message in str(exc.value)
