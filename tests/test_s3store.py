"""The S3 store under the transaction engine, against the session's real SeaweedFS: what only S3 does.

Listing past one page, deleting in batches of 1000 (a refused key reported), the error lines
(secrets never in them), server errors on the lock asked again, and a journal an older airgap
left (``airgap-s3-journal/1``, bucket keys) rolled back by the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from remote import BUCKET, _s3_env, s3_objects

from airgap.destinations import open_destination
from airgap.destinations.base import BlobRef, Put
from airgap.destinations.engine import StoreDestination
from airgap.destinations.memory import Faults, MemoryDestination, MemoryStore
from airgap.destinations.s3 import S3Destination
from airgap.destinations.s3store import S3Store
from airgap.errors import DestinationError, LockLostError, StoreUnavailable
from airgap.testing.condapkg import PackageSpec, write_channel


@pytest.fixture
def s3(seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> tuple[S3Destination, str]:
    _s3_env(monkeypatch, seaweed)
    prefix = f"store/{uuid.uuid4().hex[:8]}"
    dest = open_destination(f"s3://{bucket}/{prefix}")
    assert isinstance(dest, S3Destination) and dest.kind == "s3"
    return dest, prefix


def test_listing_pages_and_deleting_in_batches_of_1000(s3: tuple[S3Destination, str], monkeypatch: pytest.MonkeyPatch) -> None:
    dest, prefix = s3
    store = dest.store
    keys = [f"many/{i:05d}" for i in range(1203)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put(k, k.encode()), keys))
    assert sorted(store.list_prefix("many/")) == [(k, len(k)) for k in keys]  # two pages of list_objects_v2
    batches: list[int] = []
    real = store.client.delete_objects

    def counted(**kwargs: Any) -> Any:
        batches.append(len(kwargs["Delete"]["Objects"]))
        return real(**kwargs)

    monkeypatch.setattr(store.client, "delete_objects", counted)
    store.delete([*keys, "many/not-there"])
    assert batches == [1000, 204]
    assert list(store.list_prefix("many/")) == []


def test_inventory_lists_folders_not_objects_and_agrees_with_the_engine(
    s3: tuple[S3Destination, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, prefix = s3
    for key in [
        "main/linux-64/repodata.json",
        "main/linux-64/a-1.0-0.conda",
        "main/noarch/repodata.json",
        "main/nosubdir/a-1.0-0.conda",
        "main/linux-64/deeper/repodata.json",
        "main/repodata.json",
        "other/win-64/repodata.json",
        "empty/osx-64/x.conda",
        ".airgap/sbom/repodata.json",
        ".hidden/linux-64/repodata.json",
        "bad name/linux-64/repodata.json",
    ]:
        dest.store.put(key, b"{}")
    expected = {"main": ["linux-64", "noarch"], "other": ["win-64"]}
    assert StoreDestination.inventory(dest) == expected  # the engine's, from a listing of every object
    listed: list[str] = []
    real = dest.store.list_prefix

    def spy(prefix: str) -> Any:
        listed.append(prefix)
        return real(prefix)

    monkeypatch.setattr(dest.store, "list_prefix", spy)
    assert dest.inventory() == expected
    assert listed == []


def test_a_key_the_storage_refuses_to_delete_is_reported(s3: tuple[S3Destination, str], monkeypatch: pytest.MonkeyPatch) -> None:
    dest, prefix = s3
    refused = {"Errors": [{"Key": f"{prefix}/a", "Code": "AccessDenied", "Message": "no"}, {"Key": "x", "Code": "NoSuchKey"}]}
    monkeypatch.setattr(dest.store.client, "delete_objects", lambda **kw: refused)
    with pytest.raises(DestinationError) as exc:
        dest.store.delete(["a", "x"])
    assert str(exc.value) == f"s3://{BUCKET}/{prefix}: removing {prefix}/a: the storage answered AccessDenied (no); 1 object(s) not removed"


def test_errors_are_one_line_without_the_secret(
    seaweed: Any, bucket: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"wrong-{uuid.uuid4().hex}"
    _s3_env(monkeypatch, seaweed, seaweed.key, secret)
    r = cli("import", archives["v1"], "--into", f"s3://{bucket}/secret", "--trusted-key", archives["pub"])
    assert r.exit_code == 1 and "refused the secret key" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert secret not in r.output and seaweed.key not in r.output


def test_server_errors_on_the_lock_are_asked_again_and_throttling_is_one_line(s3: tuple[S3Destination, str]) -> None:
    from botocore.exceptions import ClientError

    store = s3[0].store

    def answer(status: int, code: str) -> Any:
        def call(**kwargs: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": code, "Message": "try later"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
            )

        return call

    store._checked = True
    store.client.put_object = answer(503, "ServiceUnavailable")
    with pytest.raises(StoreUnavailable, match="taking the lock: the storage answered ServiceUnavailable"):
        store.create(".airgap/lock", b"{}")
    store.client.put_object = answer(503, "SlowDown")
    with pytest.raises(DestinationError) as exc:
        store.put("main/x.json", b"{}")
    assert not isinstance(exc.value, StoreUnavailable)  # outside the lock: boto3 already retried; one line
    assert str(exc.value) == f"{store}: writing {store.prefix}/main/x.json: the storage answered SlowDown (try later)"


def _legacy_journal(seaweed: Any, prefix: str, entries: list[list[str | None]]) -> str:
    """What airgap <= 0.x's S3 destination wrote before its first change (bucket keys, its own area name)."""
    area = f"{prefix}/.airgap/staging-import-somehost-4242/"
    doc = {"format": "airgap-s3-journal/1", "entries": entries}
    seaweed.client().put_object(Bucket=BUCKET, Key=area + "journal.json", Body=json.dumps(doc, separators=(",", ":")).encode())
    return area


def test_a_journal_of_the_old_s3_destination_is_rolled_back_by_the_next_run(
    s3: tuple[S3Destination, str], seaweed: Any, archives: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    dest, prefix = s3
    assert cli("import", archives["v1"], "--into", f"s3://{BUCKET}/{prefix}", "--trusted-key", archives["pub"]).exit_code == 0
    before = s3_objects(seaweed, prefix + "/")
    client = seaweed.client()
    # the old version was killed mid-import: two objects copied aside, replaced, and one new object added
    area = f"{prefix}/.airgap/staging-import-somehost-4242/"
    replaced = [f"{prefix}/main/linux-64/repodata.json", f"{prefix}/.airgap/receipt.json"]
    for n, key in enumerate(replaced, 1):
        client.copy_object(Bucket=BUCKET, Key=f"{area}backup/{n}", CopySource={"Bucket": BUCKET, "Key": key})
    added = f"{prefix}/main/linux-64/new-1.0-0.conda"
    _legacy_journal(seaweed, prefix, [[replaced[0], f"{area}backup/1"], [added, None], [replaced[1], f"{area}backup/2"]])
    for key in [*replaced, added]:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"half-done")
    logging.getLogger("airgap").addHandler(caplog.handler)  # the CLI stopped it propagating
    try:
        with caplog.at_level("WARNING"), dest.locked(10):
            pass
    finally:
        logging.getLogger("airgap").removeHandler(caplog.handler)
    assert s3_objects(seaweed, prefix + "/") == before
    assert "read the journal of an older airgap in .airgap/staging-import-somehost-4242/" in caplog.text
    assert "rolled back the interrupted change of staging-import-somehost-4242" in caplog.text


def test_a_damaged_journal_of_the_old_s3_destination_is_refused_in_one_line(s3: tuple[S3Destination, str], seaweed: Any) -> None:
    dest, prefix = s3
    area = _legacy_journal(seaweed, prefix, [["elsewhere/main/linux-64/repodata.json", None]])
    with pytest.raises(DestinationError) as exc:
        with dest.locked(10):
            pass
    assert str(exc.value) == (
        f"s3://{BUCKET}/{prefix}/.airgap/staging-import-somehost-4242/journal.json: expected a journal of an older airgap "
        f"(airgap-s3-journal/1), found a malformed one (key 'elsewhere/main/linux-64/repodata.json' outside {prefix}/); "
        "finish the interrupted change with the airgap version that began it, then retry"
    )
    assert f"{area}journal.json" in s3_objects(seaweed, prefix + "/")  # nothing undone, nothing dropped


def test_a_store_key_never_leaves_the_prefix(s3: tuple[S3Destination, str]) -> None:
    store: S3Store = s3[0].store
    for key in ("../x", "a//b", "/a", "a/./b"):
        with pytest.raises(DestinationError, match="expected a key of plain path components"):
            store.put(key, b"")


# -- what the S3 destination relied on, now in the engine (on memory://: deterministic) -----------


def _blobs(tmp_path: Path, n: int) -> list[Put]:
    puts = []
    for i in range(n):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * (i + 1))
        puts.append(Put("main", "noarch", f"f{i}-1.0-0.conda", BlobRef(path, 0, i + 1, hashlib.sha256(path.read_bytes()).hexdigest())))
    return puts


def test_a_failed_upload_stops_the_uploads_not_begun(tmp_path: Path) -> None:
    """Before: the engine's pool went on storing every queued file after one had failed (the old S3 upload stopped
    after its window of 4 x workers); a Ctrl-C had to wait for the whole batch before the rollback."""
    faults = Faults()
    name = f"stop-{uuid.uuid4().hex[:8]}"
    dest = MemoryDestination(MemoryStore(name, faults), workers=2)
    puts = _blobs(tmp_path, 60)
    with dest.locked(5):
        change = dest.begin("t")
        change.plan([(p.channel, p.subdir, p.filename) for p in puts], [])
        faults.fail_at = faults.calls + 3  # the third upload fails
        with pytest.raises(DestinationError, match="injected failure"):
            change.put_packages(puts)
        uploads = len([c for c in faults.log if c.startswith("put main/")])
        change.rollback()
        change.close()
    # the two before it, the failing one, and at most one the other worker had begun: never the queue behind them
    # (CI once saw all 60: the workers had emptied the queue before the main thread looked at the third result)
    assert uploads <= 3 + 1, uploads
    assert [k for k, _ in MemoryStore(name).list_prefix("main/")] == []


def test_uploads_stop_once_the_heartbeat_finds_the_lock_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old S3 upload looked at the lease between windows; the engine looks before each file."""
    dest = MemoryDestination(MemoryStore(f"lost-{uuid.uuid4().hex[:8]}"), workers=2)
    puts = _blobs(tmp_path, 40)
    stored: list[str] = []
    real = MemoryStore.put_blob

    def put_blob(self: MemoryStore, key: str, blob: BlobRef, on_bytes: Any = None) -> None:
        real(self, key, blob, on_bytes)
        stored.append(key)
        if len(stored) == 2:
            assert dest._lease is not None
            dest._lease.lost = "another process replaced the lock (it judged it stale)"  # what renew() notes

    monkeypatch.setattr(MemoryStore, "put_blob", put_blob)
    with dest.locked(5):
        change = dest.begin("t")
        change.plan([(p.channel, p.subdir, p.filename) for p in puts], [])
        with pytest.raises(LockLostError, match="another process replaced the lock"):
            change.put_packages(puts)
        change.rollback()  # not ours any more: touches nothing
        change.close()
    assert len(stored) < 10, stored


def test_a_sync_killed_before_its_commit_is_undone_before_the_next_sync_reads_the_receipt(
    tmp_path: Path, http_server: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the S3 kill-at-every-call suite (``-m slow``), old S3 backend too: a sync killed after writing its
    receipt, before the commit. The next sync built its delta on that uncommitted receipt, then its import rolled the
    change back under the lock and refused the delta ("built on archive X, but the newest applied there is Y")."""
    from airgap.destinations.engine import StoreChange

    up = tmp_path / "up" / "main"
    specs = [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(3)]
    write_channel(up, specs, subdirs=("linux-64",), formats=("conda",))
    cfg = tmp_path / "sync.yaml"
    into = f"memory://sync-{uuid.uuid4().hex[:8]}"
    cfg.write_text(
        json.dumps({"channels": [http_server(up.parent) + "/main/"], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "c")})
    )
    assert cli("sync", "-f", cfg, "--into", into).exit_code == 0

    write_channel(up, [*specs, PackageSpec("p9", "1.0", subdir="linux-64")], subdirs=("linux-64",), formats=("conda",))

    class Died(Exception):
        pass

    def die(self: StoreChange) -> None:
        raise Died("killed before the commit")

    with monkeypatch.context() as m:  # the process "dies" at the commit: receipt written, journal saved, no rollback
        m.setattr(StoreChange, "commit", die)
        m.setattr(StoreChange, "rollback", lambda self: None)
        assert cli("sync", "-f", cfg, "--into", into).exit_code == 1
    assert any("/journal.json" in k for k, _ in MemoryStore(into[len("memory://") :]).list_prefix(".airgap/"))
    r = cli("sync", "-f", cfg, "--into", into, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 1


def test_an_import_into_a_subdir_airgap_indexed_asks_about_its_files_and_lists_no_package_folder(
    s3: tuple[S3Destination, str], archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0009 on S3: a HEAD per file the archive names instead of every 1,000-key page of a big subdir; past
    ``sizes_limit`` keys of one folder, one listing answers the rest."""
    dest, prefix = s3
    listed: list[str] = []
    real = S3Store.list_prefix

    def logged(self: S3Store, p: str) -> Any:
        listed.append(p)
        return real(self, p)

    monkeypatch.setattr(S3Store, "list_prefix", logged)
    for limit, expected_listings in ((256, 0), (1, 1)):
        into = f"s3://{BUCKET}/{prefix}/{limit}"
        assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
        listed.clear()
        monkeypatch.setattr(S3Store, "sizes_limit", limit)
        r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"], "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["packages_added"] >= 1
        assert listed.count("main/linux-64/") == expected_listings, listed
        r = cli("verify", "--into", into)
        assert r.exit_code == 0, r.output
