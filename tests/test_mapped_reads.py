"""A directory's own big files (repodata.json, the receipt) are mapped read-only, not read into memory (decision 0013).

A map is the page cache's pages: no anonymous memory to zero and no copy. It is safe only for
files airgap replaces by renaming a new file over them, never writes in place, so the map keeps
the bytes that were hashed. An import that maps gives the same destination as one that reads.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap import _safepath
from airgap.destinations.localstore import LocalStore
from airgap.errors import DestinationError
from airgap.testing.condapkg import PackageSpec, write_channel

BIG = _safepath.MAP_FROM


def test_a_big_file_is_mapped_and_a_small_one_read(tmp_path: Path) -> None:
    big, small, empty = tmp_path / "big", tmp_path / "small", tmp_path / "empty"
    big.write_bytes(b"x" * BIG)
    small.write_bytes(b"y" * (BIG - 1))
    empty.write_bytes(b"")
    mapped = _safepath.view_nofollow(big)
    assert isinstance(mapped, mmap.mmap) and mapped[:] == big.read_bytes()
    read = _safepath.view_nofollow(small)
    assert type(read) is bytes and read == small.read_bytes()
    assert _safepath.view_nofollow(empty) == b""  # an empty file cannot be mapped: read
    with pytest.raises(TypeError):
        mapped[0] = 1  # read-only: nothing airgap holds can change the file through it


def test_a_link_is_refused_and_a_missing_file_is_not_there(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"z" * BIG)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(DestinationError, match="expected a file, found a symbolic link"):
        _safepath.view_nofollow(tmp_path / "link")
    with pytest.raises(FileNotFoundError):
        _safepath.view_nofollow(tmp_path / "nothing")


def test_a_map_keeps_the_bytes_it_showed_when_the_store_replaces_the_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    store = LocalStore(tmp_path / "d")
    before = b"a" * BIG
    store.put("ch/linux-64/repodata.json", before)
    view = store.view("ch/linux-64/repodata.json")
    assert isinstance(view, mmap.mmap)
    store.put("ch/linux-64/repodata.json", b"b" * (BIG + 10))  # a new file renamed over the name: the old one's pages stay
    assert view[:] == before
    assert store.get("ch/linux-64/repodata.json") == b"b" * (BIG + 10)
    assert store.view("ch/linux-64/nothing.json") is None


def _world(tmp_path: Path) -> dict[str, Any]:
    up = tmp_path / "up" / "main"
    versions = [PackageSpec(f"p{i}", "1.0", subdir="linux-64", padding=200) for i in range(12)]
    write_channel(up, versions, subdirs=("linux-64",))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "v1.tar").exit_code == 0
    first = tmp_path / "first"
    r = cli("import", tmp_path / "v1.tar", "--into", first, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    shutil.rmtree(up)
    write_channel(
        up,
        versions[2:] + [PackageSpec("p0", "2.0", subdir="linux-64"), PackageSpec("new", "1.0", subdir="linux-64")],
        subdirs=("linux-64",),
    )
    r = cli("export", "-f", cfg, "--unsigned", "--since", first / ".airgap" / "receipt.json", tmp_path / "delta.tar")
    assert r.exit_code == 0, r.output
    return {"first": first, "delta": tmp_path / "delta.tar"}


_IMPORTED = re.compile(rb" imported [^ <]*\.")


def _published(dest: Path) -> dict[str, Any]:
    """The subdir's files, byte for byte, but the time of the import a page names (the two imports compared run
    a moment apart: across a second's edge, that was the only difference), and the receipt's held files."""
    sub = dest / "main" / "linux-64"
    files = {p.name: _IMPORTED.sub(b" imported (time).", p.read_bytes()) for p in sorted(sub.iterdir()) if p.is_file()}
    files.update({f"shards/{p.name}": p.read_bytes() for p in sorted((sub / "shards").iterdir())})
    return {"files": files, "held": json.loads((dest / ".airgap" / "receipt.json").read_bytes())["channels"]}


@pytest.mark.parametrize("map_from", [1, 1 << 40], ids=["mapped", "read"])
def test_a_delta_import_gives_the_same_destination_mapped_or_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, map_from: int) -> None:
    world = _world(tmp_path)
    maps: list[str] = []
    real = _safepath.view_nofollow

    def counted(path: Path | str) -> bytes | mmap.mmap:
        got = real(path)
        if isinstance(got, mmap.mmap):
            maps.append(os.path.basename(path))
        return got

    monkeypatch.setattr(_safepath, "MAP_FROM", map_from)
    monkeypatch.setattr("airgap.destinations.localstore.view_nofollow", counted)
    dest = tmp_path / "dest"
    shutil.copytree(world["first"], dest, symlinks=True)
    r = cli("import", world["delta"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert ("repodata.json" in maps and "receipt.json" in maps) == (map_from == 1), maps
    # the other mode's destination, built the same way, is the same byte for byte (the receipt's history aside)
    monkeypatch.setattr(_safepath, "MAP_FROM", 1 << 40 if map_from == 1 else 1)
    other = tmp_path / "other"
    shutil.copytree(world["first"], other, symlinks=True)
    assert cli("import", world["delta"], "--into", other, "--allow-unsigned").exit_code == 0
    mine, theirs = _published(dest), _published(other)
    assert b" imported (time)." in mine["files"]["index.html"]  # the one part that may differ was found, and only it
    assert mine == theirs
    assert any(f.startswith("new-1.0") for f in mine["held"]["main"]["linux-64"])
    assert not any(f.startswith("p1-1.0") for f in mine["held"]["main"]["linux-64"])
