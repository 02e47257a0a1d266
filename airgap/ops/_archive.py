"""Shared by verify, inspect and import: open an archive, check its signature, read its repodata blobs."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._heap import give_back
from .._safepath import Spill, release_views, spill
from ..archive.blobcopy import copy_blob
from ..archive.hashing import HashPipe
from ..archive.reader import ArchiveStream, copy_verified
from ..compress import zstd_pieces_bounded
from ..core.archive_index import read_records
from ..core.delta_index import check_names
from ..core.manifest import BlobEntry, Manifest, PackageEntry, SubdirEntry, parse_manifest
from ..core.repodata import Repodata, from_document, load_json, record_hashes
from ..errors import ArchiveFormatError, IntegrityError, SignatureError, UpstreamError, UsageError
from ..progress import Bar, Progress
from ..signing import TrustedKeys


class BlobSource(Protocol):
    """Where an import reads blobs from: an archive, the volumes of one, or (for sync) the export cache."""

    path: Path  # named in messages

    def __enter__(self) -> BlobSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...

    def blobs(self, manifest: Manifest) -> Iterator[tuple[BlobEntry, Any]]:
        """Each blob with its manifest entry and a reader (``read(n)``; ``location``: where it lies, if in a file)."""
        ...


@dataclass(frozen=True)
class Opened:
    stream: BlobSource  # ArchiveStream, _VolumeSet, or (for sync) a cache-backed source
    manifest: Manifest
    manifest_bytes: int
    signer: str | None  # key id, None when unsigned and allowed
    volumes: tuple[int, ...] = (1,)  # which volumes of the archive are here


class _VolumeSet:
    """Several volumes of one archive, read one after another in volume order."""

    def __init__(self, streams: dict[int, ArchiveStream]) -> None:
        self.streams = dict(sorted(streams.items()))
        self.path = next(iter(self.streams.values())).path

    def __enter__(self) -> _VolumeSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for s in self.streams.values():
            s.close()

    def blobs(self, manifest: Manifest) -> Iterator[tuple[BlobEntry, Any]]:
        for number, stream in self.streams.items():
            for entry, fh in stream.blobs(manifest):
                if (entry.volume or 1) != number:
                    raise ArchiveFormatError(
                        f"{stream.path}: blobs/sha256/{entry.sha256} belongs to volume {entry.volume}, found in volume {number}"
                    )
                yield entry, fh


def open_set(paths: list[Path], trusted: TrustedKeys, allow_unsigned: bool = False, complete: bool = True) -> Opened:
    """Open one archive, or the volumes of one (any order); with ``complete``, all must be there."""
    if len(paths) == 1:
        opened = open_verified(paths[0], trusted, allow_unsigned)
        if opened.manifest.volumes == 1:
            return opened
        volumes_opened = [opened]
    else:
        volumes_opened = []
    try:
        for p in paths[len(volumes_opened) :]:
            volumes_opened.append(open_verified(p, trusted, allow_unsigned))
        first = volumes_opened[0]
        streams: dict[int, ArchiveStream] = {}
        for o in volumes_opened:
            if o.manifest != first.manifest:
                raise ArchiveFormatError(
                    f"{o.stream.path}: expected a volume of archive {first.manifest.archive_id}, found one of {o.manifest.archive_id}"
                )
            assert isinstance(o.stream, ArchiveStream)  # open_verified opens one archive file
            sha = o.stream.peek_blob()
            number = first.manifest.blob_index()[sha].volume if sha in first.manifest.blob_index() else None
            if number is None:
                raise ArchiveFormatError(
                    f"{o.stream.path}: expected a volume (its first blob names it), found {'no blob' if sha is None else 'an unlisted blob'}"
                )
            if number in streams:
                raise UsageError(f"{o.stream.path}: volume {number} is given twice ({streams[number].path})")
            streams[number] = o.stream
        total = first.manifest.volumes
        missing = sorted(set(range(1, total + 1)) - set(streams))
        if missing and complete:
            base = str(first.stream.path).rsplit(".", 1)[0]
            names = ", ".join(f"{base}.{n:03d}" for n in missing)
            raise UsageError(f"expected all {total} volumes of archive {first.manifest.archive_id}, missing {len(missing)}: {names}")
    except BaseException:
        for o in volumes_opened:
            o.stream.close()
        raise
    return Opened(_VolumeSet(streams), first.manifest, first.manifest_bytes, first.signer, tuple(sorted(streams)))


def open_verified(path: Path, trusted: TrustedKeys, allow_unsigned: bool = False) -> Opened:
    """Open ``path`` and verify its signature before parsing anything else; fail closed."""
    stream = ArchiveStream(path)
    try:
        manifest_bytes, sig = stream.read_header()
        if sig is None:
            if not allow_unsigned:
                raise SignatureError(
                    f"{path}: expected a signed archive (manifest.sig), found none; an unsigned archive needs --allow-unsigned"
                )
            signer = None
        else:
            signer = trusted.verify(manifest_bytes, sig)
        manifest = parse_manifest(manifest_bytes)
    except BaseException:
        stream.close()
        raise
    return Opened(stream, manifest, len(manifest_bytes), signer)


def load_repodata_blob(data: bytes | mmap.mmap, sub: SubdirEntry, channel: str, what: str) -> Repodata:
    """Decompress and parse a verified repodata blob; check it lists exactly the manifest's packages."""
    # a big one is decompressed to a mapped temporary file: the records kept as its bytes are not in the heap
    raw = spill(zstd_pieces_bounded(data, sub.repodata.raw_size, what, ArchiveFormatError), sub.repodata.raw_size)
    if len(raw) != sub.repodata.raw_size:
        raise ArchiveFormatError(f"{what}: expected {sub.repodata.raw_size} bytes of repodata, found {len(raw)}")
    if isinstance(raw, mmap.mmap):  # the split below touches every page of the records (123 MB at 300,000): the import's
        release_views(data)  # peak. The compressed blob's pages (17 MB) and what the heap freed since (~30 MB: the
        give_back()  # blobs' streaming) leave the resident set first
    listed = {p.filename: p for p in (*sub.packages, *sub.present)}
    rd = read_records(raw, sub.subdir, what, listed)  # records kept as bytes, after the checks below (decision 0018)
    release_views(raw, data)  # read: their pages leave the resident set (the blob's for good, the records' until read)
    if rd is None:
        rd = _strict(raw[:], sub, channel, what, listed)
    problem = check_names(rd, sub, f"{what} of {channel}/{sub.subdir}")  # a delta: records only of the names it lists
    if problem is not None:
        raise IntegrityError(problem)
    return rd


def _strict(raw: bytes, sub: SubdirEntry, channel: str, what: str, listed: dict[str, PackageEntry]) -> Repodata:
    """The blob parsed to dicts, every check made with its own message (what :func:`read_records` declined)."""
    try:
        doc, suspect = load_json(raw, what)  # NaN, Infinity, lone surrogates: records holding them are counted as malformed
        rd = from_document(doc, sub.subdir, what, suspect=suspect)
    except UpstreamError as exc:  # the same message, but here it is the archive that is malformed
        raise ArchiveFormatError(str(exc)) from None
    total = sum(len(doc.get(section) or {}) for section in ("packages", "packages.conda"))  # both are dicts (or null) now
    if len(rd) != total:
        raise ArchiveFormatError(f"{what}: expected every repodata record to be well-formed, found {total - len(rd)} that are not")
    names = {f for f, _ in rd.records()}
    if names != set(listed):
        extra = sorted(names - set(listed))[:3]
        missing = sorted(set(listed) - names)[:3]
        raise IntegrityError(
            f"{what}: repodata of {channel}/{sub.subdir} and manifest disagree (only in repodata: {extra}, only in manifest: {missing})"
        )
    for filename, record in rd.records():
        sha, _md5, size = record_hashes(record)
        entry = listed[filename]
        if (sha is not None and sha != entry.sha256) or (size is not None and size != entry.size):
            raise IntegrityError(
                f"{what}: {channel}/{sub.subdir}/{filename}: repodata says sha256 {sha} size {size}, manifest says {entry.sha256} {entry.size}"
            )
    return rd


#: ``beside(rest, stream, seen, bar)``: a second process that reads the blobs ``rest`` from the stream's current
#: member on (:mod:`.import_body`), or None: this process goes on
Beside = Callable[[list[BlobEntry], ArchiveStream, list[str], Bar], "Pending | None"]


class Pending(Protocol):
    """Blobs another process is checking: :meth:`wait` raises what it met; :meth:`close` stops it."""

    def wait(self) -> None: ...

    def close(self) -> None: ...


def stream_blobs(
    opened: Opened,
    progress: Progress,
    desc: str,
    destination: Callable[[BlobEntry, tuple[Path, int] | None], str | os.PathLike[str] | None] = lambda entry, location: None,
) -> dict[str, bytes | mmap.mmap]:
    """Read every blob of an opened archive, checking each hash; return the repodata (and SBOM) blobs' bytes.

    A package or installer blob goes to the file ``destination(entry, location)`` names, or
    nowhere (it is only hashed). ``location`` is where the blob's bytes lie in a regular file
    (archive path, offset), or None. Every blob the manifest lists must appear.
    """
    return stream_beside(opened, progress, desc, destination)[0]


def stream_beside(
    opened: Opened,
    progress: Progress,
    desc: str,
    destination: Callable[[BlobEntry, tuple[Path, int] | None], str | os.PathLike[str] | None] = lambda entry, location: None,
    beside: Beside | None = None,
) -> tuple[dict[str, bytes | mmap.mmap], Pending | None]:
    """:func:`stream_blobs`, where ``beside`` may hand the blobs after the documents to another process: then the
    documents, and what that process still checks (the caller waits for it before it uses any of those blobs)."""
    manifest = opened.manifest
    expected = [b for b in manifest.blobs if (b.volume or 1) in opened.volumes]
    heads = sum(b.kind in ("repodata", "sbom") for b in expected)
    repodata: dict[str, bytes | mmap.mmap] = {}
    seen: set[str] = set()
    bar = progress(desc, sum(b.size for b in expected), files=len(expected))
    pending: Pending | None = None
    with HashPipe() as pipe:  # large blobs are hashed on a second thread while the next bytes are read and written
        for entry, fh in opened.stream.blobs(manifest):
            what = f"{opened.stream.path}: blobs/sha256/{entry.sha256}"
            in_memory = entry.kind in ("repodata", "sbom")  # small documents the caller reads
            if not in_memory and beside is not None and isinstance(opened.stream, ArchiveStream) and len(repodata) == heads:
                pipe.finish()  # every document checked: the rest (the packages) may go to another process
                pending = beside([b for b in expected if b.sha256 not in seen], opened.stream, sorted(seen), bar)
                beside = None  # asked once
                if pending is not None:
                    break
            seen.add(entry.sha256)
            if in_memory:  # a big one to an unlinked temporary file, mapped: kept until read, not in the heap
                buf = Spill(entry.size)
                copy_verified(fh, entry, buf, what, bar.update, pipe)
                repodata[entry.sha256] = buf.done()
            else:
                copy_blob(entry, fh, destination(entry, getattr(fh, "location", None)), what, bar.update, pipe)
            pipe.check()
            bar.file_done()
        pipe.finish()  # every blob hashed and matched before the caller uses any of them
    if pending is not None:
        return repodata, pending  # the child says what is missing
    bar.close()
    missing = [b.sha256 for b in expected if b.sha256 not in seen]
    if missing:
        raise ArchiveFormatError(
            f"{opened.stream.path}: expected {len(expected)} blobs, {len(missing)} missing (first: blobs/sha256/{missing[0]})"
        )
    return repodata, None
