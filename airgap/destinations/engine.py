"""The transaction engine: one conda destination over any :class:`~airgap.destinations.store.ObjectStore`.

:class:`StoreDestination` implements the :class:`~airgap.destinations.base.Destination` and
:class:`~airgap.destinations.base.Change` interface once, so a store only moves bytes. Layout:
``<channel>/<subdir>/{<index files>, <package files>}``, airgap's state under ``.airgap/``
(``receipt.json``, ``lock``, ``sbom/``, and a change's area while it runs).

The order of a change (the operations call it; the engine journals and fences each step): package files,
then index files (each :mod:`~airgap.destinations.formats` format's in its own order, ``repodata.json`` last;
a new subdir's may go into its staged folder first, placed with it), then the receipt, commit, removals.
Every key the change will touch is journaled before the first write (:mod:`airgap.destinations.journal`);
a failed change is undone at once, a killed one by the next run that takes the lock (:meth:`StoreDestination.locked`).

The lock is the lease of :mod:`airgap.destinations.lease` over ``.airgap/lock``: renewed by a heartbeat, a dead owner's
taken over by the lease's rules, checked (:meth:`StoreChange._fence`) before every step. Packages go ``workers`` at a time."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from .._heap import give_back
from ..core.held_bytes import receipt_pieces
from ..core.receipt import receipt_json
from ..core.repodata import Repodata
from ..errors import DestinationError
from ..signals import deferred_signals
from . import formats as _formats
from .base import BlobRef, Change, Destination, IndexChange, OnBytes, Put
from .journal import AREA_PREFIX, LOCK, STAGED_DIR, STATE, Journal, key_of, recover
from .lease import DEFAULT_STALE_AFTER, Lease, LeaseHolder, held
from .listings import ask_keys, index_keys, kept_shards
from .parallel import each
from .store import KeyLease, LocalFiles, ObjectStore, check_key
from .store_reads import RECEIPT, StoreReads
from .streamed import folder_for, put_in_order, put_pieces, read_back, write_file

log = logging.getLogger(__name__)

_LABEL = re.compile(r"[A-Za-z0-9._-]{1,40}\Z")
_PLAN_CHUNK = 16384  # package keys journaled at a time


class StoreDestination(StoreReads, LeaseHolder, Destination):
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
        self._lease: Lease | None = None
        StoreReads.__init__(self, store)

    def __str__(self) -> str:
        return str(self.store)

    def write_receipt(self, receipt: dict[str, Any]) -> str:
        self.forget_listings()
        self.store.put(RECEIPT, receipt_json(receipt))
        return f"{self}/{RECEIPT}"

    # -- changing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The lock, then recovery: whoever takes the lock first undoes what a killed run left."""
        with held(KeyLease(self.store, LOCK), f"{self}/{LOCK}", timeout, self.lock_stale_after) as lease:
            self._lease = lease
            try:
                for line in self.recover():
                    log.warning("%s: %s", self, line)
                self.remember_listings(True)
                yield
            finally:
                self._lease = None
                self.remember_listings(False)

    def recover(self) -> list[str]:
        """Under the lock: undo what killed runs left (one line per thing done)."""
        with deferred_signals():  # the undo finishes before anything else; a journal goes only after it
            return recover(self.store)

    def begin(self, label: str) -> StoreChange:
        if self._lease is None:
            raise DestinationError(f"{self}: a change needs the lock (internal error)")
        if not _LABEL.match(label):
            raise DestinationError(f"{self}: expected a change label of letters, digits, '.', '_' and '-', found {label!r}")
        return StoreChange(self, Journal(self.store, f"{AREA_PREFIX}{label}-{uuid.uuid4().hex[:12]}/"))

    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        self.fence()  # a new owner may have listed one of these names again
        self.forget_listings()
        self.store.delete([self.key(c, s, f) for c, s, f in files])

    def put_page(self, channel: str, subdir: str | None, data: bytes, name: str = "index.html") -> None:
        self.forget_listings()
        self.store.put(self.key(channel, subdir or "", name), data)

    def put_pages(self, channel: str, subdir: str, pages: list[tuple[str, bytes]]) -> None:
        keys = [(self.key(channel, subdir, name), data) for name, data in pages]  # a directory's put_many: one flush for all
        put_in_order(self.store, self.store if isinstance(self.store, LocalFiles) else None, keys, {key for key, _ in keys})

    def has_page(self, channel: str, subdir: str, name: str) -> bool:
        return self.store.get(self.key(channel, subdir, name)) is not None


class StoreChange(Change):
    """One journaled change of a :class:`StoreDestination`. Blobs are read where they lie, or, on a store of
    local files (:class:`~airgap.destinations.store.LocalFiles`), staged inside it and moved into place."""

    def __init__(self, dest: StoreDestination, journal: Journal) -> None:
        self.dest = dest
        self.store = dest.store
        self.journal = journal
        self.local = self.store if isinstance(self.store, LocalFiles) else None
        self.staging = self.local.staging_dir(journal.area) if self.local is not None else None
        self._listed: dict[str, dict[str, int]] = {}
        self._known: dict[str, bool] = {}  # keys asked one by one (a KeySizes store, its folder not listed)
        self._published: dict[tuple[str, str], dict[str, str]] = {}  # (channel, subdir) -> {index file: sha256} written
        self._whole: dict[tuple[str, str], str] = {}  # new subdirs staged whole -> their folder key
        self._ahead: set[tuple[str, str]] = set()  # those not placed yet: their index files are written into the folder
        self._receipt_written = self._done = self._keep = False
        self._staged_receipt: tuple[dict[str, Any], BlobRef] | None = None  # stage_receipt's (receipt, its file)

    def _exists(self, key: str) -> bool:
        """Was ``key`` there when the change began? (one listing per folder, not a request per key; a journaled key: the journal's answer)"""
        if key in self.journal:
            return self.journal.backup_of(key) is not None
        folder, _, name = key.rpartition("/")
        if folder == STATE or folder.startswith(STATE + "/"):  # not the change areas (staged blobs) below it
            return any(k == key for k, _ in self.store.list_prefix(key))
        if folder not in self._listed:
            if key not in self._known and (sized := self.dest.sizes_in(folder, [name])) is not None:
                self._known[key] = name in sized  # the folder is big and unlisted: this key only
            if key in self._known:
                return self._known[key]
            self._listed[folder] = self.dest.listing(folder)  # the one the import's plan read, if it did
        return name in self._listed[folder]

    def _prepare(self, key: str) -> str:
        if key not in self.journal:  # planned keys (a full import's 300,000) are journaled: no question per key
            self.journal.prepare(key, self._exists(key))
        return key

    def _fence(self, step: str) -> None:
        """Before each step: the change is still open (and, with a lease, this process still holds the lock)."""
        if self._done:
            raise DestinationError(f"{self.dest}: {step} after the change ended (internal error)")
        if self._receipt_written and step != "commit":
            raise DestinationError(f"{self.dest}: {step} after the receipt; the receipt is written last (internal error)")
        self.dest.fence()

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        self._fence("plan")
        folders = {(c, s): self.dest.key(c, s) for c, s in {(c, s) for c, s, _ in packages}}  # the journal keeps (folder, name)
        for folder in self._whole.values():  # a new subdir made whole: one entry, not one per file
            self.journal.prepare_folder(folder)
        for at in range(0, len(packages), _PLAN_CHUNK):  # a chunk's keys at a time (all at once: ~45 MB more at 300,000)
            chunk = [(folders[c, s], name) for c, s, name in packages[at : at + _PLAN_CHUNK] if (c, s) not in self._whole]
            self._journal_all(chunk)  # the caller's names
        self._journal_all([k.rpartition("/")[::2] for k in [*(k for c, s in indexes for k in index_keys(self.dest, c, s)), RECEIPT]])
        self.journal.save()  # one save, however many files
        if self.local is not None and not self.later:
            self.local.flush()  # staged bytes, backups and journal reach the disk before anything points at them

    def put_ahead(self, channel: str, subdir: str, files: list[tuple[str, bytes]]) -> bool:
        if ahead := (channel, subdir) in self._ahead and self.local is not None:
            self.local.write_staged([(self._index_key(channel, subdir, name), data) for name, data in files])
        return ahead

    def staged_written(self) -> None:
        if self.local is not None:
            self.local.flush()
        self.later = False  # durable from here on: what is written next is synced as it is written

    def _journal_all(self, split: list[tuple[str, str]]) -> None:
        """Journal ``(folder, name)`` pairs not journaled yet (asked about a folder at a time); the journal answers for them from now on."""
        todo = [(key, pair) for pair in split if (key := check_key(key_of(*pair))) not in self.journal]
        ask_keys(self.dest, (key for key, _ in todo), self._listed, self._known)
        self.journal.prepare_all([(*pair, self._exists(key)) for key, pair in todo])
        for key, _ in todo:
            self._known.pop(key, None)

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        self._fence("placing package files")
        keys = [self._prepare(self.dest.key(p.channel, p.subdir, p.filename)) for p in batch]  # journaled before any is stored
        each(self.dest.workers, [partial(self._put_blob, key, p, on_bytes) for key, p in zip(keys, batch, strict=True)])

    def new_folder(self, channel: str, subdir: str) -> Path | None:
        if self.local is None or self.staging is None or not subdir:
            return None
        staged = self.local.stage_folder(self.staging, self.dest.key(channel, subdir))
        if staged is not None:  # absent: journaled as one folder when planned (decision 0022)
            self._whole[(channel, subdir)] = self.dest.key(channel, subdir)
            self._ahead.add((channel, subdir))
        return staged

    def put_folder(self, channel: str, subdir: str) -> None:
        self._fence("placing a new subdir")
        if self.local is None or self.staging is None:
            raise DestinationError(f"{self.dest}: {channel}/{subdir}: no folder was staged (internal error)")
        self.local.take_folder(self.dest.key(channel, subdir), self.staging)  # the rename makes the folder this change's
        self._ahead.discard((channel, subdir))

    def _index_key(self, channel: str, subdir: str, name: str) -> str:
        """An index file's key; in a new subdir not placed yet, in its staged folder (placed with it; not journaled)."""
        if (channel, subdir) in self._ahead:
            return check_key(f"{self.journal.area}{STAGED_DIR}/{self.dest.key(channel, subdir, name)}")
        return self.dest.key(channel, subdir, name)

    def _put_blob(self, key: str, p: Put, on_bytes: OnBytes | None) -> None:
        lease = self.dest._lease
        if lease is not None and lease.lost is not None:  # the heartbeat found the lock taken over: stop uploading
            self.dest.fence()
        if self.local is not None and not p.keep:
            self.local.take(key, p.blob, on_bytes)
        else:
            self.store.put_blob(key, p.blob, on_bytes)

    def publish_index(self, channel: str, subdir: str, repodata: Repodata, changed: IndexChange | None = None) -> None:
        self._fence("publishing an index")
        with folder_for(self.staging) as folder:  # a remote store's index files are written to a scratch folder, then uploaded
            self._publish_index(channel, subdir, repodata, changed, folder)

    def _publish_index(self, channel: str, subdir: str, repodata: Repodata, changed: IndexChange | None, folder: Path | str) -> None:
        self._published[(channel, subdir)] = published = dict[str, str]()
        for fmt in self.dest.formats:  # each format's files stored before the next is rendered: the shards' bytes (28 MB
            self._publish_format(fmt, channel, subdir, repodata, changed, folder, published)  # at 300,000) not held on
            give_back()
        for fmt in self.dest.formats if (channel, subdir) not in self._ahead else ():  # a new folder holds no stale file
            for name in fmt.stale:  # never leave a file that disagrees with the new index
                key = self.dest.key(channel, subdir, name)
                if self._exists(key):
                    self._prepare(key)
                    self.store.delete([key])

    def _publish_format(
        self,
        fmt: _formats.IndexFormat,
        channel: str,
        subdir: str,
        repodata: Repodata,
        changed: IndexChange | None,
        folder: Path | str,
        published: dict[str, str],
    ) -> None:
        if (channel, subdir) in self._ahead and self.local is not None:  # into its staged folder (durable with it), as rendered
            return _formats.put_staged(
                fmt, self.store, self.local, subdir, repodata, folder, partial(self._index_key, channel, subdir), published
            )
        writes, fresh = list[tuple[str, bytes | BlobRef]](), set[str]()
        kept = kept_shards(self.dest, channel, subdir, changed) if isinstance(fmt, _formats.Shards) and changed is not None else None
        rendered: Iterable[tuple[str, bytes | BlobRef]]
        if kept is not None and isinstance(fmt, _formats.Shards):  # changed names' shards only (decision 0009)
            rendered = fmt.render_changed(subdir, repodata, changed.names if changed is not None else None, *kept)
        elif isinstance(fmt, _formats.RepodataJson):  # written to files as it is encoded, never held (decision 0017)
            rendered = fmt.render_files(subdir, repodata, folder, durable=self.staging is not None)
        else:
            rendered = fmt.render(subdir, repodata)
        files: list[tuple[str, bytes | BlobRef]] = list(rendered)
        ask_keys(self.dest, [self.dest.key(channel, subdir, name) for name, _ in files], self._listed, self._known)
        for name, data in files:
            key = self.dest.key(channel, subdir, name)
            if name in fmt.names:
                published[name] = data.sha256 if isinstance(data, BlobRef) else hashlib.sha256(data).hexdigest()
            if fmt.immutable and isinstance(data, bytes):
                # one already stored with these very bytes stays as it is (so it hashes to its name)
                if name.startswith(fmt.immutable) and self._exists(key) and self.store.get(key) == data:
                    continue
                if name.startswith(fmt.immutable):
                    fresh.add(key)  # a new shard: nothing lists it yet, so it needs no order among its peers
            writes.append((key, data))
        del files
        self.journal.prepare_all([(*key.rpartition("/")[::2], self._exists(key)) for key, _ in writes])  # one save, however many shards
        put_in_order(self.store, self.local, writes, fresh)
        if fmt.immutable:  # a content-addressed format's files (CEP-16 shards and their index): read back
            read_back(self.store, writes, str(self.dest))

    def published_files(self, channel: str, subdir: str) -> dict[str, str]:
        return dict(self._published.get((channel, subdir), {}))

    def publish_index_file(self, channel: str, subdir: str, name: str, data: bytes) -> bool:
        self._fence("publishing an index file")
        key = self._index_key(channel, subdir, name)
        self.store.put(key if (channel, subdir) in self._ahead else self._prepare(key), data)
        return True

    def stage_receipt(self, receipt: dict[str, Any]) -> None:
        if self.later and self.staging is not None:  # durable with the staged files (one syncfs), not by a fsync after it
            self._staged_receipt = (receipt, write_file(receipt_pieces(receipt), self.staging, "receipt.json", durable=None)[0])

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        self._fence("writing the receipt")
        staged, self._staged_receipt = self._staged_receipt, None
        if staged is not None and staged[0] is receipt and not self.later:  # written before staged_written: moved into place
            put_in_order(self.store, self.local, [(self._prepare(RECEIPT), staged[1])], set())
        else:
            put_pieces(self.store, self.local, self.staging, self._prepare(RECEIPT), receipt_pieces(receipt))  # never whole
        self._receipt_written = True

    def put_document(self, name: str, data: bytes | Iterable[bytes]) -> str | None:
        self._fence("keeping a document")
        key = self._prepare(self.dest.key(STATE, name))
        if isinstance(data, bytes):
            self.store.put(key, data)
        else:  # while another process stages (later), no fsync of its own: staged_written's syncfs covers it
            put_pieces(self.store, self.local, self.staging, key, data, deferred=self.later)
        return f"{STATE}/{name}"

    def commit(self) -> None:
        self._fence("commit")
        with deferred_signals():
            self.journal.commit()
        self._done = True
        self.dest.forget_listings()

    def rollback(self) -> None:
        self._done = True
        self.dest.forget_listings()
        if not self.dest.holds_lock():
            self._keep = True
            log.error(
                "%s: not rolling back: this process no longer holds the lock; the next run rolls back from %s", self.dest, self.journal.area
            )
            return
        with deferred_signals():  # a second Ctrl-C or a SIGTERM must not cut the undo short
            ok = self.journal.rollback()
        if not ok:  # keep the saved journal: the next run that takes the lock retries the undo
            self._keep = True
            log.error(
                "%s: the change could not be undone completely; the next import or clean retries from %s", self.dest, self.journal.area
            )

    def close(self) -> None:
        if self.local is not None and self.staging is not None:  # a new subdir staged whole, never placed: an import failed
            self.local.drop_staged_folders(self.staging)
        if not self._done and not self.journal.saved:  # begun, never planned: backups a failed plan copied may be there
            with contextlib.suppress(Exception):
                self.journal.discard()
