"""Durable writes of many small files at once, for :class:`~airgap.destinations.localstore.LocalStore`.

An fsync costs milliseconds on a virtual disk whatever the file's size, so a store that writes
one small file per package name (CEP-16 shards, name pages) spends its time waiting for the
disk. :func:`write_temps` writes every temporary file first and makes them durable together:
an fsync each for a few files, one ``syncfs`` of the file system past :data:`SYNC_EACH`. The
caller renames them into place and fsyncs each folder once. Nothing here renames or knows keys.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence

from .._fs import named, write_all

SYNC_EACH = 4  # more files than this are flushed with one syncfs instead of an fsync each


def syncfs(path: str) -> None:
    """Flush the file system holding ``path`` (one call instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the running process's symbols, libc included
        if hasattr(libc, "syncfs") and libc.syncfs(fd) == 0:
            return
        os.sync()
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, name: str) -> None:
    try:
        write_all(fd, data)  # a slice at a time (airgap._fs.WRITE_SLICE): one call for 124 MiB was 20x slower here
    except OSError as exc:  # ENOSPC names no file: name the target
        raise named(exc, name) from None


def write_temps(stem: str, datas: Sequence[bytes], names: Sequence[str]) -> list[str]:
    """Write ``datas[i]`` to the new file ``{stem}{i}.airgap-tmp`` (mode 0644), all durable when this returns.

    ``names``: the targets, for messages. On a failure the files written so far are removed."""
    tmps: list[str] = []
    try:
        for i, (data, name) in enumerate(zip(datas, names, strict=True)):
            tmp = f"{stem}{i}.airgap-tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            tmps.append(tmp)
            try:
                os.fchmod(fd, 0o644)  # whatever the umask: what a client serves must be readable
                _write_all(fd, data, name)
                if len(datas) <= SYNC_EACH:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if len(datas) > SYNC_EACH:
            syncfs(os.path.dirname(stem) or ".")
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    return tmps
