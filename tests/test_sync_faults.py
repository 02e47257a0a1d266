"""sync and import under faults, against real parts (issue 20, "not tried yet"): an upstream that
answers 5xx, a damaged file found by ``--reset``, filters changed between runs, and a quetz API
key revoked between two imports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, published
from remote import BUCKET, _s3_env, client_install, s3_objects, state
from scripted import Route, Scripted

from airgap.testing.condapkg import PackageSpec, write_channel

NAMES = ("a", "b", "c")


def _specs(*extra: str) -> list[PackageSpec]:
    return [PackageSpec(n, "1.0", subdir="linux-64", depends=("base",), padding=2000) for n in (*NAMES, *extra)] + [
        PackageSpec("base", "1.0", subdir="noarch")
    ]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Scripted]:
    write_channel(tmp_path / "up" / "main", _specs(), subdirs=("linux-64",), formats=("conda",))
    server = Scripted(tmp_path / "up")
    yield server
    server.close()


def _config(tmp_path: Path, up: Scripted, **extra: Any) -> Path:
    cfg = tmp_path / f"sync-{uuid.uuid4().hex[:6]}.yaml"
    doc = {"channels": [up.url + "/main/"], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "retries": 3, **extra}
    cfg.write_text(json.dumps(doc))
    return cfg


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (airgap's own state, locks and staging included) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _failing(up: Scripted, path: str, times: int | None) -> list[int]:
    """Answer 503 for ``path``: ``times`` times then serve it, or always (None). Returns the 503 count."""
    count = [0]

    def answer(h: SimpleHTTPRequestHandler) -> None:
        if times is None or count[0] < times:
            count[0] += 1
            h.send_error(503)
            return
        SimpleHTTPRequestHandler.do_GET(h)

    route: Route = answer
    up.routes[path] = route
    return count


@pytest.fixture(params=["dir", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A destination for sync: its --into, the channel URL a client installs from, and its whole state."""
    if request.param == "dir":
        root = tmp_path / "dest"
        root.mkdir()
        base = request.getfixturevalue("http_server")(root)
        return {"into": str(root), "channel": base + "/main", "snapshot": lambda: _tree(root)}
    seaweed = request.getfixturevalue("seaweed")
    request.getfixturevalue("bucket")
    _s3_env(monkeypatch, seaweed)
    prefix = f"syncfaults/{uuid.uuid4().hex[:8]}"
    return {
        "into": f"s3://{BUCKET}/{prefix}",
        "channel": f"{seaweed.endpoint}/{BUCKET}/{prefix}/main",
        "snapshot": lambda: s3_objects(seaweed, prefix + "/"),
    }


def test_sync_retries_5xx_and_publishes_nothing_when_one_file_never_comes(
    tmp_path: Path, upstream: Scripted, dest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, upstream)
    flaky = _failing(upstream, "/main/linux-64/a-1.0-0.conda", times=2)
    r = cli("sync", "-f", cfg, "--into", dest["into"], "--json")
    assert r.exit_code == 0, r.output
    assert flaky[0] == 2 and json.loads(r.stdout)["packages_added"] == 4  # a, b, c and base, a after two 503s
    before = dest["snapshot"]()

    write_channel(tmp_path / "up" / "main", _specs("d", "e"), subdirs=("linux-64",), formats=("conda",))
    broken = _failing(upstream, "/main/linux-64/e-1.0-0.conda", times=None)
    r = cli("sync", "-q", "-f", cfg, "--into", dest["into"])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "e-1.0-0.conda: HTTP 503" in lines[0] and "nothing was published" in lines[0], r.output
    assert broken[0] == 3  # retried as the config says, then gave up
    assert dest["snapshot"]() == before  # nothing published, no lock or staging left

    del upstream.routes["/main/linux-64/e-1.0-0.conda"]  # the server recovers
    r = cli("sync", "-f", cfg, "--into", dest["into"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 2  # d and e only
    assert client_install(dest["channel"], tmp_path, monkeypatch, spec="e")


def test_sync_reset_replaces_a_damaged_file(tmp_path: Path, upstream: Scripted) -> None:
    cfg = _config(tmp_path, upstream)
    into = tmp_path / "dest"
    assert cli("sync", "-f", cfg, "--into", into).exit_code == 0
    good = published(into)
    victim = into / "main" / "linux-64" / "b-1.0-0.conda"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped, same size: only a hash can tell
    victim.write_bytes(bytes(data))
    assert cli("verify", "--into", into, "--no-record").exit_code == 3

    r = cli("sync", "-f", cfg, "--into", into, "--reset", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 1
    assert published(into) == good
    r = cli("verify", "--into", into)
    assert r.exit_code == 0, r.output


def _held(snap: dict[str, bytes], name: str) -> bytes | None:
    """The bytes of ``name`` (a path under the destination's root) in a snapshot, or None."""
    return next((v for k, v in snap.items() if k == name or k.endswith("/" + name)), None)


def _receipt_files(snap: dict[str, bytes]) -> set[str]:
    raw = _held(snap, ".airgap/receipt.json")
    assert raw is not None
    doc = json.loads(raw)
    return {f for subs in doc["channels"].values() for files in subs.values() for f in files}


def _listed(snap: dict[str, bytes]) -> set[str]:
    raw = _held(snap, "main/linux-64/repodata.json")
    assert raw is not None
    return set(json.loads(raw)["packages.conda"])


@pytest.mark.parametrize("drop", [{"blacklist": ["b"]}, {"pkg_list": ["a", "c", "base"]}], ids=["blacklist", "pkg_list"])
def test_filters_changed_between_syncs(tmp_path: Path, upstream: Scripted, dest: dict[str, Any], drop: dict[str, Any]) -> None:
    into, b = dest["into"], "b-1.0-0.conda"
    every = _config(tmp_path, upstream, pkg_list=["a", "b", "c", "base"])
    assert cli("sync", "-f", every, "--into", into).exit_code == 0
    snap = dest["snapshot"]()
    kept = {n: _held(snap, f"main/linux-64/{n}-1.0-0.conda") for n in ("a", "c")}
    assert None not in kept.values() and b in _receipt_files(snap) and b in _listed(snap)

    r = cli("sync", "-f", _config(tmp_path, upstream, **drop), "--into", into, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_removed"] == 1
    snap = dest["snapshot"]()
    assert b not in _listed(snap) and _held(snap, f"main/linux-64/{b}") is None and b not in _receipt_files(snap)
    assert {n: _held(snap, f"main/linux-64/{n}-1.0-0.conda") for n in ("a", "c")} == kept  # byte-identical
    assert {"a-1.0-0.conda", "c-1.0-0.conda"} <= _receipt_files(snap)
    r = cli("verify", "--into", into)  # the index lists exactly what is held, every hash agrees
    assert r.exit_code == 0, r.output

    r = cli("sync", "-f", every, "--into", into)  # b added back: it returns
    assert r.exit_code == 0, r.output
    snap = dest["snapshot"]()
    assert b in _listed(snap) and _held(snap, f"main/linux-64/{b}") is not None and b in _receipt_files(snap)
    assert cli("verify", "--into", into).exit_code == 0


def _new_key(q: Any) -> str:
    import urllib3

    r = urllib3.request(
        "POST",
        q.url + "/api/api-keys",
        body=json.dumps({"description": "revoked mid-way", "roles": []}),
        headers={"X-API-Key": q.key, "Content-Type": "application/json"},
    )
    assert r.status == 201, r.data
    return str(json.loads(r.data)["key"])


def _revoke(q: Any, key: str) -> None:
    import urllib3

    r = urllib3.request("DELETE", f"{q.url}/api/api-keys/{key}", headers={"X-API-Key": q.key})
    assert r.status == 200, r.data


def test_quetz_key_revoked_between_imports(quetz: Any, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from airgap.destinations.quetz import QuetzDestination

    key = _new_key(quetz)
    monkeypatch.setenv("QUETZ_API_KEY", key)
    name = f"revoked-{uuid.uuid4().hex[:8]}"
    into = f"quetz+{quetz.url}/{name}"
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"])
    assert r.exit_code == 0, r.output
    before = state(QuetzDestination(quetz.url, name, quetz.key))

    _revoke(quetz, key)
    r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "refused the API key" in lines[0] and key not in r.output, r.output
    assert state(QuetzDestination(quetz.url, name, quetz.key)) == before  # nothing deleted, nothing added


def test_quetz_key_revoked_during_an_import(quetz: Any, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The key is deleted while the import is paused at its first upload: the next call is refused."""
    import threading
    import time

    from airgap import faults
    from airgap.destinations.quetz import QuetzDestination

    key = _new_key(quetz)
    monkeypatch.setenv("QUETZ_API_KEY", key)
    name = f"revoked-{uuid.uuid4().hex[:8]}"
    into = f"quetz+{quetz.url}/{name}"
    for channel in (into, into + "-twin"):  # the twin, in the same state, tells which call uploads first
        assert cli("import", archives["v1"], "--into", channel, "--trusted-key", archives["pub"]).exit_code == 0
    before = state(QuetzDestination(quetz.url, name, quetz.key))

    log = tmp_path / "calls"
    monkeypatch.setenv("AIRGAP_FAULT_LOG", str(log))
    faults.reset()
    assert cli("import", archives["v2"], "--into", into + "-twin", "--trusted-key", archives["pub"]).exit_code == 0
    upload = next(int(c.split()[0]) for c in log.read_text().splitlines() if "/upload/" in c)

    log.unlink()
    monkeypatch.setenv("AIRGAP_FAULT", f"pause@{upload}")
    monkeypatch.setenv("AIRGAP_FAULT_PAUSE", "3")
    faults.reset()

    def revoke_when_paused() -> None:
        while not (log.exists() and any(ln.startswith(f"{upload} ") for ln in log.read_text().splitlines())):
            time.sleep(0.05)
        _revoke(quetz, key)

    revoker = threading.Thread(target=revoke_when_paused, daemon=True)
    revoker.start()
    try:
        r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"])
    finally:
        monkeypatch.delenv("AIRGAP_FAULT")
        faults.reset()
    revoker.join(10)
    assert r.exit_code == 1
    errors = [ln for ln in r.output.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "refused the API key" in errors[0] and key not in r.output, r.output
    assert state(QuetzDestination(quetz.url, name, quetz.key)) == before  # nothing deleted
