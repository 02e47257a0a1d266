"""Every destination backend against one contract, then the CLI against real servers.

The backends: a directory, S3 (a real SeaweedFS on 127.0.0.1) and quetz (a real quetz server on
127.0.0.1). The contract is the interface in airgap/destinations/base.py, exercised with real
conda packages; the CLI tests import signed archives into each site, install from it with a
real conda client (py-rattler) over HTTP, re-import, apply a delta, clean, and refuse bad
credentials without changing anything.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from remote import BUCKET, _s3_env, client_install, s3_objects, state

from airgap.core.repodata import parse_repodata
from airgap.destinations import open_destination
from airgap.destinations.base import BlobRef, Destination, Put
from airgap.destinations.directory import DirectoryDestination
from airgap.testing.condapkg import PackageSpec, write_channel

_n = itertools.count()


@pytest.fixture
def make_dest(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Destination]:
    def make(kind: str) -> Destination:
        n = next(_n)
        if kind == "directory":
            return DirectoryDestination(tmp_path / f"dest{n}")
        if kind == "memory":  # the transaction engine over the in-memory store (airgap/destinations/engine.py)
            return open_destination(f"memory://contract-{uuid.uuid4().hex[:8]}")
        if kind == "oci":  # a real registry on 127.0.0.1:443 (tests/ociparts.py)
            request.getfixturevalue("oci_registry")
            return open_destination(f"oci://127.0.0.1/contract/{uuid.uuid4().hex[:8]}", {"lock_settle": 0})
        if kind == "s3":  # the transaction engine over the S3 store (airgap/destinations/s3store.py)
            seaweed = request.getfixturevalue("seaweed")
            request.getfixturevalue("bucket")
            _s3_env(monkeypatch, seaweed)
            return open_destination(f"s3://{BUCKET}/contract/{uuid.uuid4().hex[:8]}")
        from airgap.destinations.quetz import QuetzDestination

        q = request.getfixturevalue("quetz")
        return QuetzDestination(q.url, f"contract-{uuid.uuid4().hex[:8]}", q.key, index_timeout=30)

    return make


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real conda packages: linux-64 and noarch, one with a dependency."""
    root = tmp_path_factory.mktemp("contract") / "main"
    write_channel(
        root,
        [
            PackageSpec("app", "1.0", subdir="linux-64", depends=("lib >=1",)),
            PackageSpec("old", "0.1", subdir="linux-64"),
            PackageSpec("lib", "1.0", subdir="noarch"),
            PackageSpec("lib", "2.0", subdir="noarch"),
        ],
        formats=("conda",),
        subdirs=("linux-64",),
    )
    return root


def _upstream(channel: Path) -> dict[str, Any]:
    return {s: parse_repodata((channel / s / "repodata.json").read_bytes(), s, s) for s in ("linux-64", "noarch")}


def publish(dest: Destination, channel: Path, skip: set[str] = frozenset(), commit: bool = True) -> Any:  # type: ignore[assignment]
    """Publish the channel's packages (except ``skip``) the way import does: packages, index, receipt."""
    ch = dest.capabilities.fixed_channel or "main"
    up = _upstream(channel)
    change = dest.begin("contract")
    puts = []
    for subdir, rd in up.items():
        for fn, _ in rd.records():
            if fn in skip:
                continue
            path = channel / subdir / fn
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            if dest.file_sha256(ch, subdir, fn) == sha:  # as import does: a file held with these bytes is not placed again
                continue
            if change.staging is not None:
                shutil.copy(path, change.staging / sha)
                path = change.staging / sha
            puts.append(Put(ch, subdir, fn, BlobRef(path, 0, path.stat().st_size, sha)))
    change.plan([(p.channel, p.subdir, p.filename) for p in puts], [(ch, s) for s in up])
    change.put_packages(puts)
    for subdir, rd in up.items():
        change.publish_index(ch, subdir, rd.subset({f for f, _ in rd.records() if f not in skip}))
    receipt: dict[str, Any] = {"format": "airgap-receipt/1", "archives": [], "channels": {ch: {p.subdir: {} for p in puts}}}
    for p in puts:
        receipt["channels"][ch][p.subdir][p.filename] = {"sha256": p.blob.sha256, "size": p.blob.size}
    change.write_receipt(receipt)
    if commit:
        change.commit()
        change.close()
    return change


ALL = ["directory", "s3", "quetz", "memory", "oci"]


@pytest.mark.parametrize("kind", ALL)
def test_contract_empty_destination(kind: str, make_dest: Callable[[str], Destination]) -> None:
    dest = make_dest(kind)
    ch = dest.capabilities.fixed_channel or "main"
    assert dest.inventory() == {}
    assert dest.read_repodata(ch, "linux-64") is None
    assert dest.files(ch, "linux-64") == {}
    assert dest.file_sha256(ch, "linux-64", "app-1.0-0.conda") is None
    assert dest.read_receipt()["channels"] == {}


@pytest.mark.parametrize("kind", ALL)
def test_contract_publish_and_read_back(kind: str, make_dest: Callable[[str], Destination], channel: Path) -> None:
    dest = make_dest(kind)
    ch = dest.capabilities.fixed_channel or "main"
    with dest.locked(10):
        publish(dest, channel)
    assert set(dest.inventory()[ch]) == {"linux-64", "noarch"}
    for subdir, up in _upstream(channel).items():
        rd = dest.read_repodata(ch, subdir)
        assert rd is not None and sorted(f for f, _ in rd.records()) == sorted(f for f, _ in up.records())
        if dest.capabilities.keeps_repodata:
            assert rd.to_bytes() == up.to_bytes()  # published as given, byte for byte
        held = dest.files(ch, subdir)
        for fn, _ in up.records():
            data = (channel / subdir / fn).read_bytes()
            assert held[fn] == len(data)
            assert dest.file_sha256(ch, subdir, fn) == hashlib.sha256(data).hexdigest()
    receipt = dest.read_receipt()["channels"][ch]
    assert (
        receipt["linux-64"]["app-1.0-0.conda"]["sha256"]
        == hashlib.sha256((channel / "linux-64" / "app-1.0-0.conda").read_bytes()).hexdigest()
    )
    assert dest.channel_url(ch).endswith(ch)


@pytest.mark.parametrize("kind", ALL)
def test_contract_rollback_restores_what_was_there(kind: str, make_dest: Callable[[str], Destination], channel: Path) -> None:
    dest = make_dest(kind)
    with dest.locked(10):
        publish(dest, channel, skip={"lib-2.0-0.conda", "app-1.0-0.conda"})
        before = state(dest)
        change = publish(dest, channel, commit=False)  # everything placed and indexed, not committed
        published = state(dest)
        assert published != before
        change.rollback()
        change.close()
    # quetz listed each file as it arrived and has no lock: another import may rely on it, so nothing is deleted
    assert state(dest) == (published if kind == "quetz" else before)


@pytest.mark.parametrize("kind", ALL)
def test_contract_remove_after_unlisting(kind: str, make_dest: Callable[[str], Destination], channel: Path) -> None:
    dest = make_dest(kind)
    ch = dest.capabilities.fixed_channel or "main"
    with dest.locked(10):
        publish(dest, channel)
        rd = dest.read_repodata(ch, "linux-64")
        assert rd is not None
        change = dest.begin("clean")
        change.plan([], [(ch, "linux-64")])
        change.publish_index(ch, "linux-64", rd.subset({"app-1.0-0.conda"}))
        change.commit()
        dest.remove_packages([(ch, "linux-64", "old-0.1-0.conda")])
        change.close()
    assert "old-0.1-0.conda" not in dest.files(ch, "linux-64")
    after = dest.read_repodata(ch, "linux-64")
    assert after is not None and [f for f, _ in after.records()] == ["app-1.0-0.conda"]


@pytest.mark.parametrize("kind", ["directory", "s3", "memory", "oci"])  # quetz keeps no journal: its uploads are idempotent instead
def test_contract_killed_change_is_rolled_back_by_the_next_lock(kind: str, make_dest: Callable[[str], Destination], channel: Path) -> None:
    dest = make_dest(kind)
    with dest.locked(10):
        publish(dest, channel, skip={"lib-2.0-0.conda"})
    before = state(dest)
    with dest.locked(10):
        publish(dest, channel, commit=False)  # the process "dies" here: no rollback, no close
        assert state(dest) != before
    with dest.locked(10):
        pass
    assert state(dest) == before


@pytest.mark.parametrize("kind", ["directory", "s3", "memory", "oci"])
def test_contract_a_failed_rollback_is_finished_by_the_next_lock(
    kind: str, make_dest: Callable[[str], Destination], channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = make_dest(kind)
    with dest.locked(10):
        publish(dest, channel, skip={"lib-2.0-0.conda"})
    before = state(dest)
    with dest.locked(10):
        change = publish(dest, channel, commit=False)
        with monkeypatch.context() as m:  # the storage refuses every undo this time
            m.setattr(type(change.journal), "rollback", lambda self: False)
            change.rollback()
        change.close()
    assert state(dest) != before  # still changed, but the journal was kept ...
    with dest.locked(10):
        pass
    assert state(dest) == before  # ... and the next run that takes the lock finished the undo


# -- the CLI against real servers ------------------------------------------------------------


@pytest.mark.parametrize("site", ["s3", "quetz"], indirect=True)
def test_import_installs_reimports_as_noop_takes_a_delta_and_cleans(
    site: dict[str, Any], archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli("import", archives["v1"], "--into", site["into"], "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["packages_added"] == 5 and not res["noop"]
    assert "upstream repodata patches do not reach it" not in r.output, r.output  # no record differs: nothing to warn about
    assert client_install(site["channel"], tmp_path, monkeypatch) == ["a1", "d1"]

    before = site["snapshot"]()
    r = cli("import", archives["v1"], "--into", site["into"], "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["noop"] is True
    assert site["snapshot"]() == before

    # a delta against the site's own receipt: a4 arrives, a2 leaves
    receipt = tmp_path / "receipt.json"
    if site["kind"] == "quetz":  # no receipt file on a quetz server: say so, and how to get one
        r = cli("receipt", "--into", site["into"])
        assert r.exit_code == 2 and "keeps no receipt file" in r.output and "-o FILE" in r.output, r.output
    r = cli("receipt", "--into", site["into"], "-o", receipt, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files"] == 5
    delta = tmp_path / "delta.tar"
    r = cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", receipt, "--json")
    assert r.exit_code == 0, r.output
    r = cli("import", delta, "--into", site["into"], "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["packages_added"] == 1 and res["packages_removed"] == 1
    assert client_install(site["channel"], tmp_path, monkeypatch, "a4") == ["a4", "d1"]

    # clean: the GPL package goes from the index, then from the storage
    r = cli("clean", "-f", archives["clean"], "--into", site["into"], "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert [x["filename"] for x in json.loads(r.stdout)["remove"]] == ["gpl1-1.0-0.conda"]
    r = cli("clean", "-f", archives["clean"], "--into", site["into"], "--json")
    assert r.exit_code == 0, r.output
    held = site["snapshot"]()
    if site["kind"] == "s3":
        names = {k.rsplit("/", 1)[-1] for k in held}
        assert "gpl1-1.0-0.conda" not in names and "a2-1.0-0.conda" not in names and "a4-1.0-0.conda" in names
        assert not [k for k in held if "/.airgap/staging-" in k or k.endswith("/.airgap/lock")]  # nothing left behind
        index = json.loads(held[f"{site['prefix']}/main/linux-64/repodata.json"])
        assert sorted(index["packages.conda"]) == ["a1-1.0-0.conda", "a3-1.0-0.conda", "a4-1.0-0.conda"]
    else:
        assert sorted(f for f, _ in held[f"{site['name']}/linux-64"][0]) == ["a1-1.0-0.conda", "a3-1.0-0.conda", "a4-1.0-0.conda"]


def test_s3_import_publishes_the_archive_repodata_verbatim(
    seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, seaweed)
    prefix = f"verbatim/{uuid.uuid4().hex[:8]}"
    assert cli("import", archives["v1"], "--into", f"s3://{bucket}/{prefix}", "--trusted-key", archives["pub"]).exit_code == 0
    assert cli("import", archives["v1"], "--into", tmp_path / "dir", "--trusted-key", archives["pub"]).exit_code == 0
    objects = s3_objects(seaweed, prefix + "/")
    files = {
        p.relative_to(tmp_path / "dir").as_posix(): p.read_bytes()
        for p in (tmp_path / "dir").rglob("*")
        if p.is_file() and ".airgap" not in p.parts
    }
    published = {k[len(prefix) + 1 :]: v for k, v in objects.items() if not k.startswith(f"{prefix}/.airgap/")}
    sharded = {k for k in set(files) - set(published) if "/shards/" in k or k.endswith("/repodata_shards.msgpack.zst")}
    files = {k: v for k, v in files.items() if k not in sharded}  # CEP-16 shards: on S3 once it runs on the engine
    assert set(published) == set(files)  # the same files, index.html pages included
    pages = {k for k in files if k.endswith("index.html")}  # (they show the import time)
    assert pages == {"main/index.html", "main/linux-64/index.html", "main/noarch/index.html"}
    assert {k: v for k, v in published.items() if k not in pages} == {k: v for k, v in files.items() if k not in pages}
    receipt = json.loads(objects[f"{prefix}/.airgap/receipt.json"])
    assert receipt["archives"][0]["archive_id"] and len(receipt["channels"]["main"]["linux-64"]) == 4


def test_s3_bad_credentials_change_nothing(seaweed: Any, bucket: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"auth/{uuid.uuid4().hex[:8]}"
    into = f"s3://{bucket}/{prefix}"
    _s3_env(monkeypatch, seaweed)
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    before = s3_objects(seaweed, prefix + "/")
    for key, secret, words in [
        (seaweed.key, "wrong-secret", "refused the secret key; check AWS_SECRET_ACCESS_KEY"),
        ("nobody", "x", "does not know this access key; check AWS_ACCESS_KEY_ID"),
        (seaweed.reader_key, seaweed.reader_secret, "access denied"),
    ]:
        _s3_env(monkeypatch, seaweed, key, secret)
        r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"])
        assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert s3_objects(seaweed, prefix + "/") == before
    _s3_env(monkeypatch, seaweed)
    r = cli("import", archives["v1"], "--into", "s3://no-such-bucket/x", "--trusted-key", archives["pub"])
    assert r.exit_code == 1 and "expected bucket 'no-such-bucket', found none; create it first" in r.output, r.output


def test_s3_failure_while_publishing_rolls_back(
    seaweed: Any, bucket: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airgap.destinations.engine import StoreChange as S3Change

    prefix = f"fail/{uuid.uuid4().hex[:8]}"
    into = f"s3://{bucket}/{prefix}"
    _s3_env(monkeypatch, seaweed)
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    before = s3_objects(seaweed, prefix + "/")
    real = S3Change.publish_index
    calls = {"n": 0}

    def failing(self: S3Change, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("connection reset by the storage")
        real(self, *args)

    monkeypatch.setattr(S3Change, "publish_index", failing)
    r = cli("import", archives["v2"], "--into", into, "--trusted-key", archives["pub"], "--dest-channel", "main")
    assert r.exit_code == 1 and "connection reset" in r.output, r.output
    assert calls["n"] == 2
    assert s3_objects(seaweed, prefix + "/") == before


def test_quetz_bad_key_changes_nothing(quetz: Any, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"auth-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("QUETZ_API_KEY", "not-a-key")
    r = cli("import", archives["v1"], "--into", f"quetz+{quetz.url}/{name}", "--trusted-key", archives["pub"])
    assert r.exit_code == 1 and "refused the API key (401" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    import urllib3

    assert urllib3.request("GET", f"{quetz.url}/api/channels/{name}").status == 404  # not even created
    monkeypatch.delenv("QUETZ_API_KEY")
    r = cli("import", archives["v1"], "--into", f"quetz+{quetz.url}/{name}", "--trusted-key", archives["pub"])
    assert r.exit_code == 2 and "expected an API key" in r.output, r.output


def test_sites_config_names_the_destination(
    seaweed: Any, bucket: str, quetz: Any, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, seaweed)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    prefix = f"site/{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "import.yaml"
    cfg.write_text(
        json.dumps(
            {
                "dest_site": "store",
                "sites": {
                    "store": {"url": f"s3://{bucket}/{prefix}", "endpoint_url": seaweed.endpoint},
                    "server": {"url": f"quetz+{quetz.url}/site-{prefix[-8:]}", "api_key": quetz.key},
                },
            }
        )
    )
    r = cli("import", "-f", cfg, archives["v1"], "--trusted-key", archives["pub"])
    assert r.exit_code == 0, r.output
    assert f"{prefix}/main/linux-64/repodata.json" in s3_objects(seaweed, prefix + "/")
    r = cli("import", "-f", cfg, archives["v1"], "--into", "server", "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 5
    cfg.write_text(json.dumps({"dest_site": "bad", "sites": {"bad": {"url": f"s3://{bucket}/x", "api_key": "k"}}}))
    r = cli("import", "-f", cfg, archives["v1"], "--trusted-key", archives["pub"])
    assert r.exit_code == 2 and "found api_key" in r.output, r.output


def test_s3_multipart_upload_from_an_offset_and_receipt_in_place(
    seaweed: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob in the middle of a file, larger than the multipart threshold, arrives byte for byte."""
    import os

    _s3_env(monkeypatch, seaweed)
    blob = os.urandom(11 << 20) + b"end"
    carrier = tmp_path / "carrier"
    carrier.write_bytes(b"x" * 4097 + blob + b"y" * 100)
    sha = hashlib.sha256(blob).hexdigest()
    prefix = f"multipart/{uuid.uuid4().hex[:8]}"
    dest = open_destination(f"s3://{bucket}/{prefix}", {"multipart_threshold": 5 << 20, "workers": 3})
    seen: list[int] = []
    with dest.locked(10):
        change = dest.begin("t")
        change.plan([("main", "linux-64", "big-1.0-0.conda")], [])
        change.put_packages([Put("main", "linux-64", "big-1.0-0.conda", BlobRef(carrier, 4097, len(blob), sha))], seen.append)
        change.commit()
        change.close()
    assert dest.file_sha256("main", "linux-64", "big-1.0-0.conda") == sha
    assert sum(seen) == len(blob)
    head = seaweed.client().head_object(Bucket=bucket, Key=f"{prefix}/main/linux-64/big-1.0-0.conda")
    assert head["Metadata"]["sha256"] == sha and "-" in head["ETag"]  # a multipart ETag
    # the receipt command rebuilds the receipt in place, from the objects' bytes
    rd = {
        "info": {"subdir": "linux-64"},
        "packages": {},
        "packages.conda": {
            "big-1.0-0.conda": {
                "name": "big",
                "version": "1.0",
                "build": "0",
                "build_number": 0,
                "depends": [],
                "sha256": sha,
                "size": len(blob),
            }
        },
    }
    seaweed.client().put_object(Bucket=bucket, Key=f"{prefix}/main/linux-64/repodata.json", Body=json.dumps(rd).encode())
    r = cli("receipt", "--into", f"s3://{bucket}/{prefix}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["written_to"] == f"s3://{bucket}/{prefix}/.airgap/receipt.json"
    assert dest.read_receipt()["channels"]["main"]["linux-64"]["big-1.0-0.conda"] == {"sha256": sha, "size": len(blob)}


def test_a_changed_archive_is_not_uploaded(
    seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs are read from the archive again for the upload: if the file changed after verification, nothing is published."""
    from airgap.destinations.engine import StoreChange as S3Change

    _s3_env(monkeypatch, seaweed)
    archive = tmp_path / "a.tar"
    shutil.copy(archives["v1"], archive)
    real = S3Change.plan

    def tamper(self: S3Change, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        with open(archive, "r+b") as fh:  # same size, new mtime: as if another process rewrote it
            fh.seek(0, 2)
            fh.seek(fh.tell() - 1)
            fh.write(b"\0")

    monkeypatch.setattr(S3Change, "plan", tamper)
    prefix = f"changed/{uuid.uuid4().hex[:8]}"
    r = cli("import", archive, "--into", f"s3://{bucket}/{prefix}", "--trusted-key", archives["pub"])
    assert r.exit_code == 3 and "found it changed" in r.output, r.output
    assert s3_objects(seaweed, prefix + "/") == {}


def test_sync_into_s3_and_a_tape_like_archive(
    seaweed: Any, bucket: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync uploads from the export cache; an archive that cannot be re-read (a tape) is staged locally first."""
    from airgap.archive.reader import ArchiveStream

    _s3_env(monkeypatch, seaweed)
    prefix = f"sync/{uuid.uuid4().hex[:8]}"
    r = cli("sync", "-f", archives["export"], "--into", f"s3://{bucket}/{prefix}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 5
    synced = s3_objects(seaweed, prefix + "/")

    real_init = ArchiveStream.__init__

    def tape(self: ArchiveStream, path: Path) -> None:
        real_init(self, path)
        self.seekable = False

    monkeypatch.setattr(ArchiveStream, "__init__", tape)
    import tempfile

    scratch: list[str] = []

    class Recorded(tempfile.TemporaryDirectory):  # type: ignore[type-arg]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            scratch.append(self.name)

    monkeypatch.setattr("airgap.ops.publish.tempfile.TemporaryDirectory", Recorded)
    other = f"tape/{uuid.uuid4().hex[:8]}"
    r = cli("import", archives["v2"], "--into", f"s3://{bucket}/{other}", "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    assert len(scratch) == 1 and not Path(scratch[0]).exists()  # staged locally, then removed
    taped = s3_objects(seaweed, other + "/")
    names = {k.split("/", 2)[2] for k in taped if "/.airgap/" not in k}
    assert {k.split("/", 2)[2] for k in synced if "/.airgap/" not in k} == names  # both are the v2 state, same files
    for k, v in taped.items():
        if k.endswith(".conda"):
            assert synced[prefix + k[len(other) :]] == v


def test_s3_lock_waits_then_gives_up_and_a_stale_lock_is_taken_over(
    seaweed: Any, bucket: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    _s3_env(monkeypatch, seaweed)
    prefix = f"lock/{uuid.uuid4().hex[:8]}"
    holder = open_destination(f"s3://{bucket}/{prefix}")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.locked(5):
            holding.set()
            release.wait(20)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(10)
        r = cli("import", archives["v1"], "--into", f"s3://{bucket}/{prefix}", "--trusted-key", archives["pub"], "--lock-timeout", "1")
        assert r.exit_code == 1 and "holds the lock" in r.output and f"delete s3://{bucket}/{prefix}/.airgap/lock" in r.output, r.output
        assert set(s3_objects(seaweed, prefix + "/")) == {f"{prefix}/.airgap/lock"}  # nothing else written
    finally:
        release.set()
        t.join()
    assert s3_objects(seaweed, prefix + "/") == {}  # released
    # a lock left by a killed importer of this host is taken over at once (its process is gone)
    from airgap.destinations.lease import this_process

    gone = this_process() | {"pid": 2**22 + 1, "owner": "dead:1", "token": "x", "generation": 7}
    seaweed.client().put_object(Bucket=bucket, Key=f"{prefix}/.airgap/lock", Body=json.dumps(gone).encode())
    r = cli("import", archives["v1"], "--into", f"s3://{bucket}/{prefix}", "--trusted-key", archives["pub"], "--lock-timeout", "1")
    assert r.exit_code == 0 and "taking over the lock: its process dead:1 is gone" in r.output, r.output
    assert f"{prefix}/.airgap/lock" not in s3_objects(seaweed, prefix + "/")


@pytest.mark.parametrize(
    "into, expected",
    [
        ("/srv/conda", "directory /srv/conda"),
        ("file:///srv/conda", "directory /srv/conda"),
        ("s3://conda-mirror/prod/x", "s3 s3://conda-mirror/prod/x"),
        ("s3://conda-mirror", "s3 s3://conda-mirror"),
        ("quetz+https://q.internal/mirror", "quetz quetz+https://q.internal/mirror"),
        ("quetz+https://q.internal/base/get/mirror", "quetz quetz+https://q.internal/base/mirror"),
        ("quetz+http://127.0.0.1:8000/mirror", "quetz quetz+http://127.0.0.1:8000/mirror"),
        ("quetz+http://host", "expected quetz+http(s)://HOST:PORT/CHANNEL"),
        ("ftp://host/x", "expected a directory, s3://BUCKET/PREFIX, oci://HOST/PREFIX or quetz+http(s)://HOST:PORT/CHANNEL"),
        ("oci://127.0.0.1/mirror", "oci oci://127.0.0.1/mirror"),
        ("oci://127.0.0.1/Mirror", "expected a prefix component an OCI repository name allows"),
        ("s3://Bad_Bucket/x", "expected a bucket name"),
        ("s3://bucket/../x", "expected a prefix of plain path components"),
        ("quetz+http://host/../x", "expected quetz+http(s)://HOST:PORT/CHANNEL"),
        ("quetz+http://host/a%20b", "expected a channel name"),
    ],
)
def test_into_names_a_backend(into: str, expected: str) -> None:
    from airgap.destinations import open_destination
    from airgap.errors import UsageError

    try:
        dest = open_destination(into)
    except UsageError as exc:
        assert expected in str(exc)
        return
    assert f"{dest.kind} {dest}" == expected
