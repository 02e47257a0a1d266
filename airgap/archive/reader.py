"""Read an airgap/1 archive as a stream, treating every byte as hostile.

Only the current tar member is ever used (no seeking back, no extraction by name). The reader
enforces the layout: ``manifest.json`` first (bounded size), ``manifest.sig`` second, then
only regular-file members named ``blobs/sha256/<hex>`` that the manifest lists, each once,
with the listed size. Links, devices, FIFOs, directories, sparse members, ``..`` or absolute
names, unknown or duplicate members and truncation are all :class:`ArchiveFormatError`. Hash
checks are the caller's, through :func:`copy_verified`, while it streams each blob where it
wants it.

Headers are parsed here (with :mod:`airgap.archive.tarheader`), not by ``tarfile`` (whose
per-member cost dominated an import of many small files), and only what airgap/1 can contain
is accepted: ustar headers (POSIX or GNU magic) with a valid checksum and octal or base-256 numbers, and at most one pax extended header
(``x``) of at most :data:`MAX_PAX_HEADER_BYTES` before a member, whose well-formed records may
set ``path`` and ``size`` (other keys are ignored, as ``tarfile`` ignores them). GNU
long-name/long-link and sparse headers, global and Solaris extended headers, GNU sparse pax
records (the writer never makes any), a pax header followed by another one, a damaged header,
a bad checksum and a header cut short are all refused before anything they announce is read.
A clean end of file where a header would start ends the archive, as an end-of-archive block does.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from .._safepath import spill
from ..core.manifest import MAX_MANIFEST_BYTES, BlobEntry, Manifest
from ..errors import ArchiveFormatError, IntegrityError
from ..limits import MAX_SIG_BYTES
from .hashing import PIPE_MIN, HashPipe
from .layout import MANIFEST, SIGNATURE, parse_blob_member
from .tarheader import (
    BLOCK,
    MAX_PAX_HEADER_BYTES,
    REFUSED_HEADERS,
    ZERO_BLOCK,
    Damaged,
    Member,
    NotTar,
    checksum_ok,
    describe_type,
    field_number,
    field_text,
    pax_records,
)

CHUNK = 1 << 20


class ArchiveStream:
    """One pass over an archive file. Use as a context manager."""

    def __init__(self, path: Path, fh: BinaryIO | None = None, start: int = 0) -> None:
        """``fh``/``start``: the archive already open, read from the header at ``start`` on (a second process
        reading the members another one found there: :mod:`airgap.archive.blobchild`)."""
        self.path = Path(path)
        self._fh: BinaryIO = fh if fh is not None else _open_archive(self.path)
        st = os.fstat(self._fh.fileno())
        self.seekable = stat.S_ISREG(st.st_mode)  # a blob can be read again at its offset (not a tape)
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._size = st.st_size
        self._pos = self._next_header = 0  # of the next byte self._fh gives; where the next member's header starts
        self._current: _Guarded | None = None
        self._pending: Member | None = None
        self._ended = False
        self.member_offset = 0  # of the header of the member last handed out
        try:
            if start:
                self._fh.seek(start)
                self._pos = self._next_header = start
            self._pending = self._next()  # like tarfile.open: the first header says whether this is a tar archive
        except BaseException:
            self._fh.close()
            raise

    def __enter__(self) -> ArchiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    # -- reading ---------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        try:
            data = self._fh.read(n)
        except (OSError, ValueError) as exc:
            raise ArchiveFormatError(f"{self.path}: archive is truncated or damaged near byte {self._pos} ({exc})") from None
        self._pos += len(data)
        return data

    def _skip_to(self, target: int) -> None:
        """Move to ``target`` (the next header), past what the caller did not read and the padding."""
        gap = target - self._pos
        if gap <= 0:
            return
        if self.seekable:
            if target > self._size:
                raise ArchiveFormatError(f"{self.path}: archive is truncated: expected {target} bytes, found {self._size}")
            try:
                self._fh.seek(target)
            except (OSError, ValueError) as exc:
                raise ArchiveFormatError(f"{self.path}: archive is truncated or damaged near byte {self._pos} ({exc})") from None
            self._pos = target
            return
        while gap:
            got = len(self._read(min(gap, CHUNK)))
            if not got:
                raise ArchiveFormatError(f"{self.path}: archive is truncated near byte {self._pos}")
            gap -= got

    def _next(self) -> Member | None:
        """The next member's header (after at most one pax header), or None at the end."""
        self._current = None  # a file object handed out before reads nothing more
        if self._ended:
            return None
        self._skip_to(self._next_header)
        try:
            member = self._header()
        except NotTar as exc:
            raise ArchiveFormatError(f"{self.path}: expected a tar archive (airgap/1), found something else ({exc})") from None
        except Damaged as exc:
            raise ArchiveFormatError(f"{self.path}: {exc}") from None
        if member is None:
            self._ended = True
        return member

    def _header(self) -> Member | None:
        start = self._pos
        pax: dict[bytes, bytes] | None = None
        while True:
            offset = self._pos
            buf = self._read(BLOCK)
            if offset == 0 and (len(buf) < BLOCK or not checksum_ok(buf)):
                raise NotTar("an empty file" if not buf else "a header cut short" if len(buf) < BLOCK else "no valid tar header")
            if len(buf) < BLOCK:
                if not buf and pax is None:
                    return None  # no end-of-archive blocks: tarfile takes this as the end too
                raise Damaged(f"archive is truncated: a header cut short at byte {offset}")
            if buf == ZERO_BLOCK:
                if pax is not None:
                    raise Damaged(f"expected a member after the pax header at byte {start}, found the end of the archive")
                return None
            if not checksum_ok(buf):
                raise Damaged(f"archive is truncated or damaged: bad header checksum at byte {offset}")
            kind = buf[156:157]
            size = field_number(buf[124:136], "size", offset)
            if kind in REFUSED_HEADERS:
                raise Damaged(f"expected only pax (POSIX) headers, found {describe_type(kind)} at byte {offset}")
            if kind != tarfile.XHDTYPE:
                break
            if pax is not None:
                raise Damaged(f"expected a member after a pax header, found another pax header at byte {offset}")
            if not 0 <= size <= MAX_PAX_HEADER_BYTES:
                raise Damaged(f"expected a pax header of at most {MAX_PAX_HEADER_BYTES} bytes, found one of {size} at byte {offset}")
            data = self._read(-(-size // BLOCK) * BLOCK)
            if len(data) < size:
                raise Damaged(f"archive is truncated inside the pax header at byte {offset}")
            pax = pax_records(data[:size], offset)
        name = field_text(buf[0:100])
        prefix = field_text(buf[345:500])
        if prefix:  # a ustar long name (tarfile reads the field whatever the magic says, so do we)
            name = prefix + "/" + name
        if kind == tarfile.AREGTYPE and name.endswith("/"):  # old tar's way of saying "directory"
            kind = tarfile.DIRTYPE
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        if pax is not None:
            if b"path" in pax:
                name = pax[b"path"].decode("utf-8", "surrogateescape").rstrip("/")
            if b"size" in pax:
                if not pax[b"size"].isdigit() or len(pax[b"size"]) > 20:  # int() refuses 4,300 digits and more
                    raise Damaged(f"expected a valid pax header, found a damaged one at byte {start} (size {pax[b'size']!r})")
                size = int(pax[b"size"])
        member = Member(name, size, kind, start, self._pos)
        self._next_header = self._pos + (-(-size // BLOCK) * BLOCK if size > 0 else 0)
        return member

    def _open_member(self, member: Member) -> _Guarded:
        fh = _Guarded(self, member.size, (self.path, member.offset_data) if self.seekable else None)
        self._current = fh
        return fh

    def _read_member(self, member: Member, limit: int) -> bytes:
        self._check_member(member, limit)
        return _read_exact(self._open_member(member), member.size, self.path, member.name)

    def _check_member(self, member: Member, limit: int) -> None:
        if not member.is_file():
            raise ArchiveFormatError(f"{self.path}: expected {member.name!r} to be a regular file, found {describe_type(member.type)}")
        if not 0 <= member.size <= limit:
            raise ArchiveFormatError(f"{self.path}: expected {member.name} of at most {limit} bytes, found {member.size}")

    def _take(self) -> Member | None:
        member = self._pending if self._pending is not None else self._next()
        self._pending = None
        return member

    def read_header(self) -> tuple[bytes | mmap.mmap, bytes | None]:
        """``(manifest bytes, signature bytes or None)`` from the first members. A big manifest (73 MB at 300,000 files)
        is spilled to a private map (:func:`~airgap._safepath.spill`): once decoded, its pages leave the resident set
        (:func:`~airgap.core.manifest.parse_manifest`) rather than stay on the heap beside what they decoded to."""
        first = self._take()
        if first is None or first.name != MANIFEST:
            found = "an empty archive" if first is None else repr(first.name)
            raise ArchiveFormatError(f"{self.path}: expected {MANIFEST} as the first member, found {found}")
        self._check_member(first, MAX_MANIFEST_BYTES)
        manifest = spill(_pieces_exact(self._open_member(first), first.size, self.path, first.name), first.size)
        second = self._next()
        if second is not None and second.name == SIGNATURE:
            return manifest, self._read_member(second, MAX_SIG_BYTES)
        self._pending = second
        return manifest, None

    def peek_blob(self) -> str | None:
        """The sha256 named by the next member (without consuming it), if it is a blob."""
        if self._pending is None:
            self._pending = self._next()
        return parse_blob_member(self._pending.name) if self._pending is not None else None

    def blobs(self, manifest: Manifest) -> Iterator[tuple[BlobEntry, _Guarded]]:
        """Yield each blob member with its manifest entry; the caller must consume it before the next."""
        index = manifest.blob_index()
        seen: set[str] = set()

        def take(sha: str) -> BlobEntry | None:
            entry = index.get(sha)
            if entry is not None:
                if sha in seen:
                    raise Twice
                seen.add(sha)
            return entry

        return self.members(take)

    def members(self, take: Callable[[str], BlobEntry | None]) -> Iterator[tuple[BlobEntry, _Guarded]]:
        """Each blob member with the entry ``take`` gives for its sha256 (None: not listed; raises :class:`Twice`:
        seen before)."""
        while True:
            member = self._take()
            if member is None:
                return
            name = member.name
            if name in (MANIFEST, SIGNATURE):
                raise ArchiveFormatError(f"{self.path}: expected {name} only once, at the start; found it again")
            sha = parse_blob_member(name)
            if sha is None:
                raise ArchiveFormatError(f"{self.path}: expected only blobs/sha256/<hex> members after the manifest, found {name!r}")
            if not member.is_file():
                raise ArchiveFormatError(f"{self.path}: expected {name} to be a regular file, found {describe_type(member.type)}")
            try:
                entry = take(sha)
            except Twice:
                raise ArchiveFormatError(f"{self.path}: member {name} appears twice") from None
            if entry is None:
                raise ArchiveFormatError(f"{self.path}: member {name} is not listed in the manifest")
            if member.size != entry.size:
                raise IntegrityError(f"{self.path}: {name}: expected {entry.size} bytes (manifest), found {member.size}")
            self.member_offset = member.offset
            yield entry, self._open_member(member)


class Twice(Exception):
    """A blob member seen before (raised by the ``take`` of :meth:`ArchiveStream.members`)."""


class _Guarded:
    """The bytes of the current member: ``read`` never goes past them; damage is ArchiveFormatError."""

    __slots__ = ("_stream", "_remaining", "location")

    def __init__(self, stream: ArchiveStream, size: int, location: tuple[Path, int] | None) -> None:
        self._stream = stream
        self._remaining = size
        self.location = location  # (file, offset of the blob's bytes) when it can be read again there

    def read(self, n: int = -1) -> bytes:
        stream = self._stream
        if stream._current is not self:  # the stream has moved on to another member
            return b""
        k = self._remaining if n < 0 else min(n, self._remaining)
        if k <= 0:
            return b""
        data = stream._read(k)
        self._remaining -= len(data)
        return data


def _open_archive(path: Path) -> BinaryIO:
    """Open for reading without blocking on a FIFO (which would wait forever for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ArchiveFormatError(f"{path}: expected an airgap archive, cannot open it: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISDIR(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a directory"
        raise ArchiveFormatError(f"{path}: expected a regular file (or a tape device), found {kind}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=CHUNK)  # headers and small blobs come out of one large read


def _read_exact(fh: _Guarded | IO[bytes], size: int, path: Path, name: str) -> bytes:
    return b"".join(_pieces_exact(fh, size, path, name))


def _pieces_exact(fh: _Guarded | IO[bytes], size: int, path: Path, name: str) -> Iterator[bytes]:
    """``size`` bytes of ``fh``, a MiB at a time; fewer (or a failed read) is a truncated archive."""
    got = 0
    while got < size:
        try:
            data = fh.read(min(size - got, 1 << 20))
        except (OSError, ValueError) as exc:
            raise ArchiveFormatError(f"{path}: archive is truncated inside {name} ({exc})") from None
        if not data:
            raise ArchiveFormatError(f"{path}: archive is truncated inside {name}: expected {size} bytes, found {got}")
        got += len(data)
        yield data


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def read_verified(src: _Guarded | IO[bytes], entry: BlobEntry, what: str) -> bytes:
    """A small blob's ``entry.size`` bytes, read at once and checked against its sha256 before anyone writes them."""
    data = src.read(entry.size)
    if len(data) != entry.size:
        raise ArchiveFormatError(f"{what}: archive is truncated: expected {entry.size - len(data)} more bytes of blob {entry.sha256[:16]}")
    return checked(data, entry, what)


def checked(data: bytes, entry: BlobEntry, what: str) -> bytes:
    """``data``, a whole blob, if it is ``entry``'s sha256; else the blob's IntegrityError."""
    found = hashlib.sha256(data).hexdigest()
    if found != entry.sha256:
        raise _mismatch(what, entry, found)
    return data


def _mismatch(what: str, entry: BlobEntry, found: str) -> IntegrityError:
    return IntegrityError(
        f"{what}: blob {entry.sha256[:16]}… does not match its sha256 (found {found[:16]}…): the archive was altered or damaged"
    )


def copy_verified(
    src: _Guarded | IO[bytes],
    entry: BlobEntry,
    dst: Writable | None,
    what: str,
    on_bytes: Callable[[int], None] | None = None,
    pipe: HashPipe | None = None,
) -> None:
    """Stream ``entry.size`` bytes from ``src`` into ``dst`` (or nowhere), checking the sha256.

    With ``pipe``, a large blob is hashed on its thread and a mismatch is raised later, by the
    pipe's ``check`` or ``finish`` (the caller must call ``finish`` before trusting any blob).
    """
    h = hashlib.sha256()
    piped = pipe is not None and entry.size >= PIPE_MIN
    remaining = entry.size
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise ArchiveFormatError(f"{what}: archive is truncated: expected {remaining} more bytes of blob {entry.sha256[:16]}")
        remaining -= len(chunk)
        if piped:
            assert pipe is not None
            pipe.update(h, chunk)  # a fresh bytes object: nothing changes it while the thread hashes
        else:
            h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))

    def mismatch(found: str) -> IntegrityError:
        return _mismatch(what, entry, found)

    if piped:
        assert pipe is not None
        pipe.expect(h, entry.sha256, mismatch)
    elif h.hexdigest() != entry.sha256:
        raise mismatch(h.hexdigest())
