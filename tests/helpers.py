"""Small helpers several test modules share (imported as ``helpers``; pytest puts tests/ on the path)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from airgap.cli import main

NOT_PACKAGES = {"repodata.json", "repodata.json.zst", "index.html"}


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def published(dest: Path) -> dict[str, Any]:
    """What clients see: each subdir's records and the sha256 of each file, checking that the
    repodata lists exactly the package files that are there."""
    out: dict[str, Any] = {}
    for rd_path in sorted(dest.glob("*/*/repodata.json")):
        doc = json.loads(rd_path.read_bytes())
        listed = sorted([*doc["packages"], *doc["packages.conda"]])
        files = sorted(p.name for p in rd_path.parent.iterdir() if p.name not in NOT_PACKAGES)
        assert listed == files, f"{rd_path.parent}: listed {listed} but holds {files}"
        hashes = {fn: hashlib.sha256((rd_path.parent / fn).read_bytes()).hexdigest() for fn in files}
        out[str(rd_path.relative_to(dest))] = (doc["packages"], doc["packages.conda"], doc.get("removed"), hashes)
    return out


def shared_repodata() -> Path:
    """The real public repodata snapshots in ``../shared/data`` (beside the checkout, as in CI)."""
    path = Path(os.environ.get("AIRGAP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "repodata"
    if not path.is_dir():
        raise RuntimeError(f"expected the shared real-data snapshots at {path} (../shared beside the checkout, "
                           f"or set AIRGAP_SHARED_DATA), found nothing")
    return path
