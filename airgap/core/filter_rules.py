"""The per-record rules of :mod:`airgap.core.filters`: license families, python versions, dates, newest versions.

Pure, like the rest of the filters: a record (a mapping from upstream repodata) in, a decision
out. Versions and specs go through py-rattler; nothing here orders versions by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, quoted

Record = Mapping[str, Any]


# --- licenses ----------------------------------------------------------------------------

_FAMILY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), fam)
    for p, fam in (
        (r"^(AGPL|GNU AFFERO)", "AGPL"),
        (r"^(LGPL|GNU LESSER|GNU LIBRARY)", "LGPL"),
        (r"^(GPL|GNU GENERAL PUBLIC|GNU GPL)[- ]?V?([23])", "GPL{2}"),
        (r"^(GPL|GNU GENERAL PUBLIC|GNU GPL)", "GPL"),
        (r"^BSD", "BSD"),
        (r"^MIT", "MIT"),
        (r"^APACHE", "APACHE"),
        (r"^(PSF|PYTHON SOFTWARE)", "PSF"),
        (r"^(MPL|MOZILLA)", "MOZILLA"),
        (r"^CC[- ]", "CC"),
        (r"^(PUBLIC[- ]DOMAIN|UNLICENSE|CC0)", "PUBLIC-DOMAIN"),
        (r"^PROPRIETARY", "PROPRIETARY"),
    )
)


def _classify_one(text: str) -> str | None:
    text = text.strip().strip("()").strip()
    for pattern, family in _FAMILY_PATTERNS:
        m = pattern.match(text)
        if m:
            return family.replace("{2}", m.group(2)) if "{2}" in family else family
    return None


def license_families(record: Record) -> list[list[str | None]]:
    """The record's license as alternatives (OR) of conjunctions (AND) of families.

    ``license_family`` wins when present. Otherwise the ``license`` string is split on
    ``OR``/``|`` into alternatives and each alternative on ``AND``/``&``/``,``/``;``, and each
    part is classified by its leading words (``GPL-3.0-only`` → GPL3, ``LGPL-2.1`` → LGPL);
    a part that cannot be classified is ``None``.
    """
    family = record.get("license_family")
    if isinstance(family, str) and family.strip():
        return [[family.strip().upper()]]
    text = record.get("license")
    if not isinstance(text, str) or not text.strip():
        return [[None]]
    alternatives = re.split(r"\s+OR\s+|\s*\|\s*", text, flags=re.IGNORECASE)
    return [[_classify_one(part) for part in re.split(r"\s+AND\s+|\s*[&,;]\s*", alt, flags=re.IGNORECASE)] for alt in alternatives]


def _family_blocked(family: str | None, blacklist: tuple[str, ...]) -> str | None:
    if family is None:
        return None
    for b in blacklist:
        if family == b or (family.startswith(b) and re.fullmatch(r"[-_ ]?V?\d+(\.\d+)*\+?", family[len(b) :])):
            return b
    return None


def license_blocked(record: Record, blacklist: tuple[str, ...]) -> str | None:
    """The blacklisted family that excludes ``record``, or None.

    Excluded when every alternative (OR) contains a blacklisted family (AND): a package
    offered as ``MIT OR GPL-3.0`` can be used under MIT and is kept.
    """
    if not blacklist:
        return None
    family, text = record.get("license_family"), record.get("license")
    key = (family if isinstance(family, str) else None, text if isinstance(text, str) else None, blacklist)
    got = _BLOCKED.get(key, _UNSEEN)
    if got is _UNSEEN:  # a few thousand distinct licenses among 300,000 records: decide each once
        if len(_BLOCKED) > 100_000:
            _BLOCKED.clear()
        got = _BLOCKED[key] = _license_blocked(record, blacklist)
    return got if isinstance(got, str) else None


_UNSEEN = object()
_BLOCKED: dict[tuple[str | None, str | None, tuple[str, ...]], object] = {}


def _license_blocked(record: Record, blacklist: tuple[str, ...]) -> str | None:
    hit: str | None = None
    for alternative in license_families(record):
        blocked = next((b for b in (_family_blocked(f, blacklist) for f in alternative) if b), None)
        if blocked is None:
            return None
        hit = hit or blocked
    return hit


# --- python versions ---------------------------------------------------------------------


def python_targets(versions: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """(text, python record, python_abi records for CPython and PyPy) for each listed version."""
    if not versions:
        return []
    from rattler import BuildString, PackageRecord, Version

    out = []
    for i, v in enumerate(versions):
        parts = v.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise ConfigError(f"python_versions[{i}]: expected a version such as 3.11, found {quoted(v)}")
        major_minor = ".".join(parts[:2])
        full = v if len(parts) > 2 else f"{major_minor}.0"
        Version(full)
        py = PackageRecord(name="python", version=full, build=BuildString("0"), build_number=0, subdir="noarch")
        tag = "".join(parts[:2])
        abis = tuple(
            PackageRecord(name="python_abi", version=major_minor, build=BuildString(build), build_number=0, subdir="noarch")
            for build in (f"0_cp{tag}", f"0_pypy{tag}_pp73")
        )
        out.append((major_minor, py, abis))
    return out


class PythonFilter:
    def __init__(self, versions: tuple[str, ...]) -> None:
        self.targets = python_targets(versions)
        self._cache: dict[str, set[str]] = {}  # dependency text -> versions it admits

    def _admits(self, dep: str) -> set[str]:
        got = self._cache.get(dep)
        if got is None:
            from rattler import MatchSpec

            try:
                spec = MatchSpec(dep)
            except Exception:
                got = {t for t, _, _ in self.targets}  # unreadable: do not decide on it
            else:
                got = {
                    t
                    for t, py, abis in self.targets
                    if (any(spec.matches(a) for a in abis) if dep.startswith("python_abi") else spec.matches(py))
                }
            self._cache[dep] = got
        return got

    def reason(self, record: Record) -> str | None:
        """None if the record is kept, else why not."""
        if not self.targets or record.get("noarch") == "python":
            return None
        wanted = {t for t, _, _ in self.targets}
        if record.get("name") == "python":  # the interpreter itself: its own version decides
            version = str(record.get("version", ""))
            if any(version == t or version.startswith(t + ".") for t in wanted):
                return None
            return f"python_versions: python {version} is not one of {', '.join(sorted(wanted))}"
        admitted = set(wanted)
        first: str | None = None
        for dep in record.get("depends") or ():
            if not isinstance(dep, str):
                continue
            dep = dep.strip()
            if dep.split(" ", 1)[0] in ("python", "python_abi") and " " in dep:
                first = first or dep
                admitted &= self._admits(dep)
        if first is None or admitted:
            return None
        return f"python_versions: built for another python ({first})"


# --- dates and versions -------------------------------------------------------------------


def snapshot_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"snapshot_date: expected a date such as 2024-05-01 or 2024-05-01T12:00:00Z, found {quoted(text)}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if len(text) <= 10:  # a bare date means the end of that day
        dt = dt.replace(hour=23, minute=59, second=59)
    return int(dt.timestamp() * 1000)


def timestamp_ms(record: Record) -> int | None:
    ts = record.get("timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    return int(ts if ts > 1e11 else ts * 1000)  # older records store seconds


def newest_versions(names: dict[str, list[tuple[str, Record]]], n: int) -> set[str]:
    from rattler import Version

    keep: set[str] = set()
    for items in names.values():
        versions: dict[str, Any] = {}
        for _, rec in items:
            v = str(rec["version"])
            if v not in versions:
                try:
                    versions[v] = Version(v)
                except Exception:
                    versions[v] = None
        ordered = sorted((pv, v) for v, pv in versions.items() if pv is not None)
        newest = {v for _, v in ordered[-n:]} | {v for v, pv in versions.items() if pv is None}
        keep.update(fn for fn, rec in items if str(rec["version"]) in newest)
    return keep
