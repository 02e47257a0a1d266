"""CEP-16 sharded repodata: the codec, the ``shards`` index format on the engine, its checks, a real client.

The codec round-trips records verbatim (md5/sha256 as raw bytes) and deterministically, and refuses
hostile shards in one line; the format publishes shards that agree with repodata.json after every
import and clean; ``verify --into`` finds a tampered shard (clients would solve from it silently);
py-rattler over HTTP installs from the shards without ever asking for repodata.json.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from helpers import cli, snapshot_bytes

from airgap.core import shards
from airgap.destinations.memory import MemoryDestination, MemoryStore
from airgap.errors import IntegrityError
from airgap.ops.shards_check import check_destination_subdir, check_subdir

_names = iter(range(1_000_000))
SHA = "a" * 64
MD5 = "b" * 32


def fresh(prefix: str = "sh") -> str:
    return f"{prefix}{next(_names)}"


def record(name: str, version: str = "1.0", build: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "build": build, "build_number": 0, "depends": [], "md5": MD5, "sha256": SHA, **extra}


def document() -> dict[str, Any]:
    return {
        "info": {"subdir": "linux-64"},
        "packages": {"a-1.0-0.tar.bz2": record("a", timestamp=1_700_000_000_000)},
        "packages.conda": {
            "a-1.1-0.conda": record("a", "1.1", license="MIT", unknown_key={"kept": [1, 2.5, None, True]}),
            "b-2.0-0.conda": record("b", "2.0", sha256=SHA.upper(), md5="not-hex-" * 4),
        },
        "removed": ["a-0.9-0.conda", "zzz-1-0.conda"],
        "repodata_version": 1,
    }


def packed(doc: Any) -> bytes:
    return zstandard.ZstdCompressor().compress(msgpack.packb(doc, use_bin_type=True))


# -- the codec ------------------------------------------------------------------------------


def test_shards_round_trip_records_verbatim_with_raw_hashes() -> None:
    doc = document()
    out = shards.render("linux-64", doc)
    index = shards.decode_index(out.index, "index")
    assert index.subdir == "linux-64" and index.base_url == "" and index.shards_base_url == "./shards/"
    assert index.created_at == "2023-11-14T22:13:20Z"  # the newest record's timestamp, not the clock
    assert sorted(index.shards) == ["a", "b"]
    for name, digest in index.shards.items():
        data = out.shards[digest.hex()]
        assert hashlib.sha256(data).digest() == digest  # named by the hash of the compressed bytes
        raw = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data), raw=False)
        assert set(raw) == {"packages", "packages.conda", "removed"}
        for rec in [*raw["packages"].values(), *raw["packages.conda"].values()]:
            assert rec["sha256"] == bytes.fromhex(SHA) and rec["name"] == name  # raw bytes, as CEP-16 asks
        shard = shards.decode_shard(data, "shard")
        for filename, rec in shard.records():
            section = "packages" if filename.endswith(".tar.bz2") else "packages.conda"
            assert rec == shards.comparable(doc[section][filename])
            assert list(rec) == list(doc[section][filename])  # every key, in its order
    a = shards.decode_shard(out.shards[index.shards["a"].hex()], "a")
    assert a.removed == ["a-0.9-0.conda"]  # a name with no record left has no shard, nor its removals
    b = shards.decode_shard(out.shards[index.shards["b"].hex()], "b")
    assert b.packages_conda["b-2.0-0.conda"]["md5"] == "not-hex-" * 4  # not hex: kept as it was
    assert check_subdir("linux-64", json.dumps(doc).encode(), lambda n: out.index if n == shards.INDEX else out.shards.get(n[7:71])) == []


def test_the_same_records_give_the_same_bytes() -> None:
    doc = document()
    shuffled = {**doc, "packages.conda": dict(reversed(list(doc["packages.conda"].items()))), "removed": list(reversed(doc["removed"]))}
    assert shards.render("linux-64", doc) == shards.render("linux-64", shuffled)
    changed = {**doc, "packages.conda": {**doc["packages.conda"], "b-2.0-0.conda": record("b", "2.0", size=3)}}
    one, two = shards.render("linux-64", doc), shards.render("linux-64", changed)
    assert set(one.shards) & set(two.shards) and one.shards != two.shards  # only b's shard changes


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parent / "data" / "repodata").glob("*.repodata.json*")), ids=lambda p: p.name
)
def test_every_shard_is_the_msgpack_that_msgpack_itself_writes(path: Path) -> None:
    """Encoded by msgspec, each shard's bytes are those of ``msgpack.packb(…, use_bin_type=True)``: every real record."""
    doc = json.loads(snapshot_bytes(path))
    out = shards.render(doc.get("info", {}).get("subdir", "linux-64"), doc)
    assert out.shards
    for data in [*out.shards.values(), out.index]:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 26)
        assert msgpack.packb(msgpack.unpackb(raw, raw=False), use_bin_type=True) == raw


def test_shards_emitted_as_rendered_are_the_ones_kept_otherwise() -> None:
    """A new subdir's shards are written as each is rendered (decision 0023): the same bytes, none kept, the same index."""
    doc = document()
    emitted: list[tuple[str, bytes]] = []
    streamed = shards.render_changed("linux-64", doc, None, {}, emit=lambda h, data: emitted.append((h, data)))
    kept = shards.render("linux-64", doc)
    assert streamed.shards == {} and dict(emitted) == kept.shards and len(emitted) == len(kept.shards) > 1
    assert streamed.index == kept.index


def test_rendered_shards_hold_only_their_compressed_bytes() -> None:
    """python-zstandard sizes a result for the worst case and shortens only its length: the shards of a full import,
    held until stored, took the memory of their msgpack (~100 MB at 300,000 records) and not their size (~30 MB)."""
    import tracemalloc

    doc = {"info": {"subdir": "linux-64"}, "packages.conda": {f"p{i}-1.0-0.conda": record(f"p{i}", about="x" * 4000) for i in range(40)}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rendered = shards.render("linux-64", doc)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    compressed = sum(map(len, rendered.shards.values()))
    assert len(rendered.shards) == 40 and compressed < 40 * 1000  # 4 KB of repeated text each: ~200 bytes compressed
    assert held < compressed + 40 * 1000  # not 40 x 4 KB (each shard's msgpack)


GOOD_RECORD = record("a")
HOSTILE_SHARDS: list[tuple[str, bytes, str]] = [
    ("not zstd", b"plain bytes", "expected zstd-compressed data"),
    ("not msgpack", zstandard.ZstdCompressor().compress(b"\xc1\xc1"), "expected msgpack, found something unreadable"),
    ("trailing data", zstandard.ZstdCompressor().compress(msgpack.packb({}) + b"\x00"), "expected msgpack"),
    ("a list", packed([1, 2]), "expected a shard (a map), found list"),
    ("packages a list", packed({"packages": []}), "expected 'packages' to be a map, found list"),
    ("unsafe name", packed({"packages.conda": {"../x-1-0.conda": GOOD_RECORD}}), "expected a .conda file name in 'packages.conda'"),
    ("wrong kind", packed({"packages": {"a-1.0-0.conda": GOOD_RECORD}}), "expected a .tar.bz2 file name in 'packages'"),
    ("record a string", packed({"packages.conda": {"a-1.0-0.conda": "x"}}), "expected a record (a map) for a-1.0-0.conda"),
    ("no name", packed({"packages.conda": {"a-1.0-0.conda": {"version": "1", "build": "0"}}}), "a-1.0-0.conda: name to be a string"),
    ("short sha", packed({"packages.conda": {"a-1.0-0.conda": {**GOOD_RECORD, "sha256": b"x" * 31}}}), "sha256 as 32 bytes"),
    ("removed ints", packed({"removed": [1]}), "expected 'removed' to be a list of strings"),
    ("int keys", packed({1: 2}), "expected msgpack"),
    ("deep", packed(json.loads("[" * 100 + "]" * 100)), "expected a shard (a map)"),
]


@pytest.mark.parametrize("data,message", [(d, m) for _, d, m in HOSTILE_SHARDS], ids=[i for i, _, _ in HOSTILE_SHARDS])
def test_a_hostile_shard_is_one_clear_line(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=re.escape(message)) as info:
        shards.decode_shard(data, "shards/x.msgpack.zst")
    assert "\n" not in str(info.value) and str(info.value).startswith("shards/x.msgpack.zst: expected")


def test_a_shard_bomb_stops_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "MAX_SHARD_BYTES", 1 << 16)
    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (1 << 20))
    with pytest.raises(IntegrityError, match="expected at most 65536 bytes once decompressed"):
        shards.decode_shard(bomb, "s")


@pytest.mark.parametrize(
    "doc,message",
    [
        ({"shards": {}}, "expected 'info' to be a map"),
        ({"info": {"subdir": "x", "base_url": "", "shards_base_url": 3}, "shards": {}}, "info.shards_base_url to be a string"),
        ({"info": {"subdir": "x", "base_url": "", "shards_base_url": ""}, "shards": {"a": b"1" * 31}}, "a 32-byte sha256 for 'a'"),
        ({"info": {"subdir": "x", "base_url": "", "shards_base_url": ""}, "shards": {"a": "hex"}}, "a 32-byte sha256 for 'a'"),
        ({"info": {"subdir": "x", "base_url": "", "shards_base_url": ""}, "shards": []}, "'shards' to be a map"),
    ],
)
def test_a_hostile_shard_index_is_one_clear_line(doc: Any, message: str) -> None:
    with pytest.raises(IntegrityError, match=re.escape(message)):
        shards.decode_index(packed(doc), "repodata_shards.msgpack.zst")


# -- the format on the engine ---------------------------------------------------------------


def objects(name: str) -> dict[str, bytes]:
    store = MemoryStore(name)
    return {k: store.get(k) or b"" for k, _ in sorted(store.list_prefix(""))}


def assert_shards_agree(name: str) -> None:
    """Every published subdir has a shard index, and its shards hold exactly repodata.json's records."""
    dest = MemoryDestination(MemoryStore(name))
    subdirs = [(c, s) for c, subs in dest.inventory().items() for s in subs]
    assert subdirs
    for channel, subdir in subdirs:
        assert dest.read_index_file(channel, subdir, shards.INDEX) is not None
        assert check_destination_subdir(dest, channel, subdir) == [], (channel, subdir)


def test_shards_agree_with_repodata_after_every_import_and_clean(archives: dict[str, Path], tmp_path: Path) -> None:
    name = fresh()
    into = f"memory://{name}"
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    assert_shards_agree(name)
    held = objects(name)
    order = [k for k in held if "/shards/" in k or k.endswith(shards.INDEX)]
    assert any(k.startswith("main/noarch/shards/") for k in order)  # every subdir, noarch too
    assert not [k for k in held if k.endswith("current_repodata.json")]
    assert cli("receipt", "--into", into, "-o", tmp_path / "r.json").exit_code == 0
    delta = tmp_path / "delta.tar"
    assert cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", tmp_path / "r.json").exit_code == 0
    assert cli("import", delta, "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    assert_shards_agree(name)
    old = {k for k in held if "/shards/" in k} - {k for k in objects(name) if "/shards/" in k}
    assert not old  # the import keeps the shards an older index named (clients may still hold it)
    r = cli("clean", "-f", archives["clean"], "--into", into, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["remove"]
    assert_shards_agree(name)


def test_shards_are_written_before_their_index_and_both_before_repodata(archives: dict[str, Path]) -> None:
    from airgap.destinations.memory import Faults
    from airgap.ops.import_ import run_import
    from airgap.signing import load_trusted_keys

    faults = Faults()
    run_import(archives["v1"], MemoryDestination(MemoryStore(fresh(), faults)), load_trusted_keys([str(archives["pub"])]))
    puts = [c[4:] for c in faults.log if c.startswith("put main/linux-64/")]
    shard_puts = [i for i, k in enumerate(puts) if "/shards/" in k]
    at = {k.rsplit("/", 1)[1]: i for i, k in enumerate(puts)}
    assert shard_puts and max(shard_puts) < at[shards.INDEX] < at["repodata.json"] < at["repodata.json.zst"]


def test_a_reimport_rewrites_no_shard(archives: dict[str, Path]) -> None:
    from airgap.destinations.memory import Faults
    from airgap.ops.import_ import run_import
    from airgap.signing import load_trusted_keys

    name = fresh()
    trusted = load_trusted_keys([str(archives["pub"])])
    run_import(archives["v1"], f"memory://{name}", trusted)
    before = set(objects(name))
    MemoryStore(name).put("main/linux-64/current_repodata.json", b"{}")  # another tool's stale file
    faults = Faults()
    run_import(archives["v2"], MemoryDestination(MemoryStore(name, faults)), trusted)
    written = {c[4:] for c in faults.log if c.startswith("put ") and "/shards/" in c}
    assert written and not written & before  # only new shards are written; the ones already there are kept as they are
    assert "main/linux-64/current_repodata.json" not in objects(name)  # never left to disagree


# -- verification ---------------------------------------------------------------------------


def tamper(name: str) -> str:
    """Flip a shard's records (rewritten validly, so only its hash gives it away); returns its key."""
    store = MemoryStore(name)
    key = sorted(k for k, _ in store.list_prefix("main/linux-64/shards/"))[0]
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(store.get(key) or b""), raw=False)
    for rec in doc["packages.conda"].values():
        rec["depends"] = ["evil"]
    store.put(key, packed(doc))
    return key


def test_verify_into_finds_a_tampered_shard_and_the_next_delta_repairs_it(archives: dict[str, Path], tmp_path: Path) -> None:
    name = fresh()
    into = f"memory://{name}"
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    key = tamper(name)
    r = cli("verify", "--into", into)
    assert r.exit_code == 3, r.output
    assert f"index: {key}: expected sha256 {key.rsplit('/', 1)[1][:64]} (its name), found" in r.output
    assert "the next export --since carries its repodata again" in r.output
    assert cli("receipt", "--into", into, "-o", tmp_path / "r.json").exit_code == 0
    delta = tmp_path / "delta.tar"
    assert cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", tmp_path / "r.json").exit_code == 0
    assert cli("import", delta, "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    assert cli("verify", "--into", into).exit_code == 0
    assert_shards_agree(name)


def test_shards_that_disagree_with_repodata_are_reported_one_line_each() -> None:
    doc = document()
    out = shards.render("linux-64", {**doc, "packages.conda": {}})  # shards of only the .tar.bz2 record

    def read(n: str) -> bytes | None:
        return out.index if n == shards.INDEX else out.shards.get(n[len("shards/") : -len(shards.SUFFIX)])

    found = check_subdir("linux-64", json.dumps(doc).encode(), read)
    assert found == [
        (
            shards.INDEX,
            "expected the shards to hold the records of repodata.json, found 2 in repodata.json but in no shard (first: a-1.1-0.conda)",
        ),
    ]
    assert check_subdir("noarch", json.dumps(doc).encode(), read, required=True)[0] == (
        shards.INDEX,
        "expected info.subdir 'noarch', found 'linux-64'",
    )
    assert check_subdir("linux-64", None, lambda n: None, required=True) == [
        (shards.INDEX, "the destination writes shards, found no shard index")
    ]
    assert check_subdir("linux-64", None, lambda n: None) == []


# -- a real client ----------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Callable[[Path], tuple[str, list[str]]]]:
    """``airgap serve`` of a directory on a free port: its URL and its access log (one line per request)."""
    from airgap.site.serve import make_server

    servers = []

    def start(root: Path) -> tuple[str, list[str]]:
        lines: list[str] = []
        server = make_server(root, port=0, access_log=lines.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", lines

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_py_rattler_installs_from_the_shards_alone(
    archives: dict[str, Path], tmp_path: Path, served: Callable[[Path], tuple[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airgap.testing.rattler_client import install

    root = tmp_path / "site"
    assert cli("import", archives["v1"], "--into", root, "--trusted-key", archives["pub"]).exit_code == 0  # a directory destination
    assert (root / "main" / "linux-64" / shards.INDEX).is_file() and (root / "main" / "noarch" / shards.INDEX).is_file()
    url, log = served(root)
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    names = install([f"{url}/main"], ["a1"], tmp_path / "prefix", tmp_path / "cache")
    assert "a1" in names
    gets = [line.split('"')[1].split()[1] for line in log if '"GET ' in line]
    assert any(p.endswith("/repodata_shards.msgpack.zst") for p in gets), gets
    assert any("/shards/" in p for p in gets), gets
    assert not [p for p in gets if "repodata.json" in p], gets  # the shards alone


def test_index_formats_are_chosen_per_site(tmp_path: Path) -> None:
    from airgap.destinations import open_destination
    from airgap.destinations.engine import StoreDestination
    from airgap.errors import UsageError

    default = open_destination(str(tmp_path / "a"))
    plain = open_destination(str(tmp_path / "b"), {"url": str(tmp_path / "b"), "index_formats": ["repodata"]})
    assert isinstance(default, StoreDestination) and isinstance(plain, StoreDestination)
    assert [f.name for f in default.formats] == ["shards", "repodata"]  # on by default
    assert [f.name for f in plain.formats] == ["repodata"]
    with pytest.raises(UsageError, match="expected index_formats to be a list of format names"):
        open_destination(str(tmp_path / "c"), {"url": str(tmp_path / "c"), "index_formats": "shards"})
    with pytest.raises(UsageError, match="expected one of repodata, shards, found 'jlap'"):
        open_destination(str(tmp_path / "c"), {"url": str(tmp_path / "c"), "index_formats": ["jlap"]})


# -- clean: shards no index names leave after the grace period ----------------------------------


def shard_keys(name: str) -> set[str]:
    return {k for k in objects(name) if "/shards/" in k}


def test_clean_removes_unreferenced_shards_after_the_grace_period(archives: dict[str, Path], tmp_path: Path) -> None:
    from airgap.config import load_config
    from airgap.ops.clean import run_clean
    from airgap.ops.export import filters_from_config
    from airgap.ops.options import CleanOptions

    name = fresh()
    into = f"memory://{name}"
    assert cli("import", archives["v1"], "--into", into, "--trusted-key", archives["pub"]).exit_code == 0
    first = shard_keys(name)
    assert cli("receipt", "--into", into, "-o", tmp_path / "r.json").exit_code == 0
    delta = tmp_path / "delta.tar"
    assert cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", tmp_path / "r.json").exit_code == 0
    assert cli("import", delta, "--into", into, "--trusted-key", archives["pub"]).exit_code == 0  # one package in, one out
    dest = MemoryDestination(MemoryStore(name))
    named = {
        f"{c}/{s}/{shards.shard_file(d)}"
        for c, subs in dest.inventory().items()
        for s in subs
        for d in shards.decode_index(dest.read_index_file(c, s, shards.INDEX) or b"", "i").shards.values()
    }
    stale = shard_keys(name) - named
    assert stale and stale <= first  # v2 changed some names' records: their old shards are no longer named
    keep_all = filters_from_config(load_config(archives["export"]))
    day = 86400.0
    t0 = 1_800_000_000.0

    def clean(at: float, dry_run: bool = False) -> Any:
        return run_clean(f"memory://{name}", CleanOptions(keep_all, dry_run=dry_run, shard_grace_days=7), clock=lambda: at)

    assert clean(t0, dry_run=True).shards.marked == len(stale)
    assert "unreferenced_shards" not in dest.read_receipt()  # a dry run records nothing
    r = clean(t0)
    assert (r.shards.marked, r.shards.removed, r.shards.waiting) == (len(stale), [], len(stale))
    assert shard_keys(name) == named | stale  # seen unreferenced, kept for clients holding the older index
    assert clean(t0 + 6 * day).shards.removed == [] and shard_keys(name) == named | stale
    dry = clean(t0 + 7 * day, dry_run=True)
    assert sorted(dry.shards.removed) == sorted(stale) and shard_keys(name) == named | stale
    r = clean(t0 + 7 * day)
    assert sorted(r.shards.removed) == sorted(stale) and r.shards.waiting == 0
    assert shard_keys(name) == named  # the shards the index names are never touched
    assert "unreferenced_shards" not in dest.read_receipt()
    assert_shards_agree(name)


def test_grace_decisions_are_pure() -> None:
    from airgap.ops.shards_gc import decide

    keep, remove, new = decide(
        {"a"}, {"a", "b", "c", "d"}, {"b": "2020-01-01T00:00:00Z", "c": "2020-01-07T00:00:00Z", "z": "x"}, 1578268800.0, 3 * 86400.0
    )
    # now = 2020-01-06: b was seen 5 days ago (goes), c "in the future" (stays), d is new (marked), z no longer exists (dropped)
    assert remove == ["b"] and new == 1 and keep == {"c": "2020-01-07T00:00:00Z", "d": "2020-01-06T00:00:00Z"}


def test_an_import_whose_shards_do_not_read_back_right_is_rolled_back(archives: dict[str, Path]) -> None:
    """A store that mangles what it is given (a broken disk, a proxy): the import's own check fails it, exit 3, nothing changes."""
    from airgap.ops.import_ import run_import
    from airgap.signing import load_trusted_keys

    class Mangling(MemoryStore):
        def put(self, key: str, data: bytes) -> None:
            super().put(key, data[:-1] + bytes([data[-1] ^ 1]) if "/shards/" in key else data)

    name = fresh()
    trusted = load_trusted_keys([str(archives["pub"])])
    with pytest.raises(IntegrityError, match=r"/shards/[0-9a-f]{64}\.msgpack\.zst: expected to read back what was just written") as info:
        run_import(archives["v1"], MemoryDestination(Mangling(name)), trusted)
    assert "nothing was published" in str(info.value)
    assert not [k for k in objects(name) if not k.startswith(".airgap/")]  # rolled back: no file a client could read


def test_verify_into_a_directory_finds_a_lost_or_tampered_shard(archives: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "dest"
    assert cli("import", archives["v1"], "--into", root, "--trusted-key", archives["pub"]).exit_code == 0
    assert cli("verify", "--into", root, "--no-record").exit_code == 0
    lost, changed = sorted((root / "main" / "linux-64" / "shards").iterdir())[:2]
    lost.unlink()
    changed.write_bytes(changed.read_bytes() + b"\x00")
    r = cli("verify", "--into", root, "--no-record")
    assert r.exit_code == 3, r.output
    assert f"index: main/linux-64/shards/{lost.name}: the shard index names it for" in r.output
    assert f"index: main/linux-64/shards/{changed.name}: expected sha256 {changed.name[:64]} (its name), found" in r.output


def test_a_killed_shard_write_leaves_no_temporary_file_after_recovery(tmp_path: Path) -> None:
    """A write killed inside shards/ leaves its temporary file there; the next run's recovery removes it (it looked one level up only)."""
    from airgap.destinations.localstore import LocalStore

    store = LocalStore(tmp_path)
    store.put("main/linux-64/repodata.json", b"{}")
    left = tmp_path / "main" / "linux-64" / "shards" / ".ab.msgpack.zst.7zfbjg7q.tmp"
    left.parent.mkdir()
    left.write_bytes(b"half")
    (tmp_path / ".airgap").mkdir(exist_ok=True)
    assert any("temporary file(s) from" in line and line.endswith("shards") for line in store.remove_leftovers(everywhere=True))
    assert not left.exists()


@pytest.mark.parametrize(
    "newest, want",
    [
        (1_700_000_000, "2023-11-14T22:13:20Z"),  # seconds, equal to record a's milliseconds
        (1_800_000_000_000, "2027-01-15T08:00:00Z"),  # milliseconds, the newest
        (True, "2023-11-14T22:13:20Z"),  # no time: ignored
        (-5, "2023-11-14T22:13:20Z"),
        ("2030", "2023-11-14T22:13:20Z"),
        (10**18, "9999-12-31T23:59:59Z"),  # past the format's last second: capped
    ],
)
def test_created_at_counts_every_record_also_those_of_kept_names(newest: Any, want: str) -> None:
    """render_changed finds the newest timestamp in the pass that groups the records, whichever names are
    rendered (a kept name's records count too)."""
    doc = document()
    doc["packages.conda"]["c-1-0.conda"] = record("c", "1", timestamp=newest)
    full = shards.render("linux-64", doc)
    kept = {n: d for n, d in shards.decode_index(full.index, "i").shards.items() if n == "c"}
    partial = shards.render_changed("linux-64", doc, {"a"}, kept)
    assert shards.decode_index(partial.index, "i").created_at == shards.decode_index(full.index, "i").created_at == want
    assert "c" in shards.decode_index(partial.index, "i").shards and len(partial.shards) < len(full.shards)
