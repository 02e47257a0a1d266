"""The transaction engine over the in-memory store: ops unchanged, formats byte-identical, every crash recovered.

The contract suite of test_destinations.py runs on ``memory://`` too; here: the commands
(import, re-import, receipt, delta, clean) against ``memory://`` through the CLI; the
``repodata`` format and the whole published tree byte-identical to the directory backend's;
the registry; and fault injection: an import, a delta import and a clean killed (or failed) at
every store call, after which the index never names a missing file and the next run that takes
the lock recovers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import cli

from airgap.config import load_config
from airgap.core.repodata import parse_repodata
from airgap.destinations import open_destination
from airgap.destinations.engine import StoreDestination
from airgap.destinations.formats import RepodataJson, select
from airgap.destinations.journal import AREA_PREFIX
from airgap.destinations.memory import Faults, MemoryDestination, MemoryStore, StoreKilled, clone, drop
from airgap.errors import AirgapError, DestinationError, LockError, LockLostError, UsageError
from airgap.ops.clean import run_clean
from airgap.ops.export import filters_from_config
from airgap.ops.import_ import run_import
from airgap.ops.options import CleanOptions, ImportOptions
from airgap.signing import load_trusted_keys

_names = iter(range(1_000_000))


def fresh(prefix: str = "t") -> str:
    return f"{prefix}{next(_names)}"


def objects(name: str) -> dict[str, bytes]:
    store = MemoryStore(name)
    return {k: store.get(k) or b"" for k, _ in sorted(store.list_prefix(""))}


def channel_files(name: str) -> dict[str, bytes]:
    """What a client can fetch: everything outside ``.airgap/``."""
    return {k: v for k, v in objects(name).items() if not k.startswith(".airgap/")}


def check_client_view(name: str) -> None:
    """Every file each repodata.json lists is there with the listed sha256; .zst agrees unless a change is in flight."""
    held = objects(name)
    in_flight = any(k.startswith(AREA_PREFIX) and k.endswith("/journal.json") for k in held)
    for key, raw in held.items():
        if not key.endswith("/repodata.json") or key.startswith("."):
            continue
        doc = json.loads(raw)
        folder = key.rsplit("/", 1)[0]
        for filename, record in {**doc.get("packages", {}), **doc.get("packages.conda", {})}.items():
            data = held.get(f"{folder}/{filename}")
            assert data is not None, f"{folder}/{filename} is listed but missing"
            assert hashlib.sha256(data).hexdigest() == record["sha256"], f"{folder}/{filename} does not match its record"
        zst = held.get(key + ".zst")
        if not in_flight:
            assert zst is not None and zstandard.ZstdDecompressor().decompress(zst) == raw, f"{key}.zst disagrees"


def listed_files(name: str) -> dict[str, list[str]]:
    out = {}
    for key, raw in channel_files(name).items():
        if key.endswith("/repodata.json"):
            doc = json.loads(raw)
            out[key] = sorted([*doc.get("packages", {}), *doc.get("packages.conda", {})])
    return out


def paths(listing: dict[str, list[str]]) -> set[str]:
    return {f"{key.rsplit('/', 1)[0]}/{f}" for key, files in listing.items() for f in files}


# -- the registry, the formats --------------------------------------------------------------


def test_memory_scheme_opens_the_engine_over_one_shared_store() -> None:
    name = fresh()
    a, b = open_destination(f"memory://{name}"), open_destination(f"memory://{name}")
    assert isinstance(a, MemoryDestination) and a.kind == "memory" and str(a) == f"memory://{name}"
    a.write_receipt({"format": "airgap-receipt/1", "archives": [], "channels": {"x": {}}})
    assert b.read_receipt()["channels"] == {"x": {}}  # "the next run" sees the same bytes
    with pytest.raises(UsageError, match="expected only index_formats, lock_stale_after, url, workers for a memory site, found endpoint"):
        open_destination(f"memory://{name}", {"endpoint": "x"})
    with pytest.raises(UsageError, match="expected memory://NAME"):
        open_destination("memory://a/b")
    assert open_destination("/srv/conda").kind == "directory"  # the schemes known before the registry: unchanged


def test_index_formats_are_selected_per_destination_with_repodata_last() -> None:
    assert [f.name for f in select(())] == ["repodata"]
    assert [f.name for f in select(["repodata", "repodata"])] == ["repodata"]
    assert [f.name for f in select(["repodata", "shards"])] == ["shards", "repodata"]
    with pytest.raises(UsageError, match="'html' is planned, not built yet"):
        select(["html"])
    with pytest.raises(UsageError, match="expected one of repodata, shards, found 'jsonl'"):
        open_destination(f"memory://{fresh()}", {"index_formats": ["jsonl"]})


def test_repodata_format_writes_what_the_directory_backend_writes(archives: dict[str, Path], tmp_path: Path) -> None:
    """Byte for byte: the same archive imported into a directory and into memory:// publishes the same channel and receipt."""
    name = fresh()
    trusted = load_trusted_keys([str(archives["pub"])])
    for into in (tmp_path / "dir", f"memory://{name}"):  # one clock: the pages and the receipt say when
        run_import(archives["v1"], into, trusted, clock=lambda: 1_700_000_000.0)
    on_disk = {
        str(p.relative_to(tmp_path / "dir")): p.read_bytes()
        for p in sorted((tmp_path / "dir").rglob("*"))
        if p.is_file() and ".airgap" not in p.parts
    }
    assert on_disk == channel_files(name)  # packages, CEP-16 shards, repodata.json, .zst and index.html pages
    assert any("/shards/" in k for k in on_disk) and "main/noarch/repodata_shards.msgpack.zst" in on_disk
    raw = on_disk["main/linux-64/repodata.json"]
    rendered = dict(RepodataJson().render("linux-64", parse_repodata(raw, "linux-64", "test")))
    assert rendered == {"repodata.json": raw, "repodata.json.zst": on_disk["main/linux-64/repodata.json.zst"]}
    assert (tmp_path / "dir" / ".airgap" / "receipt.json").read_bytes() == objects(name)[".airgap/receipt.json"]


# -- the operations, unchanged, over the engine ------------------------------------------------


def test_import_reimport_delta_and_clean_through_the_cli(archives: dict[str, Path], tmp_path: Path) -> None:
    into = f"memory://{fresh()}"
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["packages_added"] == 5
    before = objects(into[len("memory://") :])
    r = cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["noop"] is True, r.output
    assert objects(into[len("memory://") :]) == before
    receipt = tmp_path / "receipt.json"
    assert cli("receipt", "--into", into, "-o", receipt).exit_code == 0
    delta = tmp_path / "delta.tar"
    r = cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", receipt)
    assert r.exit_code == 0, r.output
    r = cli("import", delta, "--into", into, "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["packages_added"] == 1 and res["packages_removed"] == 1
    r = cli("clean", "-f", archives["clean"], "--into", into, "--json")
    assert r.exit_code == 0, r.output
    name = into[len("memory://") :]
    assert listed_files(name)["main/linux-64/repodata.json"] == ["a1-1.0-0.conda", "a3-1.0-0.conda", "a4-1.0-0.conda"]
    assert sorted(k for k in channel_files(name) if k.endswith(".conda")) == [
        "main/linux-64/a1-1.0-0.conda",
        "main/linux-64/a3-1.0-0.conda",
        "main/linux-64/a4-1.0-0.conda",
        "main/noarch/d1-1.0-0.conda",
    ]
    assert not [k for k in objects(name) if k.startswith(AREA_PREFIX) or k == ".airgap/lock"]  # nothing left behind
    check_client_view(name)


def test_sync_and_a_tape_like_import_publish_the_same_channel(
    archives: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sync stores from the export cache; an archive that cannot be re-read (a tape) is copied to a scratch folder first."""
    from airgap.archive.reader import ArchiveStream

    synced, taped = fresh("sync-"), fresh("tape-")
    r = cli("sync", "-f", archives["export"], "--into", f"memory://{synced}", "--json")
    assert r.exit_code == 0, r.output
    real_init = ArchiveStream.__init__

    def tape(self: ArchiveStream, path: Path) -> None:
        real_init(self, path)
        self.seekable = False

    monkeypatch.setattr(ArchiveStream, "__init__", tape)
    r = cli("import", archives["v2"], "--into", f"memory://{taped}", "--trusted-key", archives["pub"])
    assert r.exit_code == 0, r.output
    packages = [{k: v for k, v in channel_files(n).items() if k.endswith(".conda")} for n in (synced, taped)]
    assert packages[0] == packages[1] and len(packages[0]) == 5
    assert listed_files(synced) == listed_files(taped)


# -- fault injection: kill (or fail) at every store call --------------------------------------


@pytest.fixture(scope="module")
def worlds(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Starting states (memory spaces) and the operations to break: a first import, a delta import, a clean."""
    t = tmp_path_factory.mktemp("faults")
    trusted = load_trusted_keys([str(archives["pub"])])
    v1 = fresh("v1-")
    assert cli("import", archives["v1"], "--into", f"memory://{v1}", "--trusted-key", archives["pub"]).exit_code == 0
    assert cli("receipt", "--into", f"memory://{v1}", "-o", t / "receipt.json").exit_code == 0
    delta = t / "delta.tar"
    r = cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", t / "receipt.json")
    assert r.exit_code == 0, r.output
    v2 = fresh("v2-")
    clone(v1, v2)
    assert cli("import", delta, "--into", f"memory://{v2}", "--trusted-key", archives["pub"]).exit_code == 0
    filters = filters_from_config(load_config(archives["clean"]))
    ops: dict[str, tuple[str, Callable[[StoreDestination], Any]]] = {
        "import": (fresh("empty-"), lambda d: run_import(archives["v1"], d, trusted, ImportOptions(lock_timeout=1))),
        "delta": (v1, lambda d: run_import(delta, d, trusted, ImportOptions(lock_timeout=1))),
        "clean": (v2, lambda d: run_clean(d, CleanOptions(filters, dry_run=False, lock_timeout=1))),
    }
    return {"ops": ops}


def _run(start: str, op: Callable[[StoreDestination], Any], faults: Faults | None) -> tuple[str, Faults, BaseException | None]:
    name = fresh("run-")
    clone(start, name)
    faults = faults or Faults()
    try:
        op(MemoryDestination(MemoryStore(name, faults)))
    except (StoreKilled, AirgapError) as exc:
        return name, faults, exc
    return name, faults, None


def test_the_engine_stores_in_one_order(worlds: dict[str, Any]) -> None:
    """Packages, then each index (repodata.json, then the .zst most clients read), then the receipt, then the commit, then removals."""
    start, op = worlds["ops"]["delta"]
    _, faults, error = _run(start, op, None)
    assert error is None
    log = faults.log

    def at(pred: Callable[[str], bool]) -> list[int]:
        found = [i for i, call in enumerate(log) if pred(call)]
        assert found, log
        return found

    packages = at(lambda c: c.startswith("put ") and c.endswith(".conda"))
    zst = at(lambda c: c.startswith("put ") and c.endswith("/repodata.json.zst"))
    index = at(lambda c: c.startswith("put ") and c.endswith("/repodata.json"))
    receipt = at(lambda c: c == "put .airgap/receipt.json")
    commit = at(lambda c: c.startswith("delete .airgap/staging-") and c.endswith("/journal.json"))
    removals = at(lambda c: c.startswith("delete main/") and ".conda" in c)
    saved = at(lambda c: c.startswith("put .airgap/staging-") and c.endswith("/journal.json"))
    assert saved[0] < packages[0] and max(packages) < index[0] and index[0] < zst[0] and max(zst + index) < receipt[0]
    assert receipt == [receipt[0]] and receipt[0] < commit[0] < removals[0]


@pytest.mark.parametrize("what", ["import", "delta", "clean"])
@pytest.mark.parametrize("fault", ["kill", "fail"])
def test_a_run_broken_at_any_store_call_is_recovered_by_the_next(what: str, fault: str, worlds: dict[str, Any]) -> None:
    start, op = worlds["ops"][what]
    reference, counted, error = _run(start, op, None)
    assert error is None
    before, after = listed_files(start), listed_files(reference)
    assert before != after and counted.calls > 10
    for n in range(1, counted.calls + 1):
        name, faults, error = _run(start, op, Faults(kill_at=n) if fault == "kill" else Faults(fail_at=n))
        if error is None:  # logged, not fatal, by design (the pages, written after the change; releasing the lock): it completed
            assert fault == "fail" and listed_files(name) == after, f"call {n} ({faults.log[n - 1]}): no fault seen"
        check_client_view(name)  # what a client reads at the moment of the kill
        now = listed_files(name)  # subdirs are published one after the other: each is old or new, none half
        assert all(now.get(k) in (before.get(k), after.get(k)) for k in {*now, *before, *after}), f"call {n}: {now}"
        # the next run: takes over the dead run's lock, rolls its change back (or finds it committed)
        nxt = MemoryDestination(MemoryStore(name), lock_stale_after=0)
        with nxt.locked(1):
            pass
        check_client_view(name)
        state = listed_files(name)
        assert state in (before, after), f"call {n}: recovery left {state}"
        assert not [k for k in objects(name) if k.startswith(AREA_PREFIX) or k == ".airgap/lock"]
        if state == before:  # rolled back: exactly what was there, byte for byte, outside the lock's history
            assert channel_files(name) == channel_files(start), f"call {n} ({faults.log[-1]}): rollback is not exact"
        # and running the operation again ends where an unbroken run ends
        op(MemoryDestination(MemoryStore(name)))  # the lock was released: taken at once
        assert listed_files(name) == after
        # a run killed after its commit leaves the files it unlisted (its removals), no others; the next clean takes them
        extra = set(channel_files(name)) - set(channel_files(reference))
        assert extra <= paths(before) - paths(after), f"call {n}: left {extra}"
        drop(name)


def test_the_lock_excludes_a_second_run_and_is_released() -> None:
    name = fresh()
    first, second = MemoryDestination(MemoryStore(name)), MemoryDestination(MemoryStore(name))
    with first.locked(1):
        with pytest.raises(
            LockError, match=rf"memory://{name}: another airgap import or clean holds the lock \(.+, generation 0\); waited 0s"
        ):
            with second.locked(0.3):
                pass
        with pytest.raises(DestinationError, match="a change needs the lock"):
            second.begin("x")
    with second.locked(1):  # released: taken at once
        assert MemoryStore(name).get(".airgap/lock") is not None
    assert MemoryStore(name).get(".airgap/lock") is None


def test_store_refuses_keys_that_leave_it() -> None:
    store = MemoryStore(fresh())
    for bad in ("", "/abs", "a/../b", "a//b", "a/./b", "a\0b"):
        with pytest.raises(DestinationError, match="expected a key of plain path components"):
            store.put(bad, b"x")


_V1, _V2 = "airgap-store-journal/1", "airgap-store-journal/2"  # a list of [key, backup]; {folder: {name: backup}}


@pytest.mark.parametrize(
    "doc",
    [
        {"format": _V1, "entries": [["../etc", None]]},
        {"format": _V1, "entries": [[".airgap/lock", None]]},  # would release the lock this very run holds
        {"format": _V1, "entries": [[".airgap/staging-y-2/journal.json", None]]},
        {"format": _V1, "entries": [["main/linux-64/repodata.json", ".airgap/staging-y-2/backup/1"]]},  # another area's backup
        {"format": _V1, "entries": "not a list"},
        {"format": _V2, "folders": {"..": {"etc": None}}},
        {"format": _V2, "folders": {".airgap": {"lock": None}}},
        {"format": _V2, "folders": {"main": {"../../etc": None}}},
        {"format": _V2, "folders": {"main/linux-64": {"repodata.json": ".airgap/staging-y-2/backup/1"}}},
        {"format": _V2, "folders": {"main/linux-64": ["repodata.json"]}},
        {"format": _V2, "folders": "not a dict"},
        {"format": _V2, "entries": []},
        {"format": "airgap-store-journal/3", "folders": {}},
    ],
)
def test_a_malformed_journal_stops_recovery_with_what_to_do(doc: Any) -> None:
    name = fresh()
    store = MemoryStore(name)
    store.put("main/linux-64/repodata.json", b"{}")
    store.put(f"{AREA_PREFIX}x-1/journal.json", json.dumps(doc).encode())
    before = objects(name)
    with pytest.raises(DestinationError, match=r"expected an airgap journal, found a malformed one .* then delete \.airgap/staging-x-1/"):
        with MemoryDestination(store).locked(1):
            pass
    assert {k: v for k, v in objects(name).items() if k != ".airgap/lock"} == before  # nothing undone on a guess


def test_a_journal_is_saved_again_only_when_a_key_is_added() -> None:
    """A full import's journal is 15 MB at 300,000 files: an index whose keys the plan named adds nothing, saves nothing."""
    from airgap.destinations.journal import JOURNAL_FOLDERS, Journal

    store = MemoryStore(fresh())
    store.put("main/noarch/x-1-0.conda", b"x")
    journal = Journal(store, f"{AREA_PREFIX}j-1/")
    journal.save()  # planned and saved: from now on each prepare that adds a key saves again
    journal.prepare_all([("main/noarch", "z-1-0.conda", False), ("main/noarch", "x-1-0.conda", True)])
    saved = store.get(journal.key)
    assert saved is not None
    doc = json.loads(saved)
    assert doc["format"] == JOURNAL_FOLDERS
    assert doc["folders"] == {"main/noarch": {"z-1-0.conda": None, "x-1-0.conda": f"{AREA_PREFIX}j-1/backup/1"}}
    store.delete([journal.key])
    journal.prepare_all([("main/noarch", "z-1-0.conda", False)])  # planned already: nothing new, no save
    journal.prepare("main/noarch/x-1-0.conda", True)
    assert store.get(journal.key) is None
    store.put(journal.key, saved)
    loaded = Journal.load(store, journal.area)
    assert loaded is not None and list(loaded.items()) == list(journal.items())
    assert list(journal.items()) == [("main/noarch/z-1-0.conda", None), ("main/noarch/x-1-0.conda", f"{AREA_PREFIX}j-1/backup/1")]


def test_the_lock_is_a_lease_a_taken_over_owner_stops_before_its_next_step_and_undoes_nothing() -> None:
    """The engine's lock is the lease: renewed, fenced before each step; a process that lost it leaves the undo to the new owner."""
    name = fresh()
    dest = MemoryDestination(MemoryStore(name))
    with dest.locked(1):
        change = dest.begin("fence")
        change.plan([], [("main", "noarch")])
        lease = dest._lease
        assert lease is not None and dest.holds_lock()
        lease.renew()  # the heartbeat's step: the next generation, conditionally on the last
        assert json.loads(MemoryStore(name).get(".airgap/lock") or b"{}")["generation"] == 1
        taken = json.dumps({"owner": "elsewhere:1", "token": "theirs", "generation": lease.generation + 1}).encode()
        assert lease.store.lease_replace(taken, lease.version or "") is not None  # another process judged it stale
        with pytest.raises(LockLostError, match="another process took it over"):
            change.publish_index("main", "noarch", parse_repodata(b'{"packages":{}}', "noarch", "t"))
        change.rollback()  # not ours any more: touches nothing
        change.close()
        with pytest.raises(LockLostError):
            dest.remove_packages([("main", "noarch", "x.conda")])
    held = objects(name)
    assert json.loads(held[".airgap/lock"])["token"] == "theirs" and [k for k in held if k.endswith("/journal.json")]
