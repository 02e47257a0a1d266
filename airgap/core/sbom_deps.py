"""An SBOM's dependency references: each ``depends`` entry to the newest file of the archive that satisfies it. Pure.

Split from :mod:`airgap.core.sbom` (which re-exports :func:`dependencies`). For 300,000 files
each distinct entry of a (channel, subdir) is resolved once, and each package name's
candidates are ranked once, newest first, so a match stops at the first that satisfies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sbom import Component


def dependencies(comps: list[Component]) -> list[list[int]]:
    """For each component, the indexes of the components its ``depends`` resolve to within the archive.

    Each entry resolves to the newest file that satisfies it (highest version, then build
    number, then timestamp): the one a solver prefers when nothing else constrains it. A
    platform file looks in its subdir and noarch (one reference); a noarch file installs on
    every platform, so it gets the newest match of each subdir of the channel. Listing every
    satisfying file instead would not scale: ``python >=3.8`` matches hundreds of builds, and
    a channel of 300,000 files would give hundreds of millions of references.
    """
    from rattler import BuildString, MatchSpec, PackageRecord, Version

    by_pool: dict[tuple[str, str], dict[str, list[int]]] = {}
    for i, c in enumerate(comps):
        by_pool.setdefault((c.channel, c.subdir), {}).setdefault(c.name.lower(), []).append(i)
    subdirs: dict[str, list[str]] = {}
    for channel, subdir in by_pool:
        subdirs.setdefault(channel, []).append(subdir)
    specs: dict[str, Any] = {}
    records: dict[int, Any] = {}
    order: dict[int, Any] = {}
    best: dict[tuple[str, str, tuple[str, ...]], int | None] = {}  # (dep, channel, pools) -> newest match
    ranked: dict[tuple[str, tuple[str, ...], str], list[int]] = {}  # (channel, pools, name) -> candidates, newest first

    def rank(i: int) -> Any:
        """The file's place in the order a solver prefers, None if rattler cannot parse its version."""
        if i not in order:
            c = comps[i]
            bn = c.record.get("build_number", 0)
            bn = bn if isinstance(bn, int) and not isinstance(bn, bool) else 0
            ts = c.record.get("timestamp", 0)
            try:
                order[i] = (Version(c.version), bn, ts if isinstance(ts, int) else 0, c.filename)
            except Exception:  # a version rattler cannot parse: it matches nothing
                order[i] = None
        return order[i]

    def as_record(i: int) -> Any:
        if i not in records:
            c = comps[i]
            bn = c.record.get("build_number", 0)
            bn = bn if isinstance(bn, int) and not isinstance(bn, bool) else 0
            try:
                records[i] = PackageRecord(name=c.name, version=c.version, build=BuildString(c.build), build_number=bn, subdir=c.subdir)
            except Exception:  # it matches nothing
                records[i] = None
        return records[i]

    def candidates(channel: str, pools: tuple[str, ...], name: str) -> list[int]:
        key = (channel, pools, name)
        if key not in ranked:
            found = [j for pool in pools for j in by_pool.get((channel, pool), {}).get(name, ()) if rank(j) is not None]
            found.sort(key=order.__getitem__, reverse=True)  # stable: ties keep pool order, as max() did
            ranked[key] = found
        return ranked[key]

    def newest(dep: str, channel: str, pools: tuple[str, ...]) -> int | None:
        key = (dep, channel, pools)
        if key not in best:
            if dep not in specs:
                try:
                    specs[dep] = MatchSpec(dep)
                except Exception:
                    specs[dep] = None
            spec = specs[dep]
            name = dep.split(" ", 1)[0].split("[", 1)[0].lower()
            best[key] = None
            if spec is not None:
                for j in candidates(channel, pools, name):  # the first that matches is the newest
                    record = as_record(j)
                    if record is not None and spec.matches(record):
                        best[key] = j
                        break
        return best[key]

    def resolve(dep: str, channel: str, subdir: str) -> tuple[int, ...]:
        if not dep.strip() or dep.startswith("__"):
            return ()
        groups = [(subdir, "noarch")] if subdir != "noarch" else [(s,) for s in sorted(subdirs.get(channel, []))]
        return tuple(j for pools in groups if (j := newest(dep, channel, pools)) is not None)

    out: list[list[int]] = []
    memo: dict[tuple[str, str], dict[str, tuple[int, ...]]] = {}  # (channel, subdir) -> dep -> matches
    same: dict[tuple[str, str, tuple[Any, ...]], list[int]] = {}  # (channel, subdir, depends) -> matches: builds repeat their lists
    for i, c in enumerate(comps):
        depends = c.record.get("depends") or ()
        key = (c.channel, c.subdir, tuple(depends)) if type(depends) is list else None
        try:  # equal lists resolve alike (what is not a string is skipped, whatever it equals)
            got = same.get(key) if key is not None else None
        except TypeError:  # an entry that cannot be hashed (a dict, a list): resolved on its own
            key = got = None
        if got is None:
            known = memo.get((c.channel, c.subdir))
            if known is None:
                known = memo[(c.channel, c.subdir)] = {}
            found: set[int] = set()
            for dep in depends:
                if type(dep) is not str:
                    if not isinstance(dep, str):
                        continue
                    dep = str(dep)
                js = known.get(dep)
                if js is None:
                    js = known[dep] = resolve(dep, c.channel, c.subdir)
                found.update(js)
            got = sorted(found)
            if key is not None:
                same[key] = got
        out.append([j for j in got if j != i] if i in got else got)  # shared lists: callers only read them
    return out
