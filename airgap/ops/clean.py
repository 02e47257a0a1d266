"""Clean: what a destination holds that the current filters no longer select — and remove it.

The diff is pure (``diff_destination``): the destination's own repodata is run through the
same filters as an export, so every removal carries the rule that excludes it, and kept
records that would lose a dependency are reported. Removing follows DESIGN §3 in reverse of
an import: each subdir's repodata is republished without the records first (atomically), and
only then are the files deleted, so a client never sees an index that lists a missing file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock, timestamp
from ..core import published
from ..core.filters import Filters, Record, SpecSet, select_channel
from ..core.manifest import PACKAGE_SUFFIXES
from ..core.repodata import Repodata
from ..core.run_exports import NAME as RUN_EXPORTS
from ..core.run_exports import after_clean as run_exports_after_clean
from ..destinations import open_destination
from ..destinations.base import Destination, load_receipt
from ..errors import DestinationError
from .options import CleanOptions
from .pages import write_pages
from .review import with_sboms
from .shards_gc import ShardSweep, sweep

log = logging.getLogger(__name__)


@dataclass
class Removal:
    channel: str
    subdir: str
    filename: str
    size: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LostDependency:
    """A kept record whose dependency only removed records satisfied."""

    channel: str
    subdir: str
    filename: str
    dependency: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class CleanResult:
    destination: str
    dry_run: bool
    remove: list[Removal] = field(default_factory=list)
    keep: int = 0
    broken: list[LostDependency] = field(default_factory=list)  # kept records losing a dependency
    shards: ShardSweep = field(default_factory=ShardSweep)  # CEP-16 shards no index names (airgap/shards_gc.py)

    @property
    def bytes(self) -> int:
        return sum(r.size or 0 for r in self.remove)

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "dry_run": self.dry_run,
            "remove": [r.to_json() for r in self.remove],
            "keep": self.keep,
            "bytes": self.bytes,
            "broken": [b.to_json() for b in self.broken],
            "shards": self.shards.to_json(),
        }


def diff_destination(held: Mapping[str, Mapping[str, Repodata]], filters: Filters) -> CleanResult:
    """Pure: decide for every record a destination holds. ``held``: {channel: {subdir: repodata}}."""
    result = CleanResult(destination="", dry_run=True)
    wanted_subdirs = set(filters.subdirs())
    for channel, subdirs in sorted(held.items()):
        in_scope = {s: rd for s, rd in subdirs.items() if s in wanted_subdirs}
        selections = select_channel(in_scope, filters) if in_scope else {}
        kept: dict[str, dict[str, Record]] = {}
        for subdir, rd in sorted(subdirs.items()):
            sel = selections.get(subdir)
            keep = set(sel.selected) if sel is not None else set()
            kept[subdir] = {}
            for filename, record in rd.records():
                if filename in keep:
                    kept[subdir][filename] = record
                    result.keep += 1
                    continue
                reason = sel.excluded.get(filename, "not selected") if sel is not None else f"platforms: {subdir} is not mirrored"
                size = record.get("size")
                result.remove.append(Removal(channel, subdir, filename, size if isinstance(size, int) else None, reason))
        result.broken.extend(_lost_dependencies(channel, subdirs, kept))
    result.remove.sort(key=lambda r: (r.channel, r.subdir, r.filename))
    return result


def _lost_dependencies(channel: str, before: Mapping[str, Repodata], after: Mapping[str, Mapping[str, Record]]) -> list[LostDependency]:
    """Kept records with a dependency that something satisfied before the clean and nothing after."""
    out: list[LostDependency] = []
    names_before: dict[str, dict[str, list[Record]]] = {}
    for subdir, rd in before.items():
        for _, rec in rd.records():
            names_before.setdefault(subdir, {}).setdefault(str(rec["name"]).lower(), []).append(rec)
    names_after: dict[str, dict[str, list[Record]]] = {}
    for subdir, recs in after.items():
        for kept_rec in recs.values():
            names_after.setdefault(subdir, {}).setdefault(str(kept_rec["name"]).lower(), []).append(kept_rec)
    cache: dict[str, SpecSet | None] = {}

    def satisfied(dep: str, subdir: str, index: dict[str, dict[str, list[Record]]]) -> bool:
        spec = cache.get(dep)
        if dep not in cache:
            try:
                spec = SpecSet("depends", [dep])
            except Exception:
                spec = None
            cache[dep] = spec
        if spec is None:
            return True
        name = next(iter(spec.by_name))
        pools = {subdir, "noarch"}
        return any(spec.match(r, pool) is not None for pool in pools for r in index.get(pool, {}).get(name, ()))

    for subdir, recs in sorted(after.items()):
        for filename, kept_rec in sorted(recs.items()):
            for dep in kept_rec.get("depends") or ():
                if not isinstance(dep, str) or dep.startswith("__"):
                    continue
                if satisfied(dep, subdir, names_before) and not satisfied(dep, subdir, names_after):
                    out.append(LostDependency(channel, subdir, filename, dep))
    return out


def run_clean(into: Path | str | Destination, options: CleanOptions, *, clock: Clock = time.time) -> CleanResult:
    """Remove what ``options.filters`` no longer select (``options.channels``: only in these destination channels)."""
    filters, channels, dry_run = options.filters, options.channels, options.dry_run
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if not dest.exists():
        raise DestinationError(f"{dest}: expected a destination holding channels, found none")
    if dry_run:
        result = _diff(dest, filters, dry_run=True, channels=channels)
        result.shards = sweep(dest, now=clock(), grace_days=options.shard_grace_days, dry_run=True, channels=channels)
        return result
    with dest.locked(options.lock_timeout):
        result = _diff(dest, filters, dry_run=False, channels=channels)
        if not result.remove:
            result.shards = sweep(dest, now=clock(), grace_days=options.shard_grace_days, dry_run=False, channels=channels)
            return result
        by_subdir: dict[tuple[str, str], set[str]] = {}
        for r in result.remove:
            by_subdir.setdefault((r.channel, r.subdir), set()).add(r.filename)
        change = dest.begin("clean")
        try:
            # journaled like an import: a clean killed between repodata.json.zst and repodata.json
            # is rolled back by whoever takes the lock next, so the two never disagree for long
            try:
                change.plan([], sorted(by_subdir))
                for (channel, subdir), gone in sorted(by_subdir.items()):
                    rd = dest.read_repodata(channel, subdir)
                    assert rd is not None
                    for filename in gone:
                        rd.drop(filename)
                    if (kept := run_exports_after_clean(dest, channel, subdir, rd)) is not None:  # CEP-12, beside repodata.json
                        change.publish_index_file(channel, subdir, RUN_EXPORTS, kept)
                    change.publish_index(channel, subdir, rd)
                receipt = load_receipt(dest)
                for (channel, subdir), gone in by_subdir.items():
                    published.forget(receipt, channel, subdir)  # rewritten from an index not vetted here: the next import vets it
                    for filename in gone:
                        receipt.forget(channel, subdir, filename)
                if not isinstance(receipt.extra.get("cleans"), list):
                    receipt.extra["cleans"] = []
                receipt.extra["cleans"].append(
                    {
                        "time": timestamp(clock()),
                        "removed": len(result.remove),
                        "filters": filters.to_json(),
                    }
                )
                change.write_receipt(receipt.to_json(encodable=True))
                change.commit()
            except BaseException:
                change.rollback()
                raise
            # repodata no longer lists them: now the files can go
            dest.remove_packages([(c, s, f) for (c, s), gone in sorted(by_subdir.items()) for f in sorted(gone)])
        finally:
            change.close()
        result.shards = sweep(dest, now=clock(), grace_days=options.shard_grace_days, dry_run=False, channels=channels)
        write_pages(
            dest,
            {c for c, _ in by_subdir},
            with_sboms({"archives": receipt.archives}),
            None,
            by_subdir,
        )
        return result


def _diff(dest: Destination, filters: Filters, dry_run: bool, channels: frozenset[str] | None = None) -> CleanResult:
    held: dict[str, dict[str, Repodata]] = {}
    for channel, subdirs in dest.inventory().items():
        if channels is not None and channel not in channels:
            continue
        for subdir in subdirs:
            rd = dest.read_repodata(channel, subdir)
            if rd is not None:
                held.setdefault(channel, {})[subdir] = rd
    result = diff_destination(held, filters)
    # package files no index lists (an interrupted clean or import leaves such): clean them up too
    for channel, by_subdir in held.items():
        for subdir, rd in by_subdir.items():
            for name, size in sorted(dest.files(channel, subdir).items()):
                if name.endswith(PACKAGE_SUFFIXES) and not rd.lists(name):  # records kept verbatim count too
                    result.remove.append(Removal(channel, subdir, name, size, "orphan: no repodata lists it (left by an interrupted run)"))
    result.destination = str(dest)
    result.dry_run = dry_run
    return result
