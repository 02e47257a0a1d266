"""Which upstream records cross the air gap. Pure: repodata and filters in, decisions out.

This version implements ``platforms`` (which subdirs are read; ``noarch`` always) and
``pkg_list`` (names or conda match specs limiting the selection). Every excluded record
carries the rule that excluded it, so plan and clean can explain themselves. Match specs
and versions follow conda's semantics through py-rattler; nothing is hand-rolled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .repodata import Repodata


@dataclass(frozen=True)
class Filters:
    platforms: tuple[str, ...]
    pkg_list: tuple[str, ...] = ()

    def subdirs(self) -> list[str]:
        return [*self.platforms, "noarch"]

    def to_json(self) -> dict[str, Any]:
        return {"platforms": list(self.platforms), "pkg_list": list(self.pkg_list)}


@dataclass
class Selection:
    selected: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # filename -> reason


class _SpecSet:
    """A list of match specs, indexed by package name so most records cost one dict lookup."""

    def __init__(self, key: str, specs: Iterable[str]) -> None:
        from rattler import MatchSpec  # imported lazily: it is large and most commands do not need it

        self.by_name: dict[str, list[tuple[str, Any]]] = {}
        for i, text in enumerate(specs):
            try:
                spec = MatchSpec(text)
            except Exception as exc:  # rattler raises its own exception types
                raise ConfigError(f"{key}[{i}]: expected a conda match spec such as 'numpy >=1.26', found {text!r} ({exc})") from None
            name = spec.name.normalized if spec.name is not None else None
            if not name or "*" in name:
                raise ConfigError(f"{key}[{i}]: expected a match spec with an exact package name, found {text!r}")
            only_name = text.strip().lower() == name
            self.by_name.setdefault(name, []).append((text, None if only_name else spec))

    def match(self, record: Mapping[str, Any]) -> str | None:
        """The first spec text matching ``record``, or None."""
        name = str(record.get("name", "")).lower()
        candidates = self.by_name.get(name)
        if not candidates:
            return None
        for text, spec in candidates:
            if spec is None or spec.matches(_rattler_record(record)):
                return text
        return None


def _rattler_record(record: Mapping[str, Any]) -> Any:
    from rattler import BuildString, PackageRecord

    build_number = record.get("build_number", 0)
    return PackageRecord(
        name=str(record["name"]),
        version=str(record["version"]),
        build=BuildString(str(record["build"])),
        build_number=build_number if isinstance(build_number, int) else 0,
        subdir=str(record.get("subdir") or "noarch"),
    )


def select(rd: Repodata, filters: Filters) -> Selection:
    """Decide for every record of one subdir; ``selected`` is sorted by filename."""
    out = Selection()
    pkg_specs = _SpecSet("pkg_list", filters.pkg_list) if filters.pkg_list else None
    for filename, record in rd.records():
        if pkg_specs is not None and pkg_specs.match(record) is None:
            out.excluded[filename] = "not in pkg_list"
            continue
        out.selected.append(filename)
    out.selected.sort()
    return out
