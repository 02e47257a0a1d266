"""airgap receipt: rebuilt from the files, equal to what import recorded."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from airgap.cli import main

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
    assert r.exit_code == 0 and f"repodata lists channel/noarch/{victim.name}, which is not there" in r.output
    again = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert victim.name not in again["channels"]["channel"]["noarch"]
    assert len(again["channels"]["channel"]["linux-64"]) == len(recorded["channels"]["channel"]["linux-64"])
    assert not list((dest / ".airgap").glob("staging-*"))
