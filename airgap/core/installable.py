"""Installability: can the selected records alone satisfy the specs users will ask for?

For each platform × python version, a real solve (py-rattler) of the requested specs against
an index made of the selected records only, before a single package is downloaded. Writes a
throw-away channel of repodata (no package files) to a temporary directory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .repodata import Repodata
from .virtual_packages import for_platform


@dataclass(frozen=True)
class SolveOutcome:
    platform: str
    python: str | None
    specs: tuple[str, ...]
    ok: bool
    packages: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, specs=list(self.specs))


def _python_pins(specs: list[str]) -> list[Any]:
    """The version specs of those ``specs`` that name python with a version (``python 3.6.*``, ``python>=3.9``)."""
    import rattler

    pins = []
    for text in specs:
        try:
            spec = rattler.MatchSpec(text)
        except Exception:  # the solver reports a bad spec itself
            continue
        if spec.name is not None and spec.name.normalized == "python" and spec.version:
            pins.append(rattler.VersionSpec(spec.version))
    return pins


def admitted_pythons(specs: list[str], python_versions: list[str], available: list[str]) -> list[str]:
    """The ``python_versions`` that ``specs`` admit: all of them unless a spec pins python.

    ``3.6`` is admitted by ``python 3.6.*`` or ``python >=3.6`` when a python the selection holds
    (``available``: versions of python records) is both a 3.6 and matched by every pin; with no
    such record, ``3.6`` itself stands for it.
    """
    import rattler

    pins = _python_pins(specs)
    if not pins:
        return list(python_versions)
    out = []
    for py in python_versions:
        series = rattler.VersionSpec(f"{py}.*")
        candidates = [rattler.Version(v) for v in available if series.matches(rattler.Version(v))] or [rattler.Version(py)]
        if any(all(pin.matches(c) for pin in pins) for c in candidates):
            out.append(py)
    return out


def _python_versions_held(selected: Mapping[str, Mapping[str, Repodata]]) -> list[str]:
    return sorted(
        {
            str(rec.get("version"))
            for subdirs in selected.values()
            for rd in subdirs.values()
            for _, rec in rd.records()
            if rec.get("name") == "python" and rec.get("version")
        }
    )


def check(
    selected: Mapping[str, Mapping[str, Repodata]],
    specs: list[str],
    platforms: list[str],
    python_versions: list[str],
    virtual_packages: Mapping[str, tuple[str, ...]] | None = None,
) -> list[SolveOutcome]:
    """Solve ``specs`` on each platform (× python version) against ``selected`` {channel: {subdir: repodata}}.

    A spec that pins python is solved only with the python versions it admits (``python 3.6.*``
    with ``python_versions: [2.7, 3.6]``: 3.6 only); if it admits none, once on its own.
    """
    import asyncio  # lazily, with rattler: only a check with specs solves

    import rattler

    pythons: list[str | None] = list(admitted_pythons(specs, python_versions, _python_versions_held(selected))) or [None]

    outcomes: list[SolveOutcome] = []
    with tempfile.TemporaryDirectory(prefix="airgap-solve-") as tmp:
        root = Path(tmp)
        channels = []
        for cname, subdirs in selected.items():
            for subdir, rd in subdirs.items():
                d = root / cname / subdir
                d.mkdir(parents=True)
                (d / "repodata.json").write_text(json.dumps(rd.to_document()))
            noarch = root / cname / "noarch"
            if not noarch.exists():
                noarch.mkdir(parents=True)
                (noarch / "repodata.json").write_text(json.dumps({"info": {"subdir": "noarch"}, "packages": {}}))
            channels.append(rattler.Channel((root / cname).as_uri()))
        gateway = rattler.Gateway(cache_dir=root / ".cache")
        for platform in platforms:
            for py in pythons:
                wanted = list(specs) + ([f"python {py}.*"] if py else [])
                try:
                    records = asyncio.run(
                        rattler.solve(
                            sources=channels,
                            specs=wanted,
                            gateway=gateway,
                            platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                            virtual_packages=for_platform(platform, virtual_packages),
                        )
                    )
                except Exception as exc:  # rattler's solver error carries the explanation
                    outcomes.append(SolveOutcome(platform, py, tuple(specs), False, 0, str(exc).strip()))
                else:
                    outcomes.append(SolveOutcome(platform, py, tuple(specs), True, len(records), "ok"))
    return outcomes
