"""Parse manifest bytes strictly into a :class:`~airgap.core.manifest.model.Manifest`.

Parsing treats the input as hostile: every name is checked to be one safe path component,
every hash to be 64 lower-case hex digits, every size a non-negative integer, and every
reference to resolve to a listed blob. Each refusal is one :class:`ArchiveFormatError` naming
the field's path, what was expected and (bounded) what was found.
"""

from __future__ import annotations

import json
import mmap
import re
import reprlib
from collections.abc import Mapping
from typing import Any

from ..._safepath import release_views
from ...errors import ArchiveFormatError
from ..placement import installer_problem
from .fast import NotPlain, plain_blobs, plain_packages, plain_refs, typed_doc
from .model import (
    BLOB_KINDS,
    DELTA_FORMAT,
    MAX_MANIFEST_BYTES,
    SBOM_FORMATS,
    SUPPORTED_FORMATS,
    Base,
    BlobEntry,
    ChannelEntry,
    InstallerEntry,
    Manifest,
    PackageEntry,
    RepodataBlob,
    SbomRef,
    SubdirEntry,
    is_safe_channel_name,
    is_safe_installer_filename,
    is_safe_package_filename,
    is_safe_subdir,
)

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_ARCHIVE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # export writes uuid4().hex; it names a staging directory

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother = 3, 60, 60


def _fail(path: str, expected: str, found: Any) -> ArchiveFormatError:
    shown = _SHOW.repr(found)  # bounded: a hostile value may be huge or deeply nested
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ArchiveFormatError(f"manifest.json: {path}: expected {expected}, found {shown}")


def _get(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise ArchiveFormatError(f"manifest.json: {path}: expected key {key!r}, found none")
    return obj[key]


def _dict(v: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise _fail(path, "an object", v)
    return v


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(path, "a list", v)
    return v


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise _fail(path, "a string", v)
    return v


def _size(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _fail(path, "a non-negative integer", v)
    return v


def _hex(v: Any, path: str) -> str:
    if not isinstance(v, str) or not _HEX64.match(v):
        raise _fail(path, "a sha256 of 64 lower-case hex digits", v)
    return v


def _package_entries(items: Any, path: str, filenames: set[str]) -> list[PackageEntry]:
    """``[{filename, sha256, size}]``: safe file names, each once per subdir (``filenames`` is shared)."""
    out = []
    match = _HEX64.match
    for i, pk in enumerate(_list(items, path)):
        if type(pk) is dict:  # the common case checked in one expression; anything else takes the careful path below
            fn, sha, size = pk.get("filename"), pk.get("sha256"), pk.get("size")
            if (
                type(fn) is str
                and type(sha) is str
                and type(size) is int
                and size >= 0
                and match(sha)
                and fn not in filenames
                and is_safe_package_filename(fn)
            ):
                filenames.add(fn)
                out.append(PackageEntry(fn, sha, size))
                continue
        pp = f"{path}[{i}]"
        pk = _dict(pk, pp)
        fn = _str(_get(pk, "filename", pp), pp + ".filename")
        if not is_safe_package_filename(fn) or fn in filenames:
            raise _fail(pp + ".filename", "a package file name (.conda or .tar.bz2, no path), once per subdir", fn)
        filenames.add(fn)
        out.append(PackageEntry(fn, _hex(_get(pk, "sha256", pp), pp + ".sha256"), _size(_get(pk, "size", pp), pp + ".size")))
    return out


_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}\Z")


def _names(s: Mapping[str, Any], sp: str, fmt: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """A delta subdir's changed and gone package names (format airgap/2 only, where every subdir has them)."""
    if fmt != DELTA_FORMAT:
        if "names" in s or "gone" in s:
            raise _fail(sp + ".names", f"no package names in format {fmt}", s.get("names"))
        return None, ()
    out: list[tuple[str, ...]] = []
    for key in ("names", "gone"):
        values = _list(_get(s, key, sp), f"{sp}.{key}")
        if not all(isinstance(n, str) and _PACKAGE_NAME.match(n) for n in values) or values != sorted(set(values)):
            raise _fail(f"{sp}.{key}", "package names, sorted, each once", values)
        out.append(tuple(values))
    if set(out[0]) & set(out[1]):
        raise _fail(sp + ".gone", "names not also listed as changed", sorted(set(out[0]) & set(out[1]))[:3])
    return out[0], out[1]


def parse_manifest(data: bytes | mmap.mmap) -> Manifest:
    """Parse and validate manifest bytes (already signature-checked by the caller).

    The blob and package lists are read by :mod:`.fast` first (typed, checked a list at a time);
    whatever it does not vouch for is read again here an entry at a time, which says what is wrong.
    Mapped bytes (:meth:`~airgap.archive.reader.ArchiveStream.read_header`) give their pages back once decoded."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ArchiveFormatError(f"manifest.json: expected at most {MAX_MANIFEST_BYTES} bytes, found {len(data)}")
    typed = typed_doc(data)
    if isinstance(data, mmap.mmap):
        release_views(data)  # the checks below make lists and sets of 300,000: not beside the 73 MB they were read from
    if typed is not None:
        try:
            return _parse(typed, fast=True)
        except NotPlain:
            pass
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveFormatError(f"manifest.json: expected UTF-8 JSON, found invalid data ({exc})") from None
    except RecursionError:
        raise ArchiveFormatError("manifest.json: expected JSON, found values nested too deeply to parse") from None
    return _parse(doc, fast=False)


def _parse(doc: Any, *, fast: bool) -> Manifest:
    """The manifest of a decoded document; ``fast``: its lists are entries from :func:`.fast.typed_doc`, checked whole."""
    doc = _dict(doc, "(top)")
    fmt = _str(_get(doc, "format", "(top)"), "format")
    if fmt not in SUPPORTED_FORMATS:
        raise ArchiveFormatError(
            f"manifest.json: expected format {' or '.join(SUPPORTED_FORMATS)}, found {fmt!r}; a newer airgap may be needed"
        )
    blobs: list[BlobEntry] = []
    seen: set[str] = set()
    match = _HEX64.match
    listed = _list(_get(doc, "blobs", "(top)"), "blobs")
    if fast:
        blobs, listed = plain_blobs(listed), []
    for i, b in enumerate(listed):
        if type(b) is dict:  # the common case in one expression; anything else takes the careful path below
            sha, size, kind, volume = b.get("sha256"), b.get("size"), b.get("kind"), b.get("volume")
            if (
                type(sha) is str
                and type(size) is int
                and size >= 0
                and type(kind) is str
                and kind in BLOB_KINDS
                and (volume is None or (type(volume) is int and 1 <= volume <= 9999))
                and match(sha)
                and sha not in seen
            ):
                seen.add(sha)
                blobs.append(BlobEntry(sha, size, kind, volume))
                continue
        p = f"blobs[{i}]"
        b = _dict(b, p)
        sha = _hex(_get(b, "sha256", p), p + ".sha256")
        if sha in seen:
            raise _fail(p + ".sha256", "each blob listed once", sha)
        seen.add(sha)
        kind = _str(_get(b, "kind", p), p + ".kind")
        if kind not in BLOB_KINDS:
            raise _fail(p + ".kind", "'repodata', 'package', 'installer' or 'sbom'", kind)
        volume = b.get("volume")
        if volume is not None and (isinstance(volume, bool) or not isinstance(volume, int) or not 1 <= volume <= 9999):
            raise _fail(p + ".volume", "a volume number from 1 to 9999", volume)
        blobs.append(BlobEntry(sha, _size(_get(b, "size", p), p + ".size"), kind, volume))
    if len({b.volume is None for b in blobs}) > 1:
        raise _fail("blobs", "a volume number on every blob or on none", "some with, some without")
    numbers = {b.volume for b in blobs if b.volume is not None}
    if numbers and numbers != set(range(1, max(numbers) + 1)):
        raise _fail("blobs", "volumes numbered 1..N without gaps", sorted(numbers)[:10])
    index = {b.sha256: b for b in blobs}
    referenced: set[str] = set()

    def ref(sha: str, size: int, kind: str, path: str) -> None:
        blob = index.get(sha)
        if blob is None:
            raise _fail(path, "a sha256 listed in blobs", sha)
        if blob.size != size or blob.kind != kind:
            raise _fail(path, f"size {blob.size} and kind {blob.kind} as in blobs", f"size {size}, kind {kind}")
        referenced.add(sha)

    channels: list[ChannelEntry] = []
    channel_names: set[str] = set()
    for ci, c in enumerate(_list(_get(doc, "channels", "(top)"), "channels")):
        cp = f"channels[{ci}]"
        c = _dict(c, cp)
        name = _str(_get(c, "name", cp), cp + ".name")
        if not is_safe_channel_name(name):
            raise _fail(cp + ".name", "a channel name (one path component of letters, digits, . _ + -)", name)
        if name in channel_names:
            raise _fail(cp + ".name", "each channel once", name)
        channel_names.add(name)
        subdirs: list[SubdirEntry] = []
        subdir_names: set[str] = set()
        for si, s in enumerate(_list(_get(c, "subdirs", cp), cp + ".subdirs")):
            sp = f"{cp}.subdirs[{si}]"
            s = _dict(s, sp)
            sub = _str(_get(s, "subdir", sp), sp + ".subdir")
            if not is_safe_subdir(sub) or sub in subdir_names:
                raise _fail(sp + ".subdir", "a conda subdir name, once per channel", sub)
            subdir_names.add(sub)
            r = _dict(_get(s, "repodata", sp), sp + ".repodata")
            rd = RepodataBlob(
                _hex(_get(r, "sha256", sp + ".repodata"), sp + ".repodata.sha256"),
                _size(_get(r, "size", sp + ".repodata"), sp + ".repodata.size"),
                _size(_get(r, "raw_size", sp + ".repodata"), sp + ".repodata.raw_size"),
            )
            ref(rd.sha256, rd.size, "repodata", sp + ".repodata")
            filenames: set[str] = set()
            if fast:
                pkgs = plain_packages(_get(s, "packages", sp), filenames)
                plain_refs(pkgs, index, referenced)
                present = plain_packages(s.get("present", []), filenames)
            else:
                pkgs = _package_entries(_get(s, "packages", sp), sp + ".packages", filenames)
                for pi, entry in enumerate(pkgs):
                    ref(entry.sha256, entry.size, "package", f"{sp}.packages[{pi}]")
                present = _package_entries(s.get("present", []), sp + ".present", filenames)  # no blob: the base has them
            removals: list[str] = []
            for ri, fn in enumerate(_list(s.get("removals", []), sp + ".removals")):
                if not is_safe_package_filename(fn) or fn in filenames or fn in removals:
                    raise _fail(f"{sp}.removals[{ri}]", "a package file name not otherwise listed, once", fn)
                removals.append(fn)
            shadowed = _list(s.get("shadowed", []), sp + ".shadowed")
            if not all(isinstance(fn, str) and fn in filenames for fn in shadowed) or len(set(shadowed)) != len(shadowed):
                raise _fail(sp + ".shadowed", "file names of packages or present, each once", shadowed)
            source = _dict(s.get("source", {}), sp + ".source")
            rx, rxp = None, sp + ".run_exports"
            if s.get("run_exports") is not None:  # optional: only where the upstream has one
                r = _dict(s["run_exports"], rxp)
                rx = RepodataBlob(
                    _hex(_get(r, "sha256", rxp), rxp + ".sha256"),
                    _size(_get(r, "size", rxp), rxp + ".size"),
                    _size(_get(r, "raw_size", rxp), rxp + ".raw_size"),
                )
                ref(rx.sha256, rx.size, "repodata", rxp)
            names, gone = _names(s, sp, fmt)
            subdirs.append(
                SubdirEntry(
                    sub, rd, tuple(pkgs), dict(source), tuple(present), tuple(removals), tuple(shadowed), names, gone, run_exports=rx
                )
            )
        channels.append(ChannelEntry(name, _str(_get(c, "url", cp), cp + ".url"), tuple(subdirs)))
    installers: list[InstallerEntry] = []
    placed: set[tuple[str, str]] = set()
    for ii, ins in enumerate(_list(doc.get("installers", []), "installers")):
        ip = f"installers[{ii}]"
        ins = _dict(ins, ip)
        d = _str(_get(ins, "dir", ip), ip + ".dir")
        fn = _str(_get(ins, "filename", ip), ip + ".filename")
        if not is_safe_channel_name(d) or not is_safe_installer_filename(fn) or (d, fn) in placed:
            raise _fail(ip, "a directory name and a file name, each one path component, once", f"{d}/{fn}")
        if installer_problem(d, fn, (c.name for c in channels)):
            raise _fail(ip, "an installer folder that is no channel's, and a file name other than index.html", f"{d}/{fn}")
        placed.add((d, fn))
        entry_i = InstallerEntry(
            d,
            fn,
            _hex(_get(ins, "sha256", ip), ip + ".sha256"),
            _size(_get(ins, "size", ip), ip + ".size"),
            _str(_get(ins, "url", ip), ip + ".url"),
        )
        ref(entry_i.sha256, entry_i.size, "installer", ip)
        installers.append(entry_i)
    sbom, sb = None, doc.get("sbom")
    if sb is not None:  # optional: archives written before airgap carried an SBOM have none
        sb = _dict(sb, "sbom")
        sbom = SbomRef(
            _hex(_get(sb, "sha256", "sbom"), "sbom.sha256"),
            _size(_get(sb, "size", "sbom"), "sbom.size"),
            _str(_get(sb, "format", "sbom"), "sbom.format"),
        )
        if sbom.format not in SBOM_FORMATS:
            raise _fail("sbom.format", " or ".join(SBOM_FORMATS), sbom.format)
        if sbom.format.endswith("+zstd"):  # compressed: readers refuse to decompress beyond raw_size
            sbom = SbomRef(sbom.sha256, sbom.size, sbom.format, _size(_get(sb, "raw_size", "sbom"), "sbom.raw_size"))
        ref(sbom.sha256, sbom.size, "sbom", "sbom")
    unreferenced = [b.sha256 for b in blobs if b.sha256 not in referenced]
    if unreferenced:
        raise _fail("blobs", "every blob used by a channel", f"{len(unreferenced)} unused, first {unreferenced[0]}")
    base = doc.get("base")
    if base is not None:
        _str(base, "base")
    filters = _dict(doc.get("filters", {}), "filters")
    bases: dict[str, Base] = {}
    for name, b in _dict(doc.get("bases", {}), "bases").items():
        bp = f"bases.{name}"
        b = _dict(b, bp)
        target, after = _str(_get(b, "channel", bp), bp + ".channel"), b.get("after")
        if name not in channel_names or not is_safe_channel_name(target):
            raise _fail(bp, "a channel of the archive, made for a destination channel", f"{name} -> {target}")
        bases[name] = Base(target, None if after is None else _str(after, bp + ".after"))
    archive_id = _str(_get(doc, "archive_id", "(top)"), "archive_id")
    if not _ARCHIVE_ID.match(archive_id):
        raise _fail("archive_id", "1 to 64 letters, digits, _ or -", archive_id)
    return Manifest(
        archive_id=archive_id,
        created=_str(_get(doc, "created", "(top)"), "created"),
        tool=_str(_get(doc, "tool", "(top)"), "tool"),
        channels=tuple(channels),
        blobs=tuple(blobs),
        filters=dict(filters),
        base=base,
        format=fmt,
        installers=tuple(installers),
        sbom=sbom,
        bases=bases,
    )
