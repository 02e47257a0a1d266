"""The SBOM blob is zstd-compressed (docs/decisions/0011); archives with the plain document still read.

Each reader of the blob (verify, inspect, import, the review page) is run on both kinds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard
from helpers import cli
from review_world import blob_of, manifest_of, sbom_document_of

import airgap.ops.sbom_blob
from airgap.core.manifest import SBOM_ZSTD, SbomRef, parse_manifest
from airgap.errors import ArchiveFormatError, IntegrityError
from airgap.ops.sbom_blob import document, document_pieces
from airgap.testing.condapkg import PackageSpec, write_channel


@pytest.fixture(params=["zstd", "plain (before 0011)"])
def archive(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    up = tmp_path / "up" / "main"
    write_channel(up, [PackageSpec(f"p{i}", "1.0", subdir="linux-64", license="MIT") for i in range(20)], subdirs=("linux-64",))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("keygen", tmp_path / "k").exit_code == 0
    monkeypatch.setattr(airgap.ops.sbom_blob, "COMPRESS", request.param == "zstd")  # the older airgap's archive
    r = cli("export", "-f", cfg, "--sign-key", tmp_path / "k", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    monkeypatch.undo()
    return tmp_path / "m.tar", tmp_path / "k.pub", request.param


def test_every_reader_reads_both_kinds(archive: tuple[Path, Path, str], tmp_path: Path) -> None:
    tar, pub, kind = archive
    sbom = manifest_of(tar)["sbom"]
    blob = blob_of(tar, sbom["sha256"])
    if kind == "zstd":
        assert sbom["format"] == SBOM_ZSTD and blob != sbom_document_of(tar)  # decompressed by it, to raw_size
        assert len(blob) * 3 < sbom["raw_size"]
    else:
        assert sbom["format"] == "CycloneDX-1.6" and "raw_size" not in sbom and sbom_document_of(tar) == blob
    doc = sbom_document_of(tar)
    r = cli("verify", tar, "--trusted-key", pub)
    assert r.exit_code == 0, r.output
    r = cli("inspect", tar, "--sbom", "cyclonedx", "--trusted-key", pub)
    assert r.exit_code == 0 and r.stdout_bytes == doc  # derived again: the same document either way
    r = cli("inspect", tar, "--html", tmp_path / "review.html", "--trusted-key", pub)
    assert r.exit_code == 0, r.output
    assert sbom["sha256"] in (tmp_path / "review.html").read_text()
    r = cli("import", tar, "--into", tmp_path / "d", "--trusted-key", pub)
    assert r.exit_code == 0, r.output
    archive_id = manifest_of(tar)["archive_id"]
    assert (tmp_path / "d" / ".airgap" / "sbom" / f"{archive_id}.cdx.json").read_bytes() == doc  # kept as JSON
    assert len(json.loads(doc)["components"]) == 40


def test_a_compressed_blob_must_hold_exactly_raw_size_bytes() -> None:
    doc = b'{"bomFormat":"CycloneDX"}' * 100
    blob = zstandard.ZstdCompressor().compress(doc)
    assert document(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc)), blob) == doc
    with pytest.raises(IntegrityError, match="expected at most"):
        document(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc) - 1), blob)
    with pytest.raises(IntegrityError, match=f"expected {len(doc) + 1} bytes once decompressed, found {len(doc)}"):
        document(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc) + 1), blob)
    with pytest.raises(IntegrityError, match="zstd"):
        document(SbomRef("a" * 64, len(doc), SBOM_ZSTD, len(doc)), doc)  # not compressed at all
    assert document(SbomRef("a" * 64, len(doc), "CycloneDX-1.6"), doc) == doc


def test_the_kept_document_comes_a_mib_at_a_time() -> None:
    """Import writes the SBOM at the destination as it is decompressed (300 MB at 300,000 files): never held whole."""
    doc = b"".join(b'{"name":"p%d","purl":"pkg:conda/p%d"},' % (i, i) for i in range(200_000))
    blob = zstandard.ZstdCompressor().compress(doc)
    pieces = list(document_pieces(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc)), blob))
    assert b"".join(pieces) == doc and len(pieces) > 4 and max(map(len, pieces)) <= 1 << 20


def test_a_compressed_sbom_without_raw_size_is_refused(archive: tuple[Path, Path, str]) -> None:
    tar, _, kind = archive
    manifest = manifest_of(tar)
    if kind != "zstd":
        manifest["sbom"]["format"] = SBOM_ZSTD
    manifest["sbom"].pop("raw_size", None)
    with pytest.raises(ArchiveFormatError, match="sbom: expected key 'raw_size'"):
        parse_manifest(json.dumps(manifest).encode())


def test_the_blob_is_the_same_bytes_however_many_cores_compress_it(tmp_path: Path) -> None:
    """store() compresses with zstd's own threads (beside the rendering): the archive must not depend on the machine."""
    from airgap.upstream.cache import BlobCache

    pieces = [json.dumps({"component": i, "name": f"pkg-{i % 977}", "pad": "x" * (i % 300)}).encode() for i in range(60_000)]
    one, two = (zstandard.ZstdCompressor(level=airgap.ops.sbom_blob.LEVEL, threads=n).compressobj() for n in (1, 2))
    by_one = b"".join(one.compress(p) for p in pieces) + one.flush()
    by_two = b"".join(two.compress(p) for p in pieces) + two.flush()
    assert len(b"".join(pieces)) > 4 << 20 and by_one == by_two  # several of zstd's jobs
    cache = BlobCache(tmp_path / "cache")
    stored = airgap.ops.sbom_blob.store(cache, iter(pieces))
    assert (cache.sha_dir / stored.sha256).read_bytes() == by_two and stored.raw_size == len(b"".join(pieces))


def test_a_large_sbom_is_kept_as_the_archives_zstd_blob(
    archive: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past KEEP_PLAIN_MAX (a full import of 300,000 files: 330 MB of JSON), the kept file is the archive's blob, named
    ``.cdx.json.zst``, which decompresses to the document; the receipt and the pages name it, ``serve`` serves it.
    A plain blob (an archive before 0011) is kept as it is, whatever its size."""
    from airgap.site import serve

    tar, pub, kind = archive
    monkeypatch.setattr(airgap.ops.sbom_blob, "KEEP_PLAIN_MAX", 100)
    r = cli("import", tar, "--into", tmp_path / "d", "--trusted-key", pub)
    assert r.exit_code == 0, r.output
    manifest = manifest_of(tar)
    folder = tmp_path / "d" / ".airgap" / "sbom"
    name = f"{manifest['archive_id']}.cdx.json" + (".zst" if kind == "zstd" else "")
    assert sorted(p.name for p in folder.iterdir()) == [name]
    kept = (folder / name).read_bytes()
    if kind == "zstd":
        assert kept == blob_of(tar, manifest["sbom"]["sha256"])
        assert zstandard.ZstdDecompressor().decompressobj().decompress(kept) == sbom_document_of(tar)
    else:
        assert kept == sbom_document_of(tar)
    receipt = json.loads((tmp_path / "d" / ".airgap" / "receipt.json").read_text())
    assert receipt["archives"][-1]["sbom"] == f".airgap/sbom/{name}"
    pages = [p.read_text() for p in (tmp_path / "d").rglob("*.html")]
    assert any(f'.airgap/sbom/{name}"' in page for page in pages)  # the channel pages link it
    assert serve._SBOM.match(f".airgap/sbom/{name}") and serve.content_type(name) == (
        "application/zstd" if kind == "zstd" else "application/json"
    )


def test_a_large_sbom_that_decompresses_to_another_size_is_refused_before_anything_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = b'{"bomFormat":"CycloneDX"}' * 100
    blob = zstandard.ZstdCompressor().compress(doc)
    monkeypatch.setattr(airgap.ops.sbom_blob, "KEEP_PLAIN_MAX", 10)
    compressed, pieces = airgap.ops.sbom_blob.kept(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc)), blob)
    assert compressed and b"".join(pieces) == blob
    with pytest.raises(IntegrityError, match=f"expected {len(doc) + 1} bytes once decompressed, found {len(doc)}"):
        airgap.ops.sbom_blob.kept(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc) + 1), blob)  # raised here: no piece yielded yet
    monkeypatch.setattr(airgap.ops.sbom_blob, "KEEP_PLAIN_MAX", len(doc))  # at the limit: kept decompressed
    compressed, pieces = airgap.ops.sbom_blob.kept(SbomRef("a" * 64, len(blob), SBOM_ZSTD, len(doc)), blob)
    assert not compressed and b"".join(pieces) == doc
