"""The undo journal of one change, over any :class:`~airgap.destinations.store.ObjectStore`.

Written once for every store (see docs/decisions/0004-engine-migration.md). A change's area is
``.airgap/staging-<label>-<id>/``: ``journal.json`` and ``backup/<n>``.

Before a key first changes, :meth:`Journal.prepare` copies what is there into the area
(:meth:`~airgap.destinations.store.ObjectStore.backup`) or notes that nothing is. Undoing an
entry is the same whether or not its change was made: a backup is restored over the key, a
key that had none is deleted. So a journal planned in full and saved (:meth:`Journal.save`)
before the first change can be rolled back by the next run if this one is killed at any
point (:meth:`Journal.load`, :meth:`Journal.rollback`). A key not planned ahead is prepared,
and the journal saved again, before it changes.
"""

from __future__ import annotations

import json
import logging

import msgspec

from ..errors import DestinationError
from .store import ObjectStore, check_key

log = logging.getLogger(__name__)

STATE = ".airgap"
AREA_PREFIX = f"{STATE}/staging-"
LOCK = f"{STATE}/lock"  # the engine's lock: no journal ever undoes it
JOURNAL = "journal.json"
JOURNAL_FORMAT = "airgap-store-journal/1"


class Journal:
    """Undo log of one import or clean in ``area`` (a key prefix ending in ``/``)."""

    def __init__(self, store: ObjectStore, area: str) -> None:
        if not area.startswith(AREA_PREFIX) or not area.endswith("/"):
            raise DestinationError(f"journal: expected an area under {AREA_PREFIX}, found {area!r}")
        self.store = store
        self.area = area
        self.entries: dict[str, str | None] = {}  # key -> backup key, in planning order
        self.saved = False
        self._n = 0

    @property
    def key(self) -> str:
        return self.area + JOURNAL

    def prepare(self, key: str, exists: bool) -> None:
        """Before ``key`` is added, replaced or removed: keep a copy of what is there (``exists``: the caller listed it)."""
        if key in self.entries:
            return
        backup = None
        if exists:
            self._n += 1
            backup = f"{self.area}backup/{self._n}"
            if not self.store.backup(check_key(key), backup):
                backup = None  # gone since it was listed: nothing to keep
        self.entries[key] = backup
        if self.saved:
            self.save()  # not planned ahead: the saved journal must cover it before it changes

    def prepare_all(self, keys: list[tuple[str, bool]]) -> None:
        """:meth:`prepare` for many keys (``(key, exists)``), saving the journal once, not once per key, and not at all
        when every key was planned already (a full import's journal is 15 MB at 300,000 files: written to S3 each time)."""
        saved, self.saved, before = self.saved, False, len(self.entries)
        try:
            for key, exists in keys:
                self.prepare(key, exists)
        finally:
            self.saved = saved
        if saved and len(self.entries) != before:
            self.save()

    def save(self) -> None:
        """Write the journal (atomically): from now on a killed run can be undone."""
        # msgspec writes the pairs straight to bytes (json made a list per entry, then the text, then its bytes: ~100 MB
        # at the moment of a full import's peak, 300,000 keys); the same JSON to :meth:`load` (keys are checked ASCII names)
        doc = {"format": JOURNAL_FORMAT, "entries": list(self.entries.items())}
        self.store.put(self.key, msgspec.json.encode(doc))
        self.saved = True

    def commit(self) -> None:
        """The change is complete: drop the journal first (nothing undoes it any more), then the backups."""
        self.store.delete([self.key])
        self.saved = False
        self.entries.clear()
        self.discard()

    def discard(self) -> None:
        """Remove everything in the area (after commit, or when nothing was saved); the journal's own key
        is always named, so a store of folders removes an area that holds nothing (a change that failed early)."""
        self.store.delete(sorted({self.key, *(k for k, _ in self.store.list_prefix(self.area))}))

    @classmethod
    def load(cls, store: ObjectStore, area: str) -> Journal | None:
        """The saved journal of a killed run in ``area``, or None if it had not saved one."""
        journal = cls(store, area)
        data = store.get(journal.key)
        if data is None:
            return None
        where = f"{store}/{journal.key}"
        try:
            doc = json.loads(data)
            if doc.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            for key, backup in doc["entries"]:
                check_key(key)
                if key.startswith(AREA_PREFIX) or key == LOCK:
                    raise ValueError(f"key {key!r}: the lock, or inside a change's area")
                if backup is not None and not (isinstance(backup, str) and backup.startswith(area + "backup/")):
                    raise ValueError(f"backup {backup!r} outside {area}backup/")
                journal.entries[key] = backup and check_key(backup)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, DestinationError) as exc:
            raise DestinationError(
                f"{where}: expected an airgap journal, found a malformed one ({str(exc)[:100]}); check the destination, then delete {area}"
            ) from None
        journal.saved = True
        return journal

    def rollback(self) -> bool:
        """Undo every entry, newest first (as far as possible); True if nothing failed. The area stays if anything did."""
        ok = True
        added = []
        for key, backup in reversed(list(self.entries.items())):
            if backup is None:
                added.append(key)  # keys are distinct: the order of undoing them does not matter
                continue
            try:
                self.store.restore(backup, key)
            except Exception as exc:  # keep going: undo as much as possible
                log.error("rollback: could not restore %s/%s: %s", self.store, key, exc)
                ok = False
        try:
            self.store.delete(added)  # one call: a store batches it (and a directory makes it durable once)
        except Exception as exc:
            log.error("rollback: could not remove what the change added to %s: %s", self.store, exc)
            ok = False
        if ok:
            self.store.delete([self.key])
            self.saved = False
            self.discard()
            self.entries.clear()
        return ok


def areas(store: ObjectStore) -> dict[str, list[str]]:
    """``{area: [key, ...]}`` of every change area in the store (each belongs to a dead run, under the lock)."""
    out: dict[str, list[str]] = {}
    for key, _size in store.list_prefix(AREA_PREFIX):
        rest = key[len(AREA_PREFIX) :]
        area = key[: len(AREA_PREFIX) + rest.index("/") + 1] if "/" in rest else key
        out.setdefault(area, []).append(key)
    return out


def recover(store: ObjectStore) -> list[str]:
    """Under the lock: roll back the changes killed runs left (their saved journals), remove their areas; one line per thing done."""
    done: list[str] = []
    for area, keys in sorted(areas(store).items()):
        name = area.rstrip("/").rsplit("/", 1)[-1]
        journal = Journal.load(store, area) if area.endswith("/") else None
        if journal is not None:
            if not journal.rollback():
                raise DestinationError(
                    f"{store}: expected to roll back the interrupted change in {area}, could not restore every "
                    "object (see the errors above); fix that, then retry"
                )
            done.append(f"rolled back the interrupted change of {name}")
        store.delete(sorted(keys))
        done.append(f"removed {name}")
    return done
