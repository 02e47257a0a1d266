"""A subdir the destination does not hold yet is staged whole and placed by one rename (issue 15).

A first import of 300,000 files renamed each into place (a fifth of its time). Into a directory
destination, a new subdir's package files are now staged under their own names in a folder of the
change's area, and that folder becomes the subdir; the journal names the folder (decision 0022), so a kill
before or after the rename is undone by the next run, and an existing subdir is placed file by file as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import NOT_PACKAGES, build_archive, cli, specs

from airgap.destinations.localstore import LocalStore


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, keyring: dict[str, Any]) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("new-subdir")
    first = build_archive(specs(30), archive_id="0a0" * 10).write(d / "first.tar", keyring["good"])
    second = build_archive(specs(40), archive_id="0b0" * 10).write(d / "second.tar", keyring["good"])
    return {"first": first, "second": second, "pub": keyring["good.pub"]}


def _import(archive: Path, dest: Path, pub: Path) -> None:
    r = cli("import", archive, "--into", dest, "--trusted-key", pub)
    assert r.exit_code == 0, r.output


def _complete(dest: Path) -> dict[str, set[str]]:
    """Each subdir's listed files, every one there with its sha256 and nothing else; no staging area left."""
    out: dict[str, set[str]] = {}
    for repodata in sorted(dest.glob("*/*/repodata.json")):
        doc = json.loads(repodata.read_bytes())
        listed = {**(doc.get("packages") or {}), **(doc.get("packages.conda") or {})}
        for name, record in listed.items():
            assert hashlib.sha256((repodata.parent / name).read_bytes()).hexdigest() == record["sha256"], name
        assert {p.name for p in repodata.parent.iterdir()} - NOT_PACKAGES == set(listed), repodata.parent
        out[repodata.parent.name] = set(listed)
    assert not list((dest / ".airgap").glob("staging-*")), "a staging area was left behind"
    return out


def test_a_new_subdir_is_placed_by_one_rename_and_an_existing_one_file_by_file(
    two: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"take": 0, "take_folder": 0}
    for name in calls:
        real = getattr(LocalStore, name)

        def counted(self: LocalStore, key: str, *args: Any, _real: Any = real, _name: str = name) -> None:
            if _name == "take_folder" or key.endswith((".conda", ".tar.bz2")):  # index files are taken too (decision 0017)
                calls[_name] += 1
            _real(self, key, *args)

        monkeypatch.setattr(LocalStore, name, counted)
    dest = tmp_path / "d"
    _import(two["first"], dest, two["pub"])
    assert calls == {"take": 0, "take_folder": 2}  # linux-64 and noarch, each one rename
    first = _complete(dest)
    assert len(first["linux-64"]) == 60 and len(first["noarch"]) == 2  # .conda and .tar.bz2 of each
    calls.update(take=0, take_folder=0)
    _import(two["second"], dest, two["pub"])
    assert calls == {"take": 20, "take_folder": 0}  # ten new packages, two formats each, into subdirs that exist
    assert len(_complete(dest)["linux-64"]) == 80


def _renames(two: dict[str, Any], tmp_path: Path, child: str = "0") -> list[int]:
    """The store calls at which an unfaulted first import renames a new subdir's folder into place."""
    log = tmp_path / "calls"
    env = {**os.environ, "AIRGAP_FAULT_LOG": str(log), "AIRGAP_CHILD_MIN_BLOBS": child}
    done = subprocess.run(_command(two, tmp_path / "count"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [int(line.split()[0]) for line in log.read_text().splitlines() if line.endswith(" dir put folder")]


def _command(two: dict[str, Any], into: Path) -> list[str]:
    return [sys.executable, "-m", "airgap", "import", str(two["first"]), "--into", str(into), "--trusted-key", str(two["pub"]), "-q"]


def _killed(two: dict[str, Any], dest: Path, at: int, child: str = "0") -> None:
    """The first import into ``dest``, killed before store call ``at`` (``child``: AIRGAP_CHILD_MIN_BLOBS)."""
    env = {**os.environ, "AIRGAP_FAULT": f"kill@{at}", "AIRGAP_CHILD_MIN_BLOBS": child}
    killed = subprocess.run(_command(two, dest), env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr


@pytest.mark.parametrize("child", ["0", "1"], ids=["one process", "packages in a second process"])
@pytest.mark.parametrize("after", [False, True], ids=["before the rename", "after the rename"])
def test_a_kill_at_a_new_subdirs_rename_is_undone_by_the_next_run(two: dict[str, Any], tmp_path: Path, after: bool, child: str) -> None:
    """With a second process (airgap.ops.import_body) the new subdir's index is in its folder, placed with it."""
    renames = _renames(two, tmp_path, child)
    assert len(renames) == 2  # one a subdir
    dest = tmp_path / "d"
    _killed(two, dest, renames[0] + after, child)
    placed = [p for p in dest.glob("main/*") if p.is_dir()]
    assert len(placed) == int(after), placed  # the first subdir was renamed into place, or not yet
    indexes = list(dest.glob("main/*/repodata.json"))
    assert len(indexes) == (int(after) if child == "1" else 0)  # one process: no index yet
    for repodata in indexes:  # every file it lists is there
        doc = json.loads(repodata.read_bytes())
        listed = {**doc["packages"], **doc["packages.conda"]}
        assert listed and all((repodata.parent / name).is_file() for name in listed)
    _import(two["first"], dest, two["pub"])  # undoes the killed run first, then imports
    assert {k: len(v) for k, v in _complete(dest).items()} == {"linux-64": 60, "noarch": 2}


def test_a_new_subdir_is_journaled_as_one_folder_whose_recovery_leaves_nothing(two: dict[str, Any], tmp_path: Path) -> None:
    """Decision 0022: the killed run's journal names the new subdirs, not their files; taking the lock undoes it exactly."""
    from airgap.destinations import open_destination

    dest = tmp_path / "d"
    _killed(two, dest, _renames(two, tmp_path)[-1] + 1)
    assert len(list(dest.glob("main/linux-64/*.conda"))) == 30  # both subdirs renamed into place
    [saved] = dest.glob(".airgap/staging-*/journal.json")
    journal = json.loads(saved.read_bytes())
    assert journal["format"] == "airgap-store-journal/3" and sorted(journal["new"]) == ["main/linux-64", "main/noarch"]
    assert not any(name.endswith((".conda", ".tar.bz2")) for names in journal["folders"].values() for name in names)
    with open_destination(str(dest)).locked():  # the next run to take the lock undoes the killed one first
        pass
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*") if ".airgap" not in p.parts] == []  # as before: nothing


def test_a_folder_put_at_a_new_subdirs_key_after_a_kill_before_its_rename_is_left_alone(two: dict[str, Any], tmp_path: Path) -> None:
    """Decision 0022: until the rename, what is at the folder's key is not the killed change's to remove."""
    from airgap.destinations import open_destination

    dest = tmp_path / "d"
    _killed(two, dest, _renames(two, tmp_path)[0])
    [saved] = dest.glob(".airgap/staging-*/journal.json")
    assert "main/linux-64" in json.loads(saved.read_bytes())["new"]  # journaled, not yet renamed
    by_hand = dest / "main" / "linux-64" / "copied-1-0.conda"
    by_hand.parent.mkdir(parents=True)
    by_hand.write_bytes(b"someone else's")
    with open_destination(str(dest)).locked():
        pass
    assert by_hand.read_bytes() == b"someone else's"
    assert [p.name for p in (dest / "main").rglob("*") if p.is_file()] == ["copied-1-0.conda"]
    assert not list((dest / ".airgap").glob("staging-*"))
