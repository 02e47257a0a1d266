"""A delta export's choices against its base (a destination's receipt): which files to fetch, which names travel.

Used by :mod:`.collect` when an export runs ``--since`` a receipt. Each costs one pass over the
selection, with the base's holdings looked up once per subdir (a conda-forge subdir selects
300,000 files); what changed is decided by :mod:`airgap.core.delta_index`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core import delta_index
from ..core.delta import DeltaBase
from ..core.receipt import Held
from ..core.repodata import Repodata
from .plan import Want

Groups = dict[str, list[tuple[str, dict[str, Any]]]]  # records by package name (delta_index.by_name)


def to_fetch(wants: list[Want], delta: DeltaBase | None) -> list[Want]:
    """The selected files, less those the delta's base holds with the same sha256 (no need to fetch them at all)."""
    if delta is None:
        return wants
    out: list[Want] = []
    place: tuple[str, str] | None = None
    holdings: Mapping[str, Held] = {}
    for w in wants:  # grouped by channel and subdir: the base's holdings are looked up once per subdir
        if (w.channel, w.subdir) != place:
            place = (w.channel, w.subdir)
            holdings = delta.holdings(w.channel, w.subdir)
        rec = holdings.get(w.filename)
        if not (w.sha256 and rec is not None and rec.sha256 == w.sha256):
            out.append(w)
    return out


def name_change(
    delta: DeltaBase, channel: str, subdir: str, upstream_sha256: str, rd: Repodata, new_files: Sequence[str], removals: Sequence[str]
) -> tuple[delta_index.NameChange, Groups | None]:
    """The names of ``rd`` (the selection) that changed since the base, and ``rd``'s records by name (None: not grouped).

    Without the base's name index, the whole subdir when anything changed."""
    before = delta_index.stored(delta.receipt, channel, subdir)
    if delta.upstream_unchanged(channel, subdir, upstream_sha256):  # the same records upstream: only the selection moved
        if not new_files and not removals:
            return delta_index.NameChange(frozenset(), frozenset()), None
        if before is not None:
            groups = delta_index.by_name(rd)
            return delta_index.changed_names(groups.keys(), dict.fromkeys(before, ""), new_files, removals), groups
    groups = delta_index.by_name(rd)  # grouped once: digested here, picked from when the entry is made
    now = delta_index.digests_of(groups) if before is not None else groups.keys()
    return delta_index.changed_names(now, before, new_files, removals), groups
