"""Property: random sequences of full, delta, replayed and reordered imports never lose a listed file.

After every import (applied, refused, or applied as a downgrade) into a directory destination:
1. every file a repodata.json lists is there, with the sha256 its record names;
2. no file the newest applied archive lists has been removed (or replaced by other bytes).

Run with one upstream channel, and with two (``main`` and ``extra``, sharing file names) merged
into one destination channel, where "the newest archive lists" means after the first channel won.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgap.config import from_mapping
from airgap.core.manifest import parse_manifest
from airgap.core.merging import shadowing
from airgap.core.receipt import parse_receipt
from airgap.errors import AirgapError, RollbackError
from airgap.ops.export import run_export
from airgap.ops.import_ import run_import
from airgap.ops.options import ExportOptions, ImportOptions
from airgap.signing import TrustedKeys
from airgap.testing.condapkg import PackageSpec, write_channel

NAMES = ("p0", "p1", "p2", "p3")

state = st.dictionaries(st.sampled_from(NAMES), st.integers(0, 1), min_size=1)  # name -> variant (bytes)
upstream_states = st.tuples(state, state)  # main, extra (extra is used when channels merge)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("full"), upstream_states, st.booleans()),  # export; import now (or keep for later)
        st.tuples(st.just("delta"), upstream_states, st.booleans()),
        st.tuples(st.just("replay"), st.integers(0, 7), st.booleans()),  # import an earlier archive; --allow-downgrade
    ),
    min_size=1,
    max_size=7,
)


class World:
    def __init__(self, root: Path, merged: bool) -> None:
        self.root = root
        self.ups = [root / "up" / "main", root / "up" / "extra"][: 2 if merged else 1]
        self.dest_channel = "merged" if merged else None
        self.channel = self.dest_channel or "main"
        self.dest = root / "dest"
        self.now = 1_800_000_000.0
        self.archives: list[Path] = []
        self.manifests: dict[str, Any] = {}

    def clock(self) -> float:
        self.now += 60
        return self.now

    def export(self, states: tuple[dict[str, int], ...], delta: bool) -> Path:
        for up, state in zip(self.ups, states, strict=False):
            if up.exists():
                shutil.rmtree(up)
            specs = [PackageSpec(n, "1.0", files=((n, f"{n}-{v}-{up.name}".encode()),)) for n, v in sorted(state.items())]
            write_channel(up, specs, formats=("tar.bz2",))
        receipt = self.dest / ".airgap" / "receipt.json"
        out = self.root / f"a{len(self.archives)}.tar"
        channels = [str(u) for u in self.ups]
        config = from_mapping({"channels": channels, "platforms": ["linux-64"], "mirror_dir": str(self.root / "cache")})
        res = run_export(config, ExportOptions(out, None, since=receipt if delta and receipt.exists() else None), clock=self.clock)
        self.archives.append(out)
        self.manifests[res.archive_id] = out
        return out

    def do_import(self, archive: Path, allow_downgrade: bool) -> None:
        try:
            run_import(
                archive,
                self.dest,
                TrustedKeys({}),
                ImportOptions(allow_unsigned=True, allow_downgrade=allow_downgrade, dest_channel=self.dest_channel),
            )
        except RollbackError:
            assert not allow_downgrade
        except AirgapError as exc:
            assert "builds on" in str(exc), exc  # a delta whose base files are not there: refused, nothing changed

    def check(self) -> None:
        sub = self.dest / self.channel / "noarch"
        if not (sub / "repodata.json").exists():
            return
        listed = json.loads((sub / "repodata.json").read_bytes())["packages"]
        for fn, record in listed.items():
            assert (sub / fn).is_file(), f"{fn} is listed but missing"
            assert hashlib.sha256((sub / fn).read_bytes()).hexdigest() == record["sha256"], f"{fn}: other bytes than listed"
        receipt = parse_receipt(json.loads((self.dest / ".airgap" / "receipt.json").read_bytes()), "receipt")
        newest = receipt.newest(self.channel)
        assert newest is not None
        with tempfile.TemporaryDirectory() as scratch:
            manifest = _manifest(self.manifests[newest.archive_id], Path(scratch))
        shadowed, _ = shadowing(manifest.channels, lambda name: self.channel)
        for ch in manifest.channels:
            for s in ch.subdirs:
                for p in (*s.packages, *s.present):
                    if p.filename in shadowed.get((ch.name, s.subdir), ()):
                        continue  # the first channel's file of that name is the one published
                    assert p.filename in listed, f"{p.filename} of the newest archive was removed"
                    assert listed[p.filename]["sha256"] == p.sha256, f"{p.filename} of the newest archive was replaced"


def _manifest(archive: Path, scratch: Path) -> Any:
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return parse_manifest(member.read())


@pytest.mark.parametrize("merged", [False, True], ids=["one-channel", "two-merged"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sequence=steps)
def test_random_import_sequences_never_lose_a_listed_file(merged: bool, sequence: list[tuple[str, Any, bool]]) -> None:
    with tempfile.TemporaryDirectory(prefix="airgap-prop-") as tmp:
        world = World(Path(tmp), merged)
        for kind, arg, flag in sequence:
            if kind == "replay":
                if not world.archives:
                    continue
                archive, allow = world.archives[arg % len(world.archives)], flag
            else:
                archive, allow = world.export(arg, delta=kind == "delta"), False
                if not flag:
                    continue  # kept: imported later, out of order, by a "replay" step
            world.do_import(archive, allow)
            world.check()
