"""One import or clean on a quetz server: check for clashes, upload, wait until quetz lists the files.

quetz has no lock and lists each file the moment it arrives, so a failed change deletes nothing
it uploaded (:meth:`QuetzChange.rollback`); see :mod:`airgap.destinations.quetz`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..core.repodata import Repodata, record_hashes
from ..errors import DestinationError
from .base import Change, IndexChange, OnBytes, Put

if TYPE_CHECKING:
    from .quetz import QuetzDestination

log = logging.getLogger(__name__)

PATCH_FIELDS = ("depends", "constrains", "license", "license_family", "track_features")


class QuetzChange(Change):
    def __init__(self, dest: QuetzDestination) -> None:
        self.dest = dest
        self.uploaded: list[tuple[str, str]] = []  # (subdir, filename) new on the server: named by a failed import (never deleted)
        self.patched = 0  # records whose quetz-built metadata differs from the archive's repodata
        self.records = 0

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """Before anything is uploaded: refuse a file quetz already lists under the same name.

        The import plans only files the destination does not hold with the archive's sha256 and
        size, and quetz never replaces a file (409): a planned name quetz lists with another sha256
        is a clash, found here rather than after every other file was uploaded. One it lists with
        the planned sha256 is a repair (``sync --reset``, after ``verify --into``: quetz stores it
        damaged), which :meth:`QuetzDestination.upload` replaces in place.
        """
        self.dest.ensure_channel()
        clashes = []
        for channel, subdir, filename in packages:
            self.dest._check_channel(channel)
            rd = self.dest.read_repodata(channel, subdir)
            rec = rd.get(filename) if rd is not None else None
            if rec is not None and (sha256 is None or record_hashes(rec)[0] != sha256.get((channel, subdir, filename))):
                clashes.append(f"{subdir}/{filename} (sha256 {record_hashes(rec)[0]})")
        if clashes:
            raise DestinationError(
                f"{self.dest}: expected to upload {len(packages)} file(s) quetz does not hold, found {len(clashes)} "
                f"it holds with other bytes under the same name (first: {clashes[0]}); quetz never replaces "
                "a file: remove it from quetz first. Nothing was uploaded"
            )

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        if not batch:
            return

        def one(p: Put) -> None:
            if self.dest.upload(p):
                self.uploaded.append((p.subdir, p.filename))
            if on_bytes is not None:
                on_bytes(p.blob.size)

        one(batch[0])  # a refused key or role fails on one file, not on many at once
        with ThreadPoolExecutor(self.dest.workers) as pool:
            for future in [pool.submit(one, p) for p in batch[1:]]:
                future.result()

    def publish_index(self, channel: str, subdir: str, repodata: Repodata, changed: IndexChange | None = None) -> None:
        self.dest._check_channel(channel)
        want = {fn: sha for fn, rec in repodata.records() if (sha := record_hashes(rec)[0]) is not None}
        served = self.dest.wait_for(subdir, want, set())
        for fn, rec in repodata.records():
            got = served.get(fn) if served is not None else None
            self.records += 1
            if got is not None and any(_norm(rec.get(k)) != _norm(got.get(k)) for k in PATCH_FIELDS):
                self.patched += 1

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        pass  # quetz's repodata is the inventory

    def commit(self) -> None:
        if self.patched:  # only when it matters: 0 differing records is nothing to warn about
            log.warning(
                "%s: quetz rebuilds repodata from the packages, so upstream repodata patches do not reach it: "
                "%d of %d records differ from the archive's repodata (%s)",
                self.dest,
                self.patched,
                self.records,
                "/".join(PATCH_FIELDS),
            )
        elif self.records:
            log.info("%s: quetz rebuilt the repodata of %d records; none differs from the archive's", self.dest, self.records)
        self.uploaded.clear()

    def rollback(self) -> None:
        """Delete nothing: quetz lists each file the moment it is uploaded, and another import may have seen it since.

        quetz has no lock airgap could hold, so a concurrent import that needed the same file found
        it present and reported it published; deleting it here would break that channel. What this
        change uploaded stays: complete, verified by quetz against its sha256, and listed.
        """
        if self.uploaded:
            log.error(
                "%s: the import failed after uploading %d file(s) (%s); they stay published (quetz lists each file as "
                "it arrives, and another import may rely on it): import again to finish, or clean to remove them",
                self.dest,
                len(self.uploaded),
                ", ".join(f"{s}/{f}" for s, f in self.uploaded[:5]),
            )
        self.uploaded.clear()


def _norm(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value or None
