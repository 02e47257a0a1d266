"""Issue 20.4: an index entry someone else added for a file that does not exist is not republished by the next import."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from remote import BUCKET, _s3_env, s3_objects

GHOST = "ghost-1.0-0.conda"


def _add_ghost(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["packages.conda"][GHOST] = {
        "name": "ghost",
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": [],
        "sha256": "0" * 64,
        "size": 1234,
        "subdir": "linux-64",
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_a_foreign_entry_for_a_missing_file_is_not_republished(
    kind: str, seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, seaweed)
    prefix = f"ghost/{uuid.uuid4().hex[:8]}"
    into = f"s3://{BUCKET}/{prefix}" if kind == "s3" else str(tmp_path / "d")
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    if kind == "s3":
        client, key = seaweed.client(), f"{prefix}/main/linux-64/repodata.json"
        client.put_object(Bucket=BUCKET, Key=key, Body=_add_ghost(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    else:
        path = tmp_path / "d" / "main" / "linux-64" / "repodata.json"
        path.write_bytes(_add_ghost(path.read_bytes()))
    r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"])
    assert r.exit_code == 0, r.output
    assert f"lists {GHOST}, but the destination does not hold that file: not republished" in r.output, r.output
    if kind == "s3":
        index = json.loads(s3_objects(seaweed, f"{prefix}/")[f"{prefix}/main/linux-64/repodata.json"])
    else:
        index = json.loads((tmp_path / "d" / "main" / "linux-64" / "repodata.json").read_bytes())
    assert GHOST not in index["packages.conda"] and "a4-1.0-0.conda" in index["packages.conda"]
    assert "a1-1.0-0.conda" in index["packages.conda"]  # what the destination does hold stays listed
