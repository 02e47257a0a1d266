"""The transaction engine: one conda destination over any :class:`~airgap.destinations.store.ObjectStore`.

:class:`StoreDestination` implements the :class:`~airgap.destinations.base.Destination` and
:class:`~airgap.destinations.base.Change` interface once, so a store only moves bytes. Layout:
``<channel>/<subdir>/{<index files>, <package files>}``, airgap's state under ``.airgap/``
(``receipt.json``, ``lock``, ``sbom/``, and a change's area while it runs).

The order of a change (the operations call it; the engine journals and fences each step):
package files, then index files (each :mod:`~airgap.destinations.formats` format's files in its
own order, ``repodata.json`` last), then the receipt, then commit, then removals (outside the
change: the committed index no longer lists them). Every key the change will touch is
journaled before the first write (:mod:`airgap.destinations.journal`); a failed change is
undone at once, a killed one by the next run that takes the lock (:meth:`StoreDestination.locked`).

Not here: the lease's heartbeat and fencing (``destinations/lease.py`` of the locks work; the
engine's lock is the same create/read/replace/delete protocol without renewal, and
:meth:`StoreChange._fence` is where the lease's ``check`` goes), the directory and S3 stores
(docs/decisions/0004-engine-migration.md). Package files are stored ``workers`` at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import DestinationError, LockError
from ..manifest import is_safe_channel_name
from ..receipt import REBUILD
from ..repodata import Repodata
from . import formats as _formats
from .base import RECEIPT_FORMAT, Change, Destination, OnBytes, Put, empty_receipt, parse_index
from .journal import AREA_PREFIX, LOCK, STATE, Journal, recover
from .store import KeyLease, ObjectStore, check_key

log = logging.getLogger(__name__)

RECEIPT = f"{STATE}/receipt.json"
DEFAULT_STALE_AFTER = 6 * 3600.0
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,40}\Z")


def receipt_bytes(receipt: dict[str, Any]) -> bytes:
    """The receipt as every backend stores it (sorted keys, no spaces)."""
    return json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_receipt_bytes(data: bytes | None, where: str) -> dict[str, Any]:
    """A stored receipt as a dict (none: an empty one); unreadable or of another format is a DestinationError."""
    if data is None:
        return empty_receipt()
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DestinationError(f"{where}: expected an airgap receipt, found something unreadable ({str(exc)[:100]}); {REBUILD}") from None
    if not isinstance(doc, dict) or doc.get("format") != RECEIPT_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DestinationError(f"{where}: expected format {RECEIPT_FORMAT}, found {str(found)[:40]!r}; {REBUILD}")
    doc.setdefault("archives", [])
    doc.setdefault("channels", {})
    return doc


@contextlib.contextmanager
def hold_lock(store: ObjectStore, where: str, timeout: float, stale_after: float, poll: float = 0.2) -> Iterator[None]:
    """Exclusive access through one lock object: created if absent; taken over (conditionally on the version
    seen) once that version has not changed for ``stale_after`` seconds of this process's clock.

    The interim lock of this first step: no renewal, so a dead owner's lock is taken only by a run that
    waits ``stale_after`` (tests pass 0). The lease (``destinations/lease.py``) replaces it, over the same
    four store calls (:class:`~airgap.destinations.store.KeyLease`), with renewals, fencing and a dead
    owner on this host taken over at once.
    """
    lease = KeyLease(store, LOCK)
    record = json.dumps({"owner": f"{socket.gethostname()}:{os.getpid()}", "token": uuid.uuid4().hex, "time": time.time()}).encode()
    deadline = time.monotonic() + timeout
    seen: tuple[str, float] | None = None
    waited = False
    while True:
        version = lease.lease_create(record)
        if version is not None:
            break
        current = lease.lease_read()
        if current is None:
            continue  # released meanwhile
        now = time.monotonic()
        if seen is None or seen[0] != current[1]:
            seen = (current[1], now)
        if now - seen[1] >= stale_after:
            version = lease.lease_replace(record, current[1])
            if version is not None:
                log.warning("%s: taking over a lock unchanged for %.0fs (lock_stale_after)", where, now - seen[1])
                break
            seen = None
            continue
        if now >= deadline:
            raise LockError(
                f"{where}: another airgap import or clean holds the lock; waited {timeout:.0f}s (if none is running, delete {where}/{LOCK})"
            )
        if not waited:
            log.warning("%s: another airgap process holds the lock; waiting up to %.0fs", where, timeout)
            waited = True
        time.sleep(poll)
    try:
        yield
    finally:  # a killed run never gets here: its lock goes stale
        try:
            if not lease.lease_delete(version):
                log.warning("%s: the lock was no longer this process's; left it", where)
        except Exception as exc:
            log.warning("%s: could not release the lock (%s); delete %s/%s", where, exc, where, LOCK)


class StoreDestination(Destination):
    """A conda destination over a store (see the module docstring)."""

    kind = "store"

    def __init__(
        self,
        store: ObjectStore,
        *,
        index_formats: tuple[str, ...] = _formats.DEFAULT,
        lock_stale_after: float = DEFAULT_STALE_AFTER,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.formats = _formats.select(index_formats)
        self.lock_stale_after = float(lock_stale_after)
        self.workers = max(1, int(workers))  # package files stored in parallel
        self._held = False

    def __str__(self) -> str:
        return str(self.store)

    def key(self, *parts: str) -> str:
        return check_key("/".join(p for p in parts if p))

    # -- reading -----------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.store.exists()

    def channel_url(self, channel: str) -> str:
        return self.store.url(self.key(channel))

    def read_receipt(self) -> dict[str, Any]:
        return parse_receipt_bytes(self.store.get(RECEIPT), f"{self}/{RECEIPT}")

    def write_receipt(self, receipt: dict[str, Any]) -> str:
        self.store.put(RECEIPT, receipt_bytes(receipt))
        return f"{self}/{RECEIPT}"

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        key = self.key(channel, subdir, "repodata.json")
        return parse_index(self.store.get(key), subdir, f"{self}/{key}")

    def inventory(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, _size in self.store.list_prefix(""):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "repodata.json" and not parts[0].startswith(".") and is_safe_channel_name(parts[0]):
                out.setdefault(parts[0], []).append(parts[1])
        return {ch: sorted(subs) for ch, subs in sorted(out.items())}

    def files(self, channel: str, subdir: str) -> dict[str, int]:
        base = self.key(channel, subdir) + "/"
        return {key[len(base) :]: size for key, size in self.store.list_prefix(base) if "/" not in key[len(base) :]}

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        chunks = self.store.chunks(self.key(channel, subdir, filename))
        if chunks is None:
            return None
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        return h.hexdigest()

    # -- changing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The lock, then recovery: whoever takes the lock first undoes what a killed run left."""
        with hold_lock(self.store, str(self), timeout, self.lock_stale_after):
            self._held = True
            try:
                for line in recover(self.store):
                    log.warning("%s: %s", self, line)
                yield
            finally:
                self._held = False

    def recover(self) -> list[str]:
        return recover(self.store)

    def begin(self, label: str) -> StoreChange:
        if not self._held:
            raise DestinationError(f"{self}: a change needs the lock (internal error)")
        if not _LABEL.match(label):
            raise DestinationError(f"{self}: expected a change label of letters, digits, '.', '_' and '-', found {label!r}")
        return StoreChange(self, Journal(self.store, f"{AREA_PREFIX}{label}-{uuid.uuid4().hex[:12]}/"))

    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        self.store.delete([self.key(c, s, f) for c, s, f in files])

    def put_page(self, channel: str, subdir: str | None, data: bytes, name: str = "index.html") -> None:
        self.store.put(self.key(channel, subdir or "", name), data)

    def has_page(self, channel: str, subdir: str, name: str) -> bool:
        return self.store.get(self.key(channel, subdir, name)) is not None


class StoreChange(Change):
    """One journaled change of a :class:`StoreDestination`; blobs are read where they lie (no staging)."""

    staging = None

    def __init__(self, dest: StoreDestination, journal: Journal) -> None:
        self.dest = dest
        self.store = dest.store
        self.journal = journal
        self._listed: dict[str, set[str]] = {}
        self._receipt_written = False
        self._done = False
        self._keep = False

    def _exists(self, key: str) -> bool:
        """Was ``key`` there when the change began? (one listing per folder, not a request per key)"""
        folder, _, name = key.rpartition("/")
        if folder not in self._listed:
            base = folder + "/" if folder else ""
            self._listed[folder] = {k[len(base) :] for k, _ in self.store.list_prefix(base) if "/" not in k[len(base) :]}
        return name in self._listed[folder]

    def _prepare(self, key: str) -> str:
        self.journal.prepare(key, self._exists(key))
        return key

    def _fence(self, step: str) -> None:
        """Before each step: the change is still open (and, with a lease, this process still holds the lock)."""
        if self._done:
            raise DestinationError(f"{self.dest}: {step} after the change ended (internal error)")
        if self._receipt_written and step != "commit":
            raise DestinationError(f"{self.dest}: {step} after the receipt; the receipt is written last (internal error)")

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        self._fence("plan")
        for channel, subdir, filename in packages:
            self._prepare(self.dest.key(channel, subdir, filename))
        for channel, subdir in indexes:
            for fmt in self.dest.formats:
                for name in (*fmt.names, *fmt.stale):
                    self._prepare(self.dest.key(channel, subdir, name))
        self._prepare(RECEIPT)
        self.journal.save()

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        self._fence("placing package files")
        keys = [self._prepare(self.dest.key(p.channel, p.subdir, p.filename)) for p in batch]  # journaled before any is stored
        if self.dest.workers == 1 or len(batch) < 2:
            for key, p in zip(keys, batch, strict=True):
                self.store.put_blob(key, p.blob, on_bytes)
            return
        # leaving the block waits for every upload: a rollback never races an upload still running
        with ThreadPoolExecutor(self.dest.workers, thread_name_prefix="airgap-put") as pool:
            for future in [pool.submit(self.store.put_blob, key, p.blob, on_bytes) for key, p in zip(keys, batch, strict=True)]:
                future.result()

    def publish_index(self, channel: str, subdir: str, repodata: Repodata) -> None:
        self._fence("publishing an index")
        for fmt in self.dest.formats:
            for name, data in fmt.render(subdir, repodata):
                self.store.put(self._prepare(self.dest.key(channel, subdir, name)), data)
        for fmt in self.dest.formats:
            for name in fmt.stale:  # never leave a file that disagrees with the new index
                key = self.dest.key(channel, subdir, name)
                if self._exists(key):
                    self._prepare(key)
                    self.store.delete([key])

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        self._fence("writing the receipt")
        self.store.put(self._prepare(RECEIPT), receipt_bytes(receipt))
        self._receipt_written = True

    def put_document(self, name: str, data: bytes) -> str | None:
        self._fence("keeping a document")
        self.store.put(self._prepare(self.dest.key(STATE, name)), data)
        return f"{STATE}/{name}"

    def commit(self) -> None:
        self._fence("commit")
        self.journal.commit()
        self._done = True

    def rollback(self) -> None:
        self._done = True
        if not self.journal.rollback():  # keep the saved journal: the next run that takes the lock retries the undo
            self._keep = True
            log.error(
                "%s: the change could not be undone completely; the next import or clean retries from %s", self.dest, self.journal.area
            )

    def close(self) -> None:
        if not self._done and not self.journal.saved:  # begun, never planned: backups a failed plan copied may be there
            with contextlib.suppress(Exception):
                self.journal.discard()
