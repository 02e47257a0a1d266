"""Repodata and filters on real public snapshots (tests/data) and small tables."""

from __future__ import annotations

import bz2
import hashlib
import json

import pytest
import zstandard
from helpers import shared_repodata

from airgap.core.filters import Filters, select
from airgap.core.repodata import empty, merge, parse_repodata
from airgap.errors import ConfigError, UpstreamError

DATA = shared_repodata()


def load(name: str) -> bytes:
    raw = (DATA / name).read_bytes()
    if name.endswith(".bz2"):
        return bz2.decompress(raw)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(raw).read()
    return raw


def test_main_osx64_records_survive_verbatim() -> None:
    data = load("main_osx-64_2018-10.repodata.json.bz2")
    upstream = json.loads(data)
    rd = parse_repodata(data, "osx-64", "main")
    assert len(rd) == 9356
    assert rd.removed == upstream["removed"] and len(rd.removed) == 30
    out = json.loads(rd.to_bytes())
    assert out["packages"] == upstream["packages"]
    assert out.get("packages.conda", {}) == upstream.get("packages.conda", {})
    assert any("constrains" in r for r in out["packages"].values())
    # key order inside each record is upstream's too
    fn = next(iter(upstream["packages"]))
    assert list(out["packages"][fn]) == list(upstream["packages"][fn])


def test_v2_base_url_kept_for_download_dropped_at_destination() -> None:
    data = load("cf-subchannel-py39_noarch_2024-05.repodata.json.zst")
    upstream = json.loads(data)
    rd = parse_repodata(data, "noarch", "cf")
    # the draft CEP-15 form: metadata.base_url names the channel; packages are in its subdir
    assert rd.base_url() == upstream["metadata"]["base_url"] + "/noarch/"
    doc = json.loads(rd.to_bytes(keep_base_url=False))
    assert "base_url" not in doc["metadata"] and doc["info"]["subdir"] == "noarch"
    assert doc["metadata"]["repodata_version"] == 2
    assert doc["packages.conda"] == upstream["packages.conda"]


def test_cep15_info_base_url() -> None:
    doc = {"info": {"subdir": "linux-64", "base_url": "../../pkgs/"}, "repodata_version": 2, "packages": {}}
    rd = parse_repodata(json.dumps(doc).encode(), "linux-64", "u")
    assert rd.base_url() == "../../pkgs/" and rd.repodata_version == 2
    assert "base_url" not in json.loads(rd.to_bytes())["info"]


def test_md5_only_channel_without_record_subdir() -> None:
    rd = parse_repodata(load("free_osx-64_2018-10.repodata.json.bz2"), "osx-64", "free")
    assert len(rd) == 12987
    rec = next(r for _, r in rd.records())
    assert "sha256" not in rec and len(rec["md5"]) == 32


def test_cache_keys_are_not_copied() -> None:
    data = load("r_linux-64_2018-08.repodata.json.zst")
    assert b'"_etag"' in data or b'"_url"' in data
    doc = json.loads(parse_repodata(data, "linux-64", "r").to_bytes())
    assert not any(k.startswith("_") for k in doc)


@pytest.mark.parametrize(
    "doc, error",
    [
        (b"{not json", "expected repodata JSON"),
        (b"[]", "expected a repodata object"),
        (b'{"packages": []}', "expected 'packages' to be an object"),
    ],
)
def test_malformed_documents(doc: bytes, error: str) -> None:
    with pytest.raises(UpstreamError, match=error):
        parse_repodata(doc, "linux-64", "u")


def test_hostile_records_are_skipped() -> None:
    good = {"name": "a", "version": "1", "build": "0", "subdir": "linux-64"}
    doc = {
        "packages": {
            "a-1-0.tar.bz2": good,
            "../evil-1-0.tar.bz2": good,
            "sub/dir-1-0.tar.bz2": good,
            "b-1-0.conda": good,  # wrong section
            "c-1-0.tar.bz2": "not a record",
            "d-1-0.tar.bz2": {**good, "subdir": "win-64"},  # disagrees with its directory
            "e-1-0.tar.bz2": {"name": "e"},  # lacks version/build
        }
    }
    rd = parse_repodata(json.dumps(doc).encode(), "linux-64", "u")
    assert [f for f, _ in rd.records()] == ["a-1-0.tar.bz2"]


def test_merge_adds_and_incoming_wins() -> None:
    old = empty("linux-64")
    old.put("a-1-0.tar.bz2", {"name": "a", "version": "1", "build": "0", "depends": []})
    new = empty("linux-64")
    new.info["base_url"] = "https://elsewhere/"
    new.put("a-1-0.tar.bz2", {"name": "a", "version": "1", "build": "0", "depends": ["patched"]})
    new.put("b-1-0.conda", {"name": "b", "version": "1", "build": "0"})
    merged = merge(old, new)
    assert merged.get("a-1-0.tar.bz2")["depends"] == ["patched"]  # type: ignore[index]
    assert merged.get("b-1-0.conda") is not None and len(merged) == 2
    assert "base_url" not in merged.info


def test_pkg_list_names_and_specs_on_real_data() -> None:
    rd = parse_repodata(load("main_osx-64_2018-10.repodata.json.bz2"), "osx-64", "main")
    every = select(rd, Filters(platforms=("osx-64",)))
    assert len(every.selected) == len(rd) and not every.excluded
    names = select(rd, Filters(platforms=("osx-64",), pkg_list=("zlib", "openssl")))
    chosen = {rd.get(f)["name"] for f in names.selected}  # type: ignore[index]
    assert chosen == {"zlib", "openssl"}
    assert set(names.excluded.values()) == {"not in pkg_list"}
    assert len(names.selected) + len(names.excluded) == len(rd)
    spec = select(rd, Filters(platforms=("osx-64",), pkg_list=("openssl >=1.0.2n",)))
    versions = {rd.get(f)["version"] for f in spec.selected}  # type: ignore[index]
    assert versions and versions <= {"1.0.2n", "1.0.2o", "1.0.2p"}
    assert len(spec.selected) < len([f for f in names.selected if rd.get(f)["name"] == "openssl"])  # type: ignore[index]


def test_pkg_list_needs_exact_names() -> None:
    rd = empty("noarch")
    with pytest.raises(ConfigError, match="exact package name"):
        select(rd, Filters(platforms=(), pkg_list=("py*",)))


def test_snapshots_match_their_recorded_hashes() -> None:
    """tests/data/SHA256SUMS lists every snapshot, and each file still has the bytes it was copied with."""
    sums: dict[str, str] = {}
    for line in (DATA.parent / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert sorted(sums) == sorted(f"repodata/{p.name}" for p in DATA.iterdir())
    for rel, digest in sums.items():
        assert hashlib.sha256((DATA.parent / rel).read_bytes()).hexdigest() == digest, rel
