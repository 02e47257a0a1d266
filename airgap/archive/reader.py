"""Read an airgap/1 archive as a stream, treating every byte as hostile.

Only the current tar member is ever used (no seeking, no extraction by name). The reader
enforces the layout: ``manifest.json`` first (bounded size), ``manifest.sig`` second, then
only regular-file members named ``blobs/sha256/<hex>`` that the manifest lists, each once,
with the listed size. Links, devices, FIFOs, directories, sparse members, ``..`` or absolute
names, unknown or duplicate members and truncation are all :class:`ArchiveFormatError`. Hash
checks are the caller's, through :func:`copy_verified`, while it streams each blob where it
wants it.

Headers are refused before ``tarfile`` reads what they announce: GNU long-name/long-link and
sparse headers, global and Solaris extended headers (the writer never makes any), a pax
header larger than :data:`MAX_PAX_HEADER_BYTES` or followed by another one. Whatever else
``tarfile`` raises on damaged input becomes :class:`ArchiveFormatError` too.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from ..errors import ArchiveFormatError, IntegrityError
from ..manifest import MAX_MANIFEST_BYTES, BlobEntry, Manifest
from ..signing import MAX_SIG_BYTES
from .layout import MANIFEST, SIGNATURE, parse_blob_member

CHUNK = 1 << 20
MAX_PAX_HEADER_BYTES = 64 << 10  # a pax header of a blob member needs ~200 bytes
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_REFUSED_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE, tarfile.XGLTYPE,
                    tarfile.SOLARIS_XHDTYPE)
_in_pax_header: contextvars.ContextVar[bool] = contextvars.ContextVar("_in_pax_header", default=False)


def _describe(member: tarfile.TarInfo) -> str:
    kinds = {
        tarfile.SYMTYPE: "a symlink", tarfile.LNKTYPE: "a hardlink", tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO", tarfile.DIRTYPE: "a directory",
        tarfile.CONTTYPE: "a contiguous file", tarfile.GNUTYPE_SPARSE: "a GNU sparse file",
        tarfile.GNUTYPE_LONGNAME: "a GNU long-name header", tarfile.GNUTYPE_LONGLINK: "a GNU long-link header",
        tarfile.XGLTYPE: "a pax global header", tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
        tarfile.XHDTYPE: "a pax header",
    }
    if member.type in _FILE_TYPES and member.sparse is not None:
        return "a sparse file"
    return kinds.get(member.type, f"a member of type {member.type!r}")


def _is_file(member: tarfile.TarInfo) -> bool:
    """A plain regular file: not a link, device, directory, contiguous or sparse file."""
    return member.type in _FILE_TYPES and member.sparse is None


class _RefusedHeader(tarfile.TarError):
    """A header airgap/1 never uses, refused before tarfile reads the data it announces."""


class _StrictTarInfo(tarfile.TarInfo):
    """TarInfo that refuses GNU and global headers and bounds pax headers before they are read."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _REFUSED_HEADERS:
            raise _RefusedHeader(f"expected only pax (POSIX) headers, found {_describe(self)} at byte {self.offset}")
        if self.type != tarfile.XHDTYPE:
            return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]
        if not 0 <= self.size <= MAX_PAX_HEADER_BYTES:
            raise _RefusedHeader(f"expected a pax header of at most {MAX_PAX_HEADER_BYTES} bytes, found one of {self.size} at byte {self.offset}")
        if _in_pax_header.get():
            raise _RefusedHeader(f"expected a member after a pax header, found another pax header at byte {self.offset}")
        token = _in_pax_header.set(True)
        try:
            return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]
        except (tarfile.TarError, EOFError, OSError):
            raise
        except Exception as exc:  # tarfile's pax and sparse parsing raise ValueError, IndexError, ...
            raise _RefusedHeader(f"expected a valid pax header, found a damaged one at byte {self.offset} ({type(exc).__name__}: {exc})") from None
        finally:
            _in_pax_header.reset(token)


class ArchiveStream:
    """One pass over an archive file. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: BinaryIO = _open_archive(self.path)
        try:
            self._tar: tarfile.TarFile = tarfile.open(fileobj=self._fh, mode="r|", copybufsize=CHUNK, tarinfo=_StrictTarInfo)  # type: ignore[call-overload]
        except _RefusedHeader as exc:
            self._fh.close()
            raise ArchiveFormatError(f"{self.path}: {exc}") from None
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            self._fh.close()
            raise ArchiveFormatError(f"{self.path}: expected a tar archive (airgap/1), found something else ({exc})") from None
        self._pending: tarfile.TarInfo | None = None
        st = os.fstat(self._fh.fileno())
        self.seekable = stat.S_ISREG(st.st_mode)  # a blob can be read again at its offset (not a tape)
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def __enter__(self) -> ArchiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._tar.close()
        except (tarfile.TarError, OSError, EOFError):
            pass
        self._fh.close()

    def _next(self) -> tarfile.TarInfo | None:
        try:
            member = self._tar.next()
        except _RefusedHeader as exc:
            raise ArchiveFormatError(f"{self.path}: {exc}") from None
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ArchiveFormatError(f"{self.path}: archive is truncated or damaged near byte {self._fh.tell()} ({exc})") from None
        self._tar.members.clear()  # type: ignore[attr-defined]  # a stream never looks back: flat memory for any member count
        return member

    def _read_member(self, member: tarfile.TarInfo, limit: int) -> bytes:
        if not _is_file(member):
            raise ArchiveFormatError(f"{self.path}: expected {member.name!r} to be a regular file, found {_describe(member)}")
        if not 0 <= member.size <= limit:
            raise ArchiveFormatError(f"{self.path}: expected {member.name} of at most {limit} bytes, found {member.size}")
        fh = self._tar.extractfile(member)
        assert fh is not None
        data = _read_exact(fh, member.size, self.path, member.name)
        return data

    def read_header(self) -> tuple[bytes, bytes | None]:
        """``(manifest bytes, signature bytes or None)`` from the first members."""
        first = self._next()
        if first is None or first.name != MANIFEST:
            found = "an empty archive" if first is None else repr(first.name)
            raise ArchiveFormatError(f"{self.path}: expected {MANIFEST} as the first member, found {found}")
        manifest = self._read_member(first, MAX_MANIFEST_BYTES)
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
        while True:
            member = self._pending if self._pending is not None else self._next()
            self._pending = None
            if member is None:
                return
            name = member.name
            if name in (MANIFEST, SIGNATURE):
                raise ArchiveFormatError(f"{self.path}: expected {name} only once, at the start; found it again")
            sha = parse_blob_member(name)
            if sha is None:
                raise ArchiveFormatError(f"{self.path}: expected only blobs/sha256/<hex> members after the manifest, found {name!r}")
            if not _is_file(member):
                raise ArchiveFormatError(f"{self.path}: expected {name} to be a regular file, found {_describe(member)}")
            entry = index.get(sha)
            if entry is None:
                raise ArchiveFormatError(f"{self.path}: member {name} is not listed in the manifest")
            if sha in seen:
                raise ArchiveFormatError(f"{self.path}: member {name} appears twice")
            seen.add(sha)
            if member.size != entry.size:
                raise IntegrityError(f"{self.path}: {name}: expected {entry.size} bytes (manifest), found {member.size}")
            fh = self._tar.extractfile(member)
            assert fh is not None
            yield entry, _Guarded(fh, self, (self.path, member.offset_data) if self.seekable else None)


class _Guarded:
    """A member file object whose truncation errors become ArchiveFormatError."""

    def __init__(self, fh: IO[bytes], stream: ArchiveStream, location: tuple[Path, int] | None) -> None:
        self._fh = fh
        self._stream = stream
        self.location = location  # (file, offset of the blob's bytes) when it can be read again there

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ArchiveFormatError(f"{self._stream.path}: archive is truncated or damaged ({exc})") from None


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
    return os.fdopen(fd, "rb")


def _read_exact(fh: IO[bytes], size: int, path: Path, name: str) -> bytes:
    try:
        data = fh.read(size)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ArchiveFormatError(f"{path}: archive is truncated inside {name} ({exc})") from None
    if len(data) != size:
        raise ArchiveFormatError(f"{path}: archive is truncated inside {name}: expected {size} bytes, found {len(data)}")
    return data


def copy_verified(src: _Guarded | IO[bytes], entry: BlobEntry, dst: BinaryIO | None, what: str,
                  on_bytes: Callable[[int], None] | None = None) -> None:
    """Stream ``entry.size`` bytes from ``src`` into ``dst`` (or nowhere), checking the sha256."""
    h = hashlib.sha256()
    remaining = entry.size
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise ArchiveFormatError(f"{what}: archive is truncated: expected {remaining} more bytes of blob {entry.sha256[:16]}")
        remaining -= len(chunk)
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    if h.hexdigest() != entry.sha256:
        raise IntegrityError(f"{what}: blob {entry.sha256[:16]}… does not match its sha256 (found {h.hexdigest()[:16]}…): the archive was altered or damaged")
