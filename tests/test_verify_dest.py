"""``airgap verify --into DEST`` on a directory destination, the import's no-op path, and the index write order.

Remote backends (S3, quetz) are covered in tests/test_destinations.py, against the real servers.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.compress import zstd_compress
from airgap.destinations.base import BlobRef
from airgap.destinations.directory import DirectoryDestination
from airgap.destinations.localstore import LocalStore
from airgap.ops.verify_dest import check_destination

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("verify-dest")
    cfg = t / "e.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(t / "c")}))
    assert cli("export", "-f", cfg, "--unsigned", t / "m.tar").exit_code == 0
    return t / "m.tar"


@pytest.fixture
def dest(archive: Path, tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    r = cli("import", archive, "--into", d, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    return d


def flip(path: Path, at: int = 100) -> bytes:
    good = path.read_bytes()
    path.write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    return good


def test_a_clean_destination_verifies(dest: Path) -> None:
    r = cli("verify", "--into", dest)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("OK ") and "12 files in 2 subdirs checked; no problem" in r.output
    doc = json.loads(cli("verify", "--into", dest, "--json").stdout)
    assert doc["ok"] and doc["files"] == 12 and doc["problems"] == [] and doc["bytes"] > 0


def test_a_flipped_byte_is_found_recorded_and_repaired_by_the_next_import(dest: Path, archive: Path) -> None:
    victim = next((dest / "channel" / "linux-64").glob("*.conda"))
    good = flip(victim)
    before = cli("import", archive, "--into", dest, "--allow-unsigned", "--json")
    assert before.exit_code == 0 and json.loads(before.stdout)["noop"] is True  # the receipt is trusted: nothing to do

    r = cli("verify", "--into", dest)
    assert r.exit_code == 3, r.output
    assert f"damaged: channel/linux-64/{victim.name}: expected sha256 " in r.output
    assert f"recorded: channel/linux-64/{victim.name} is no longer counted as held" in r.output
    assert "DAMAGED " in r.output and "1 damaged" in r.output
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert victim.name not in receipt["channels"]["channel"]["linux-64"]

    r = cli("import", archive, "--into", dest, "--allow-unsigned", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert not res["noop"] and res["packages_added"] == 1
    assert victim.read_bytes() == good
    assert cli("verify", "--into", dest).exit_code == 0


def test_missing_truncated_and_unlisted_files(dest: Path, archive: Path) -> None:
    sub = dest / "channel" / "noarch"
    gone, short = sorted(sub.glob("*.conda"))[:2]
    gone.unlink()
    short.write_bytes(short.read_bytes()[:-1])
    (sub / "stray-1.0-0.conda").write_bytes(b"x")
    r = cli("verify", "--into", dest, "--json", "--no-record")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert doc["counts"] == {"missing": 1, "damaged": 1, "index": 0, "unlisted": 1}
    kinds = {p["filename"]: (p["kind"], p["detail"]) for p in doc["problems"]}
    assert kinds[gone.name][0] == "missing"
    assert kinds[short.name] == ("damaged", f"expected size {short.stat().st_size + 1}, found {short.stat().st_size}")
    assert kinds["stray-1.0-0.conda"][0] == "unlisted"
    assert doc["recorded"] == []  # --no-record: the receipt is untouched
    assert gone.name in json.loads((dest / ".airgap" / "receipt.json").read_bytes())["channels"]["channel"]["noarch"]

    assert cli("verify", "--into", dest).exit_code == 3  # records both
    assert cli("import", archive, "--into", dest, "--allow-unsigned").exit_code == 0
    r = cli("verify", "--into", dest)
    assert r.exit_code == 0, r.output  # an unlisted file is reported, but it is no damage
    assert "unlisted: channel/noarch/stray-1.0-0.conda" in r.output and "1 unlisted" in r.output


def test_index_files_that_disagree_are_reported(dest: Path) -> None:
    sub = dest / "channel" / "linux-64"
    doc = json.loads((sub / "repodata.json").read_bytes())
    doc["packages.conda"].popitem()
    (sub / "repodata.json.zst").write_bytes(zstd_compress(json.dumps(doc).encode()))
    r = cli("verify", "--into", dest)
    assert r.exit_code == 3, r.output
    assert "index: channel/linux-64/repodata.json.zst: expected the same index as repodata.json, found another" in r.output
    (sub / "repodata.json.zst").write_bytes(b"not zstd")
    assert "found something unreadable" in cli("verify", "--into", dest).output


def test_the_index_clients_prefer_is_written_last(dest: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the two index writes, repodata.json.zst (what conda, mamba and pixi read) is still the
    old one, and verify --into says the two disagree; once both are written they agree."""
    target = DirectoryDestination(dest)
    sub = dest / "channel" / "linux-64"
    victim = next(sub.glob("*.conda"))
    flip(victim)
    assert cli("verify", "--into", dest).exit_code == 3  # recorded: the next import republishes linux-64
    (sub / "repodata.json").write_bytes((sub / "repodata.json").read_bytes().replace(b"{", b"{ ", 1))  # an older index
    (sub / "repodata.json.zst").write_bytes(zstd_compress((sub / "repodata.json").read_bytes()))
    old_zst = (sub / "repodata.json.zst").read_bytes()
    order: list[str] = []
    between: list[Any] = []
    real = LocalStore.take  # each index file is written in the change's area, then moved into place (decision 0017)

    def spy(self: LocalStore, key: str, blob: BlobRef, on_bytes: Any = None) -> None:
        name = key.rpartition("/")[2]
        if key.startswith("channel/linux-64/") and name.startswith("repodata.json"):
            order.append(name)
            if len(order) == 2:  # the state a kill between the two writes would leave
                between.append(((sub / "repodata.json.zst").read_bytes(), check_destination(target).problems))
        real(self, key, blob, on_bytes)

    monkeypatch.setattr(LocalStore, "take", spy)
    assert cli("import", archive, "--into", dest, "--allow-unsigned").exit_code == 0
    assert order == ["repodata.json", "repodata.json.zst"]
    zst_then, problems = between[0]
    assert zst_then == old_zst
    assert [(p.kind, p.subdir) for p in problems] == [("index", "linux-64")]
    assert check_destination(target).problems == []


def _tamper_blob(archive: Path, out: Path) -> None:
    """A copy of ``archive`` with one byte of its first package blob flipped (same size)."""
    data = bytearray(archive.read_bytes())
    manifest_json = None
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        manifest_json = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        packages = {b["sha256"] for b in manifest_json["blobs"] if b["kind"] == "package"}
        member = next(m for m in members if m.name.rsplit("/", 1)[-1] in packages)
        data[member.offset_data + 10] ^= 1
    out.write_bytes(bytes(data))


def test_an_applied_archive_damaged_since_is_refused(dest: Path, archive: Path, tmp_path: Path) -> None:
    """Import's exit 0 means "this archive verified", even when there is nothing to do."""
    bad = tmp_path / "bad.tar"
    _tamper_blob(archive, bad)
    assert cli("verify", bad, "--allow-unsigned").exit_code == 3
    before = sorted((p.relative_to(dest).as_posix(), p.read_bytes()) for p in dest.rglob("*") if p.is_file())
    r = cli("import", bad, "--into", dest, "--allow-unsigned")
    assert r.exit_code == 3, r.output
    assert "expected sha256" in r.output or "sha256" in r.output
    assert sorted((p.relative_to(dest).as_posix(), p.read_bytes()) for p in dest.rglob("*") if p.is_file()) == before
    r = cli("import", archive, "--into", dest, "--allow-unsigned", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["noop"] is True


def test_verify_takes_an_archive_or_a_destination(dest: Path, archive: Path) -> None:
    r = cli("verify", archive, "--into", dest, "--allow-unsigned")
    assert r.exit_code == 2 and "expected ARCHIVE or --into DEST, found both" in r.output
    r = cli("verify")
    assert r.exit_code == 2 and "found neither" in r.output
    r = cli("verify", "--into", dest.parent / "nothing-here")
    assert r.exit_code == 1 and "expected a destination holding channels, found none" in r.output


def test_damage_gone_when_checked_again_under_the_lock_is_not_recorded(dest: Path) -> None:
    """What verify reads without the lock may be an import's work in progress: record() checks again."""
    from airgap.ops.verify_dest import record

    target = DirectoryDestination(dest)
    victim = next((dest / "channel" / "noarch").glob("*.conda"))
    good = flip(victim)
    check = check_destination(target)
    assert [p.kind for p in check.problems] == ["damaged"]
    victim.write_bytes(good)  # e.g. an import replaced it meanwhile
    receipt = (dest / ".airgap" / "receipt.json").read_bytes()
    with target.locked(5):
        record(target, check)
    assert check.cleared == 1 and check.problems == [] and check.recorded == [] and not check.damaged
    assert (dest / ".airgap" / "receipt.json").read_bytes() == receipt


def test_disagreeing_indexes_are_rewritten_by_the_next_delta(dest: Path, archive: Path, tmp_path: Path) -> None:
    """verify --into records a disagreement by dropping the subdir's upstream hash from the receipt:
    ``export --since`` then carries that subdir's repodata, and its import writes both files again."""
    (dest / "channel" / "linux-64" / "repodata.json.zst").write_bytes(b"junk")
    r = cli("verify", "--into", dest)
    assert r.exit_code == 3 and "recorded: channel/linux-64: the next export --since carries its repodata again" in r.output
    cfg = tmp_path / "e.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "c")}))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "d.tar", "--since", dest / ".airgap" / "receipt.json", "--json")
    assert r.exit_code == 0, r.output
    assert [s["subdir"] for c in json.loads(cli("inspect", tmp_path / "d.tar", "--json").stdout)["channels"] for s in c["subdirs"]] == [
        "linux-64"
    ]
    assert cli("import", tmp_path / "d.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    assert cli("verify", "--into", dest).exit_code == 0


def test_a_damaged_installer_is_found_and_put_back(tmp_path: Path) -> None:
    """Installers (DEST/<dir>/<file>) are listed by the receipt, not by an index: verified against it."""
    tool = tmp_path / "tool-1.0.sh"
    tool.write_bytes(b"#!/bin/sh\n" + bytes(range(256)) * 8)
    cfg = tmp_path / "e.yaml"
    cfg.write_text(
        json.dumps(
            {
                "channels": [str(SAMPLES / "channel")],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "c"),
                "installers": [{"url": str(tool), "sha256": hashlib.sha256(tool.read_bytes()).hexdigest(), "dir": "extra"}],
            }
        )
    )
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar").exit_code == 0
    dest = tmp_path / "dest"
    assert cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    assert cli("verify", "--into", dest).exit_code == 0
    flip(dest / "extra" / tool.name)
    r = cli("verify", "--into", dest)
    assert r.exit_code == 3 and f"damaged: extra/{tool.name}: expected sha256 " in r.output, r.output
    assert f"recorded: extra/{tool.name} is no longer counted as held" in r.output and "13 files" in r.output
    assert cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    assert (dest / "extra" / tool.name).read_bytes() == tool.read_bytes()
    assert cli("verify", "--into", dest).exit_code == 0
