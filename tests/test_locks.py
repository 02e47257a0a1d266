"""Locks as leases (issue 20): renewed while the owner works, taken over only after a missed renewal or
when the owner is known dead, fenced before each publish step; SIGTERM and a second Ctrl-C (issue 12.4).

Against the real SeaweedFS of the session and a directory destination.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, published
from remote import _s3_env, s3_objects

from airgap.core.repodata import parse_repodata
from airgap.destinations import open_destination
from airgap.destinations.base import Destination
from airgap.destinations.directory import DirectoryDestination
from airgap.destinations.lease import this_process
from airgap.destinations.s3 import S3Destination
from airgap.destinations.s3store import S3Store
from airgap.errors import LockError, LockLostError
from airgap.ops.import_ import run_import
from airgap.ops.options import ImportOptions
from airgap.signing import load_trusted_keys

ROOT = Path(__file__).resolve().parents[1]


def _s3(bucket: str, prefix: str, **site: Any) -> S3Destination:
    dest = open_destination(f"s3://{bucket}/{prefix}", site)
    assert isinstance(dest, S3Destination)
    return dest


def _index_names_only_present_files(objects: dict[str, bytes]) -> list[str]:
    """Every file a repodata.json lists is there: the problems found (empty: none)."""
    problems = []
    for key, data in objects.items():
        if key.endswith("/repodata.json"):
            folder = key.rsplit("/", 1)[0]
            doc = json.loads(data)
            for fn in [*doc.get("packages", {}), *doc.get("packages.conda", {})]:
                if f"{folder}/{fn}" not in objects:
                    problems.append(f"{folder}/{fn}")
    return problems


def test_a_renewed_lock_is_never_taken_over(seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner works longer than the stale limit; its heartbeat keeps the lock, the other one waits."""
    _s3_env(monkeypatch, seaweed)
    prefix = f"lease/{uuid.uuid4().hex[:8]}"
    owner, other = _s3(bucket, prefix, lock_stale_after=2.0), _s3(bucket, prefix, lock_stale_after=2.0)
    with owner.locked(5):
        with pytest.raises(LockError, match="holds the lock"):
            with other.locked(6):  # three stale limits of waiting
                pass
        owner.fence()  # still the owner
    assert s3_objects(seaweed, prefix + "/") == {}


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_a_lock_taken_over_stops_the_owner_before_its_next_step(
    kind: str, seaweed: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, seaweed)
    prefix = f"fence/{uuid.uuid4().hex[:8]}"
    dest: Destination = DirectoryDestination(tmp_path / "d") if kind == "directory" else _s3(bucket, prefix)
    with dest.locked(5):
        change = dest.begin("fence")
        change.plan([], [("main", "noarch")])
        lease = dest._lease  # type: ignore[attr-defined]
        # another process judged it stale and took it over (its own token, the next generation)
        taken = json.dumps({"owner": "elsewhere:1", "token": "theirs", "generation": lease.generation + 1}).encode()
        assert lease.store.lease_replace(taken, lease.version) is not None
        with pytest.raises(LockLostError, match="another process took it over"):
            change.publish_index("main", "noarch", parse_repodata(b'{"packages":{}}', "noarch", "t"))
        change.rollback()  # not ours any more: the new owner rolls the journal back, this one touches nothing
        change.close()
    if kind == "s3":
        held = s3_objects(seaweed, prefix + "/")
        assert any(k.endswith("/journal.json") for k in held) and json.loads(held[f"{prefix}/.airgap/lock"])["token"] == "theirs"
        assert not [k for k in held if k.endswith("repodata.json")]
    else:
        assert list((tmp_path / "d" / ".airgap").glob("staging-*/journal.json"))
        assert not (tmp_path / "d" / "main").exists()


def test_issue_scenario_slow_import_and_a_second_one_both_publish(
    seaweed: Any, bucket: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20.1: stale limit 3 s, import A slowed to ~7 s, import B starts 1 s later. Before: B took over and
    rolled back A's journal while A ran; both exited 0 and the index named missing files."""
    _s3_env(monkeypatch, seaweed)
    prefix = f"slow/{uuid.uuid4().hex[:8]}"
    trusted = load_trusted_keys([str(archives["pub"])])
    real_put = S3Store.put_blob
    slow: list[S3Store] = []  # A's store: its first package file takes 7 s (the engine waits for every one)

    def slow_put(self: S3Store, key: str, blob: Any, on_bytes: Any = None) -> None:
        if self in slow:
            slow.remove(self)
            time.sleep(7)
        real_put(self, key, blob, on_bytes)

    monkeypatch.setattr(S3Store, "put_blob", slow_put)
    results: dict[str, Any] = {}

    def run(name: str, archive: Path) -> None:
        dest = _s3(bucket, prefix, lock_stale_after=3)
        if name == "A":
            slow.append(dest.store)
        try:
            results[name] = run_import(archive, dest, trusted, ImportOptions(lock_timeout=60))
        except BaseException as exc:
            results[name] = exc

    a = threading.Thread(target=run, args=("A", archives["v1"]), name="A")
    a.start()
    time.sleep(1)
    b = threading.Thread(target=run, args=("B", archives["v2"]), name="B")
    b.start()
    a.join(60)
    b.join(60)
    assert not isinstance(results["A"], BaseException), results["A"]
    assert not isinstance(results["B"], BaseException), results["B"]
    objects = s3_objects(seaweed, prefix + "/")
    assert _index_names_only_present_files(objects) == []
    receipt = json.loads(objects[f"{prefix}/.airgap/receipt.json"])
    assert [x["archive_id"] for x in receipt["archives"]] == [results["A"].archive_id, results["B"].archive_id]
    index = json.loads(objects[f"{prefix}/main/linux-64/repodata.json"])
    assert "a4-1.0-0.conda" in index["packages.conda"] and "a1-1.0-0.conda" in index["packages.conda"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_a_lock_whose_process_is_gone_is_taken_over_at_once(
    kind: str, seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, seaweed)
    gone = this_process() | {"pid": _dead_pid(), "owner": "gone:1", "token": "t", "generation": 3}
    if kind == "s3":
        into = f"s3://{bucket}/gone/{uuid.uuid4().hex[:8]}"
        seaweed.client().put_object(Bucket=bucket, Key=f"{into.split('/', 3)[3]}/.airgap/lock", Body=json.dumps(gone).encode())
    else:
        into = str(tmp_path / "d")
        (tmp_path / "d" / ".airgap").mkdir(parents=True)
        (tmp_path / "d" / ".airgap" / "lock").write_text(json.dumps(gone))
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"], "--lock-timeout", "1")
    assert r.exit_code == 0 and "its process gone:1 is gone" in r.output, r.output


@pytest.mark.parametrize(
    "body",
    [b"\x00garbage{", json.dumps({"owner": "other-host:9", "token": "t", "time": time.time() + 86400}).encode()],
    ids=["unreadable", "dated-in-the-future"],
)
def test_an_unrenewed_lock_is_taken_over_after_the_stale_limit(
    body: bytes, seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judged by renewals seen, not by a date: an unreadable lock, or one dated tomorrow, goes after the limit."""
    _s3_env(monkeypatch, seaweed)
    prefix = f"stale/{uuid.uuid4().hex[:8]}"
    seaweed.client().put_object(Bucket=bucket, Key=f"{prefix}/.airgap/lock", Body=body)
    dest = _s3(bucket, prefix, lock_stale_after=1.0)
    t0 = time.monotonic()
    with dest.locked(10):
        waited = time.monotonic() - t0
        dest.fence()
    assert waited >= 1.0  # observed unchanged for the whole stale limit first
    assert s3_objects(seaweed, prefix + "/") == {}


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airgap", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_sigterm_rolls_back_and_releases_the_lock(
    seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20.3: SIGTERM (systemd stop, timeout) behaves like Ctrl-C: exit 143, nothing changed, no lock left."""
    _s3_env(monkeypatch, seaweed)
    prefix = f"term/{uuid.uuid4().hex[:8]}"
    into = f"s3://{bucket}/{prefix}"
    log = tmp_path / "calls"
    args = ["import", str(archives["v1"]), "--into", into, "--trusted-key", str(archives["pub"])]
    assert _run(args, AIRGAP_FAULT_LOG=str(log)).returncode == 0
    calls = log.read_text().splitlines()
    put = next(int(line.split()[0]) for line in calls if "PutObject" in line and "journal" not in line and int(line.split()[0]) > 8)
    into2 = f"s3://{bucket}/{prefix}-2"
    r = _run([*args[:3], into2, *args[4:]], AIRGAP_FAULT=f"term@{put}")
    assert r.returncode == 143 and "airgap: terminated" in r.stderr, r.stderr
    assert s3_objects(seaweed, f"{prefix}-2/") == {}


def test_a_second_ctrl_c_waits_for_the_rollback(archives: dict[str, Path], tmp_path: Path) -> None:
    """Issue 12.4: a Ctrl-C during the rollback of a first one must not leave unlisted files or drop the journal."""
    dest = tmp_path / "d"
    args = ["import", str(archives["v1"]), "--into", str(dest), "--trusted-key", str(archives["pub"])]
    log = tmp_path / "calls"
    r = _run(args, AIRGAP_FAULT="int@1000000", AIRGAP_FAULT_LOG=str(log))  # count only
    puts = [int(line.split()[0]) for line in log.read_text().splitlines() if line.endswith("dir put")]
    first = puts[2]  # the third package placed
    log.unlink()
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    r = _run(args, AIRGAP_FAULT=f"int@{first}", AIRGAP_FAULT_LOG=str(log))
    assert r.returncode == 130, r.stderr
    # the undo of a first import: every file placed is removed again (a file replaced would be put back: "dir undo")
    undo = [
        int(n)
        for n, what in (line.split(" ", 1) for line in log.read_text().splitlines())
        if int(n) > first and what in ("dir undo", "dir remove")
    ]
    assert len(undo) >= 3
    log.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    r = _run(args, AIRGAP_FAULT=f"int@{first},int@{undo[1]}")  # the second Ctrl-C lands in the middle of the undo
    assert r.returncode == 130, r.stderr
    assert published(dest) == {}
    assert not [p for p in dest.rglob("*") if p.is_file()], sorted(dest.rglob("*"))  # every placed file undone, journal gone after


@pytest.mark.parametrize(
    "into, expected",
    [
        ("s3://conda-bucket/%2e%2e/x", "percent-encoding"),
        ("s3://conda-bucket/%2E%2E", "percent-encoding"),
        ("s3://conda-bucket/a?b#c", "a client cuts the path there"),
        ("s3://conda-bucket/a#c", "a client cuts the path there"),
        ("quetz+http://host/a?b#c", "expected quetz+http(s)://HOST:PORT/CHANNEL"),
        ("quetz+http://host/%2e%2e/main", "expected quetz+http(s)://HOST:PORT/CHANNEL"),
        ("file:///srv/conda?x#y", "without '?' or '#'"),
    ],
)
def test_prefixes_that_a_client_would_read_elsewhere_are_refused(into: str, expected: str) -> None:
    """Issue 20.5: percent-encoded dots, '?' and '#' are refused as '..' is."""
    from airgap.destinations import open_destination
    from airgap.errors import UsageError

    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+").replace("?", r"\?")):
        open_destination(into)


@pytest.mark.parametrize(
    "args",
    [
        ["http://mirror:8080/base", "%2e%2e"],
        ["http://mirror:8080/base", "a?b#c"],
        ["http://mirror:8080/base", ".."],
        ["http://mirror:8080/%2e%2e/x", "main"],
        ["http://mirror:8080/base?x", "main"],
    ],
)
def test_condarc_never_prints_a_url_that_leaves_the_prefix(args: list[str]) -> None:
    r = cli("condarc", *args)
    assert r.exit_code == 2 and "expected" in r.output, r.output
    assert "channels:" not in r.output


def test_condarc_still_prints_plain_channels() -> None:
    r = cli("condarc", "http://mirror:8080/base", "main", "conda-forge")
    assert r.exit_code == 0 and "  - http://mirror:8080/base/conda-forge" in r.output, r.output


def test_the_next_run_recovers_after_the_s3_server_died_mid_import(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20.3: the server is killed while an import uploads, then restarted; the next run recovers by itself."""
    from servers import start_seaweed, stop, stop_seaweed

    server = start_seaweed(tmp_path / "weed")
    try:
        server.client().create_bucket(Bucket="restart-bucket")
        _s3_env(monkeypatch, server)
        into = "s3://restart-bucket/p"
        log = tmp_path / "calls"
        args = ["import", str(archives["v1"]), "--into", into, "--trusted-key", str(archives["pub"])]
        counted = _run([*args[:3], "s3://restart-bucket/count", *args[4:]], AIRGAP_FAULT_LOG=str(log))
        assert counted.returncode == 0, counted.stderr
        put = next(int(line.split()[0]) for line in log.read_text().splitlines() if "PutObject" in line and int(line.split()[0]) > 8)
        log.unlink()
        proc = subprocess.Popen(
            [sys.executable, "-m", "airgap", *args],
            env={**os.environ, "AIRGAP_FAULT": f"pause@{put}", "AIRGAP_FAULT_LOG": str(log), "AIRGAP_FAULT_PAUSE": "4"},
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not (log.exists() and len(log.read_text().splitlines()) >= put):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        stop(server.proc)  # the storage dies in the middle of the upload
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and "airgap: error:" in err, err
        server = start_seaweed(tmp_path / "weed", server.ports)
        assert server.client().head_object(Bucket="restart-bucket", Key="p/.airgap/lock")  # left behind by the dead run
        r = _run(args)  # no hand-deleted lock
        assert r.returncode == 0, r.stderr
        objects = {
            k: server.client().get_object(Bucket="restart-bucket", Key=k)["Body"].read()
            for k in (o["Key"] for o in server.client().list_objects_v2(Bucket="restart-bucket", Prefix="p/").get("Contents", []))
        }
        assert _index_names_only_present_files(objects) == []
        assert "p/.airgap/lock" not in objects and not [k for k in objects if "/staging-" in k]
    finally:
        stop_seaweed(server)
