"""A symbolic link inside a directory destination never leads an import, clean or receipt outside it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import cli

from airgap._safepath import check_beneath
from airgap.destinations import legacyjournal
from airgap.destinations.directory import DirectoryDestination
from airgap.destinations.localstore import LocalStore
from airgap.errors import DestinationError

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _tree(path: Path) -> dict[str, str]:
    """Every entry below ``path`` (links not followed) with the sha256 of each file, or what a link points to."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("links")
    out = {}
    # "hello" first: a test imports "all" over it, which must not be an older archive (a rollback, exit 3)
    # when the clock passes a second between the two exports
    for name, pkgs in (("hello", ["airgap-hello"]), ("all", [])):
        cfg = d / f"{name}.yaml"
        cfg.write_text(
            json.dumps(
                {"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "pkg_list": pkgs, "mirror_dir": str(d / "cache")}
            )
        )
        r = cli("export", "-f", cfg, "--unsigned", d / f"{name}.tar")
        assert r.exit_code == 0, r.output
        out[name] = d / f"{name}.tar"
        out[name + ".yaml"] = cfg
    return out


def _refused(result_output: str, exit_code: int, link: Path) -> None:
    assert exit_code == 1, result_output
    lines = [line for line in result_output.splitlines() if "symbolic link" in line]
    assert len(lines) == 1 and str(link) in lines[0] and "replace the link" in lines[0], result_output


@pytest.mark.parametrize("linked", ["channel", "channel/linux-64", ".airgap"])
def test_import_refuses_a_link_that_leaves_the_destination(archives: dict[str, Path], tmp_path: Path, linked: str) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    link = dest / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    before_dest, before_outside = _tree(dest), _tree(outside)
    r = cli("import", archives["all"], "--into", dest, "--allow-unsigned")
    _refused(r.output, r.exit_code, link)
    assert _tree(outside) == before_outside == {}
    assert _tree(dest) == before_dest


def test_clean_and_receipt_refuse_a_linked_subdir(archives: dict[str, Path], tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    r = cli("import", archives["all"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    shutil.move(dest / "channel" / "noarch", outside)  # the operator moved a subdir away and linked it
    (dest / "channel" / "noarch").symlink_to(outside)
    before_dest, before_outside = _tree(dest), _tree(outside)
    r = cli("clean", "-f", archives["hello.yaml"], "--into", dest)  # would remove airgap-demo-data from noarch
    _refused(r.output, r.exit_code, dest / "channel" / "noarch")
    r = cli("receipt", "--into", dest, "-o", tmp_path / "receipt.json")
    _refused(r.output, r.exit_code, dest / "channel" / "noarch")
    assert _tree(outside) == before_outside and _tree(dest) == before_dest


def test_a_package_file_that_is_a_link_is_not_held(archives: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    r = cli("import", archives["all"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    target = next((dest / "channel" / "linux-64").glob("*.conda"))
    secret = tmp_path / "secret"
    secret.write_bytes(target.read_bytes())  # same bytes, elsewhere
    target.unlink()
    target.symlink_to(secret)
    assert DirectoryDestination(dest).file_sha256("channel", "linux-64", target.name) is None
    r = cli("import", archives["all"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert not target.is_symlink() and target.read_bytes() == secret.read_bytes()  # put back as a file


def test_a_saved_journal_does_not_undo_through_a_link(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / "ch").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.conda").write_bytes(b"keep me")
    staging = dest / ".airgap" / "staging-x-1"
    (staging / "backup").mkdir(parents=True)
    (staging / "journal.json").write_text(json.dumps({"format": "airgap-journal/1", "entries": [["ch/sub/x.conda", None]], "dirs": []}))
    (dest / "ch" / "sub").symlink_to(outside)
    with pytest.raises(DestinationError, match="symbolic link"):
        legacyjournal.load(LocalStore(dest), ".airgap/staging-x-1/")
    with pytest.raises(DestinationError, match="symbolic link"), DirectoryDestination(dest).locked(timeout=1):
        pass
    assert (outside / "x.conda").read_bytes() == b"keep me"


def test_check_beneath(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "l").symlink_to(tmp_path / "a")
    check_beneath(tmp_path, tmp_path / "a" / "b" / "not-yet" / "x")
    check_beneath(tmp_path, tmp_path)
    for bad in (tmp_path / "l", tmp_path / "l" / "b", tmp_path.parent, tmp_path / "a" / ".." / "l"):
        with pytest.raises(DestinationError):
            check_beneath(tmp_path, bad)


def test_an_index_that_is_a_link_is_not_read(archives: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    r = cli("import", archives["hello"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    index = dest / "channel" / "linux-64" / "repodata.json"
    elsewhere = tmp_path / "elsewhere.json"  # another site's index: its records must not be published here
    elsewhere.write_bytes(index.read_bytes().replace(b"airgap-hello", b"airgap-other"))
    index.unlink()
    index.symlink_to(elsewhere)
    before = _tree(dest)
    r = cli("import", archives["all"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 1 and f"{index}: expected a file, found a symbolic link" in r.output, r.output
    assert _tree(dest) == before


def test_open_beneath_follows_no_link(tmp_path: Path) -> None:
    from airgap._safepath import open_beneath

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"inside")
    (tmp_path / "l").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "g").symlink_to(tmp_path / "a" / "f")
    fd = open_beneath(str(tmp_path), ["a", "f"])
    with open(fd, "rb") as fh:
        assert fh.read() == b"inside"
    for parts in (["l", "f"], ["a", "g"]):
        with pytest.raises(OSError):
            os.close(open_beneath(str(tmp_path), parts))
