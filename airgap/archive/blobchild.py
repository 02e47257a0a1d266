"""An import's package blobs read, checked and staged by a second process while the importing one goes on.

An archive's first blobs are its repodata and SBOM (:func:`airgap.ops.collect`'s order), and they
are all the index work of an import needs: checking the archive's index against its manifest,
rendering shards, ``repodata.json``, the names table and the pages of a new subdir (some 6 s of
Python at 300,000 records). The package blobs, the archive's bulk, need only to be read, hashed and
written where the import stages them. So once the importing process has read the first blobs,
:class:`BlobChild` starts a fresh interpreter (``python -m airgap.archive.blobchild``, see
:mod:`.child`) that goes on from the next member's header, makes the very checks the importing
process would (:func:`airgap.archive.blobcopy.copy_blob`, :meth:`.reader.ArchiveStream.members`),
and writes each blob to the file it is told; the importing process waits for it before anything a
client sees changes (:mod:`airgap.ops.import_body`).

The child is told the blobs (sha256, size, where to stage it) in the manifest's order, which is the
archive's, in an unlinked temporary file read a frame at a time: the 300,000 entries of a
conda-forge subdir are never held in either process. An archive whose members come in another
order is still read (the child then looks entries up by sha256, holding them all).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..core.manifest import BlobEntry
from ..errors import AirgapError, ArchiveFormatError
from . import frames
from .child import Reporter, ReportingChild, child_main, os_error, raise_airgap
from .hashing import HashPipe
from .reader import Twice

#: a blob the child checks: sha256, size, the file it is staged in (None: only checked)
Entry = tuple[str, int, str | None]
FIRST_FRAMES = 4  # frames written before the child starts (16,384 blobs: seconds of its work, the rest written in 0.4 s)


class _Work(msgspec.Struct, frozen=True):
    """What the child is told on its standard input."""

    path: str  # the archive, as messages name it
    archive: int  # its descriptor, inherited (opened again: an offset of the child's own)
    start: int  # where the first member the child reads starts (its header)
    entries: int  # the list's descriptor, inherited
    count: int  # entries in it
    total: int  # blobs in the archive (for the message about missing ones)
    seen: list[str]  # blobs the parent read already


class BlobChild:
    """A child process reading the archive at ``path`` from the member whose header starts at ``start``: every
    blob the lists of ``framed`` name checked, each written to its file; ``on_bytes``/``on_files`` (a count) as it reports.
    :meth:`wait` raises what the child met; :meth:`close` stops one still running."""

    def __init__(
        self,
        path: Path,
        archive_fd: int,
        start: int,
        framed: Iterable[list[Entry]],
        count: int,
        total: int,
        seen: list[str],
        on_bytes: Callable[[int], None],
        on_files: Callable[[int], None],
    ) -> None:
        self.path = path
        listing = frames.Growing("airgap-blobs-")
        try:
            rest = iter(framed)
            listing.write(islice(rest, FIRST_FRAMES))  # the child starts on these while the others are written
            work = msgspec.msgpack.encode(_Work(str(path), archive_fd, start, listing.fileno(), count, total, seen))
            self._child = ReportingChild("airgap.archive.blobchild", work, (archive_fd, listing.fileno()), on_bytes, on_files)
            try:
                listing.write(rest)
                if listing.count != count:  # the child would wait for the entries it was promised
                    raise AirgapError(f"{path}: the list of blobs to stage holds {listing.count} entries, not {count}")
            except BaseException:
                self._child.close()
                raise
        finally:
            listing.close()  # the child holds its own descriptor
        self.count = count

    def wait(self) -> None:
        """Wait for the child; raise what stopped it (the archive's :class:`~airgap.errors.IntegrityError`, an
        ``OSError`` staging a blob, ...), as the importing process would have met it."""
        kind, text, status = self._child.outcome()
        if kind == b"ok" and status == 0:
            return
        raise_airgap(kind, text)
        if kind == b"os":
            raise os_error(text)  # naming the staged file, as the one-process stream's error does
        what = f": {text}" if kind == b"err" else f" ended {self._child.ended(status)}"
        raise AirgapError(f"{self.path}: the process checking the archive's packages{what}; nothing was imported")

    def close(self) -> None:
        self._child.close()


_KIND = list[tuple[str, int, str | None]]


class _Expected:
    """The blobs the child is told of, taken as the archive's members name them: the next one in the list's order,
    or (an archive in another order) any, by sha256."""

    def __init__(self, fh: BinaryIO, count: int, seen: list[str]) -> None:
        self._fh, self._count, self._head = fh, count, frozenset(seen)
        self._frames = frames.read(fh, _KIND, count)  # as the importing process writes them
        self._frame: list[Entry] = []
        self._at = 0  # in the frame
        self._next = 0  # index of the next entry in the list
        self._done = bytearray(count)
        self._by_sha: dict[str, tuple[int, int, str | None]] | None = None
        self.target: str | None = None

    def _peek(self) -> Entry | None:
        if self._at == len(self._frame):
            self._frame, self._at = next(self._frames, []), 0
        return self._frame[self._at] if self._frame else None

    def in_order(self) -> Entry | None:
        """The list's next entry while the members come in its order; None past its end or once they have not."""
        return self._peek() if self._by_sha is None else None

    def taken(self, entry: Entry) -> None:
        """:meth:`in_order`'s entry was met, and is this one's."""
        self._done[self._next] = 1
        self._next += 1
        self._at += 1
        self.target = entry[2]

    def take(self, sha: str) -> BlobEntry | None:
        if sha in self._head:
            raise Twice
        if self._by_sha is None:
            entry = self._peek()
            if entry is not None and entry[0] == sha:
                self.taken(entry)
                return BlobEntry(sha, entry[1], "package")
            self._fh.seek(0)  # out of the list's order: every entry by sha256 from now on
            every = (e for frame in frames.read(self._fh, _KIND, self._count) for e in frame)
            self._by_sha = {e[0]: (i, e[1], e[2]) for i, e in enumerate(every)}
        hit = self._by_sha.get(sha)
        if hit is None:
            return None
        i, size, self.target = hit
        if self._done[i]:
            raise Twice
        self._done[i] = 1
        return BlobEntry(sha, size, "package")

    def missing(self) -> tuple[int, str | None]:
        """How many were not taken, and the first of them in the list's order."""
        left = self._count - self._done.count(1)
        if not left:
            return 0, None
        first = self._done.find(0)
        if self._by_sha is None:
            entry = self._peek()
            return left, entry[0] if entry is not None else None
        return left, next(sha for sha, (i, _, _) in self._by_sha.items() if i == first)


def _run(data: bytes, report: Reporter) -> bytes:
    """The child: check (and stage) every blob it is told of, from the member at ``start`` on."""
    from .blobcopy import copy_blob, stage_bytes
    from .plainmember import PlainStream
    from .reader import checked

    work = msgspec.msgpack.decode(data, type=_Work)
    parent = os.getppid()
    with os.fdopen(work.entries, "rb", buffering=1 << 20) as listing:
        expected = _Expected(listing, work.count, work.seen)
        archive = os.fdopen(work.archive, "rb", buffering=1 << 20)
        stream = PlainStream(Path(work.path), archive, work.start)
        with stream, HashPipe() as pipe:
            members = stream.members(expected.take)
            n = 0
            while True:
                nxt = expected.in_order()  # the blob due next: read with its header at once where it is plainly that
                if nxt is not None and nxt[2] is not None and (got := stream.plain_member(nxt[0], nxt[1])) is not None:
                    blob = BlobEntry(nxt[0], nxt[1], "package")
                    stage_bytes(checked(got, blob, f"{work.path}: blobs/sha256/{blob.sha256}"), nxt[2])
                    expected.taken(nxt)
                    report.bytes(blob.size)
                else:  # anything else the careful way, from the same header
                    member = next(members, None)
                    if member is None:
                        break
                    entry, fh = member
                    copy_blob(entry, fh, expected.target, f"{work.path}: blobs/sha256/{entry.sha256}", report.bytes, pipe)
                    pipe.check()
                report.file()
                n += 1
                if not n % 256 and os.getppid() != parent:  # the importing process is gone (and no PR_SET_PDEATHSIG said so)
                    os._exit(1)  # asked every 256 files: a system call per file was 0.2 s of 300,000
            pipe.finish()
        left, first = expected.missing()
        if left:
            raise ArchiveFormatError(f"{work.path}: expected {work.total} blobs, {left} missing (first: blobs/sha256/{first})")
    return b"%d" % work.count


if __name__ == "__main__":
    child_main(_run)
