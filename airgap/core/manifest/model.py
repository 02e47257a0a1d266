"""The archive manifest (format ``airgap/1``) as values: build it, serialize it canonically.

Pure: takes and returns values. The manifest is the one document the signature covers; it
names every blob the archive holds (in archive order), every channel/subdir with the sha256
of its repodata blob and of each package file, and where each upstream repodata came from.
The names it may hold are the ``is_safe_*`` checks here, shared with parsing
(:mod:`airgap.core.manifest.parse`) and the destinations.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

from ..jsonbytes import encode_sorted, msgspec_safe

FORMAT = "airgap/1"
DELTA_FORMAT = "airgap/2"  # a delta whose subdirs carry only the changed package names (airgap.core.delta_index)
SUPPORTED_FORMATS = (FORMAT, DELTA_FORMAT)
MAX_MANIFEST_BYTES = 1 << 30  # 1 GiB: room for ~5M packages
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
_SUBDIR = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!=~,-]{0,254}\Z")
_INSTALLER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=~,-]{0,254}\Z")
PACKAGE_SUFFIXES = (".tar.bz2", ".conda")
# is_safe_package_filename as one expression, for checking many names with map (tests/test_receipt_fast.py compares them)
FILENAME = re.compile(r"(?!.*\.\.)(?=.*(?:\.tar\.bz2|\.conda)\Z)[A-Za-z0-9_][A-Za-z0-9_.+!=~,-]{0,254}\Z")


HEX_CHUNK = 4096  # hashes joined at a time: 300,000 at once were 19 MB of text, its lower-cased copy and 9.6 MB of
# bytes, together the full import's peak while the manifest was read (docs/performance.md, twenty-first session)


def all_hex64(shas: list[str]) -> bool:
    """Every string 64 lower-case hex digits (a sha256), for many at once: a join of ``HEX_CHUNK`` at a time, then
    ``bytes.fromhex`` (which also takes upper case and spaces between pairs: the length and the lower-cased copy rule
    those out)."""
    return all(_hex64(shas[at : at + HEX_CHUNK]) for at in range(0, len(shas), HEX_CHUNK))


def _hex64(shas: list[str]) -> bool:
    joined = "".join(shas)
    if len(joined) != 64 * len(shas) or not joined.isascii() or joined != joined.lower():
        return False
    try:
        return len(bytes.fromhex(joined)) == 32 * len(shas)
    except ValueError:
        return False


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: the exact bytes that get signed.

    Those of ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)``. msgspec writes the same bytes several times faster for strings, integers,
    booleans, None, lists and dicts with string keys; a float (json and msgspec spell ``1e16``
    differently) or anything else sends the whole document to ``json``."""
    if msgspec_safe(doc):
        return encode_sorted(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _types(entries: Iterable[Any], name: str) -> set[type]:
    return set(map(type, map(attrgetter(name), entries)))


def plain_entries(packages: Sequence[PackageEntry], blobs: Sequence[BlobEntry]) -> bool:
    """Every entry's fields of the types declared (a struct does not check what it is built with): strings and ints,
    which msgspec writes as ``json`` does. A field at a time, at C speed."""
    return (
        all(_types(packages, f) <= {str} for f in ("filename", "sha256"))
        and _types(packages, "size") <= {int}
        and all(_types(blobs, f) <= {str} for f in ("sha256", "kind"))
        and _types(blobs, "size") <= {int}
        and _types(blobs, "volume") <= {int, type(None)}
    )


def is_safe_package_filename(name: str) -> bool:
    return isinstance(name, str) and bool(_FILENAME.match(name)) and name.endswith(PACKAGE_SUFFIXES) and ".." not in name


def is_safe_installer_filename(name: str) -> bool:
    return isinstance(name, str) and bool(_INSTALLER.match(name)) and ".." not in name


def is_safe_channel_name(name: str) -> bool:
    return isinstance(name, str) and bool(_CHANNEL.match(name)) and name not in (".", "..") and ".." not in name


def is_safe_subdir(name: str) -> bool:
    return isinstance(name, str) and bool(_SUBDIR.match(name))


class PackageEntry(msgspec.Struct, frozen=True, gc=False):
    """A package file of a subdir. A msgspec struct: an import holds one per file (300,000), and
    :mod:`.fast` decodes the manifest's lists straight into them (no dict per file first)."""

    filename: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True, slots=True)
class RepodataBlob:
    sha256: str  # of the zstd-compressed blob, as stored in the archive
    size: int
    raw_size: int  # decompressed size: an upper bound for decompression

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "raw_size": self.raw_size}


@dataclass(frozen=True)
class SubdirEntry:
    subdir: str
    repodata: RepodataBlob
    packages: tuple[PackageEntry, ...]
    source: Mapping[str, Any] = field(default_factory=dict)  # url, sha256, size, fetched
    # delta archives only: files the base already holds (listed by the repodata, no blob here),
    # and files the destination must drop (no longer in the filtered upstream)
    present: tuple[PackageEntry, ...] = ()
    removals: tuple[str, ...] = ()
    # files an earlier channel merged into the same destination channel also carries (airgap.core.merging)
    shadowed: tuple[str, ...] = ()
    # format airgap/2 (deltas): the package names whose records the repodata blob carries (all of
    # their records), and the names gone entirely; None: the blob is the whole filtered subdir
    names: tuple[str, ...] | None = None
    gone: tuple[str, ...] = ()
    # the upstream's run_exports.json (CEP-12), filtered to the mirrored files: a "repodata" blob (airgap/run_exports.py)
    run_exports: RepodataBlob | None = None

    def to_json(self, encodable: bool = False) -> dict[str, Any]:
        """``encodable``: package entries as the structs themselves (for :meth:`Manifest.to_bytes`), not dicts."""
        doc: dict[str, Any] = {
            "subdir": self.subdir,
            "repodata": self.repodata.to_json(),
            "packages": list(self.packages) if encodable else [p.to_json() for p in self.packages],
            "source": dict(self.source),
        }
        if self.present:
            doc["present"] = list(self.present) if encodable else [p.to_json() for p in self.present]
        if self.removals:
            doc["removals"] = list(self.removals)
        if self.shadowed:
            doc["shadowed"] = list(self.shadowed)
        if self.names is not None:
            doc["names"] = list(self.names)
            doc["gone"] = list(self.gone)
        if self.run_exports is not None:
            doc["run_exports"] = self.run_exports.to_json()
        return doc


@dataclass(frozen=True)
class ChannelEntry:
    name: str
    url: str
    subdirs: tuple[SubdirEntry, ...]

    def to_json(self, encodable: bool = False) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "subdirs": [s.to_json(encodable) for s in self.subdirs]}


class BlobEntry(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A member of the archive (``blobs/sha256/<hex>``); as :class:`PackageEntry`, a msgspec struct (one per file)."""

    sha256: str
    size: int
    kind: str  # "repodata", "package", "installer" or "sbom"
    volume: int | None = None  # 1-based, in an archive split into volumes

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"sha256": self.sha256, "size": self.size, "kind": self.kind}
        if self.volume is not None:
            doc["volume"] = self.volume
        return doc


_ENTRIES = frozenset({PackageEntry, BlobEntry})  # written as structs once plain_entries holds


@dataclass(frozen=True, slots=True)
class InstallerEntry:
    """An installer file (Miniforge, Miniconda…) restored at ``DEST/<dir>/<filename>``."""

    dir: str
    filename: str
    sha256: str
    size: int
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"dir": self.dir, "filename": self.filename, "sha256": self.sha256, "size": self.size, "url": self.url}


@dataclass(frozen=True)
class SbomRef:  # the archive's software bill of materials: a blob of kind "sbom", in a format of SBOM_FORMATS
    sha256: str
    size: int
    format: str
    raw_size: int | None = None  # "+zstd" formats: the document's size once decompressed (docs/decisions/0011)

    def to_json(self) -> dict[str, Any]:
        raw = {} if self.raw_size is None else {"raw_size": self.raw_size}
        return {"sha256": self.sha256, "size": self.size, "format": self.format, **raw}


SBOM_ZSTD = "CycloneDX-1.6+zstd"  # the CycloneDX document, zstd-compressed (what export writes since 0011)
SBOM_FORMATS, BLOB_KINDS = ("CycloneDX-1.6", SBOM_ZSTD), ("repodata", "package", "installer", "sbom")


@dataclass(frozen=True)
class Base:
    """A delta's base, per archive channel: the destination channel, and its newest archive then (None: none/unknown)."""

    channel: str
    after: str | None

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "after": self.after}


@dataclass(frozen=True)
class Manifest:
    archive_id: str
    created: str
    tool: str
    channels: tuple[ChannelEntry, ...]
    blobs: tuple[BlobEntry, ...]
    filters: Mapping[str, Any] = field(default_factory=dict)
    base: str | None = None
    format: str = FORMAT
    installers: tuple[InstallerEntry, ...] = ()
    sbom: SbomRef | None = None
    bases: Mapping[str, Base] = field(default_factory=dict)  # deltas: per archive channel

    def to_json(self, encodable: bool = False) -> dict[str, Any]:
        """The manifest as a JSON document; ``encodable``: package and blob entries as the structs themselves."""
        return {
            "format": self.format,
            "archive_id": self.archive_id,
            "created": self.created,
            "tool": self.tool,
            "base": self.base,
            "filters": dict(self.filters),
            "channels": [c.to_json(encodable) for c in self.channels],
            "blobs": list(self.blobs) if encodable else [b.to_json() for b in self.blobs],
            "totals": self.totals(),
            **({"installers": [i.to_json() for i in self.installers]} if self.installers else {}),
            **({"sbom": self.sbom.to_json()} if self.sbom is not None else {}),
            **({"bases": {c: b.to_json() for c, b in self.bases.items()}} if self.bases else {}),
        }

    def to_bytes(self) -> bytes:
        """:func:`canonical_json` of :meth:`to_json`; the 300,000 entries of a big subdir encoded as the structs they
        are (sorted fields, ``volume`` left out when None: the same bytes) once their fields are checked plain."""
        pkgs = [p for c in self.channels for s in c.subdirs for p in (*s.packages, *s.present)]
        if plain_entries(pkgs, self.blobs):
            doc = self.to_json(encodable=True)
            if msgspec_safe(doc, _ENTRIES):
                return encode_sorted(doc)
        return canonical_json(self.to_json())

    def totals(self) -> dict[str, int]:
        return dict(self._totals)  # a copy: the caller may change it

    @functools.cached_property
    def _totals(self) -> dict[str, int]:
        """Counted once (an export asks twice: the manifest's bytes, the result), at C speed: 300,000 entries."""
        pkgs = [p for c in self.channels for s in c.subdirs for p in s.packages]
        size = attrgetter("size")
        return {
            "packages": len(pkgs),
            "package_bytes": sum(map(size, pkgs)),
            "blobs": len(self.blobs),
            "blob_bytes": sum(map(size, self.blobs)),
        }

    @functools.cached_property
    def volumes(self) -> int:
        """How many volumes the archive is split into (1 when it is not split)."""
        return max((b.volume or 1 for b in self.blobs), default=1)

    def blob_index(self) -> dict[str, BlobEntry]:
        return {b.sha256: b for b in self.blobs}

    def forget_package_blobs(self) -> None:
        """Drop the package blobs' entries, for an import that has streamed and checked every blob: each package
        entry holds the same sha256 and size, and 300,000 blob entries were 17 MB held to the import's end. The
        totals and the volume count stay; what reads the blob list afterwards sees the other blobs only."""
        self._totals, self.volumes  # noqa: B018  # counted before: they count every blob
        object.__setattr__(self, "blobs", tuple(b for b in self.blobs if b.kind != "package"))


# --- parsing ---------------------------------------------------------------------------
