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

Entries are kept per folder (``{folder: {name: backup}}``), in memory and on disk (format 2): a full
import's 300,000 keys share their folder, and each name is the manifest's own string, so the journal
holds no key string of its own (38 MB at 300,000 files; docs/decisions/0020). Format 1 (a list of
``[key, backup]``, written by earlier versions and by the legacy journals' conversion) is still read.

A folder that was not there when the change began and is made whole (a new subdir, placed by one
rename: :meth:`Journal.prepare_folder`) is one entry, not one per file: a rollback removes everything
under it once it was renamed into place, nothing while it is still staged in the area (decision 0022).
A journal holding such folders is format 3 (format 2 plus ``new``), which an older airgap refuses
rather than rolls back in part.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator

import msgspec

from ..errors import DestinationError
from .store import ObjectStore, check_key

log = logging.getLogger(__name__)

STATE = ".airgap"
AREA_PREFIX = f"{STATE}/staging-"
LOCK = f"{STATE}/lock"  # the engine's lock: no journal ever undoes it
JOURNAL = "journal.json"
JOURNAL_FORMAT = "airgap-store-journal/1"  # a list of [key, backup]: read, and written by the legacy conversions
JOURNAL_FOLDERS = "airgap-store-journal/2"  # {folder: {name: backup}}: what :meth:`Journal.save` writes
JOURNAL_NEW = "airgap-store-journal/3"  # format 2 plus "new": [folder, ...] made whole, removed whole by a rollback
STAGED_DIR = "new"  # in a change's area: the folders it makes whole, staged under their keys until each is renamed into place


def key_of(folder: str, name: str) -> str:
    """The key of ``name`` in ``folder`` ("" for the root)."""
    return f"{folder}/{name}" if folder else name


class Journal:
    """Undo log of one import or clean in ``area`` (a key prefix ending in ``/``)."""

    def __init__(self, store: ObjectStore, area: str) -> None:
        if not area.startswith(AREA_PREFIX) or not area.endswith("/"):
            raise DestinationError(f"journal: expected an area under {AREA_PREFIX}, found {area!r}")
        self.store = store
        self.area = area
        self.folders: dict[str, dict[str, str | None]] = {}  # folder -> {name: backup key}, in planning order
        self.new: dict[str, None] = {}  # folders absent when the change began, made whole: their files have no entry
        self.saved = False
        self._n = 0

    @property
    def key(self) -> str:
        return self.area + JOURNAL

    def __contains__(self, key: str) -> bool:
        folder, _, name = key.rpartition("/")
        return folder in self.new or name in self.folders.get(folder, ())

    def backup_of(self, key: str) -> str | None:
        """The copy kept of a journaled ``key`` (None: it was not there when the change began)."""
        folder, _, name = key.rpartition("/")
        return None if folder in self.new else self.folders[folder][name]

    def items(self) -> Iterator[tuple[str, str | None]]:
        """``(key, backup)`` of every entry, folder by folder in planning order."""
        for folder, names in self.folders.items():
            for name, backup in names.items():
                yield key_of(folder, name), backup

    def prepare(self, key: str, exists: bool) -> None:
        """Before ``key`` is added, replaced or removed: keep a copy of what is there (``exists``: the caller listed it)."""
        folder, _, name = key.rpartition("/")
        if self._prepare(folder, name, exists) and self.saved:
            self.save()  # not planned ahead: the saved journal must cover it before it changes

    def prepare_folder(self, folder: str) -> None:
        """Before ``folder`` (absent when the change began, nothing written in it since) is made whole: a rollback removes
        everything under it, and its files need no entry (300,000 at conda-forge's scale: 10 MB held, a 15 MB save)."""
        if not _outside_state(folder):
            raise DestinationError(f"journal: expected a new folder outside {STATE}, found {folder!r} (internal error)")
        if folder not in self.new:
            self.new[check_key(folder)] = None
            if self.saved:
                self.save()

    def _prepare(self, folder: str, name: str, exists: bool) -> bool:
        if folder in self.new:  # made whole by this change: removed whole by its rollback
            return False
        names = self.folders.get(folder)
        if names is None:
            names = self.folders[folder] = {}
        elif name in names:
            return False
        backup = None
        if exists:
            self._n += 1
            backup = f"{self.area}backup/{self._n}"
            if not self.store.backup(check_key(key_of(folder, name)), backup):
                backup = None  # gone since it was listed: nothing to keep
        names[name] = backup
        return True

    def prepare_all(self, items: Iterable[tuple[str, str, bool]]) -> None:
        """:meth:`prepare` for many keys (``(folder, name, exists)``: the name is kept as given, not a new string), saving the
        journal once, not once per key, and not at all when every key was planned already (a full import's journal is
        15 MB at 300,000 files: written to S3 each time)."""
        added = False
        for folder, name, exists in items:
            added = self._prepare(folder, name, exists) or added
        if self.saved and added:
            self.save()

    def save(self) -> None:
        """Write the journal (atomically): from now on a killed run can be undone."""
        # msgspec writes the folders' dicts straight to bytes (no list or key string per entry); keys are checked ASCII names
        doc: dict[str, object] = {"format": JOURNAL_FOLDERS, "folders": self.folders}
        if self.new:
            doc.update(format=JOURNAL_NEW, new=list(self.new))
        self.store.put(self.key, msgspec.json.encode(doc))
        self.saved = True

    def commit(self) -> None:
        """The change is complete: drop the journal first (nothing undoes it any more), then the backups."""
        self.store.delete([self.key])
        self.saved = False
        self.folders.clear()
        self.new.clear()
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
            if doc.get("format") == JOURNAL_FORMAT:
                pairs = doc["entries"]
            elif doc.get("format") in (JOURNAL_FOLDERS, JOURNAL_NEW):
                pairs = [(key_of(folder, name), b) for folder, names in doc["folders"].items() for name, b in names.items()]
                for folder in doc["new"] if doc["format"] == JOURNAL_NEW else []:
                    if not isinstance(folder, str) or not _outside_state(folder):
                        raise ValueError(f"new folder {folder!r}: expected a folder outside {STATE}")
                    journal.new[check_key(folder)] = None
            else:
                raise ValueError(f"format {doc.get('format')!r}")
            for key, backup in pairs:
                check_key(key)
                if key.startswith(AREA_PREFIX) or key == LOCK:
                    raise ValueError(f"key {key!r}: the lock, or inside a change's area")
                if backup is not None and not (isinstance(backup, str) and backup.startswith(area + "backup/")):
                    raise ValueError(f"backup {backup!r} outside {area}backup/")
                folder, _, name = key.rpartition("/")
                journal.folders.setdefault(folder, {})[name] = backup and check_key(backup)
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
        for key, backup in reversed(list(self.items())):
            if backup is None:
                added.append(key)  # keys are distinct: the order of undoing them does not matter
                continue
            try:
                self.store.restore(backup, key)
            except Exception as exc:  # keep going: undo as much as possible
                log.error("rollback: could not restore %s/%s: %s", self.store, key, exc)
                ok = False
        try:
            for folder in self.new:  # made whole: all of it goes once the rename made it this change's (still staged: not)
                if not _still_staged(self.store, f"{self.area}{STAGED_DIR}/{folder}"):
                    added += [key for key, _ in self.store.list_prefix(folder + "/")]
            self.store.delete(added)  # one call: a store batches it (and a directory makes it durable once)
        except Exception as exc:
            log.error("rollback: could not remove what the change added to %s: %s", self.store, exc)
            ok = False
        if ok:
            self.store.delete([self.key])
            self.saved = False
            self.discard()
            self.folders.clear()
            self.new.clear()
        return ok


def _still_staged(store: ObjectStore, staged: str) -> bool:
    """Is the folder ``staged`` still in the change's area (not renamed into place)? A store of local files says so
    of the folder itself, empty or not (another process may not have written its first file yet: decision 0023)."""
    exists = getattr(store, "folder_exists", None)
    if callable(exists):
        return bool(exists(staged))
    return next(iter(store.list_prefix(staged + "/")), None) is not None


def _outside_state(folder: str) -> bool:
    """A folder a change may make whole: not the root, not airgap's state or inside it."""
    return bool(folder) and folder != STATE and not folder.startswith(STATE + "/")


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
