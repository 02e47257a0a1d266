"""Conda repodata: parse upstream documents, build subsets, merge at the destination.

Pure. Records are kept verbatim (every key, unknown ones too, in their order); only the
document envelope is rewritten: ``info.subdir`` is set to the directory, ``info.base_url``
is dropped when packages are served next to the repodata, ``.tar.bz2`` records live in
``packages`` and ``.conda`` records in ``packages.conda``.
"""

from __future__ import annotations

import gc
import json
import logging
import math
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import leftovers
from ..errors import UpstreamError
from . import rawindex
from .jsonbytes import by_key, encode
from .manifest import is_safe_package_filename
from .repodata_stream import decoded_parts
from .safe_names import safe_names

log = logging.getLogger(__name__)

SECTIONS = (("packages", ".tar.bz2"), ("packages.conda", ".conda"))


@dataclass
class Repodata:
    """One subdir's repodata: the envelope plus ``{filename: record}`` per section."""

    subdir: str
    info: dict[str, Any] = field(default_factory=dict)
    # a trusted destination index keeps its records as bytes until read (core/rawindex.LazyRecords)
    packages: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    packages_conda: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    repodata_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys, kept
    # a destination's records airgap cannot read (see parse_repodata's keep_unreadable), per
    # section: kept verbatim and still listed, never dropped by an unrelated import
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self.packages.items()
        yield from self.packages_conda.items()

    def __len__(self) -> int:
        return len(self.packages) + len(self.packages_conda)

    def get(self, filename: str) -> dict[str, Any] | None:
        section = self.packages_conda if filename.endswith(".conda") else self.packages
        return section.get(filename)

    def put(self, filename: str, record: dict[str, Any]) -> None:
        section = self.packages_conda if filename.endswith(".conda") else self.packages
        section[filename] = record

    def drop(self, filename: str) -> None:
        section = self.packages_conda if filename.endswith(".conda") else self.packages
        section.pop(filename, None)
        for kept in self.opaque.values():
            kept.pop(filename, None)

    def lists(self, filename: str) -> bool:
        """The index names this file, in a record airgap can read or in one it keeps verbatim."""
        return self.get(filename) is not None or any(filename in kept for kept in self.opaque.values())

    def without(self, filenames: set[str]) -> Repodata:
        """A copy that no longer lists ``filenames``."""
        # the sections copied whole and the few names taken out: a pass per name, not per record
        kept = {sec: {f: r for f, r in recs.items() if f not in filenames} for sec, recs in self.opaque.items()}
        return self._with(rawindex.omit(self.packages, filenames), rawindex.omit(self.packages_conda, filenames), kept)

    def base_url(self) -> str | None:
        """Where the packages live, relative to the repodata URL, or None (next to it).

        CEP-15's ``info.base_url`` points at the packages' folder. The draft form written by
        early conda-subchannel releases, ``metadata.base_url``, points at the channel: the
        subdir is appended.
        """
        value = self.info.get("base_url")
        if isinstance(value, str) and value:
            return value
        meta = self.extra.get("metadata")
        meta_url = meta.get("base_url") if isinstance(meta, dict) else None
        if isinstance(meta_url, str) and meta_url:
            return meta_url.rstrip("/") + "/" + self.subdir + "/"
        return None

    def to_document(self, keep_base_url: bool = False, raw: bool = False, shared: bool = False) -> dict[str, Any]:
        """The document ``repodata.json`` holds; ``raw``: records never decoded stay ``msgspec.Raw`` (to encode); ``shared``: a
        section in key order, nothing opaque, is the index's own mapping, read only (json_pieces: no copy of 300,000)."""
        pkgs, conda = (
            (rawindex.entries(self.packages), rawindex.entries(self.packages_conda)) if raw else (self.packages, self.packages_conda)
        )
        info = {k: v for k, v in self.info.items() if keep_base_url or k != "base_url"}
        info["subdir"] = self.subdir
        doc: dict[str, Any] = {"info": info}
        doc.update(self.extra)
        meta = doc.get("metadata")
        if not keep_base_url and isinstance(meta, dict) and "base_url" in meta:
            doc["metadata"] = {k: v for k, v in meta.items() if k != "base_url"}
        for key, records in (("packages", pkgs), ("packages.conda", conda)):  # a new dict (or, shared, the mapping itself)
            opaque = self.opaque.get(key)
            doc[key] = by_key(records if shared and not opaque and isinstance(records, dict) else {**(opaque or {}), **records})
        doc["removed"] = sorted(set(self.removed))
        if self.repodata_version is not None:
            doc["repodata_version"] = self.repodata_version
        return doc

    def to_bytes(self, keep_base_url: bool = False) -> bytes:
        """Compact UTF-8 JSON, keys in the records' own order (msgspec: ~7x faster than ``json.dumps``; floats in
        their shortest round-trip spelling, which may differ from Python's ``repr``, e.g. ``1e16`` for ``1e+16``)."""
        doc = self.to_document(keep_base_url, raw=True, shared=True)  # records kept as bytes are written verbatim
        raw, parts = encode(doc), decoded_parts(doc)  # msgspec writes NaN and Infinity as null (not JSON): the parsers keep them
        # out; this guard looks at the few records not kept as bytes, or (most are not) at the whole document if a null is there
        if (parts is not None or b"null" in raw) and (reason := not_json(doc if parts is None else parts)) is not None:
            raise ValueError(f"repodata {self.subdir}: expected values JSON can carry, found {reason}")
        return raw

    def subset(self, filenames: set[str]) -> Repodata:
        """A copy holding only ``filenames`` (records shared, not copied: they are not mutated)."""
        kept = {sec: {f: r for f, r in recs.items() if f in filenames} for sec, recs in self.opaque.items()}
        return self._with(rawindex.pick(self.packages, filenames), rawindex.pick(self.packages_conda, filenames), kept)

    def _with(
        self,
        packages: MutableMapping[str, dict[str, Any]],
        packages_conda: MutableMapping[str, dict[str, Any]],
        opaque: dict[str, dict[str, Any]],
    ) -> Repodata:
        """A copy of everything but the records, which are these."""
        return Repodata(
            subdir=self.subdir,
            info=dict(self.info),
            packages=packages,
            packages_conda=packages_conda,
            removed=list(self.removed),
            repodata_version=self.repodata_version,
            extra=dict(self.extra),
            opaque=opaque,
        )


_CACHE_KEYS = ("_url", "_etag", "_mod", "_cache_control")


def parse_repodata(data: bytes | bytearray, subdir: str, source: str, keep_unreadable: bool = False, strict: bool = False) -> Repodata:
    """Parse repodata bytes from ``source`` (a URL, for messages) for directory ``subdir``.

    Malformed documents raise :class:`UpstreamError`; individual records with unsafe
    filenames, the wrong extension for their section or a non-object body are skipped with
    a warning, because one bad record must not block a whole mirror. ``keep_unreadable`` (a
    destination's own index): such records are kept verbatim in ``opaque`` instead, so that
    rewriting the index never drops what it already lists. A record holding a value JSON cannot
    carry (see :func:`load_json`) is skipped the same way, or with ``strict`` (a destination's
    own index, whose records must never be dropped) refused.
    """
    doc, suspect = load_json(data, source)
    return from_document(doc, subdir, source, keep_unreadable, suspect=suspect, strict=strict)


def load_json(data: bytes | bytearray, source: str) -> tuple[Any, bool]:
    """``(document, suspect)``: strict UTF-8 JSON, parsed; ``suspect`` if it may hold a value JSON cannot carry.

    Python's parser accepts ``NaN``, ``Infinity`` and numbers too large for a float (which
    become ``inf``), and lone surrogates (``"\\ud800"``), none of which can be written back as
    JSON (UTF-8): published, they break every client's parse of the whole subdir. Invalid
    UTF-8 (encoded surrogates included) refuses the document. ``suspect`` says that one of the
    others was seen; :func:`from_document` then finds the records holding them.

    msgspec parses first (faster than ``json``, no decoded copy of the text, strict: it refuses
    all of the above); only a document it refuses is parsed again by ``json``, which says what
    is wrong or finds the records to skip.
    """
    body = data[3:] if data[:3] == b"\xef\xbb\xbf" else data
    try:
        return _decode_paused(body), False
    except msgspec.DecodeError:
        pass  # not JSON, or JSON holding what cannot be published: the careful parser below decides
    except RecursionError:
        raise UpstreamError(f"{source}: expected repodata JSON, found values nested too deeply to parse") from None
    flagged = False

    def number(text: str) -> float:
        nonlocal flagged
        value = float(text)
        if not math.isfinite(value):
            flagged = True
        return value

    def constant(text: str) -> float:
        nonlocal flagged
        flagged = True
        return float(text)

    try:
        text = (data[3:] if data[:3] == b"\xef\xbb\xbf" else data).decode("utf-8")
        doc = json.loads(text, parse_float=number, parse_constant=constant)
    except RecursionError:
        raise UpstreamError(f"{source}: expected repodata JSON, found values nested too deeply to parse") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UpstreamError(f"{source}: expected repodata JSON, found invalid data ({str(exc)[:200]})") from None
    return doc, flagged or "\\ud" in text or "\\uD" in text


_decode = msgspec.json.Decoder().decode


def _decode_paused(body: bytes | bytearray) -> Any:
    """msgspec's decode with the cyclic collector paused.

    A subdir's document is over a million dicts and lists and holds no reference cycle (freed by
    reference counting); collections while it is built would walk every one of them to find
    nothing. Later full collections are the command's business (airgap/cli/_gc.py: rare while a
    command runs); a library function does not freeze the process's objects (``gc.freeze`` would
    keep a long-running process's cyclic garbage forever). Except when airgap runs as a program that
    ends with the command (:func:`airgap.leftovers.collect_again`): re-enabled, the collector walked the whole
    new document at its next middle collection (0.28 s of 1.27 s at 300,000 records), so it is frozen
    first, until the command returns (the command's own freeze is undone then)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        doc = _decode(body)
    finally:
        if enabled:
            leftovers.collect_again()
    return doc


def not_json(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be written back as JSON, or None if it can."""
    stack = [value]
    while stack:  # iterative: values nest as deep as the parser allowed
        v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return "a number that is not finite (NaN, Infinity, or too large for a float)"
        elif isinstance(v, str):
            if not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    return f"a lone surrogate in the string {v.encode('utf-8', 'backslashreplace')[:40]!r}"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def from_document(
    doc: Any, subdir: str, source: str, keep_unreadable: bool = False, suspect: bool = False, strict: bool = False
) -> Repodata:
    """:func:`parse_repodata` of an already parsed document; ``suspect`` from :func:`load_json`."""
    if suspect:
        envelope = {k: v for k, v in doc.items() if k not in ("packages", "packages.conda")} if isinstance(doc, dict) else doc
        reason = not_json(envelope)
        if reason is not None:
            raise UpstreamError(f"{source}: expected repodata JSON that can be published, found {reason} outside the records")
    if not isinstance(doc, dict):
        raise UpstreamError(f"{source}: expected a repodata object, found {type(doc).__name__}")
    info = doc.get("info", {})
    if not isinstance(info, dict):
        raise UpstreamError(f"{source}: expected 'info' to be an object, found {type(info).__name__}")
    declared = info.get("subdir")
    if declared not in (None, subdir):
        log.warning("%s: info.subdir is %r but the directory is %r; using %r", source, declared, subdir, subdir)
    rd = Repodata(subdir=subdir, info=dict(info))
    version = doc.get("repodata_version")
    if isinstance(version, int) and not isinstance(version, bool):
        rd.repodata_version = version
    removed = doc.get("removed", [])
    if isinstance(removed, list):
        rd.removed = [r for r in removed if isinstance(r, str) and is_safe_package_filename(r)]
    skipped = 0
    for section, suffix in SECTIONS:
        entries = doc.get(section, {})
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise UpstreamError(f"{source}: expected {section!r} to be an object, found {type(entries).__name__}")
        target = rd.packages if section == "packages" else rd.packages_conda
        all_safe = not suspect and safe_names(entries, suffix)  # every name at once, in the common case
        for filename, record in entries.items():
            if (  # the common case, in one expression: a readable record under a safe name
                not suspect
                and type(record) is dict
                and type(record.get("name")) is str
                and type(record.get("version")) is str
                and type(record.get("build")) is str
                and record.get("subdir", subdir) == subdir
                and (all_safe or (type(filename) is str and filename.endswith(suffix) and is_safe_package_filename(filename)))
            ):
                target[filename] = record
            else:
                why = _admit(rd, target, section, suffix, filename, record, source, keep_unreadable, suspect, strict)
                if why is not None:
                    skipped += 1
                    if skipped <= 5:
                        log.warning("%s: skipping %s", source, why)
    if skipped > 5:
        log.warning("%s: skipped %d malformed records in all", source, skipped)
    for key, value in doc.items():
        if key not in ("info", "packages", "packages.conda", "removed", "repodata_version") and key not in _CACHE_KEYS:
            rd.extra[key] = value
    return rd


def _admit(
    rd: Repodata,
    target: MutableMapping[str, dict[str, Any]],
    section: str,
    suffix: str,
    filename: Any,
    record: Any,
    source: str,
    keep: bool,
    suspect: bool,
    strict: bool,
) -> str | None:
    """The careful path for one record: file it (None), keep it opaque (None), or say why it is skipped."""
    if not (is_safe_package_filename(filename) and filename.endswith(suffix) and isinstance(record, dict)):
        if _keep(rd, keep, section, filename, record):
            return None
        return f"record {filename!r} in {section!r}: not a {suffix} file name with an object record"
    if not all(isinstance(record.get(k), str) for k in ("name", "version", "build")):
        return None if _keep(rd, keep, section, filename, record) else f"{filename}: its record lacks name, version or build"
    if suspect:
        reason = not_json(record)
        if reason is not None:
            if strict:
                raise UpstreamError(
                    f"{source}: record {filename} holds {reason}, which is not JSON; fix or remove that record, then run again"
                )
            return f"{filename}: its record holds {reason}, which is not JSON"
    rec_subdir = record.get("subdir")
    if rec_subdir is not None and rec_subdir != rd.subdir:
        if _keep(rd, keep, section, filename, record):
            return None
        return f"{filename}: its record says subdir {rec_subdir!r}, the directory is {rd.subdir!r}"
    target[filename] = record
    return None


def _keep(rd: Repodata, keep: bool, section: str, filename: str, record: Any) -> bool:
    """A record airgap cannot read, in a destination's own index: kept verbatim (True), never dropped."""
    if keep:
        rd.opaque.setdefault(section, {})[filename] = record
    return keep


def merge(existing: Repodata | None, incoming: Repodata) -> Repodata:
    """Destination repodata after an import: existing records plus incoming ones (incoming wins)."""
    if existing is None:
        merged = incoming.subset({*incoming.packages, *incoming.packages_conda})
    else:
        merged = Repodata(
            subdir=incoming.subdir,
            info={**existing.info, **{k: v for k, v in incoming.info.items() if k != "base_url"}},
            packages=rawindex.merged(existing.packages, incoming.packages),
            packages_conda=rawindex.merged(existing.packages_conda, incoming.packages_conda),
            removed=sorted(set(existing.removed) | set(incoming.removed)),
            repodata_version=max((v for v in (existing.repodata_version, incoming.repodata_version) if v is not None), default=None),
            extra={**existing.extra, **incoming.extra},
        )
        merged.opaque = {
            sec: {f: r for f, r in kept.items() if incoming.get(f) is None}  # a readable record replaces it
            for sec, kept in existing.opaque.items()
        }
    merged.info.pop("base_url", None)
    meta = merged.extra.get("metadata")
    if isinstance(meta, dict) and "base_url" in meta:
        merged.extra["metadata"] = {k: v for k, v in meta.items() if k != "base_url"}
    return merged


def empty(subdir: str) -> Repodata:
    return Repodata(subdir=subdir, info={"subdir": subdir}, repodata_version=1)


def record_hashes(record: Mapping[str, Any]) -> tuple[str | None, str | None, int | None]:
    """``(sha256, md5, size)`` of a record, each ``None`` where absent or malformed."""
    sha = record.get("sha256")
    md5 = record.get("md5")
    size = record.get("size")
    return (  # .lower() copies even a lower-case string: 300,000 records would hold both
        (sha if sha.islower() else sha.lower()) if isinstance(sha, str) and len(sha) == 64 else None,
        (md5 if md5.islower() else md5.lower()) if isinstance(md5, str) and len(md5) == 32 else None,
        size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
    )
