"""airgap receipt: rebuilt from the files, equal to what import recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.core.receipt import RECEIPT_FORMAT, parse_receipt_bytes
from airgap.errors import ReceiptError

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_rebuilt_receipt_matches_the_import(tmp_path: Path) -> None:
    cfg = tmp_path / "e.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "c")}))
    run = CliRunner().invoke
    assert run(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")]).exit_code == 0
    dest = tmp_path / "dest"
    assert run(main, ["import", str(tmp_path / "m.tar"), "--into", str(dest), "--allow-unsigned"]).exit_code == 0
    recorded = json.loads((dest / ".airgap" / "receipt.json").read_bytes())

    r = run(main, ["receipt", "--into", str(dest), "-o", str(tmp_path / "r.json"), "--json"])
    assert r.exit_code == 0, r.output
    rebuilt = json.loads((tmp_path / "r.json").read_bytes())
    assert rebuilt["channels"] == recorded["channels"] and rebuilt["archives"] == recorded["archives"]
    assert json.loads(r.stdout)["files"] == 12

    (dest / ".airgap" / "receipt.json").unlink()
    victim = next((dest / "channel" / "noarch").glob("*.conda"))
    victim.unlink()
    r = run(main, ["receipt", "--into", str(dest)])
    assert r.exit_code == 0 and f"warning: missing: channel/noarch/{victim.name}: the index lists it" in r.output
    again = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert victim.name not in again["channels"]["channel"]["noarch"]
    assert len(again["channels"]["channel"]["linux-64"]) == len(recorded["channels"]["channel"]["linux-64"])
    assert not list((dest / ".airgap").glob("staging-*"))


def test_receipt_reports_a_damaged_file_and_does_not_record_it_as_held(tmp_path: Path) -> None:
    """A file with other bytes (same size) is reported as ``verify --into`` does, and left out of the
    receipt: the next import puts it back, and ``export --since`` would ship it."""
    cfg = tmp_path / "e.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "c")}))
    run = CliRunner().invoke
    assert run(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")]).exit_code == 0
    dest = tmp_path / "dest"
    assert run(main, ["import", str(tmp_path / "m.tar"), "--into", str(dest), "--allow-unsigned"]).exit_code == 0
    victim = next((dest / "channel" / "noarch").glob("*.conda"))
    good = victim.read_bytes()
    victim.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])

    r = run(main, ["receipt", "--into", str(dest), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["damaged"] == [f"channel/noarch/{victim.name}"]
    assert [(p["kind"], p["filename"]) for p in doc["problems"]] == [("damaged", victim.name)]
    assert victim.name not in json.loads((dest / ".airgap" / "receipt.json").read_bytes())["channels"]["channel"]["noarch"]
    r = run(main, ["receipt", "--into", str(dest)])
    assert f"warning: damaged: channel/noarch/{victim.name}: expected sha256" in r.output

    r = run(main, ["import", str(tmp_path / "m.tar"), "--into", str(dest), "--allow-unsigned", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 1
    assert victim.read_bytes() == good


def test_a_receipt_only_lenient_json_reads_is_refused_in_one_line() -> None:
    """NaN, Infinity and lone surrogates: Python's json reads them, airgap could not write them back (found by fuzzing)."""
    for odd in (b'"cleans": Infinity', b'"cleans": NaN', b'"x": "\\ud800"'):
        data = b'{"format": "' + RECEIPT_FORMAT.encode() + b'", ' + odd + b"}"
        with pytest.raises(ReceiptError, match="strict readers refuse") as caught:
            parse_receipt_bytes(data, "r")
        assert "\n" not in str(caught.value)
    with pytest.raises(ReceiptError, match="line 1 column"):  # no JSON at all: json's message says where
        parse_receipt_bytes(b'{"format": ', "r")
