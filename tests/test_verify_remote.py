"""``airgap verify --into`` against the real servers: S3 (SeaweedFS) and quetz, on 127.0.0.1.

A same-size package with other bytes survives a re-import (the receipt, or quetz's index, says it
is there); ``verify --into`` finds it by reading the bytes back, and the next import repairs it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import remote as td
import urllib3
from helpers import cli

from airgap.compress import zstd_compress

# the real servers and archives of tests/test_destinations.py, shared as fixtures
archives, bucket, site = td.archives, td.bucket, td.site
BUCKET, client_install = td.BUCKET, td.client_install

VICTIM = "a1-1.0-0.conda"


def _quetz_file(q: Any, channel: str) -> Path:
    """Where quetz's package store keeps the victim (under the directory quetz runs in)."""
    root = Path(f"/proc/{q.proc.pid}/cwd").resolve()
    found = [p for p in root.rglob(VICTIM) if p.parent.name == "linux-64" and channel in p.parts]
    assert len(found) == 1, found
    return found[0]


def _served(site: dict[str, Any]) -> bytes:
    r = urllib3.PoolManager().request("GET", f"{site['channel']}/linux-64/{VICTIM}")
    assert r.status == 200
    return bytes(r.data)


def _damage(site: dict[str, Any]) -> bytes:
    """Flip one byte of the victim where the backend stores it; return the good bytes."""
    good = _served(site)
    bad = good[:200] + bytes([good[200] ^ 1]) + good[201:]
    if site["kind"] == "s3":
        site["seaweed"].client().put_object(Bucket=BUCKET, Key=f"{site['prefix']}/main/linux-64/{VICTIM}", Body=bad)
    else:
        _quetz_file(site["quetz"], site["name"]).write_bytes(bad)
    assert _served(site) == bad
    return good


@pytest.mark.parametrize("site", ["s3", "quetz"], indirect=True)
def test_verify_into_finds_a_same_size_package_with_other_bytes_and_the_next_import_repairs_it(
    site: dict[str, Any],
    archives: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    into, pub = site["into"], archives["pub"]
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", pub).exit_code == 0
    assert cli("verify", "--into", into).exit_code == 0
    good = _damage(site)
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", pub, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["noop"] is True  # trusted: the receipt (quetz: its index) says it is there

    channel = "main" if site["kind"] == "s3" else site["name"]
    r = cli("verify", "--into", into, "--json")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert [(p["kind"], p["channel"], p["subdir"], p["filename"]) for p in doc["problems"]] == [("damaged", channel, "linux-64", VICTIM)]
    assert doc["problems"][0]["detail"].startswith("expected sha256 ")
    assert doc["files"] == 5 and doc["not_recorded"] is None
    if site["kind"] == "quetz":  # its index is its inventory: the damaged file leaves it, so no client is offered it
        assert doc["recorded"] == [f"removed {channel}/linux-64/{VICTIM} from {into} (the next import uploads it again)"]
    else:
        assert doc["recorded"] == [f"{channel}/linux-64/{VICTIM} is no longer counted as held (the next import carrying it puts it back)"]

    r = cli("import", archives["v1"], "--into", into, "--trusted-key", pub, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert not res["noop"] and res["packages_added"] == 1
    assert _served(site) == good
    r = cli("verify", "--into", into)
    assert r.exit_code == 0 and "5 files in 2 subdirs checked; no problem" in r.output, r.output
    assert client_install(site["channel"], tmp_path, monkeypatch) == ["a1", "d1"]


@pytest.mark.parametrize("site", ["s3"], indirect=True)
def test_s3_index_files_that_disagree_and_a_missing_object(
    site: dict[str, Any],
    archives: dict[str, Path],
) -> None:
    into = site["into"]
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    client = site["seaweed"].client()
    base = f"{site['prefix']}/main/linux-64"
    doc = json.loads(client.get_object(Bucket=BUCKET, Key=f"{base}/repodata.json")["Body"].read())
    doc["packages.conda"].pop(VICTIM)
    client.put_object(Bucket=BUCKET, Key=f"{base}/repodata.json.zst", Body=zstd_compress(json.dumps(doc).encode()))
    client.delete_object(Bucket=BUCKET, Key=f"{base}/a3-1.0-0.conda")
    r = cli("verify", "--into", into, "--no-record")
    assert r.exit_code == 3, r.output
    assert "index: main/linux-64/repodata.json.zst: expected the same index as repodata.json" in r.output
    assert "missing: main/linux-64/a3-1.0-0.conda: the index lists it, the storage does not hold it" in r.output


@pytest.mark.parametrize("site", ["quetz"], indirect=True)
def test_sync_reset_replaces_a_file_quetz_stores_damaged(
    site: dict[str, Any],
    archives: dict[str, Path],
) -> None:
    """``sync --reset`` downloads what quetz holds and hashes it; a damaged file is uploaded again with
    ``force=true`` (quetz replaces it in place: no moment without it)."""
    r = cli("sync", "-f", archives["export"], "--into", site["into"], "--json")
    assert r.exit_code == 0, r.output
    good = _damage(site)
    r = cli("sync", "-f", archives["export"], "--into", site["into"], "--reset", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 1
    assert "stores damaged" in r.output
    assert _served(site) == good
    # the cache then damaged: a --reset sync reads every blob it publishes from, and refuses
    # (a plain sync builds on the receipt: the file is held, its cached blob is not read)
    sha = hashlib.sha256(good).hexdigest()
    cached = Path(json.loads(archives["export"].read_text())["mirror_dir"]) / "blobs" / "sha256" / sha
    kept = cached.read_bytes()
    cached.chmod(0o644)
    cached.write_bytes(kept[:300] + bytes([kept[300] ^ 1]) + kept[301:])
    try:
        r = cli("sync", "-f", archives["export"], "--into", site["into"], "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["noop"], r.output
        r = cli("sync", "-f", archives["export"], "--into", site["into"], "--reset", "--json")
        assert r.exit_code == 3 and sha in r.output, r.output
    finally:
        cached.write_bytes(kept)


@pytest.mark.parametrize("site", ["s3", "quetz"], indirect=True)
def test_a_lost_file_is_found_and_the_next_import_puts_it_back(site: dict[str, Any], archives: dict[str, Path]) -> None:
    """quetz drops a version whose file its store lost from its database, then fails before rebuilding its
    index: airgap asks it to rebuild (generate_indexes), so the index stops listing the file."""
    into, pub = site["into"], archives["pub"]
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", pub).exit_code == 0
    good = _served(site)
    if site["kind"] == "s3":
        site["seaweed"].client().delete_object(Bucket=BUCKET, Key=f"{site['prefix']}/main/linux-64/{VICTIM}")
    else:
        _quetz_file(site["quetz"], site["name"]).unlink()
    r = cli("verify", "--into", into, "--json")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert [(p["kind"], p["filename"]) for p in doc["problems"]] == [("missing", VICTIM)]
    assert doc["not_recorded"] is None and len(doc["recorded"]) == 1
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", pub, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["packages_added"] == 1, r.output
    assert _served(site) == good
    assert cli("verify", "--into", into).exit_code == 0
