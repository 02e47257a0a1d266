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

Anything else returns None and the caller parses the blob strictly, which says what is wrong with
the same message as ever. Pure.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from typing import Protocol

import msgspec

from ..errors import UpstreamError
from . import rawindex
from .manifest import PackageEntry
from .repodata import Repodata, from_document, record_hashes


class Listed(Protocol):
    """What the manifest says of one file: the hashes its record must agree with."""

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int: ...


def read_records(data: bytes | mmap.mmap, subdir: str, source: str, listed: Mapping[str, Listed]) -> Repodata | None:
    """The blob's repodata with its records as bytes, or None: parse it strictly (the careful path says why)."""
    parsed = rawindex.parse_trusted(data, subdir)
    if parsed is None:
        return None
    envelope, sections, odd = parsed
    if odd:
        return None
    total = 0
    seen: dict[str, str] = {}
    for records in sections.values():
        total += len(records)
        if not _agrees(records, listed, subdir, seen):
            return None
    if total != len(listed):
        return None
    try:
        rd = from_document(envelope, subdir, source)
    except UpstreamError:  # the strict parse raises the same, with its message
        return None
    rd.packages = sections.get("packages") or rawindex.LazyRecords({}, {}, {})
    rd.packages_conda = sections.get("packages.conda") or rawindex.LazyRecords({}, {}, {})
    return rd


def _agrees(records: rawindex.LazyRecords, listed: Mapping[str, Listed], subdir: str, seen: dict[str, str]) -> bool:
    """Every record decodes whole and names a listed file with the manifest's sha256 and size (where it has them).

    A record is decoded alone and dropped: the section is never held as dicts. Its head, kept to the end of the
    import, is pointed at one copy of each string and number it shares with others (:func:`_share`)."""
    get = listed.get
    for filename, value in records.encodable().items():
        entry = get(filename)
        if entry is None or type(value) is not msgspec.Raw:
            return False
        try:
            record = rawindex.decode_record(value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return False
        sha, _md5, size = record_hashes(record)
        if (sha is not None and sha != entry.sha256) or (size is not None and size != entry.size):
            return False
        head: object = records.head(filename)
        if isinstance(head, rawindex.Head):
            _share(head, subdir, entry.size, seen)
        if isinstance(entry, PackageEntry) and entry.filename is not filename:  # the manifest's entry keeps the key's string
            msgspec.structs.force_setattr(entry, "filename", filename)  # (its own copy goes: ~27 MB at 300,000 files)
    return True


def _share(head: rawindex.Head, subdir: str, size: int, seen: dict[str, str]) -> None:
    """The head's subdir as the caller's string, its name, version and build as the first head's that had them, its
    size as the manifest's int: each head decoded its own copies (~40 MB at 300,000 records of ~30,000 names; builds
    repeat too: conda-forge's ``pyhd8ed1ab_0`` is tens of thousands of records)."""
    if head.subdir is not None:
        head.subdir = subdir  # parse_trusted checked them equal
    head.name = seen.setdefault(head.name, head.name)
    head.version = seen.setdefault(head.version, head.version)
    head.build = seen.setdefault(head.build, head.build)
    if type(head.size) is int and head.size == size:
        head.size = size
