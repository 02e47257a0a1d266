"""Rollback protection, channels merged into one, receipts of the wrong shape, records kept verbatim (issue 12)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, published

from airgap.config import from_mapping
from airgap.errors import RollbackError, UsageError
from airgap.ops.export import run_export
from airgap.ops.import_ import run_import
from airgap.ops.options import ExportOptions, ImportOptions, SyncOptions
from airgap.signing import TrustedKeys
from airgap.testing.condapkg import PackageSpec, write_channel


def state(up: Path, names: list[str], variant: str = "") -> None:
    """Upstream channel ``up`` now holds ``names`` (noarch, .tar.bz2); ``variant`` changes the bytes."""
    if up.exists():
        shutil.rmtree(up)
    specs = [PackageSpec(n, "1.0", files=((f"{n}.txt", f"{n}{variant}".encode()),)) for n in names]
    write_channel(up, specs, formats=("tar.bz2",))


def files(dest: Path, channel: str = "main") -> dict[str, str]:
    """What a client sees in noarch: each listed file's sha256 (checking the listing and the files agree)."""
    published(dest)
    doc = json.loads((dest / channel / "noarch" / "repodata.json").read_bytes())
    return {fn: hashlib.sha256((dest / channel / "noarch" / fn).read_bytes()).hexdigest() for fn in doc["packages"]}


class Clock:
    """An injected clock: each export is a minute after the previous one."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 60
        return self.now


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield {"tmp": tmp_path, "up": tmp_path / "up" / "main", "dest": tmp_path / "dest", "clock": Clock()}


def _config(tmp: Path, channels: list[Path], **extra: Any) -> Any:
    return from_mapping({"channels": [str(c) for c in channels], "platforms": ["linux-64"], "mirror_dir": str(tmp / "cache"), **extra})


def _export(site: dict[str, Any], name: str, since: bool = False, channels: list[Path] | None = None, **extra: Any) -> Path:
    out = site["tmp"] / f"{name}.tar"
    receipt = site["dest"] / ".airgap" / "receipt.json"
    config = _config(site["tmp"], channels or [site["up"]], **extra)
    run_export(config, ExportOptions(out, None, since=receipt if since else None), clock=site["clock"])
    return Path(out)


def _import(site: dict[str, Any], archive: Path, **kw: Any) -> Any:
    return run_import(archive, site["dest"], TrustedKeys({}), ImportOptions(allow_unsigned=True, **kw))


# --- 1. rollback protection ------------------------------------------------------------------


def test_a_replayed_older_delta_is_refused_in_one_line_and_deletes_nothing(tmp_path: Path) -> None:
    """The issue's sequence, through the CLI and signed: {a,b} full, {a,c} delta D1, {a,b} delta D2, D1 again."""
    up, dest = tmp_path / "up" / "main", tmp_path / "dest"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(up)], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    assert cli("keygen", tmp_path / "k").exit_code == 0
    ids = {}
    for name, names, since in (("A0", ["a", "b"], False), ("D1", ["a", "c"], True), ("D2", ["a", "b"], True)):
        state(up, names)
        receipt = tmp_path / f"receipt-{name}.json"
        args = ["--since", receipt] if since else []
        if since:
            shutil.copy(dest / ".airgap" / "receipt.json", receipt)  # carried back to the connected side
        r = cli("export", "-f", cfg, "--sign-key", tmp_path / "k", tmp_path / f"{name}.tar", *args, "--json")
        assert r.exit_code == 0, r.output
        ids[name] = json.loads(r.stdout)["archive_id"]
        r = cli("import", tmp_path / f"{name}.tar", "--into", dest, "--trusted-key", tmp_path / "k.pub")
        assert r.exit_code == 0, r.output
    before = files(dest)
    assert sorted(before) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2"]
    snapshot = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}

    r = cli("import", tmp_path / "D1.tar", "--into", dest, "--trusted-key", tmp_path / "k.pub")
    assert r.exit_code == 3, r.output
    lines = [line for line in r.output.splitlines() if ids["D1"] in line]
    assert len(lines) == 1 and ids["D2"] in lines[0] and "--allow-downgrade" in lines[0], r.output
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == snapshot  # untouched, b still there

    r = cli("import", tmp_path / "D1.tar", "--into", dest, "--trusted-key", tmp_path / "k.pub", "--allow-downgrade", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["downgrade"] is True and res["packages_removed"] == 0 and res["packages_added"] == 1
    assert sorted(files(dest)) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2", "c-1.0-0.tar.bz2"]  # c added, b kept
    receipt_doc = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    history = receipt_doc["applied"]["main"]
    assert [h["archive_id"] for h in history] == [ids["A0"], ids["D1"], ids["D2"], ids["D1"]]
    assert history[-1]["downgrade"] is True and all(h["signer"] for h in history)


def test_an_older_full_archive_is_refused_and_a_downgrade_adds_without_replacing(site: dict[str, Any]) -> None:
    state(site["up"], ["a", "b"])
    old = _export(site, "old")
    state(site["up"], ["a", "c"], variant="-v2")  # a rebuilt with other bytes, b gone, c new
    new = _export(site, "new")
    _import(site, new)
    current = files(site["dest"])
    with pytest.raises(RollbackError, match=r"older than archive .* the newest applied to channel 'main'"):
        _import(site, old)
    assert files(site["dest"]) == current
    res = _import(site, old, allow_downgrade=True)
    assert res.downgrade and res.packages_removed == 0
    after = files(site["dest"])
    assert after["a-1.0-0.tar.bz2"] == current["a-1.0-0.tar.bz2"]  # the newer a is not replaced by the older one
    assert sorted(after) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2", "c-1.0-0.tar.bz2"]
    _import(site, new)  # the newest again: still accepted (a no-op)


def test_a_delta_built_on_another_state_is_refused(site: dict[str, Any]) -> None:
    state(site["up"], ["a"])
    _import(site, _export(site, "A0"))
    state(site["up"], ["a", "b"])
    d1 = _export(site, "D1", since=True)
    state(site["up"], ["a", "c"])
    d2 = _export(site, "D2", since=True)  # also built on A0: its removals assume A0's state
    _import(site, d1)
    with pytest.raises(RollbackError, match="is a delta built on archive"):
        _import(site, d2)
    assert sorted(files(site["dest"])) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2"]


def test_a_receipt_without_history_still_loads_and_starts_one(site: dict[str, Any]) -> None:
    """Receipts written before the history existed: no order can be checked; the next import starts it."""
    state(site["up"], ["a", "b"])
    old = _export(site, "old")
    state(site["up"], ["a", "c"])
    _import(site, _export(site, "new"))
    path = site["dest"] / ".airgap" / "receipt.json"
    doc = json.loads(path.read_bytes())
    for key in ("applied", "channel_map"):
        del doc[key]
    for held in doc["channels"]["main"]["noarch"].values():
        del held["from"]
    path.write_text(json.dumps(doc))
    res = _import(site, old)  # unknown history: accepted (as before this version)
    assert not res.downgrade
    assert json.loads(path.read_bytes())["applied"]["main"][0]["archive_id"] == res.archive_id


# --- 2. a delta under --dest-channel --------------------------------------------------------


@pytest.mark.parametrize("into", ["merged", "main"])  # "main": the first archive channel's own name
def test_a_delta_into_a_merged_channel_removes_nothing_still_listed(site: dict[str, Any], into: str) -> None:
    main, extra = site["tmp"] / "up" / "main", site["tmp"] / "up" / "extra"
    state(main, ["a", "b"])
    state(extra, ["x", "y"])
    _import(site, _export(site, "full", channels=[main, extra]), dest_channel=into)
    before = files(site["dest"], into)
    assert len(before) == 4
    doc = json.loads((site["dest"] / ".airgap" / "receipt.json").read_bytes())
    assert doc["channel_map"] == {"main": [into], "extra": [into]}

    delta = _export(site, "delta", since=True, channels=[main, extra])  # nothing changed upstream
    res = _import(site, delta, dest_channel=into)
    assert files(site["dest"], into) == before
    assert res.packages_removed == 0
    manifest = json.loads(cli("inspect", delta, "--json").stdout)
    assert all(not s["removals"] for c in manifest["channels"] for s in c["subdirs"]), manifest
    assert manifest["bases"]["extra"]["channel"] == into

    state(extra, ["x"])  # y leaves extra; main's files stay
    res = _import(site, _export(site, "delta2", since=True, channels=[main, extra]), dest_channel=into)
    assert res.packages_removed == 1
    assert sorted(files(site["dest"], into)) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2", "x-1.0-0.tar.bz2"]


def test_a_delta_is_imported_with_the_mapping_it_was_made_for(site: dict[str, Any]) -> None:
    state(site["up"], ["a"])
    _import(site, _export(site, "full"), dest_channel="merged")
    state(site["up"], ["a", "b"])
    delta = _export(site, "delta", since=True)
    with pytest.raises(UsageError, match="--dest-channel merged"):
        _import(site, delta)
    assert not (site["dest"] / "main").exists()


# --- 3. one file name, two channels, different bytes -----------------------------------------


def test_first_channel_wins_a_name_collision_and_import_clean_and_receipt_agree(
    site: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    main, extra = site["tmp"] / "up" / "main", site["tmp"] / "up" / "extra"
    state(main, ["a", "same"])
    state(extra, ["x", "same"], variant="-extra")  # same-1.0-0.tar.bz2 with other bytes
    main_sha = hashlib.sha256((main / "noarch" / "same-1.0-0.tar.bz2").read_bytes()).hexdigest()
    res = _import(site, _export(site, "full", channels=[main, extra]), dest_channel="merged")
    held = files(site["dest"], "merged")  # listing and files agree
    assert sorted(held) == ["a-1.0-0.tar.bz2", "same-1.0-0.tar.bz2", "x-1.0-0.tar.bz2"]
    record = json.loads((site["dest"] / "merged" / "noarch" / "repodata.json").read_bytes())["packages"]["same-1.0-0.tar.bz2"]
    assert record["sha256"] == main_sha
    assert held["same-1.0-0.tar.bz2"] == main_sha
    assert res.collisions == 1
    warned = [r.getMessage() for r in caplog.records if "same-1.0-0.tar.bz2" in r.getMessage()]
    assert warned and "'main'" in warned[0] and "'extra'" in warned[0] and "keeping 'main'" in warned[0]
    receipt = json.loads((site["dest"] / ".airgap" / "receipt.json").read_bytes())
    assert receipt["channels"]["merged"]["noarch"]["same-1.0-0.tar.bz2"] == {"sha256": main_sha, "size": record["size"], "from": "main"}

    cfg = site["tmp"] / "clean.yaml"
    cfg.write_text(json.dumps({"channels": [str(main), str(extra)], "platforms": ["linux-64"]}))
    r = cli("clean", "-f", cfg, "--into", site["dest"], "--dry-run", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["remove"] == [], r.output

    # an export that knows the channels merge (dest_channel) records the choice in the manifest
    manifest = json.loads(cli("inspect", _export(site, "known", channels=[main, extra], dest_channel="merged"), "--json").stdout)
    shadowed = {c["name"]: [f for s in c["subdirs"] for f in s["shadowed"]] for c in manifest["channels"]}
    assert shadowed == {"main": [], "extra": ["same-1.0-0.tar.bz2"]}


# --- 16. receipts of the wrong shape ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"format": "airgap-receipt/1", "channels": []}',
        '{"format": "airgap-receipt/1", "channels": {"main": {"noarch": {"a-1.0-0.tar.bz2": {"sha256": "x"}}}}}',
        '{"format": "airgap-receipt/1", "applied": {"main": [{"archive_id": 1}]}}',
        '{"format": "airgap-receipt/1", "channels": ' + "[" * 100000 + "]" * 100000 + "}",
        "[" * 100000 + "]" * 100000,
    ],
)
def test_a_receipt_of_the_wrong_shape_is_one_clear_error(site: dict[str, Any], content: str) -> None:
    state(site["up"], ["a"])
    archive = _export(site, "full")
    (site["dest"] / ".airgap").mkdir(parents=True)
    (site["dest"] / ".airgap" / "receipt.json").write_text(content)
    r = cli("import", archive, "--into", site["dest"], "--allow-unsigned")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "airgap receipt --into" in r.output and "Traceback" not in r.output and len(r.output) < 600, r.output
    r = cli(
        "export", "-f", site["tmp"] / "none.yaml", "--unsigned", site["tmp"] / "x.tar", "--since", site["dest"] / ".airgap" / "receipt.json"
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert cli("receipt", "--into", site["dest"]).exit_code == 0  # the way out the message names works


# --- 20. records a destination lists are never dropped ----------------------------------------


def test_records_the_parser_cannot_read_are_kept_verbatim_by_an_unrelated_import(site: dict[str, Any]) -> None:
    state(site["up"], ["a"])
    _import(site, _export(site, "first"))
    sub = site["dest"] / "main" / "noarch"
    odd = {"name": "odd", "version": "1.0", "subdir": "linux-64", "depends": []}  # no build, wrong subdir
    (sub / "odd-1.0-0.tar.bz2").write_bytes(b"a file some other tool published")
    doc = json.loads((sub / "repodata.json").read_bytes())
    doc["packages"]["odd-1.0-0.tar.bz2"] = odd
    (sub / "repodata.json").write_text(json.dumps(doc))
    state(site["up"], ["a", "b"])
    _import(site, _export(site, "second"))
    after = json.loads((sub / "repodata.json").read_bytes())["packages"]
    assert after["odd-1.0-0.tar.bz2"] == odd and "b-1.0-0.tar.bz2" in after
    cfg = site["tmp"] / "clean.yaml"
    cfg.write_text(json.dumps({"channels": [str(site["up"])], "platforms": ["linux-64"]}))
    r = cli("clean", "-f", cfg, "--into", site["dest"], "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert "odd-1.0-0.tar.bz2" not in [x["filename"] for x in json.loads(r.stdout)["remove"]]


def test_sync_refuses_to_roll_back_and_allow_downgrade_only_adds(site: dict[str, Any]) -> None:
    from airgap.ops.sync import run_sync

    state(site["up"], ["a", "b"])
    _import(site, _export(site, "future"))  # made by a host whose clock is ahead (see Clock)
    state(site["up"], ["a", "c"])
    config = _config(site["tmp"], [site["up"]])
    with pytest.raises(RollbackError, match="is older than archive"):
        run_sync(config, site["dest"], SyncOptions(), clock=lambda: 1_700_000_000.0)
    assert sorted(files(site["dest"])) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2"]
    res = run_sync(config, site["dest"], SyncOptions(allow_downgrade=True), clock=lambda: 1_700_000_000.0)
    assert res.imported.downgrade and res.imported.packages_removed == 0
    assert sorted(files(site["dest"])) == ["a-1.0-0.tar.bz2", "b-1.0-0.tar.bz2", "c-1.0-0.tar.bz2"]
