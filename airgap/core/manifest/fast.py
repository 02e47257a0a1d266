"""Reading a big manifest fast: its blob and package lists decoded straight into entries and checked a list at a time. Pure.

An archive of 300,000 files has a 73 MB manifest: two lists of 300,000 small objects. Read by
``json`` as dicts and checked an entry at a time (:mod:`.parse`), that took 2.7-3.5 s and held
a dict per entry while the entries were built. Here msgspec's typed decoder builds each
:class:`~.model.BlobEntry` and :class:`~.model.PackageEntry` from the bytes (types checked by the
decoder), the few other parts (channels, subdirs, installers, ...) become the dicts ``json``
would give, and :mod:`.parse` checks names, hashes, sizes, uniqueness and references over each
whole list with a few C-speed scans (:func:`plain_blobs`, :func:`plain_packages`, :func:`plain_refs`).

Anything the typed decoder or a list check refuses raises :class:`NotPlain`, and :mod:`.parse`
reads the bytes again the careful way, which accepts them or says exactly what is wrong: this
module only ever gives the same manifest, sooner (tests/test_manifest_fast.py compares the two).
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from operator import attrgetter
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .model import BLOB_KINDS, FILENAME, BlobEntry, PackageEntry, all_hex64

_sha, _size, _name, _kind = attrgetter("sha256"), attrgetter("size"), attrgetter("filename"), attrgetter("kind")


class NotPlain(Exception):
    """Something the fast reader does not vouch for: read the manifest the careful way."""


class _Subdir(msgspec.Struct, gc=False):
    subdir: Any = UNSET
    repodata: Any = UNSET
    packages: list[PackageEntry] | UnsetType = UNSET
    present: list[PackageEntry] | UnsetType = UNSET
    removals: Any = UNSET
    shadowed: Any = UNSET
    source: Any = UNSET
    run_exports: Any = UNSET
    names: Any = UNSET
    gone: Any = UNSET


class _Channel(msgspec.Struct, gc=False):
    name: Any = UNSET
    url: Any = UNSET
    subdirs: list[_Subdir] | UnsetType = UNSET


class _Top(msgspec.Struct, gc=False):
    format: Any = UNSET
    archive_id: Any = UNSET
    created: Any = UNSET
    tool: Any = UNSET
    blobs: list[BlobEntry] | UnsetType = UNSET
    channels: list[_Channel] | UnsetType = UNSET
    installers: Any = UNSET
    sbom: Any = UNSET
    base: Any = UNSET
    filters: Any = UNSET
    bases: Any = UNSET


_decode = msgspec.json.Decoder(_Top).decode


def _as_dict(value: msgspec.Struct) -> dict[str, Any]:
    """The fields the document held (absent ones left out, as a dict from ``json`` would)."""
    return {f: v for f in value.__struct_fields__ if (v := getattr(value, f)) is not UNSET}


def typed_doc(data: bytes | mmap.mmap) -> dict[str, Any] | None:
    """The manifest document with its blob and package lists as entries; None where msgspec refuses it."""
    try:
        top = _decode(data)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError: the careful reader says what
        return None
    doc = _as_dict(top)
    if top.channels is not UNSET:
        doc["channels"] = [
            {**_as_dict(c), "subdirs": [_as_dict(s) for s in c.subdirs]} if c.subdirs is not UNSET else _as_dict(c) for c in top.channels
        ]
    return doc


def plain_blobs(items: list[BlobEntry]) -> list[BlobEntry]:
    """The rules :mod:`.parse` applies to each blob, over the whole list: or :class:`NotPlain`."""
    shas = list(map(_sha, items))
    if not all_hex64(shas) or len(set(shas)) != len(shas):
        raise NotPlain
    if min(map(_size, items), default=0) < 0 or not {b.kind for b in items} <= set(BLOB_KINDS):
        raise NotPlain
    volumes = {b.volume for b in items}
    volumes.discard(None)
    if not all(type(v) is int and 1 <= v <= 9999 for v in volumes):
        raise NotPlain
    kinds, share = {k: k for k in BLOB_KINDS}, msgspec.structs.force_setattr
    for blob in items:  # one string per kind, not one per blob (each a new str as decoded: 17 MB at 300,000)
        share(blob, "kind", kinds[blob.kind])
    return items


def plain_packages(items: Any, filenames: set[str]) -> list[PackageEntry]:
    """A subdir's ``packages`` (or ``present``) checked as :mod:`.parse` checks each entry; names join ``filenames``."""
    if type(items) is not list:
        raise NotPlain
    names = list(map(_name, items))
    before = len(filenames)
    filenames.update(names)
    if len(filenames) != before + len(names) or not all(map(FILENAME.match, names)):  # each once per subdir, safe
        raise NotPlain
    if not all_hex64(list(map(_sha, items))) or min(map(_size, items), default=0) < 0:
        raise NotPlain
    return items


def plain_refs(items: list[PackageEntry], index: Mapping[str, BlobEntry], referenced: set[str]) -> None:
    """Every package names a blob of kind ``package`` of its size (as :mod:`.parse`'s ``ref``); or :class:`NotPlain`."""
    shas = list(map(_sha, items))
    try:
        found = list(map(index.__getitem__, shas))
    except KeyError:
        raise NotPlain from None
    if list(map(_size, found)) != list(map(_size, items)) or not set(map(_kind, found)) <= {"package"}:
        raise NotPlain
    referenced.update(shas)
    share = msgspec.structs.force_setattr  # one string per sha256 and one int per size, not the package's and the blob's
    for package, blob in zip(items, found, strict=True):  # (34 MB and 10 MB at 300,000 files)
        share(package, "sha256", blob.sha256)
        share(package, "size", blob.size)
