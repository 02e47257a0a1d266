"""The archive's package members written by a second process while the exporting one renders the SBOM.

The manifest, the archive's first member, names the SBOM blob by its sha256, so the SBOM is
rendered before the archive's first byte. For 300,000 small files that is some 5 s of Python,
and writing the 300,000 package members is about as long again, one after the other on one core.
:class:`BodyChild` starts a fresh interpreter (``python -m airgap.archive.forked``) that writes
the package members (:func:`.writer.write_body`: the same bytes, each file checked the same way)
into an unlinked temporary file beside the archive, while the exporting process goes on; that
one then writes the head (manifest, signature, repodata and SBOM blobs) and appends the body by
a kernel copy (:func:`.writer.write_archive`'s ``body``). The archive is byte for byte what one
process writes (tests/test_forked_body.py).

A fresh interpreter, not ``fork``: a forked child shares the exporter's heap copy-on-write, and
Python's reference counts write to every object the exporter touches, so the kernel copied most
of a 900 MB heap page by page (3 s more system time at 300,000 files); the child needs only the
list of files, in the order it writes them, which it reads a frame at a time (:mod:`.frames`:
decoded at once, the 300,000 entries cost the child 170 MB). It reports its progress and its
outcome on its standard output.

The body is written twice (the temporary file, then the archive), so the export uses this only
where that costs less than the SBOM (:func:`worth_it`): many small files, a body that stays in
the page cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from ..errors import AirgapError
from . import frames
from .child import Reporter, ReportingChild, child_main, os_error, to_line
from .writer import BadBlob

AVAILABLE = os.name == "posix"  # a descriptor passed to the child (pass_fds)
MIN_FILES = 10_000  # fewer: the SBOM takes a fraction of a second, not worth a process
MAX_AVERAGE = 16 << 10  # bytes per member: copying more than this costs about what its SBOM component does
MAX_BODY = 1 << 30  # a body this large would leave the page cache and double the disk's writes

#: a member as the child is told of it: sha256, size, where it lies (a path, or a file:// folder URL's number in the
#: list of folders and a file name), hashed already
Sent = tuple[str, int, str | tuple[int, str], bool]
_KIND = list[Sent]


class _Work(msgspec.Struct, frozen=True):
    """What the child is told on its standard input."""

    fd: int  # the temporary file, inherited
    mtime: int
    entries: int  # the list of members (:mod:`.frames`), inherited
    folders: list[str]  # the folder URLs the entries name


def worth_it(count: int, total: int) -> bool:
    """Whether writing ``count`` members of ``total`` bytes in a child pays for writing them twice."""
    if not AVAILABLE or count < MIN_FILES:
        return False
    body = total + 1024 * count  # a header and the padding to the next block, at most, per member
    return body <= MAX_BODY and body <= MAX_AVERAGE * count


class BodyChild:
    """A child process writing the members ``framed`` lists (:mod:`.frames`), in their order, to a temporary file in
    ``directory``; ``folders``: the folder URLs they name, by number.

    ``on_bytes``/``on_files`` (a count) are called from a thread of this process as the child reports.
    :meth:`result` waits and gives ``(fd, length)``; it raises what the child met
    (:class:`BadBlob`, ``OSError``). Leaving the block stops a child still running."""

    def __init__(
        self,
        directory: Path,
        framed: Iterable[list[Sent]],
        folders: list[str],
        mtime: int,
        on_bytes: Callable[[int], None],
        on_files: Callable[[int], None],
    ) -> None:
        self._directory = directory
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".airgap-body-")
        os.unlink(tmp)  # nothing is left behind, however the export ends
        self._fd = fd
        self._child: ReportingChild | None = None
        try:
            listing, self.count = frames.listing(framed, ".airgap-list-", os.fspath(directory))
            with listing:  # the child holds its own descriptor
                work = msgspec.msgpack.encode(_Work(fd, mtime, listing.fileno(), folders))
                self._child = ReportingChild("airgap.archive.forked", work, (fd, listing.fileno()), on_bytes, on_files)
        except BaseException:
            os.close(fd)
            raise

    def __enter__(self) -> BodyChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self) -> tuple[int, int]:
        """Wait for the child: ``(fd, length)`` of the members it wrote, the file's offset at its start."""
        assert self._child is not None
        kind, text, status = self._child.outcome()
        if kind == b"ok" and status == 0:
            os.lseek(self._fd, 0, os.SEEK_SET)
            return self._fd, int(text)
        if kind == b"bad":
            raise BadBlob(text)
        if kind == b"os":
            raise os_error(text, os.fspath(self._directory / ".airgap-body"))
        if kind in (b"err", b"ae"):
            raise AirgapError(f"{self._directory}: writing the archive's packages failed: {text}; no archive was written")
        raise AirgapError(
            f"{self._directory}: the process writing the archive's packages ended {self._child.ended(status)}; no archive was written"
        )

    def close(self) -> None:
        """Stop the child if it still runs, and let go of the temporary file."""
        if self._child is not None:
            self._child.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _run(data: bytes, report: Reporter) -> bytes:
    """The child: write the members it is told of; the ``ok`` text is their length."""
    from .. import faults
    from .writer import write_body

    work = msgspec.msgpack.decode(data, type=_Work)
    fresh: set[str] = set()
    with os.fdopen(work.entries, "rb", buffering=1 << 20) as listing:
        where = _where(frames.read(listing, _KIND), work.folders, fresh)
        faults.point("archive body")  # tests: AIRGAP_FAULT stops or fails the child here
        return b"%d" % write_body(work.fd, where, work.mtime, fresh, report.bytes, report.file)


def _where(read: Iterable[list[Sent]], urls: list[str], fresh: set[str]) -> Iterator[tuple[str, int, str]]:
    """Each member's sha256, size and path, a frame at a time; while it yields a frame's entries, ``fresh`` holds
    those of the frame hashed already (the writer asks of the entry it was just given)."""
    from ..upstream.cache import in_place_path

    folders: dict[str, str] = {}
    for frame in read:
        fresh.clear()
        fresh.update(sha for sha, _, _, hashed in frame if hashed)
        for sha, size, at, _ in frame:
            yield sha, size, at if isinstance(at, str) else in_place_path(urls[at[0]], at[1], folders)


def _bad(exc: BaseException) -> bytes | None:
    return b"bad " + to_line(str(exc)) if isinstance(exc, BadBlob) else None


if __name__ == "__main__":
    child_main(_run, _bad)
