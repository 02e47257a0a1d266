"""The directory destination as the engine over a :class:`LocalStore`: the store's own rules, the registry,
and a destination an older airgap (journal ``airgap-journal/1``) was killed in, recovered by this one."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import build_archive, cli, specs

from airgap.destinations import open_destination
from airgap.destinations.base import BlobRef
from airgap.destinations.directory import DirectoryDestination
from airgap.destinations.localstore import LocalStore
from airgap.errors import DestinationError, UsageError


def tree(root: Path) -> dict[str, str]:
    """Every file and folder outside ``.airgap`` (links not followed): a file's sha256, "dir" for a folder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".airgap"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_paths_and_file_urls_open_the_directory_store_through_the_registry(tmp_path: Path) -> None:
    for spec in (str(tmp_path / "d"), (tmp_path / "d").as_uri()):
        dest = open_destination(spec)
        assert isinstance(dest, DirectoryDestination) and isinstance(dest.store, LocalStore) and dest.root == tmp_path / "d"
    with pytest.raises(UsageError, match="expected only index_formats, url for a directory site, found endpoint_url"):
        open_destination(str(tmp_path), {"url": str(tmp_path), "endpoint_url": "x"})


def test_the_store_moves_links_and_prunes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    (tmp_path / "root").mkdir()
    store.put("a/b/c.json", b"{}")
    assert store.get("a/b/c.json") == b"{}" and store.get("a/b/none") is None
    staged = tmp_path / "root" / ".airgap" / "staging-x-1"
    staged.mkdir(parents=True)
    (staged / "blob").write_bytes(b"bytes")
    blob = BlobRef(str(staged / "blob"), 0, 5, "sha")
    store.put_blob("ch/sub/kept.conda", blob)  # needed again: linked, the staged file stays
    assert (staged / "blob").stat().st_nlink == 2
    store.take("ch/sub/moved.conda", blob)  # its last use: moved
    assert not (staged / "blob").exists() and (tmp_path / "root" / "ch" / "sub" / "moved.conda").read_bytes() == b"bytes"
    assert sorted(store.list_prefix("ch/")) == [("ch/sub/kept.conda", 5), ("ch/sub/moved.conda", 5)]
    assert store.backup("ch/sub/kept.conda", ".airgap/staging-x-1/backup/1") and not store.backup("ch/none", ".airgap/staging-x-1/backup/2")
    store.put("ch/sub/kept.conda", b"new")
    store.restore(".airgap/staging-x-1/backup/1", "ch/sub/kept.conda")
    store.restore(".airgap/staging-x-1/backup/1", "ch/sub/kept.conda")  # a rollback run twice: already put back
    assert store.get("ch/sub/kept.conda") == b"bytes"
    store.delete(["ch/sub/kept.conda", "ch/sub/moved.conda", ".airgap/staging-x-1/backup/1", "ch/sub/none"])
    assert not (tmp_path / "root" / "ch").exists() and not (staged / "backup").exists()  # emptied folders go, the root stays
    assert (tmp_path / "root").is_dir()


def test_the_store_refuses_links_and_keys_that_leave_it(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "f").write_bytes(b"outside")
    (root / "ch").symlink_to(outside)
    (root / "file").symlink_to(outside / "f")
    store = LocalStore(root)
    for call in (lambda: store.get("ch/f"), lambda: store.put("ch/g", b"x"), lambda: list(store.list_prefix("ch/"))):
        with pytest.raises(DestinationError, match="symbolic link"):
            call()
    with pytest.raises(DestinationError, match="expected a key of plain path components"):
        store.put("../x", b"x")
    assert store.chunks("file") is None and list(store.list_prefix("")) == []  # a link is not an object
    assert sorted(p.name for p in outside.iterdir()) == ["f"]


def test_names_in_lists_the_files_of_one_folder_as_list_prefix_does_without_sizes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = LocalStore(root)
    store.put("ch/sub/shards/a.msgpack.zst", b"a")
    store.put("ch/sub/shards/deeper/b.msgpack.zst", b"b")  # in a folder below: not directly in it
    (root / "ch" / "sub" / "shards" / "link.msgpack.zst").symlink_to(root / "ch" / "sub" / "shards" / "a.msgpack.zst")
    direct = {k.rpartition("/")[2] for k, _ in store.list_prefix("ch/sub/shards/") if k.count("/") == 3}
    assert store.names_in("ch/sub/shards") == direct == {"a.msgpack.zst"}
    assert store.names_in("ch/none") == set()
    (root / "ch" / "linked").symlink_to(root / "ch" / "sub")
    with pytest.raises(DestinationError, match="symbolic link"):
        store.names_in("ch/linked")


def test_the_lock_primitives_compare_versions(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    v1 = store.create(".airgap/lock", b"one")
    assert v1 is not None and store.create(".airgap/lock", b"two") is None
    assert store.replace_if(".airgap/lock", b"two", "stale") is None
    v2 = store.replace_if(".airgap/lock", b"two", v1)
    assert v2 is not None and store.read_versioned(".airgap/lock") == (b"two", v2)
    assert not store.delete_if(".airgap/lock", v1) and store.delete_if(".airgap/lock", v2)
    assert not (tmp_path / ".airgap").exists()


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, keyring: dict[str, Any]) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("legacy")
    old = build_archive(specs(6), archive_id="01d" * 10).write(d / "old.tar", keyring["good"])
    base = d / "base"
    r = cli("import", old, "--into", base, "--trusted-key", keyring["good.pub"])
    assert r.exit_code == 0, r.output
    return {"base": base, "archive": old, "pub": keyring["good.pub"]}


def test_a_destination_an_older_airgap_was_killed_in_is_rolled_back(applied: dict[str, Path], tmp_path: Path) -> None:
    """The state the directory backend before the engine left when killed mid-publish: its journal is read once, all undone."""
    import shutil

    dest = tmp_path / "dest"
    shutil.copytree(applied["base"], dest, symlinks=True)
    before, receipt = tree(dest), (dest / ".airgap" / "receipt.json").read_bytes()
    state = sorted(p.name for p in (dest / ".airgap").iterdir())  # the receipt, the names tables
    staging = dest / ".airgap" / "staging-0123456789ab-4242"
    (staging / "backup").mkdir(parents=True)
    sub = dest / "main" / "linux-64"
    os.link(sub / "repodata.json", staging / "backup" / "1.bak")
    (sub / "repodata.json").unlink()
    (sub / "repodata.json").write_bytes(b'{"packages": {}}')  # the new index, published
    (sub / "new-1.0-0.conda").write_bytes(b"placed")
    (dest / "newch" / "noarch").mkdir(parents=True)
    (dest / "newch" / "noarch" / "x.conda").write_bytes(b"placed")
    os.link(dest / ".airgap" / "receipt.json", staging / "backup" / "2.bak")
    (sub / ".new-2.0-0.conda.airgap-tmp").write_bytes(b"half")
    entries = [
        ["main/linux-64/new-1.0-0.conda", None],
        ["newch/noarch/x.conda", None],
        ["main/linux-64/repodata.json", "1.bak"],
        [".airgap/receipt.json", "2.bak"],
    ]
    doc = {"format": "airgap-journal/1", "entries": entries, "dirs": ["newch", "newch/noarch"]}
    (staging / "journal.json").write_text(json.dumps(doc))
    r = cli("import", applied["archive"], "--into", dest, "--trusted-key", applied["pub"])
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    assert "journal of staging-0123456789ab-4242 left by an older airgap" in r.output, r.output
    assert tree(dest) == before and (dest / ".airgap" / "receipt.json").read_bytes() == receipt
    assert sorted(p.name for p in (dest / ".airgap").iterdir()) == state  # the staging area gone


def test_a_malformed_old_journal_stops_recovery_with_what_to_do(applied: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    dest = tmp_path / "dest"
    shutil.copytree(applied["base"], dest, symlinks=True)
    staging = dest / ".airgap" / "staging-x-1"
    staging.mkdir()
    (staging / "journal.json").write_text(json.dumps({"format": "airgap-journal/1", "entries": [[".airgap/lock", None]], "dirs": []}))
    before = tree(dest)
    r = cli("import", applied["archive"], "--into", dest, "--trusted-key", applied["pub"])
    assert r.exit_code == 1 and "journal.json: expected paths outside airgap's lock and staging" in r.output, r.output
    assert "then remove" in r.output and tree(dest) == before and (staging / "journal.json").exists()


def test_chunks_never_read_leave_no_descriptor_open(tmp_path: Path) -> None:
    """A caller may stop before reading (a size check fails first): the file is closed all the same."""
    import gc

    store = LocalStore(tmp_path)
    store.put("c/linux-64/f.txt", b"data")
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        chunks = store.chunks("c/linux-64/f.txt")
        assert chunks is not None
        del chunks
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds
