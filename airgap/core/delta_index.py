"""A delta's metadata per package name (CEP-16 style): only the names whose records changed travel.

Pure. A delta archive (format ``airgap/2``) carries, per subdir, the records of the package
names whose records changed since its base (added, patched or removed records: each such
name's whole record set, as upstream has it now), the names gone entirely (``gone``), and the
files to remove. It never carries the whole repodata, nor a list of every file the base holds.

What changed is decided against the base's *name index*: per archive channel and subdir, a
digest of each name's record set, kept in the destination's receipt (``name_index``) by every
import. The index is tied to the upstream repodata it was computed from (``source``): a
receipt whose index is missing or stale (an older airgap wrote it, a downgrade touched the
subdir) makes every selected name count as changed, which is what a full subdir costs and
still correct. The import applies the same rule as for a full archive (the current index less
the removals, plus the records the archive carries), so what the destination lists after a
delta equals what it would list after a full archive of the same filters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

from . import rawindex
from .jsonbytes import encode_sorted_small
from .manifest import Manifest, SubdirEntry
from .receipt import Receipt
from .repodata import Repodata

KEY = "name_index"  # the receipt's key: {archive channel: {subdir: {"source": sha256, "names": {name: digest}}}}
_DIGEST_HEX = 32  # 128 bits: tells one record set from the next, not a signature
EVERY = 2048  # names digested between two calls of an ``every`` (~10 MiB of records at conda-forge's sizes)


def name_of(filename: str) -> str:
    """The package name of a conda file name (``name-version-build.ext``)."""
    return filename.rsplit("-", 2)[0]


def by_name(rd: Repodata, as_stored: bool = False) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The records of ``rd`` grouped by package name (the file's: what the destination lists it under).
    ``as_stored``: a record still kept as bytes (core/rawindex.py) stays so (:func:`digests_of` decodes it alone)."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    pairs = chain(*(rawindex.entries(s).items() for s in (rd.packages, rd.packages_conda))) if as_stored else rd.records()
    for filename, record in pairs:
        name = filename.rsplit("-", 2)[0]  # name_of, inline: once per record
        group = out.get(name)
        if group is None:
            out[name] = [(filename, record)]
        else:
            group.append((filename, record))
    return out


def digests(rd: Repodata, every: Callable[[], object] | None = None) -> dict[str, str]:
    """Each package name's digest: sha256 over its records (sorted by file name) in canonical JSON.

    A delta export digests every selected name (it cannot know which changed otherwise), so the
    JSON is msgspec's (a tenth of the ``json`` module's time): the same bytes as
    :func:`~airgap.core.manifest.canonical_json` except for a float written with an exponent
    (``1e-05`` is ``0.00001`` here), which no conda record holds. A digest that differs from the
    one an older airgap stored only makes that name travel once more. ``every``: as :func:`digests_of`'s."""
    sections = [(rawindex.entries(s), dict[str, list[str]]()) for s in (rd.packages, rd.packages_conda)]  # bytes stay
    for stored, names in sections:  # file names by package name: no (file name, record) pair per record (19 MB) held
        for filename in stored:
            names.setdefault(filename.rsplit("-", 2)[0], []).append(filename)  # name_of, inline
    every_name = dict.fromkeys(n for _, names in sections for n in names)  # by_name's order
    pairs = ((n, [(f, stored[f]) for stored, names in sections for f in names.get(n, ())]) for n in every_name)
    return _digests(pairs, every)


def digests_of(groups: Mapping[str, list[tuple[str, dict[str, Any]]]], every: Callable[[], object] | None = None) -> dict[str, str]:
    """:func:`digests` of records already grouped by :func:`by_name` (each group is sorted in place); ``every``: called
    after each ``EVERY`` names (the caller gives back the mapped pages of the records digested, decision 0018)."""
    return _digests(groups.items(), every)


def _digests(groups: Iterable[tuple[str, list[tuple[str, Any]]]], every: Callable[[], object] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    sha256, enc = hashlib.sha256, encode_sorted_small
    for name, recs in groups:
        if every is not None and len(out) % EVERY == EVERY - 1:
            every()
        if len(recs) > 1:
            recs.sort(key=_first)
        # one hash call per name over the pairs' bytes, end to end: the bytes hashed are as ever
        out[name] = sha256(b"".join([enc(pair if type(pair[1]) is dict else _decoded(pair)) for pair in recs])).hexdigest()[:_DIGEST_HEX]
    return out


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _decoded(pair: tuple[str, Any]) -> tuple[str, Any]:
    """``(filename, record)`` of a record kept as bytes, decoded for this once."""
    return pair[0], rawindex.decode_record(pair[1])


def stored(receipt: Receipt, channel: str, subdir: str) -> dict[str, str] | None:
    """The base's name index for ``channel``/``subdir``, or None when missing, malformed or stale."""
    entry = receipt.extra.get(KEY, {})
    entry = entry.get(channel, {}) if isinstance(entry, dict) else None
    entry = entry.get(subdir) if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or entry.get("source") != receipt.sources.get(channel, {}).get(subdir):
        return None
    names = entry.get("names")
    if not isinstance(names, dict) or not set(map(type, names)) | set(map(type, names.values())) <= {str}:  # C speed
        return None
    return names


@dataclass(frozen=True)
class NameChange:
    """One channel's subdir in a delta: the names whose records travel, and the names gone entirely."""

    names: frozenset[str]
    gone: frozenset[str]


def changed_names(
    now: dict[str, str] | Iterable[str],
    before: dict[str, str] | None,
    new_files: Iterable[str],
    removals: Iterable[str],
) -> NameChange:
    """The names that changed since the base: another digest, a file that travels, a file removed.

    ``now`` is the name index of the selection (or, without digests, its names); ``before`` the
    base's (None: unknown, so every selected name travels)."""
    current = now if isinstance(now, dict) else dict.fromkeys(now, "")
    names = set(current) if before is None else {n for n, d in current.items() if before.get(n) != d}
    names.update(n for n in map(name_of, new_files) if n in current)
    removed = {name_of(f) for f in removals}
    names.update(removed & set(current))
    gone = (removed | set(before or ())) - set(current)
    return NameChange(frozenset(names), frozenset(gone))


def record(
    receipt: Receipt,
    manifest: Manifest,
    target_rd: Mapping[tuple[str, str], Repodata],
    *,
    downgrade: bool,
    every: Callable[[], object] | None = None,
) -> None:
    """Update the receipt's name index for what ``manifest`` published (before ``apply_archive`` records the sources).

    ``target_rd`` is each (archive channel, subdir)'s repodata as the archive carried it. A full
    subdir (no ``names``) replaces the index; a delta's names update a current one and leave a
    stale or missing one absent; a downgrade drops it (the next delta carries the whole subdir). ``every``: as
    :func:`digests_of`'s."""
    index = receipt.extra.get(KEY)
    if not isinstance(index, dict):
        index = receipt.extra[KEY] = {}
    for ch in manifest.channels:
        subs = index.get(ch.name)
        if not isinstance(subs, dict):
            subs = index[ch.name] = {}
        for sub in ch.subdirs:
            rd = target_rd.get((ch.name, sub.subdir))
            source = sub.source.get("sha256")
            if downgrade or rd is None or not isinstance(source, str) or not source:
                subs.pop(sub.subdir, None)
                continue
            names = _next_names(receipt, ch.name, sub, rd, every)
            if names is None:
                subs.pop(sub.subdir, None)
            else:
                subs[sub.subdir] = {"source": source, "names": names}
        if not subs:
            del index[ch.name]
    if not index:
        del receipt.extra[KEY]


def _next_names(
    receipt: Receipt, channel: str, sub: SubdirEntry, rd: Repodata, every: Callable[[], object] | None
) -> dict[str, str] | None:
    if sub.names is None:  # a whole subdir: its index is the archive's
        return digests(rd, every)
    before = stored(receipt, channel, sub.subdir)
    if before is None:
        return None
    # the receipt's own dict, changed where the delta changed it (record() stores this same dict back): a new dict
    # of every held name was 0.5 s of a delta import at 300,000 names, searching the manifest's tuples per name more
    for n in (*sub.gone, *sub.names):
        before.pop(n, None)
    before.update(digests(rd, every))
    return before


def check_names(rd: Repodata, sub: SubdirEntry, what: str) -> str | None:
    """A hostile-archive rule: a delta's records are all of its listed names, each listed name has some.
    Returns the problem, or None."""
    if sub.names is None:
        return None
    listed = set(sub.names)
    found = {name_of(f) for f in (*rd.packages, *rd.packages_conda)}  # file names only: no record decoded
    if found - listed:
        return f"{what}: expected records only of the names the manifest lists, found {sorted(found - listed)[:3]}"
    if listed - found:
        return f"{what}: expected records of every name the manifest lists, found none for {sorted(listed - found)[:3]}"
    wrong = [f for f in sub.removals if name_of(f) not in listed and name_of(f) not in sub.gone]
    if wrong:
        return f"{what}: expected removals only of the names the manifest lists as changed or gone, found {wrong[:3]}"
    return None
