"""The lock object of a directory destination: ``ROOT/.airgap/lock``, a :class:`~.lease.LeaseStore`.

Created with a hard link (atomic, and refused if the name exists, on NFS too); replaced by
``rename``; its version is the sha256 of its bytes (every record carries a new generation,
so two versions never share bytes). The compare-and-replace is a read then a rename: two
processes never race on it because both already hold the ``flock`` on the root
(:meth:`~.directory.DirectoryDestination.locked`); the lease adds what ``flock`` lacks —
fencing before each step, and a lock whose owner is known to be gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from .._fs import atomic_write_bytes
from ..faults import point


class FileLeaseStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _tmp(self, data: bytes) -> str:
        tmp = f"{self.path.parent}/.{self.path.name}.{uuid.uuid4().hex[:8]}.airgap-tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def lease_create(self, data: bytes) -> str | None:
        point("lock create")
        self.path.parent.mkdir(exist_ok=True)
        tmp = self._tmp(data)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return None
        finally:
            os.unlink(tmp)
        return hashlib.sha256(data).hexdigest()

    def lease_read(self) -> tuple[bytes, str] | None:
        point("lock read")
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def lease_replace(self, data: bytes, version: str) -> str | None:
        current = self.lease_read()
        if current is None or current[1] != version:
            return None
        point("lock replace")
        atomic_write_bytes(self.path, data)
        return hashlib.sha256(data).hexdigest()

    def lease_delete(self, version: str) -> bool:
        current = self.lease_read()
        if current is None:
            return True
        if current[1] != version:
            return False
        point("lock delete")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return True
