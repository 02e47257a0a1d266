"""Property: random sequences of full, delta, replayed and reordered imports never lose a listed file.

After every import (applied, refused, or applied as a downgrade) into a directory destination:
1. every file a repodata.json lists is there, with the sha256 its record names;
2. no file the newest applied archive lists has been removed (or replaced by other bytes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgap.config import from_mapping
from airgap.errors import AirgapError
from airgap.manifest import parse_manifest
from airgap.ops.export import run_export
from airgap.ops.import_ import run_import
from airgap.receipt import parse_receipt
from airgap.rollback import RollbackError
from airgap.signing import TrustedKeys
from airgap.testing.condapkg import PackageSpec, write_channel

NAMES = ("p0", "p1", "p2", "p3")

upstream_states = st.dictionaries(st.sampled_from(NAMES), st.integers(0, 1), min_size=1)  # name -> variant (bytes)
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
    def __init__(self, root: Path) -> None:
        self.root = root
        self.up = root / "up" / "main"
        self.dest = root / "dest"
        self.now = 1_800_000_000.0
        self.archives: list[Path] = []
        self.manifests: dict[str, Any] = {}

    def clock(self) -> float:
        self.now += 60
        return self.now

    def export(self, state: dict[str, int], delta: bool) -> Path:
        if self.up.exists():
            shutil.rmtree(self.up)
        write_channel(
            self.up, [PackageSpec(n, "1.0", files=((n, f"{n}-{v}".encode()),)) for n, v in sorted(state.items())], formats=("tar.bz2",)
        )
        receipt = self.dest / ".airgap" / "receipt.json"
        out = self.root / f"a{len(self.archives)}.tar"
        config = from_mapping({"channels": [str(self.up)], "platforms": ["linux-64"], "mirror_dir": str(self.root / "cache")})
        res = run_export(config, out, None, since=receipt if delta and receipt.exists() else None, clock=self.clock)
        self.archives.append(out)
        self.manifests[res.archive_id] = out
        return out

    def do_import(self, archive: Path, allow_downgrade: bool) -> None:
        try:
            run_import(archive, self.dest, TrustedKeys({}), allow_unsigned=True, allow_downgrade=allow_downgrade)
        except RollbackError:
            assert not allow_downgrade
        except AirgapError as exc:
            assert "builds on" in str(exc), exc  # a delta whose base files are not there: refused, nothing changed

    def check(self) -> None:
        sub = self.dest / "main" / "noarch"
        if not (sub / "repodata.json").exists():
            return
        listed = json.loads((sub / "repodata.json").read_bytes())["packages"]
        for fn, record in listed.items():
            assert (sub / fn).is_file(), f"{fn} is listed but missing"
            assert hashlib.sha256((sub / fn).read_bytes()).hexdigest() == record["sha256"], f"{fn}: other bytes than listed"
        receipt = parse_receipt(json.loads((self.dest / ".airgap" / "receipt.json").read_bytes()), "receipt")
        newest = receipt.newest("main")
        assert newest is not None
        with tempfile.TemporaryDirectory() as scratch:
            manifest = _manifest(self.manifests[newest.archive_id], Path(scratch))
        for ch in manifest.channels:
            for s in ch.subdirs:
                for p in (*s.packages, *s.present):
                    assert p.filename in listed, f"{p.filename} of the newest archive was removed"
                    assert listed[p.filename]["sha256"] == p.sha256, f"{p.filename} of the newest archive was replaced"


def _manifest(archive: Path, scratch: Path) -> Any:
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return parse_manifest(member.read())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps)
def test_random_import_sequences_never_lose_a_listed_file(sequence: list[tuple[str, Any, bool]]) -> None:
    with tempfile.TemporaryDirectory(prefix="airgap-prop-") as tmp:
        world = World(Path(tmp))
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
