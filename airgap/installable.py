"""Installability: can the selected records alone satisfy the specs users will ask for?

For each platform × python version, a real solve (py-rattler) of the requested specs against
an index made of the selected records only, before a single package is downloaded. Writes a
throw-away channel of repodata (no package files) to a temporary directory.
"""

from __future__ import annotations

import asyncio
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


def check(selected: Mapping[str, Mapping[str, Repodata]], specs: list[str], platforms: list[str],
          python_versions: list[str], virtual_packages: Mapping[str, tuple[str, ...]] | None = None) -> list[SolveOutcome]:
    """Solve ``specs`` on each platform (× python version) against ``selected`` {channel: {subdir: repodata}}."""
    import rattler

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
            pythons: list[str | None] = list(python_versions) or [None]
            for py in pythons:
                wanted = list(specs) + ([f"python {py}.*"] if py else [])
                try:
                    records = asyncio.run(rattler.solve(sources=channels, specs=wanted, gateway=gateway,
                                                        platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                                                        virtual_packages=for_platform(platform, virtual_packages)))
                except Exception as exc:  # rattler's solver error carries the explanation
                    outcomes.append(SolveOutcome(platform, py, tuple(specs), False, 0, str(exc).strip()))
                else:
                    outcomes.append(SolveOutcome(platform, py, tuple(specs), True, len(records), "ok"))
    return outcomes
