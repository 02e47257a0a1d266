"""Path safety inside a directory destination: airgap never works through a symbolic link.

A directory destination is one tree under one root, locked by one ``flock`` on that root and
rolled back by one journal. A symbolic link below the root (a channel, a subdir, an installer
folder or ``.airgap`` itself) would make an import, clean or receipt read and write somewhere
else: outside the destination, where no lock or journal covers it, or into another channel.
So every directory airgap is about to read or change below the root is checked first, and a
link anywhere on the way is refused with one line that says what to do. The root itself may
be a link (``/srv/conda -> /data/conda``): it is the destination.

Files are never written in place (each write is a new file renamed over the old name), so a
link as the last part of a file's path is replaced, never written through; reading a file
that is a link is refused by :func:`open_nofollow`.

What this does not do: hold the directories open while it works. A local user who can change
the destination's directories between the check and the write can still redirect a write; the
destination must be writable only by whoever runs airgap (see docs/security.md).
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import stat
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .errors import DestinationError


def check_beneath(root: Path | str, path: Path | str) -> None:
    """Refuse if any existing part of ``path`` below ``root`` (``path`` included) is a link.

    ``path`` must be ``root`` or below it (spelled from ``root``, not resolved). Parts that do
    not exist yet are fine: airgap creates them as plain directories.
    """
    root_text = os.fspath(root).rstrip("/") or "/"
    text = os.fspath(path)
    if text == root_text:
        return
    prefix = root_text if root_text.endswith("/") else root_text + "/"
    if not text.startswith(prefix):
        raise DestinationError(f"{text}: expected a path inside the destination {root_text}, found one outside it")
    current = root_text
    for part in text[len(prefix) :].split("/"):
        if not part:
            continue
        if part in (".", ".."):
            raise DestinationError(f"{text}: expected a path inside the destination {root_text}, found a '{part}' part")
        current = current.rstrip("/") + "/" + part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return  # the rest does not exist yet
        if stat.S_ISLNK(st.st_mode):
            raise DestinationError(_link_message(root_text, current))


def _link_message(root: str, link: str) -> str:
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return (
        f"{link}: expected a directory inside the destination {root}, found a symbolic link to {target}; "
        "airgap never reads or writes through links in a destination (they can lead outside it): "
        "replace the link by the directory itself, or use its target as the destination"
    )


def open_nofollow(path: Path | str) -> int:
    """``os.open`` for reading that refuses a link as the last part (``OSError`` ELOOP)."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


def read_nofollow(path: Path | str) -> bytes:
    """The bytes of the file at ``path``; a link there is refused (one line), a missing file raises ``FileNotFoundError``."""
    with open(_open_file(path), "rb") as fh:
        return fh.read()


MAP_FROM = 1 << 20  # smaller files are read: a map costs a system call or two more than it saves
_VIEWS: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()  # the maps view_nofollow gave out that are still in use


def view_nofollow(path: Path | str) -> bytes | mmap.mmap:
    """The bytes of the file at ``path`` as :func:`read_nofollow` gives them, mapped read-only when the file is big.

    A mapped file costs no anonymous memory and no copy: its pages are the page cache's (a 300,000-record
    repodata.json is 124 MiB the kernel would otherwise zero and copy; docs/decisions/0013-mapped-own-files.md).
    Only for files airgap itself replaces by renaming a new one over them, never writes in place: the map
    keeps showing the bytes that were hashed. Objects that keep views of it (``msgspec.Raw``) keep it open."""
    fd = _open_file(path)
    try:
        size = os.fstat(fd).st_size
        if size < MAP_FROM:
            with open(fd, "rb", closefd=False) as fh:
                return fh.read()
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        _VIEWS.add(mapped)
        return mapped
    finally:
        os.close(fd)


def spill(pieces: Iterable[bytes], size: int) -> bytes | mmap.mmap:
    """``pieces`` joined, as :func:`view_nofollow` would give them back from a file: ``size`` bytes or more go to an
    unlinked temporary file, mapped privately (its pages the page cache's, given back by :func:`release_views`).

    For bytes an import keeps views of from start to end: a full archive's repodata blob, decompressed (138 MB
    at 300,000 records), whose records stay its bytes (docs/decisions/0018-archive-records-as-bytes.md)."""
    out = Spill(size)
    for piece in pieces:
        out.write(piece)
    return out.done()


class Spill:
    """Where :func:`spill` puts ``size`` bytes written a piece at a time: memory below ``MAP_FROM``, else an unlinked
    temporary file; :meth:`done` gives them back (a private map of the file). Also for an archive's compressed
    repodata and SBOM blobs, which an import keeps until read (37 MB at 300,000 files, off the heap this way)."""

    def __init__(self, size: int) -> None:
        self._held: io.BytesIO | IO[bytes] = io.BytesIO() if size < MAP_FROM else tempfile.TemporaryFile(prefix="airgap-blob-")

    def write(self, data: bytes | memoryview) -> int:
        return self._held.write(data)

    def done(self) -> bytes | mmap.mmap:
        if isinstance(self._held, io.BytesIO):
            return self._held.getvalue()
        with self._held as fh:  # unlinked: gone with the last view of it
            fh.flush()
            if fh.tell() == 0:
                return b""
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)  # private: airgap.core.lined changes a byte or two
        _VIEWS.add(mapped)
        return mapped


def release_views(*only: object) -> None:
    """Give back the pages of every map :func:`view_nofollow` gave out: they leave this process's resident set
    and stay in the page cache, where the next read finds them again (a minor fault each, no I/O).

    A mapped page counts in the peak RSS once touched, as a heap copy would: a delta import that reads a
    300,000-record index (124 MiB), then writes a new one, held both. Called between passes over a map
    (after the index is parsed; every few MiB while it is copied into the new one): the bytes stay
    where they are, only the resident set shrinks. ``only``: just these objects' pages (those of them that are maps)."""
    if not hasattr(mmap, "MADV_DONTNEED"):  # not every platform has it: the pages then stay until unmapped
        return
    for mapped in [m for m in only if isinstance(m, mmap.mmap)] if only else list(_VIEWS):  # only: these (maps or not)
        if not mapped.closed:
            mapped.madvise(mmap.MADV_DONTNEED)


def _open_file(path: Path | str) -> int:
    try:
        return open_nofollow(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DestinationError(
                f"{path}: expected a file, found a symbolic link to {os.readlink(path)}; "
                "airgap never reads through links in a destination: replace it by the file"
            ) from None
        raise


def open_beneath(root: str, parts: list[str]) -> int:
    """Open ``root/<parts...>`` for reading without following any link on the way.

    Each directory is opened relative to the one before it with ``O_NOFOLLOW``, so a link
    swapped in after the caller resolved the path fails (``OSError``) instead of being followed.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1] if parts else ".", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
