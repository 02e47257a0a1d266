"""The lock of a :class:`~airgap.destinations.localstore.LocalStore`: ``flock`` on the root while a lease
is taken or given back, and the four conditional primitives of the lease over one small file (a hard link
makes ``create`` exclusive; the version is the content's sha256)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .._fs import atomic_write_bytes, fsync_dir
from .._safepath import read_nofollow
from ..errors import LockError
from ..faults import point

log = logging.getLogger("airgap.destinations.localstore")


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalLock:
    """Mixed into ``LocalStore``, which provides the paths and the checked folder walk."""

    text: str
    _base: str
    _checked: set[str]

    def _folder(self, key: str, create: bool = False) -> str:
        raise NotImplementedError

    def _tmp(self, key: str, suffix: str) -> str:
        raise NotImplementedError

    def _remove(self, keys: list[str], what: str | None) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def exclusive(self, timeout: float, poll: float = 0.2) -> Iterator[float]:
        """``flock`` on the root (created first) for the body; yields the seconds left of ``timeout``."""
        fd = os.open(self.text, os.O_RDONLY | os.O_DIRECTORY)
        try:
            deadline = time.monotonic() + timeout
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"{self}: another airgap import or clean holds the lock; waited {timeout:.0f}s (try again when it has finished)"
                    )
                if not waited:
                    log.warning("%s: another airgap process holds the lock; waiting up to %.0fs", self, timeout)
                    waited = True
                time.sleep(poll)
            self._checked.clear()  # a new lock: the tree may have changed since
            yield max(0.0, deadline - time.monotonic())
        finally:
            os.close(fd)  # closing releases the flock

    def create(self, key: str, data: bytes) -> str | None:
        folder = self._folder(key, create=True)
        point("lock create")
        tmp = self._tmp(key, f"{uuid.uuid4().hex[:8]}.airgap-tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, (self._base + key))
        except FileExistsError:
            return None
        finally:
            os.unlink(tmp)
        fsync_dir(Path(self._base + folder if folder else self.text))
        return _version(data)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        self._folder(key)
        point("lock read")
        try:
            data = read_nofollow(self._base + key)
        except FileNotFoundError:
            return None
        return data, _version(data)

    def replace_if(self, key: str, data: bytes, version: str) -> str | None:
        current = self.read_versioned(key)
        if current is None or current[1] != version:
            return None
        point("lock replace")
        atomic_write_bytes(Path(self._base + key), data)
        return _version(data)

    def delete_if(self, key: str, version: str) -> bool:
        current = self.read_versioned(key)
        if current is None:
            return True
        if current[1] != version:
            return False
        point("lock delete")
        self._remove([key], None)
        return True
