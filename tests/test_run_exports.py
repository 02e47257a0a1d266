"""run_exports.json (CEP-12): carried from the upstream, filtered to the mirrored files, written beside repodata.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import cli

from airgap.core.manifest import parse_manifest
from airgap.core.run_exports import NAME, parse
from airgap.destinations.memory import MemoryStore
from airgap.testing.condapkg import PackageSpec, write_channel


def run_exports_doc(docs: dict[str, Any], subdir: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"info": {"subdir": subdir, "version": 1}, "packages": {}, "packages.conda": {}}
    for section in ("packages", "packages.conda"):
        for filename, record in docs[subdir][section].items():
            doc[section][filename] = {"run_exports": {"weak": [f"{record['name']} >={record['version']}"]}}
    doc["packages.conda"]["gone-1.0-0.conda"] = {"run_exports": {}}  # upstream lists a file its repodata does not
    return doc


def channel(root: Path, names: list[str]) -> None:
    specs = [PackageSpec(n, "1.0", subdir="linux-64") for n in names] + [PackageSpec("noarchy", "1.0")]
    docs = write_channel(root, specs, subdirs=("linux-64",), formats=("conda",))
    (root / "linux-64" / NAME).write_text(json.dumps(run_exports_doc(docs, "linux-64")))  # noarch has none


def test_run_exports_travel_filtered_and_land_beside_repodata(tmp_path: Path) -> None:
    up = tmp_path / "up" / "main"
    channel(up, ["liba", "libb", "libc"])
    cfg = tmp_path / "export.yaml"
    keys = {"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "pkg_list": ["liba", "libb"]}
    cfg.write_text(json.dumps(keys))
    assert cli("keygen", tmp_path / "k").exit_code == 0
    r = cli("export", "-f", cfg, "--sign-key", tmp_path / "k", tmp_path / "v1.tar")
    assert r.exit_code == 0, r.output
    into = "memory://rx-1"
    assert cli("import", tmp_path / "v1.tar", "--into", into, "--trusted-key", tmp_path / "k.pub").exit_code == 0
    store = MemoryStore("rx-1")
    held = parse(store.get(f"main/linux-64/{NAME}") or b"", "linux-64", "t")
    assert sorted(held["packages.conda"]) == ["liba-1.0-0.conda", "libb-1.0-0.conda"]  # the mirrored files only
    assert held["packages.conda"]["liba-1.0-0.conda"] == {"run_exports": {"weak": ["liba >=1.0"]}}  # verbatim
    assert held["info"] == {"subdir": "linux-64", "version": 1}
    assert store.get(f"main/noarch/{NAME}") is None  # upstream has none there: none is made up

    # the next export carries the new selection; the import merges and filters to what the index lists
    cfg.write_text(json.dumps({**keys, "pkg_list": ["libb", "libc"]}))
    assert cli("receipt", "--into", into, "-o", tmp_path / "r.json").exit_code == 0
    r = cli("export", "-f", cfg, "--sign-key", tmp_path / "k", tmp_path / "d.tar", "--since", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert cli("import", tmp_path / "d.tar", "--into", into, "--trusted-key", tmp_path / "k.pub").exit_code == 0
    held = parse(store.get(f"main/linux-64/{NAME}") or b"", "linux-64", "t")
    listed = json.loads(store.get("main/linux-64/repodata.json") or b"{}")["packages.conda"]
    assert sorted(held["packages.conda"]) == sorted(listed) == ["libb-1.0-0.conda", "libc-1.0-0.conda"]


def test_the_manifest_names_the_run_exports_blob(tmp_path: Path) -> None:
    import tarfile

    up = tmp_path / "up" / "main"
    channel(up, ["liba"])
    cfg = tmp_path / "export.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "a.tar").exit_code == 0
    with tarfile.open(tmp_path / "a.tar") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = parse_manifest(member.read())
    subs = {s.subdir: s for s in manifest.channels[0].subdirs}
    assert subs["linux-64"].run_exports is not None and subs["noarch"].run_exports is None
    assert {b.sha256: b.kind for b in manifest.blobs}[subs["linux-64"].run_exports.sha256] == "repodata"


def test_a_clean_drops_the_entries_of_the_files_it_removes(tmp_path: Path) -> None:
    up = tmp_path / "up" / "main"
    channel(up, ["liba", "libb"])
    cfg = tmp_path / "export.yaml"
    keys = {"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}
    cfg.write_text(json.dumps(keys))
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "a.tar").exit_code == 0
    dest = tmp_path / "dest"
    assert cli("import", tmp_path / "a.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    path = dest / "main" / "linux-64" / NAME
    assert sorted(parse(path.read_bytes(), "linux-64", "t")["packages.conda"]) == ["liba-1.0-0.conda", "libb-1.0-0.conda"]
    cfg.write_text(json.dumps({**keys, "blacklist": ["liba"]}))
    r = cli("clean", "-f", cfg, "--into", dest)
    assert r.exit_code == 0, r.output
    assert sorted(parse(path.read_bytes(), "linux-64", "t")["packages.conda"]) == ["libb-1.0-0.conda"]


def test_the_mirrored_file_names_are_read_only_when_upstream_has_run_exports(tmp_path: Path) -> None:
    """carry() reads the subdir's file names (300,000 of them in a big subdir) only to filter an upstream
    run_exports.json: with none upstream, it never asks for them."""
    from collections.abc import Iterator

    from airgap.core.run_exports import carry
    from airgap.upstream.fetch import Fetcher

    sub = tmp_path / "linux-64"
    sub.mkdir()
    asked: list[str] = []

    def names() -> Iterator[str]:
        asked.append("names")
        yield "a-1-0.tar.bz2"

    stored: list[bytes] = []

    def put(data: bytes) -> str:
        stored.append(data)
        return "0" * 64

    assert carry(Fetcher(), sub.as_uri() + "/", "linux-64", names(), 1 << 20, put) is None
    assert asked == [] and stored == []
    doc = {"info": {"subdir": "linux-64"}, "packages": {"a-1-0.tar.bz2": {"run_exports": {}}, "b-1-0.tar.bz2": {"run_exports": {}}}}
    (sub / NAME).write_text(json.dumps(doc))
    blob = carry(Fetcher(), sub.as_uri() + "/", "linux-64", names(), 1 << 20, put)
    assert blob is not None and asked == ["names"] and len(stored) == 1
    import zstandard

    assert list(json.loads(zstandard.ZstdDecompressor().decompress(stored[0]))["packages"]) == ["a-1-0.tar.bz2"]  # filtered
