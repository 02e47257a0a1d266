"""Durable, atomic file-system helpers.

Readers (conda clients, a second airgap process) must never see a half-written file:
everything here writes a temporary file in the target's directory, fsyncs it, renames it
over the target with ``os.replace`` and fsyncs the directory, and removes the temporary
file on any exception.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def named(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` with ``path`` as its file name if it had none (``write`` errors such as ENOSPC name no file)."""
    if exc.filename is None:
        exc.filename = os.fspath(path)
    return exc


@contextlib.contextmanager
def atomic_writer(target: Path, mode: int = 0o644, durable: bool = True, tmp_dir: Path | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` atomically when the block ends cleanly.

    ``tmp_dir``: where the temporary file lives until the rename (on the same file system as ``target``)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=tmp_dir if tmp_dir is not None else target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            named(exc, target)
        raise
    if durable:
        fsync_dir(target.parent)


#: the most bytes handed to one write(2). On this project's test VMs (Firecracker, kernel 6.18), writing 128 MiB
#: into new page-cache pages took 0.41-1.06 s in calls of 4 MiB or more and 0.034-0.068 s in 1 MiB or 256 KiB
#: calls (benchmarks/write_slices.py); warm pages, reads and copy_file_range show no such difference.
WRITE_SLICE = 1 << 20


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd``, at most :data:`WRITE_SLICE` bytes a call."""
    view = memoryview(data)
    done, size = 0, len(view)
    while done < size:
        done += os.write(fd, view[done : done + WRITE_SLICE])


def create_new(path: str, data: bytes | bytearray | memoryview) -> None:
    """A new file at ``path`` (``FileExistsError`` if one is there) holding ``data``, not fsynced: ``open(path, "xb")``
    without its file objects (a full import writes 30,000 shards so: 5 us each)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def atomic_write_bytes(target: Path, data: bytes, mode: int = 0o644, durable: bool = True, tmp_dir: Path | None = None) -> None:
    with atomic_writer(target, mode=mode, durable=durable, tmp_dir=tmp_dir) as fh:
        write_all(fh.fileno(), data)  # the file object has buffered nothing: the bytes go past it


def makedirs_tracked(path: Path, created: list[Path]) -> None:
    """``mkdir -p`` that appends every directory it creates (outermost first) to ``created``."""
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):  # not Linux
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing these bytes to disk now, without waiting (Linux; a no-op elsewhere).

    Only a hint: durability still comes from fsync/syncfs. Written pages otherwise wait in the
    page cache until that final flush, which then waits for all of them; started early, the disk
    works while the CPU hashes and copies the rest. (``length`` 0: to the end of the file.)
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
