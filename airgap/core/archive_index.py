"""An archive's repodata blob with each record kept as its verbatim JSON bytes (decision 0018).

A full archive of a conda-forge-sized subdir carries 300,000 records. Parsed to dicts they held
~2 KB each for the whole import (600 MB of a full import's 1.3 GB peak), although an import only
writes them back: ``repodata.json`` verbatim, a shard per name, the receipt's digest per name.
:func:`read_records` keeps each record as :class:`msgspec.Raw` beside its head, as a destination's
own index is kept (decision 0010), after the strict path's checks, each record decoded once, alone,
and dropped:

- the document is JSON msgspec accepts (no NaN, no Infinity, no lone surrogate, no control byte);
- every record decodes whole (UTF-8, numbers a float can hold: what skipping a value does not check);
- every record passes the common-path admission check (string name, version and build, its subdir,
  a safe file name of its section's kind): none would be skipped or kept opaque;
- its sha256 and size, where it has them, are the manifest's for that file, and it lists no other file.

Its head is made from that decoded record (no second pass over the section) and points at one copy of each
name, version and build; the blob's pages leave the resident set every few thousand records (a mapped 141 MB
blob was the full import's peak with the heads: docs/performance.md, eighteenth session).

Anything else returns None and the caller parses the blob strictly, which says what is wrong with
the same message as ever. Pure.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from typing import Any, Protocol, cast

import msgspec

from .._safepath import release_views
from ..errors import UpstreamError
from . import lined, rawindex
from .manifest import PackageEntry
from .repodata import Repodata, from_document, record_hashes
from .safe_names import safe_names

RELEASE_EVERY = 8192  # records read between two givings back of the blob's pages (a madvise: ~0.1 ms)

_raws = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode  # {key: its bytes}
_any = msgspec.json.Decoder().decode


class Listed(Protocol):
    """What the manifest says of one file: the hashes its record must agree with."""

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int: ...


def read_records(data: bytes | mmap.mmap, subdir: str, source: str, listed: Mapping[str, Listed]) -> Repodata | None:
    """The blob's repodata with its records as bytes, or None: parse it strictly (the careful path says why)."""
    split = _split(data)
    if split is None:
        return None
    envelope, raw_sections = split
    release_views(data)  # scanned: each record's pages come back as it is read, and go every RELEASE_EVERY records
    seen: dict[str, str] = {}
    sections: dict[str, rawindex.LazyRecords] = {}
    for section, suffix in rawindex.SECTIONS:
        raws = raw_sections.get(section)
        if raws is not None:
            heads = _agrees(data, raws, suffix, listed, subdir, seen)
            if heads is None:
                return None
            sections[section] = rawindex.LazyRecords(cast(dict[str, Any], raws), heads, {})
    if sum(map(len, sections.values())) != len(listed):
        return None
    try:
        rd = from_document(envelope, subdir, source)
    except UpstreamError:  # the strict parse raises the same, with its message
        return None
    rd.packages = sections.get("packages") or rawindex.LazyRecords({}, {}, {})
    rd.packages_conda = sections.get("packages.conda") or rawindex.LazyRecords({}, {}, {})
    return rd


def _split(data: bytes | mmap.mmap) -> tuple[dict[str, Any], dict[str, dict[str, msgspec.Raw]]] | None:
    """``(envelope, {section: {filename: its bytes}})``: one pass over the document when it holds only the keys an
    index has, two otherwise; None when it is no JSON object msgspec reads or a section is no object."""
    if data[:3] == b"\xef\xbb\xbf":
        return None
    if isinstance(data, mmap.mmap) and (lined := _split_lined(data)) is not None:
        return lined
    try:
        try:
            return rawindex.read_top(data)
        except msgspec.ValidationError:  # another key (or a section no object, which the next pass finds too)
            whole = _raws(data)
            envelope = {k: _any(v) for k, v in whole.items() if k not in ("packages", "packages.conda")}
            return envelope, {s: _raws(whole[s]) for s, _ in rawindex.SECTIONS if s in whole}
    except (msgspec.DecodeError, RecursionError):
        return None


def _split_lined(data: mmap.mmap) -> tuple[dict[str, Any], dict[str, dict[str, msgspec.Raw]]] | None:
    """:func:`_split` a line of records at a time (:mod:`.lined`): the document around the sections read whole, each
    section found to be exactly its marker member; None: split in one pass."""
    split = lined.split_lined(data)
    if split is None:
        return None
    skeleton, found = split
    try:
        envelope, sections = rawindex.read_top(skeleton)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError too: another key, read the usual way
        return None
    markers = {s: key for s, raws in sections.items() if len(raws) == 1 and (key := next(iter(raws)).encode()) in found}
    if sorted(markers.values()) != sorted(found):  # each marker alone in a section of its own (a small one is inline)
        return None
    return envelope, {section: found[markers[section]] if section in markers else raws for section, raws in sections.items()}


def _agrees(
    data: bytes | mmap.mmap, raws: dict[str, msgspec.Raw], suffix: str, listed: Mapping[str, Listed], subdir: str, seen: dict[str, str]
) -> dict[str, rawindex.Head] | None:
    """Each record's head, when every record decodes whole, passes the admission check and names a listed file with
    the manifest's sha256 and size (where it has them); else None.

    A record is decoded alone and dropped: the section is never held as dicts. Its head, kept to the end of the
    import, holds the first head's copy of a name, version or build (each record decoded its own: ~40 MB at 300,000
    records of ~30,000 names; conda-forge's ``pyhd8ed1ab_0`` is tens of thousands of builds), the caller's subdir
    and the manifest's size int. The manifest's entry keeps the key's file name string (its own copy goes: ~27 MB)."""
    get = listed.get
    named_safely = safe_names(raws, suffix)  # every name in one scan; else each alone (rawindex.admits)
    heads: dict[str, rawindex.Head] = {}
    for n, (filename, value) in enumerate(raws.items(), 1):
        entry = get(filename)
        if entry is None:
            return None
        try:
            record = rawindex.decode_record(value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        field: Any = record.get  # values of any type until admitted
        head = rawindex.Head(field("name"), field("version"), field("build"), field("subdir"), field("size"), field("timestamp"))
        if not rawindex.admits(filename, suffix, head, subdir, named_safely):  # the common path's check, as for an index
            return None
        sha, _md5, size = record_hashes(record)
        if (sha is not None and sha != entry.sha256) or (size is not None and size != entry.size):
            return None
        head.name, head.version, head.build = (
            seen.setdefault(head.name, head.name),
            seen.setdefault(head.version, head.version),
            seen.setdefault(head.build, head.build),
        )
        if head.subdir is not None:
            head.subdir = subdir  # equal: admitted
        if type(head.size) is int and head.size == entry.size:
            head.size = entry.size
        heads[filename] = head
        if isinstance(entry, PackageEntry) and entry.filename is not filename:
            msgspec.structs.force_setattr(entry, "filename", filename)
        if n % RELEASE_EVERY == 0:
            release_views(data)
    return heads
