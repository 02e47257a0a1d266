"""Write an airgap/1 archive: a pax tar, streamable, members in manifest order.

The archive is written to a temporary file beside its target and renamed only when it is
complete and synced, so a crash never leaves something that looks like an archive. Each blob
that was already in the cache is hashed again as it is copied: a cache damaged since download
is caught here instead of at the isolated site. A blob this same export downloaded (hashed as it
arrived, seconds ago, and read back from the page cache) is copied without a second hash, by the
kernel (``copy_file_range``) when it is large.

The bytes are exactly what ``tarfile`` writes in PAX format (tests/test_archive_io.py checks
it), but built here: each blob is read from the cache straight into one 1 MiB output buffer,
hashed there and written with the headers around it in large pieces, and the kernel is asked
to start writing each piece to disk at once, so the final fsync finds little left to do.
``tarfile`` cost one Python-level header build, a 1 MiB read buffer and two writes per member.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
from collections.abc import Callable, Container, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from .._fs import atomic_writer, start_writeback, write_all
from ..errors import AirgapError
from .hashing import PIPE_MIN, HashPipe
from .layout import MANIFEST, SIGNATURE, blob_member

COPY_BUFSIZE = 1 << 20
COPY_PIECE = 16 << 20  # a kernel copy this much at a time, its writeback started before the next
BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads the archive to whole records
_ZEROS = bytes(RECORD)
_LIMIT = 8**11  # sizes and times this large need a pax header (tarfile writes it)


class BadBlob(AirgapError):
    """A blob that is not what the manifest says: missing, unreadable, of another size or other bytes."""


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = mtime
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = tarfile.REGTYPE
    return ti


_TEMPLATE = _info("", 0, 0).tobuf(tarfile.PAX_FORMAT)  # one ustar block; name, size, mtime and checksum change


_MIDDLE, _TAIL = _TEMPLATE[100:124], _TEMPLATE[156:]  # mode, uid, gid; type, magic, owner names ...
_FIXED_SUM = sum(_MIDDLE) + sum(_TAIL) + 8 * 32  # the checksum is summed with its own field as spaces
_NULS = bytes(100)


def header(name: str, size: int, mtime: int) -> bytes:
    """The header block(s) ``tarfile`` writes for a regular file ``name`` (PAX format).

    Only the name, size, mtime and checksum differ from the template; the checksum is the
    template's fixed part plus the sums of those (one header per file: 300,000 of them)."""
    if not (len(name) <= 100 and name.isascii() and 0 <= size < _LIMIT and 0 <= mtime < _LIMIT):
        return _info(name, size, mtime).tobuf(tarfile.PAX_FORMAT)  # long or non-ASCII name, huge file: a pax header first
    raw = name.encode("ascii")
    numbers = b"%011o\0%011o\0" % (size, mtime)
    checksum = _FIXED_SUM + sum(raw) + sum(numbers)
    return b"".join((raw, _NULS[len(raw) :], _MIDDLE, numbers, b"%06o\0 " % checksum, _TAIL))


class _Out:
    """Archive bytes gathered in two alternating buffers and written out in large pieces.

    While one buffer is written, the hashing thread may still read the other one: a buffer is
    filled again only when the last hash job that reads it (:meth:`track`) is done.
    """

    def __init__(self, fh: BinaryIO, mtime: int, writeback: bool = True) -> None:
        self._fh = fh
        self._writeback_on = writeback  # off for a temporary file that is copied and dropped (.forked)
        self.mtime = mtime
        self._views = [memoryview(bytearray(COPY_BUFSIZE)), memoryview(bytearray(COPY_BUFSIZE))]
        self._readers: list[Future[None] | None] = [None, None]  # the last hash job reading each buffer
        self._current = 0
        self._view = self._views[0]
        self._fill = 0
        self.offset = 0  # bytes of the archive so far
        self._fd = fh.fileno()
        self._synced = 0  # writeback was started up to here

    def add(self, data: bytes) -> None:
        n = len(data)
        if self._fill + n > COPY_BUFSIZE:
            self.flush()
        if n > COPY_BUFSIZE:
            self._write(memoryview(data))
        else:
            self._view[self._fill : self._fill + n] = data
            self._fill += n

    def room(self) -> memoryview:
        """The free part of the buffer (flushing first if it is full); fill it, then :meth:`commit`."""
        if self._fill == COPY_BUFSIZE:
            self.flush()
        return self._view[self._fill :]

    def commit(self, n: int) -> None:
        self._fill += n

    def track(self, reader: Future[None]) -> None:
        """A hash job reads part of the current buffer: do not fill it again before it is done."""
        self._readers[self._current] = reader

    def pad(self) -> None:
        """Zeros up to the next block boundary."""
        self.add(_ZEROS[: -(self.offset + self._fill) % BLOCK])

    def _write(self, view: memoryview) -> None:
        write_all(self._fd, view)  # a big blob a slice at a time (airgap._fs.WRITE_SLICE)
        self.offset += len(view)

    def flush(self) -> None:
        if self._fill:
            self._write(self._view[: self._fill])
            self._fill = 0
            self._current ^= 1
            self._view = self._views[self._current]
            reader, self._readers[self._current] = self._readers[self._current], None
            if reader is not None:
                reader.result()
        self._writeback()

    def _writeback(self) -> None:
        if self._writeback_on and self.offset - self._synced >= COPY_BUFSIZE:
            start_writeback(self._fd, self._synced, self.offset - self._synced)
            self._synced = self.offset

    def copy_from(self, src: int, n: int) -> int:
        """Append up to ``n`` bytes of file ``src`` (from its offset) by a kernel copy; 0 where there is none. A piece
        at a time, each piece's writeback started before the next is copied: the disk writes while the kernel copies
        (an export's body of 300,000 members is some 300 MB, which the final fsync otherwise wrote all at once)."""
        self.flush()
        copied = 0
        while copied < n:
            try:
                k = os.copy_file_range(src, self._fd, min(n - copied, COPY_PIECE))
            except OSError:
                if copied:
                    raise
                return 0  # no copy_file_range here (old kernel, other file systems): the caller copies itself
            if not k:
                break
            copied += k
            self.offset += k
            self._writeback()
        return copied

    def append_file(self, src: int, n: int, what: str) -> None:
        """Append ``n`` bytes of file ``src`` from its offset: by a kernel copy where there is one, else read in pieces."""
        done = self.copy_from(src, n)
        while done < n:
            room = self.room()
            got = os.readv(src, [room[: n - done]])
            if not got:
                raise AirgapError(f"{what}: expected {n} bytes, it ended after {done}; no archive was written")
            self.commit(got)
            done += got

    def finish(self) -> None:
        """The end-of-archive blocks, and zeros up to a whole record."""
        self.add(_ZEROS[: 2 * BLOCK])
        self.add(_ZEROS[: -(self.offset + self._fill) % RECORD])
        self.flush()


def _copy_blob(
    out: _Out, pipe: HashPipe, sha: str, size: int, path: str | os.PathLike[str], fresh: bool, on_bytes: Callable[[int], None] | None
) -> None:
    """Append one cached blob (header, bytes, padding), hashing the bytes as they pass (large ones on ``pipe``).

    ``fresh``: this process downloaded the blob and hashed it as it arrived, moments ago; it is not
    hashed again, and a large one is copied by the kernel (``copy_file_range``).
    """
    if size < PIPE_MIN and not fresh:
        _copy_small(out, sha, size, path, on_bytes)
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadBlob(f"cache file {path}: cannot read it ({exc.strerror}); export again to download it") from None
    h = hashlib.sha256()
    piped = size >= PIPE_MIN
    try:
        actual = os.fstat(fd).st_size
        if actual != size:
            raise BadBlob(f"cache file {path}: expected {size} bytes, found {actual}; delete it and export again")
        out.add(header(blob_member(sha), size, out.mtime))
        remaining = size
        if fresh and piped:
            remaining -= out.copy_from(fd, size)
            if remaining and remaining != size:
                raise BadBlob(f"cache file {path}: expected {size} bytes, it ended after {size - remaining}; delete it and export again")
            if not remaining and on_bytes is not None:
                on_bytes(size)
        while remaining:
            room = out.room()
            if len(room) > remaining:
                room = room[:remaining]
            got = os.readv(fd, [room])
            if not got:
                raise BadBlob(f"cache file {path}: expected {size} bytes, it ended after {size - remaining}; delete it and export again")
            if not fresh:
                if piped:
                    out.track(pipe.update(h, room[:got]))
                else:
                    h.update(room[:got])
            out.commit(got)
            remaining -= got
            if on_bytes is not None:
                on_bytes(got)
    finally:
        os.close(fd)
    out.pad()

    def mismatch(found: str) -> BadBlob:
        return _mismatch(path, sha, found)

    if fresh:
        return
    if piped:
        pipe.expect(h, sha, mismatch)
        pipe.check()
    elif h.hexdigest() != sha:
        raise mismatch(h.hexdigest())


def _mismatch(path: str | os.PathLike[str], sha: str, found: str) -> BadBlob:
    return BadBlob(
        f"cache file {path}: expected sha256 {sha}, found {found}; delete it and export again "
        f"(a file:// upstream's file, read where it lies: it changed after its repodata was read; export again)"
    )


def _copy_small(out: _Out, sha: str, size: int, path: str | os.PathLike[str], on_bytes: Callable[[int], None] | None) -> None:
    """:func:`_copy_blob` of a small blob in three system calls: open, one read of one byte more
    than it should hold straight into the output buffer (a longer file shows, with no ``fstat``), close."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadBlob(f"cache file {path}: cannot read it ({exc.strerror}); export again to download it") from None
    try:
        out.add(header(blob_member(sha), size, out.mtime))
        room = out.room()
        if len(room) <= size:
            out.flush()
            room = out.room()
        got = os.readv(fd, [room[: size + 1]])
        while got < size:  # a short read before the end (not seen on local files): read on
            more = os.readv(fd, [room[got : size + 1]])
            if not more:
                raise BadBlob(f"cache file {path}: expected {size} bytes, it ended after {got}; delete it and export again")
            got += more
        if got > size:
            raise BadBlob(f"cache file {path}: expected {size} bytes, found {os.fstat(fd).st_size}; delete it and export again")
        digest = hashlib.sha256(room[:size]).hexdigest()
    finally:
        os.close(fd)
    if digest != sha:
        raise _mismatch(path, sha, digest)
    out.commit(size)
    out.pad()
    if on_bytes is not None:
        on_bytes(size)


def write_archive(
    target: Path,
    manifest: bytes,
    signature: bytes | None,
    blobs: Iterable[tuple[str, int, str | os.PathLike[str]]],
    mtime: int,
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
    fresh: Container[str] = (),
    body: Callable[[], tuple[int, int]] | None = None,
) -> None:
    """Write ``manifest``, ``signature`` and each ``(sha256, size, path)`` blob to ``target``.

    Every blob is hashed again as it is copied, except those in ``fresh``: blobs this process
    has just downloaded and verified as they arrived (reading them back from the page cache a
    few seconds later checks nothing the first hash did not). ``body``: gives ``(fd, length)`` of
    members :func:`write_body` wrote (and checked) elsewhere, appended after the blobs; called
    when they are written (it may wait for the writer of the body).
    """
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(atomic_writer(Path(target)))  # temp file beside the target, fsynced, renamed
        out = _Out(raw, mtime)
        pipe = stack.enter_context(HashPipe())
        out.add(header(MANIFEST, len(manifest), mtime))
        out.add(manifest)
        out.pad()
        if signature is not None:
            out.add(header(SIGNATURE, len(signature), mtime))
            out.add(signature)
            out.pad()
        _members(out, pipe, blobs, fresh, on_bytes, on_file)
        if body is not None:
            fd, length = body()
            out.append_file(fd, length, f"{target}: the archive's body")
        out.finish()
        pipe.finish()  # every blob hashed and matched before atomic_writer renames the archive into place


def _members(
    out: _Out,
    pipe: HashPipe,
    blobs: Iterable[tuple[str, int, str | os.PathLike[str]]],
    fresh: Container[str],
    on_bytes: Callable[[int], None] | None,
    on_file: Callable[[], None] | None,
) -> None:
    for sha, size, path in blobs:
        _copy_blob(out, pipe, sha, size, path, sha in fresh, on_bytes)
        if on_file is not None:
            on_file()


def write_body(
    fd: int,
    blobs: Iterable[tuple[str, int, str | os.PathLike[str]]],
    mtime: int,
    fresh: Container[str] = (),
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> int:
    """The members :func:`write_archive` would write for ``blobs`` (the same bytes, each checked the same
    way), written to ``fd`` from its offset, for :func:`write_archive`'s ``body``; returns their length.
    Members are 512-byte aligned and hold nothing of their place, so they read the same anywhere."""
    with open(fd, "wb", buffering=0, closefd=False) as raw, HashPipe() as pipe:
        out = _Out(raw, mtime, writeback=False)
        _members(out, pipe, blobs, fresh, on_bytes, on_file)
        out.flush()
        pipe.finish()
        return out.offset
