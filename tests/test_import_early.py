"""A directory destination's repodata.json is mapped, and hashed on a thread while the receipt and the index are parsed (ops/import_plan.read_early)."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.core.receipt import Receipt
from airgap.destinations import open_destination
from airgap.destinations.base import load_receipt
from airgap.ops.import_plan import DestinationView, read_early
from airgap.testing.condapkg import PackageSpec, write_channel


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    up = tmp_path / "up" / "main"
    write_channel(up, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)], subdirs=("linux-64",))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar").exit_code == 0
    r = cli("import", tmp_path / "m.tar", "--into", tmp_path / "d", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    return tmp_path / "d"


def test_the_index_read_early_is_the_one_trusted(dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = open_destination(str(dest))
    raw = (dest / "main" / "linux-64" / "repodata.json").read_bytes()
    early = read_early(d, [("main", "linux-64"), ("main", "linux-64"), ("main", "osx-64")], recheck=False)
    assert sorted(early) == [("main", "linux-64"), ("main", "osx-64")]
    mapped, hashing = early[("main", "linux-64")]
    assert mapped == raw and hashing is not None and hashing.result() == hashlib.sha256(raw).hexdigest()
    assert early[("main", "osx-64")] == (None, None)

    def no_second_read(*args: Any) -> bytes | None:
        raise AssertionError("read again")

    monkeypatch.setattr(d, "read_index_file", no_second_read)
    monkeypatch.setattr(d, "view_index_file", no_second_read)
    view = DestinationView(d, load_receipt(d), False, early)
    assert view.trusted("main", "linux-64")


def test_an_index_changed_under_the_receipt_is_not_trusted(dest: Path) -> None:
    d = open_destination(str(dest))
    rd = dest / "main" / "linux-64" / "repodata.json"
    rd.write_bytes(rd.read_bytes().replace(b"{", b"{ ", 1))  # the same records, other bytes
    view = DestinationView(d, load_receipt(d), False, read_early(d, [("main", "linux-64")], recheck=False))
    assert not view.trusted("main", "linux-64")


def test_nothing_is_read_early_for_a_recheck(dest: Path) -> None:
    d = open_destination(str(dest))
    assert read_early(d, [("main", "linux-64")], recheck=True) == {}
    assert isinstance(load_receipt(d), Receipt)


def test_an_index_read_before_its_hash_is_known_is_dropped_when_the_hash_differs(dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parse runs beside the hash; a hash that is not the published one still leaves the index untrusted."""
    d = open_destination(str(dest))
    early = read_early(d, [("main", "linux-64")], recheck=False)
    raw, hashing = early[("main", "linux-64")]
    assert raw is not None and hashing is not None
    hashing.result()
    wrong: Future[str] = Future()
    wrong.set_result("0" * 64)
    view = DestinationView(d, load_receipt(d), False, {("main", "linux-64"): (raw, wrong)})
    assert not view.trusted("main", "linux-64")
    assert DestinationView(d, load_receipt(d), False, {("main", "linux-64"): (raw, hashing)}).trusted("main", "linux-64")
