"""The plan and the delta export's per-record work, made cheaper without changing what they say.

The name digests (the receipt's name index) and a receipt's state id are written by msgspec now:
they must be the bytes the ``json`` module's canonical form gave, or every receipt written before
would look changed. A plan's packages carry their URL only when asked; ``--json`` is msgspec's.
"""

from __future__ import annotations

import bz2
import gc
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, shared_repodata

from airgap.cli.render import encode_json
from airgap.compress import zstd_decompress_bounded
from airgap.core import delta_index
from airgap.core import repodata as repodata_mod
from airgap.core.manifest import canonical_json
from airgap.core.receipt import Receipt
from airgap.core.repodata import Repodata, parse_repodata
from airgap.errors import UpstreamError
from airgap.ops.plan import Want
from airgap.upstream.cache import Expected

SNAPSHOTS = sorted(p.name for p in shared_repodata().iterdir())


def _snapshot(name: str) -> Repodata:
    raw = (shared_repodata() / name).read_bytes()
    if name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif name.endswith(".zst"):
        raw = zstd_decompress_bounded(raw, 1 << 30, name, UpstreamError)
    return parse_repodata(raw, "linux-64" if "linux-64" in name else "osx-64" if "osx-64" in name else "noarch", name)


def _digests_by_json(rd: Repodata) -> dict[str, str]:
    """The name index as the json module wrote it (before msgspec)."""
    out: dict[str, str] = {}
    for name, recs in delta_index.by_name(rd).items():
        h = hashlib.sha256()
        for filename, record in sorted(recs, key=lambda fr: fr[0]):
            h.update(canonical_json([filename, record]))
        out[name] = h.hexdigest()[:32]
    return out


@pytest.mark.parametrize("name", [n for n in SNAPSHOTS if "repodata.json" in n])
def test_name_digests_are_the_json_modules(name: str) -> None:
    rd = _snapshot(name)
    if not len(rd):
        pytest.skip("no records of this subdir")
    got = delta_index.digests(rd)
    assert len(got) > 1
    assert got == _digests_by_json(rd)


def test_name_digest_of_odd_strings_matches() -> None:
    rd = Repodata(subdir="linux-64")
    odd = {"name": "a", "version": "1", "build": "0", "summary": 'é \u2028 \x01 \x7f "q" \\ \U0001f600', "depends": [], "n": 1.5}
    rd.put("a-1-0.conda", odd)
    rd.put("a-2-0.conda", {"name": "a", "version": "2", "build": "0", "z": None, "b": True})
    assert delta_index.digests(rd) == _digests_by_json(rd)


def test_state_id_is_the_json_modules() -> None:
    r = Receipt()
    for i in range(50):
        r.hold("main" if i % 2 else "other", "linux-64" if i % 3 else "noarch", f"p{i}-1.0-0.tar.bz2", f"{i:064x}", i * 7 or None)
    doc = {
        c: {s: {f: {"sha256": h.sha256, "size": h.size} for f, h in fs.items()} for s, fs in subs.items()} for c, subs in r.channels.items()
    }
    assert r.state_id() == hashlib.sha256(canonical_json(doc)).hexdigest()


def test_want_url_and_expected_are_made_when_asked() -> None:
    w = Want("c", "linux-64", "x-1.0-0.conda", "https://h/c/linux-64/", "a" * 64, None, 1)
    assert w.url == "https://h/c/linux-64/x-1.0-0.conda"
    assert w.expected == Expected("a" * 64, None, 1)
    assert (
        Want("c", "linux-64", "x-1.0+a-0.conda", "file:///c/linux-64/", None, "b" * 32, None).url == "file:///c/linux-64/x-1.0%2Ba-0.conda"
    )


def test_json_output_says_what_the_json_module_said() -> None:
    doc: dict[str, Any] = {"z": [1, 2.5, None, True], "a": {"é": "ü\u2028", "b": Path("/x/y")}, "n": 2**70}
    out = encode_json(doc)
    assert json.loads(out) == json.loads(json.dumps(doc, sort_keys=True, default=str))
    assert b"\n" not in out and out.index(b'"a"') < out.index(b'"n"') < out.index(b'"z"')  # one line, keys sorted


def test_json_output_with_a_lone_surrogate_falls_back() -> None:
    doc = {"path": "/tmp/\udcff"}  # a file name that is not UTF-8, as os.fsdecode gives it
    assert json.loads(encode_json(doc)) == doc


def _channel(root: Path, records: int) -> Path:
    """A file:// channel of ``records`` records (no package files: a plan reads none)."""
    pkgs = {
        f"p{i // 10}-1.{i % 10}-0.tar.bz2": {
            "name": f"p{i // 10}",
            "version": f"1.{i % 10}",
            "build": "0",
            "build_number": 0,
            "depends": ["python >=3.8", f"q{i % 7}"],
            "sha256": f"{i:064x}",
            "size": 60,
            "subdir": "linux-64",
        }
        for i in range(records)
    }
    for subdir, doc in (("linux-64", pkgs), ("noarch", {})):
        (root / "ch" / subdir).mkdir(parents=True)
        (root / "ch" / subdir / "repodata.json").write_text(json.dumps({"info": {"subdir": subdir}, "packages": doc}))
    cfg = root / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(root / "ch")], "platforms": ["linux-64"], "mirror_dir": str(root / "cache")}))
    return cfg


def test_a_plan_of_many_records_walks_them_with_no_full_collection(tmp_path: Path) -> None:
    """Records are many objects and no cycles: while a command runs the collector never walks them all."""
    cfg = _channel(tmp_path, 20_000)
    full: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    threshold = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    try:
        r = cli("export", "-f", cfg, "--plan", "--json")
    finally:
        gc.callbacks.remove(count)
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["packages"]) == 20_000
    assert full == []
    assert gc.get_threshold() == threshold  # as it was: the command's setting does not outlive it
    assert gc.get_freeze_count() == 0


def test_parsed_records_are_built_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec builds a subdir's records with the collector off, back on after; the process's objects are not frozen.

    (Asserted on the collector's state during the decode, not by counting collections: a server
    thread of another test may start one at any moment.)"""
    doc = {"packages": {f"p-1.{i}-0.tar.bz2": {"name": "p", "version": f"1.{i}", "build": "0", "depends": ["a"]} for i in range(3000)}}
    during: list[bool] = []
    real = repodata_mod._decode

    def decode(body: Any) -> Any:
        during.append(gc.isenabled())
        return real(body)

    monkeypatch.setattr(repodata_mod, "_decode", decode)
    frozen_before = gc.get_freeze_count()
    rd = parse_repodata(json.dumps(doc).encode(), "linux-64", "test")
    assert len(rd) == 3000
    assert during == [False] and gc.isenabled()
    assert gc.get_freeze_count() == frozen_before


def test_parsed_records_are_frozen_out_of_collection_when_the_program_ends_with_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a program (the process ends with the command), the new document is frozen at once: the collector's
    next middle collection would walk all of it (0.28 s at 300,000 records). The command's end unfreezes it."""
    import airgap.leftovers

    doc = {"packages": {f"p-1.{i}-0.tar.bz2": {"name": "p", "version": f"1.{i}", "build": "0", "depends": ["a"]} for i in range(3000)}}
    body = json.dumps(doc).encode()
    frozen_before = gc.get_freeze_count()
    parse_repodata(body, "linux-64", "test")  # in-process (a library call): nothing frozen
    assert gc.get_freeze_count() == frozen_before
    monkeypatch.setattr(airgap.leftovers, "_enabled", True)
    try:
        rd = parse_repodata(body, "linux-64", "test")
        assert len(rd) == 3000 and gc.isenabled()
        assert gc.get_freeze_count() >= frozen_before + 3000  # the records' dicts and lists among them
    finally:
        gc.unfreeze()  # as the command's end does (airgap/cli/_gc.py)
