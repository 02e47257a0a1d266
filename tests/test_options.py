"""The options objects the CLI builds once (airgap/ops/options.py), the typed results' JSON, and the CLI's layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airgap.config import from_mapping
from airgap.errors import UsageError
from airgap.ops.clean import CleanResult, LostDependency, Removal
from airgap.ops.import_ import ImportResult
from airgap.ops.options import LOCK_TIMEOUT, ExportOptions, ImportOptions, PlanOptions, checked_dest_channel
from airgap.ops.plan import Plan, PlanReport
from airgap.ops.sync import SyncResult
from airgap.signing import generate_keypair

AIRGAP = Path(__file__).resolve().parent.parent / "airgap"


def _export(**kw: object) -> ExportOptions:
    config = kw.pop("config", from_mapping({"channels": ["main"]}))
    args: dict[str, object] = dict(
        archive="out.tar",
        sign_key=None,
        unsigned=False,
        since=None,
        volume_size=None,
        media_size=None,
        html=None,
        check_specs=(),
        allow_unsolvable=False,
        sbom=True,
    )
    args.update(kw)
    return ExportOptions.from_config(config, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "expected --sign-key KEY (or signing_key in the config), found neither"),
        ({"unsigned": True, "sign_key": "k"}, "--unsigned and --sign-key: expected one of them, found both"),
        ({"archive": None, "unsigned": True}, "expected ARCHIVE, the file to write"),
        ({"media_size": "4G", "unsigned": True}, "--media-size: expected together with --plan"),
        ({"html": "p.html", "unsigned": True}, "--html: expected together with --plan"),
        ({"config": from_mapping({"channels": ["main"], "delta": True}), "unsigned": True}, "delta: expected delta_dir too"),
        ({"volume_size": "lots", "unsigned": True}, "--volume-size"),
    ],
)
def test_export_options_refuse_what_the_cli_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        _export(**kw)


def test_export_options_take_the_config_where_no_flag_says(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    config = from_mapping(
        {"channels": ["main"], "signing_key": str(tmp_path / "k"), "delta": True, "delta_dir": str(tmp_path), "volume_size": "1M"}
    )
    opts = _export(config=config, check_specs=("numpy",))
    assert opts.signer is not None and opts.since == tmp_path / "receipt.json" and opts.volume_size == 1_000_000
    assert opts.installable == ("numpy",) and opts.archive == Path("out.tar")
    assert _export(config=config, unsigned=True, volume_size="2M").signer is None
    assert _export(config=config, unsigned=True, volume_size="2M").volume_size == 2_000_000


def test_plan_options_refuse_an_archive() -> None:
    with pytest.raises(UsageError, match="--plan: expected no ARCHIVE"):
        PlanOptions.from_config(
            from_mapping({"channels": ["main"]}),
            archive="out.tar",
            check_specs=(),
            allow_unsolvable=False,
            media_size=None,
            html=None,
            sign_key=None,
            unsigned=False,
            since=None,
        )


def test_import_options_check_the_destination_channel_and_default_the_lock_timeout() -> None:
    config = from_mapping({"channels": ["main"], "public_url": "http://mirror/"})
    opts = ImportOptions.from_config(
        config, dest_channel=None, public_url=None, allow_unsigned=False, allow_downgrade=False, lock_timeout=LOCK_TIMEOUT
    )
    assert opts.public_url == "http://mirror/" and opts.lock_timeout == 60.0 and ImportOptions().lock_timeout == 60.0
    with pytest.raises(UsageError, match="dest_channel: expected one path component"):
        checked_dest_channel("../etc", config)


def test_plan_report_says_whether_the_selection_fits() -> None:
    plan = Plan(channels=[], fetched={}, selections={}, wants=[])
    assert PlanReport(plan).to_json() == {"packages": [], "excluded": [], "total_bytes": 0}
    assert PlanReport(plan, media_size=10).to_json()["fits"] is True and PlanReport(plan, media_size=10).too_big is None


def test_typed_results_keep_the_json_keys() -> None:
    imported = ImportResult("d", "id", None, noop=False, downloads=["a.sh"], public_url="http://m/")
    keys = {
        "destination",
        "archive_id",
        "signer",
        "noop",
        "packages_added",
        "bytes_written",
        "packages_present",
        "packages_removed",
        "downgrade",
        "collisions",
        "channels",
    }
    assert set(imported.to_json()) == keys  # the downloads are text output only, as before
    assert set(SyncResult(imported, 1, 2, 3, 4).to_json()) == keys | {"downloaded", "downloaded_bytes", "cached", "excluded"}
    cleaned = CleanResult("d", True, [Removal("c", "s", "f", 1, "r")], 2, [LostDependency("c", "s", "g", "f >=1")])
    assert cleaned.to_json()["broken"] == [{"channel": "c", "subdir": "s", "filename": "g", "dependency": "f >=1"}]


def test_cli_and_ops_modules_stay_small_and_declare_shared_options_once() -> None:
    sizes = {p.relative_to(AIRGAP): len(p.read_text().splitlines()) for d in ("cli", "ops") for p in (AIRGAP / d).glob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}
    cli = "".join(p.read_text() for p in (AIRGAP / "cli").glob("*.py"))
    for flag in ('"--json"', '"--into"', '"--trusted-key"', '"--lock-timeout"', '"--env"', '"--allow-unsigned"'):
        assert cli.count(flag) == 1, flag
    code = "".join(p.read_text() for p in AIRGAP.rglob("*.py"))
    assert code.count('"%Y-%m-%dT%H:%M:%SZ"') == 1  # airgap/clock.py
    assert not re.search(r"lock_timeout: float = 60", "".join(p.read_text() for d in ("cli", "ops") for p in (AIRGAP / d).glob("*.py")))
