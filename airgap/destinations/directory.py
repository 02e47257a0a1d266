"""A plain directory channel: ``ROOT/<channel>/<subdir>/{repodata.json,repodata.json.zst,<files>}``.

Primitive operations only (lock, stage, place a file, publish an index, remove a file,
receipt); the order in which they are called — packages, then repodata, then removals — is
the import/clean operations' business. Every change is journaled so that a failed import can
roll the directory back to exactly what it was; an import saves its journal before the first
change, so the next one can roll back an import that was killed (:meth:`DirectoryDestination.recover`).

``ROOT/.airgap/`` holds airgap's own state: ``receipt.json`` and, during an import, a staging
area. The lock is an ``flock`` on the root directory itself, so locking creates no file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes, fsync_dir, makedirs_tracked
from .._safepath import check_beneath, open_nofollow, read_nofollow
from ..errors import DestinationError, LockError
from ..faults import point
from ..receipt import REBUILD
from ..repodata import Repodata
from ..signals import deferred_signals
from .base import RECEIPT_FORMAT, Change, Destination, OnBytes, Put, empty_receipt, index_files, parse_index
from .filelease import FileLeaseStore
from .lease import Lease, LeaseHolder, held

log = logging.getLogger(__name__)

STATE_DIR = ".airgap"
RECEIPT = "receipt.json"
JOURNAL = "journal.json"
JOURNAL_FORMAT = "airgap-journal/1"
# what a killed write leaves: put_package's hard link, atomic_writer's mkstemp file
_TEMP = re.compile(r"\..+\.(airgap-tmp|[a-z0-9_]{8}\.tmp)\Z")
_BACKUP = re.compile(r"[0-9]{1,9}\.bak\Z")


def _syncfs(path: Path) -> None:
    """Flush the file system holding ``path`` (one call instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the running process's symbols, libc included
        if hasattr(libc, "syncfs") and libc.syncfs(fd) == 0:
            return
        os.sync()
    finally:
        os.close(fd)


class Journal:
    """Undo log of one import or clean: paths added, replaced or removed, directories created.

    Before a path is first changed, :meth:`prepare_replace` keeps a hard link to what is there
    (or notes that nothing is). Undoing an entry is the same whether or not its change was
    made: the backup is renamed back over the target (a no-op while they are still the same
    file), a target that had none is unlinked. So a journal planned in full and saved to
    ``<staging>/journal.json`` before the first change (:meth:`save`) can be rolled back by the
    next run if this one is killed at any point (:meth:`load`, :meth:`rollback`).
    """

    def __init__(self, backup_dir: Path, root: Path | None = None) -> None:
        self.backup_dir = backup_dir
        self.root = root  # needed to save (paths are stored relative to it)
        self.created_dirs: list[Path] = []
        # paths are plain strings here: an import of 100,000 files plans 100,000 entries
        self._entries: dict[str, str | None] = {}  # target -> backup, in planning order
        self._planned_dirs: list[str] = []  # directories that did not exist when planned, outermost first
        self._dirs_seen: set[str] = set()
        self.ready_dirs: dict[tuple[str, str], str] = {}  # (channel, subdir) -> "DIR/" made (or found) by this change
        self._saved = False
        self._n = 0

    @property
    def path(self) -> Path:
        return self.backup_dir.parent / JOURNAL

    def _plan_dir(self, parent: str) -> None:
        """Note the directories above a target that do not exist yet (one look per directory, not per file)."""
        if self.root is None or parent in self._dirs_seen:
            return
        self._dirs_seen.add(parent)
        missing = []
        for d in (Path(parent), *Path(parent).parents):
            if d == self.root or d.exists():
                break
            missing.append(str(d))
        self._planned_dirs.extend(d for d in reversed(missing) if d not in self._planned_dirs)

    def prepare_replace(self, target: str | Path) -> None:
        """Call before adding, overwriting or removing ``target``: keep a copy (hard link) of what is there."""
        t = os.fspath(target)
        if t in self._entries:
            return
        self._plan_dir(os.path.dirname(t))
        self._add(t, os.path.exists(t))
        if self._saved:
            self.save()  # not planned ahead: the saved journal must still cover it before it changes

    def prepare_names(self, directory: Path, names: list[str]) -> None:
        """:meth:`prepare_replace` for many files of one directory, listing it once instead of a stat per file."""
        d = os.fspath(directory)
        try:
            existing = set(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            existing = set()
        self._plan_dir(d)
        for name in names:
            t = d + "/" + name
            if t not in self._entries:
                self._add(t, name in existing)
        if self._saved:
            self.save()

    def _add(self, target: str, exists: bool) -> None:
        if exists:
            self._n += 1
            backup = os.path.join(self.backup_dir, f"{self._n}.bak")
            os.link(target, backup)
            self._entries[target] = backup
        else:
            self._entries[target] = None

    def save(self) -> None:
        """Write the journal beside the backups (durably): from now on a killed run can be undone."""
        if self.root is None:
            raise DestinationError("journal: expected the destination root to save a journal, found none")
        root = self.root

        prefix = str(root).rstrip("/") + "/"

        def rel(text: str) -> str:
            if not text.startswith(prefix):
                raise DestinationError(f"journal: expected paths inside {root}, found {text}")
            return text[len(prefix) :]

        doc = {
            "format": JOURNAL_FORMAT,
            "entries": [[rel(t), os.path.basename(b) if b else None] for t, b in self._entries.items()],
            "dirs": [rel(d) for d in self._planned_dirs],
        }
        point("dir journal save")
        atomic_write_bytes(self.path, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        self._saved = True

    def commit(self) -> None:
        """The change is complete: the journal must no longer undo it."""
        point("dir journal remove")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fsync_dir(self.path.parent)
        self._saved = False
        self._entries.clear()

    @classmethod
    def load(cls, root: Path, staging: Path) -> Journal | None:
        """The saved journal of a killed run in ``staging``, or None if it had not saved one."""
        path = staging / JOURNAL
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            raise DestinationError(
                f"{path}: expected an airgap journal, found something unreadable ({exc}); check the destination, then remove {staging}"
            ) from None
        journal = cls(staging / "backup", root)
        checked: set[tuple[str, ...]] = set()

        def safe(rel: Any) -> Path:
            parts = rel.split("/") if isinstance(rel, str) else []
            if not parts or any(p in ("", ".", "..") or "\0" in p for p in parts):
                raise DestinationError(f"{path}: expected paths inside {root}, found {rel!r}; check the destination, then remove {staging}")
            if tuple(parts[:-1]) not in checked:  # an undo must not write through a link either
                check_beneath(root, root.joinpath(*parts[:-1]))
                checked.add(tuple(parts[:-1]))
            return root.joinpath(*parts)

        try:
            if doc.get("format") != JOURNAL_FORMAT:
                raise DestinationError(
                    f"{path}: expected format {JOURNAL_FORMAT}, found {doc.get('format')!r}; check the destination, then remove {staging}"
                )
            for rel, backup in doc["entries"]:
                if backup is not None and not (isinstance(backup, str) and _BACKUP.match(backup)):
                    raise DestinationError(
                        f"{path}: expected a backup name like 1.bak, found {backup!r}; check the destination, then remove {staging}"
                    )
                journal._entries[str(safe(rel))] = str(journal.backup_dir / backup) if backup else None
            journal._planned_dirs = [str(safe(rel)) for rel in doc["dirs"]]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise DestinationError(
                f"{path}: expected an airgap journal, found a malformed one; check the destination, then remove {staging}"
            ) from None
        return journal

    def rollback(self) -> bool:
        """Undo every entry (as far as possible); True if nothing failed."""
        ok = True
        touched: set[str] = set()
        for target, backup in reversed(self._entries.items()):
            point("dir undo")
            try:
                if backup is None:
                    os.unlink(target)
                else:
                    os.replace(backup, target)
                touched.add(os.path.dirname(target))
            except FileNotFoundError:  # never added, or already restored by an earlier rollback
                pass
            except OSError as exc:  # keep going: undo as much as possible
                log.error("rollback: could not restore %s: %s", target, exc)
                ok = False
        self._entries.clear()
        for d in sorted({*map(str, self.created_dirs), *self._planned_dirs}, key=lambda p: p.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)
                touched.add(os.path.dirname(d))
        for d in touched:  # the undo is durable before the journal that describes it goes
            with contextlib.suppress(OSError):
                fsync_dir(Path(d))
        return ok


class DirectoryDestination(LeaseHolder, Destination):
    kind = "directory"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self._lease: Lease | None = None
        self._created: list[Path] = []  # what this process created (root, state dir, staging), oldest first

    def __str__(self) -> str:
        return str(self.root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def channel_url(self, channel: str) -> str:
        return (self.root / channel).as_uri()

    # -- state -------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def subdir_path(self, channel: str, subdir: str) -> Path:
        return self.root / channel / subdir

    def read_receipt(self) -> dict[str, Any]:
        check_beneath(self.root, self.state_dir)
        path = self.state_dir / RECEIPT
        try:
            doc = json.loads(read_nofollow(path))
        except FileNotFoundError:
            return empty_receipt()
        except (OSError, ValueError, RecursionError) as exc:
            raise DestinationError(
                f"{path}: expected an airgap receipt, found something unreadable ({str(exc)[:100]}); {REBUILD}"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != RECEIPT_FORMAT:
            raise DestinationError(
                f"{path}: expected format {RECEIPT_FORMAT}, found {str(doc.get('format') if isinstance(doc, dict) else type(doc).__name__)[:40]!r}; {REBUILD}"
            )
        doc.setdefault("archives", [])
        doc.setdefault("channels", {})
        return doc

    def write_receipt(self, receipt: dict[str, Any]) -> str:
        self._write_receipt(receipt, None)
        return str(self.state_dir / RECEIPT)

    def _write_receipt(self, receipt: dict[str, Any], journal: Journal | None) -> None:
        """Replace the receipt atomically; within a change, journaled so it can be undone."""
        check_beneath(self.root, self.state_dir)
        path = self.state_dir / RECEIPT
        if journal is None:
            self.state_dir.mkdir(exist_ok=True)
        else:
            makedirs_tracked(self.state_dir, journal.created_dirs)
            journal.prepare_replace(path)
        data = json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode("utf-8")
        point("dir write receipt")
        atomic_write_bytes(path, data)

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        check_beneath(self.root, self.subdir_path(channel, subdir))
        path = self.subdir_path(channel, subdir) / "repodata.json"
        try:
            data = read_nofollow(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DestinationError(f"{path}: cannot read: {exc.strerror}") from None
        return parse_index(data, subdir, str(path))

    def read_index_file(self, channel: str, subdir: str, name: str) -> bytes | None:
        try:
            return (self.subdir_path(channel, subdir) / name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise DestinationError(f"{self.subdir_path(channel, subdir) / name}: cannot read: {exc.strerror}") from None

    def inventory(self) -> dict[str, list[str]]:
        """``{channel: [subdir, ...]}`` for every ``<channel>/<subdir>/repodata.json`` present."""
        out: dict[str, list[str]] = {}
        if not self.root.is_dir():
            return out
        for ch in sorted(self.root.iterdir()):
            if ch.name.startswith(".") or not ch.is_dir():
                continue
            subs = sorted(d.name for d in ch.iterdir() if d.is_dir() and (d / "repodata.json").is_file())
            if subs:
                out[ch.name] = subs
        return out

    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        """Delete files the published repodata no longer lists (call after the change committed)."""
        for channel, subdir in {(c, s) for c, s, _ in files}:
            check_beneath(self.root, self.subdir_path(channel, subdir))
        self.fence()  # a new owner may have listed one of these names again
        for channel, subdir, filename in files:
            point("dir remove")
            try:
                os.unlink(self.subdir_path(channel, subdir) / filename)
            except FileNotFoundError:
                pass
        self.fsync_dirs({(c, s) for c, s, _ in files})

    def files(self, channel: str, subdir: str) -> dict[str, int]:
        check_beneath(self.root, self.subdir_path(channel, subdir))
        try:
            with os.scandir(self.subdir_path(channel, subdir)) as it:
                return {e.name: e.stat().st_size for e in it if e.is_file(follow_symlinks=False)}
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """The sha256 of a file the destination holds (hashing it), or None if it is not there."""
        check_beneath(self.root, self.subdir_path(channel, subdir))
        h = hashlib.sha256()
        try:
            with open(open_nofollow(self.subdir_path(channel, subdir) / filename), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link is not a file the destination holds
                return None
            raise
        return h.hexdigest()

    def put_page(self, channel: str, subdir: str | None, data: bytes, name: str = "index.html") -> None:
        d = self.root / channel if subdir is None else self.subdir_path(channel, subdir)
        check_beneath(self.root, d)
        (d / name).parent.mkdir(exist_ok=True)  # names/: one page per package name (airgap.ops.pages)
        atomic_write_bytes(d / name, data, durable=False)

    def has_page(self, channel: str, subdir: str, name: str) -> bool:
        return (self.subdir_path(channel, subdir) / name).is_file()

    def begin(self, label: str) -> DirectoryChange:
        staging = self.new_staging(label)
        return DirectoryChange(self, staging, Journal(staging / "backup", self.root))

    # -- locking and staging -------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """flock on the root; on an error, what this process created (root, state dir, staging) goes again."""
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root}: expected a directory, found a file")
        self._created = []
        try:
            makedirs_tracked(self.root, self._created)
        except OSError as exc:
            raise DestinationError(f"{self.root}: cannot create the destination directory: {exc.strerror}") from None
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
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
                            f"{self.root}: another airgap import or clean holds the lock; waited {timeout:.0f}s (try again when it has finished)"
                        ) from None
                    if not waited:
                        log.warning("%s: another airgap process holds the lock; waiting up to %.0fs", self.root, timeout)
                        waited = True
                    time.sleep(0.2)
            makedirs_tracked(self.state_dir, self._created)
            # the flock excludes every other process; the lease adds fencing, and says who held the lock last
            with held(
                FileLeaseStore(self.state_dir / "lock"), str(self.state_dir / "lock"), max(0.0, deadline - time.monotonic())
            ) as lease:
                self._lease = lease
                try:
                    for line in self.recover():  # whoever takes the lock first undoes what a killed run left
                        log.warning("%s: %s", self.root, line)
                    yield
                finally:
                    self._lease = None
        except BaseException:
            self._remove_created()  # under the lock: the next import must not see it half removed
            raise
        finally:
            os.close(fd)  # closing releases the flock
            self._created = []

    def _remove_created(self) -> None:
        for d in reversed(self._created):
            if d.name.startswith("staging-"):
                shutil.rmtree(d, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    d.rmdir()
        self._created = []

    def new_staging(self, name: str) -> Path:
        check_beneath(self.root, self.state_dir)
        makedirs_tracked(self.state_dir, self._created)
        staging = self.state_dir / f"staging-{name}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        self._created.append(staging)
        (staging / "backup").mkdir()
        return staging

    def recover(self) -> list[str]:
        """Under the lock (:meth:`locked` calls it): undo what killed runs left; one line per thing done.

        Every ``staging-*`` area belongs to a run that died (a live one would hold the lock).
        If it saved a journal, its publish was cut short: it is rolled back, so the
        destination is as it was before that run. Then the area goes, and so do the
        temporary files a killed write leaves in channel subdirs and in ``.airgap``.
        """
        done: list[str] = []
        check_beneath(self.root, self.state_dir)
        if not self.state_dir.is_dir():
            return done
        for staging in sorted(self.state_dir.glob("staging-*")):
            journal = Journal.load(self.root, staging) if staging.is_dir() and not staging.is_symlink() else None
            if journal is not None:
                with deferred_signals():  # the undo finishes before anything else; the journal goes only after it
                    ok = journal.rollback()
                if not ok:
                    raise DestinationError(
                        f"{staging}: expected to roll back an interrupted import, could not restore every file (see the errors above); fix that, then retry"
                    )
                done.append(f"rolled back the interrupted change of {staging.name}")
            try:
                if staging.is_dir() and not staging.is_symlink():
                    shutil.rmtree(staging)
                else:
                    staging.unlink()
            except OSError as exc:
                raise DestinationError(f"{staging}: expected to remove what an interrupted run left, cannot: {exc.strerror}") from None
            done.append(f"removed {staging.name}")
        if done:  # temp files exist only while a staging area does
            dirs = [self.state_dir] + [
                d
                for d in [*self.root.glob("*/*"), *self.root.glob("*/*/names")]  # names/: the package-name pages
                if d.is_dir() and not d.is_symlink() and not d.parent.is_symlink() and not d.parent.name.startswith(".")
            ]
            for d in dirs:
                removed = 0
                for entry in os.scandir(d):
                    if _TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                        removed += 1
                if removed:
                    done.append(f"removed {removed} temporary file(s) from {d}")
            fsync_dir(self.state_dir)
        return done

    def plan_publish(self, journal: Journal, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]]) -> None:
        """Journal every path a publish of ``packages`` and ``indexes`` will change, then save it."""
        by_dir: dict[tuple[str, str], list[str]] = {}
        for channel, subdir, filename in packages:
            by_dir.setdefault((channel, subdir), []).append(filename)
        for channel, subdir in {*by_dir, *indexes}:  # before the first change: nothing leads outside the destination
            check_beneath(self.root, self.subdir_path(channel, subdir))
        check_beneath(self.root, self.state_dir)
        for (channel, subdir), names in by_dir.items():
            journal.prepare_names(self.subdir_path(channel, subdir), names)
        for channel, subdir in indexes:
            d = self.subdir_path(channel, subdir)
            for name in ("repodata.json.zst", "repodata.json", "current_repodata.json"):
                journal.prepare_replace(d / name)
        journal.prepare_replace(self.state_dir / RECEIPT)
        journal.save()

    def sync(self) -> None:
        _syncfs(self.root)

    # -- the primitive changes ---------------------------------------------------------------

    def put_package(self, channel: str, subdir: str, filename: str, staged: str | Path, journal: Journal, keep_staged: bool) -> None:
        """Place a staged, verified file. ``keep_staged``: it is needed again (hard link or copy)."""
        d = journal.ready_dirs.get((channel, subdir))
        if d is None:  # once per subdir: the per-file path is string work only
            path = self.subdir_path(channel, subdir)
            check_beneath(self.root, path)
            makedirs_tracked(path, journal.created_dirs)
            d = journal.ready_dirs[(channel, subdir)] = os.fspath(path) + "/"
        target = d + filename
        journal.prepare_replace(target)
        point("dir put")
        if keep_staged:
            tmp = f"{d}.{filename}.airgap-tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            try:
                os.link(staged, tmp)
            except OSError:
                shutil.copyfile(staged, tmp)
            os.replace(tmp, target)
        else:
            os.replace(staged, target)

    def publish_index(self, channel: str, subdir: str, repodata: Repodata, journal: Journal) -> None:
        d = self.subdir_path(channel, subdir)
        check_beneath(self.root, d)
        makedirs_tracked(d, journal.created_dirs)
        raw = repodata.to_bytes()
        for name, data in index_files(raw):
            target = d / name
            journal.prepare_replace(target)
            point("dir write index")
            atomic_write_bytes(target, data)
        stale = d / "current_repodata.json"
        if stale.exists():  # never leave a current_repodata.json that disagrees with repodata.json
            journal.prepare_replace(stale)
            os.unlink(stale)

    def fsync_dirs(self, dirs: set[tuple[str, str]]) -> None:
        """Make renames in these subdirs durable, and the subdirs' own entries (they may be new)."""
        todo = {self.subdir_path(c, s) for c, s in dirs} | {self.root / c for c, _ in dirs} | ({self.root} if dirs else set())
        for d in sorted(todo, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)


class DirectoryChange(Change):
    """A journaled change of a directory destination: blobs staged inside it, placed by rename."""

    def __init__(self, dest: DirectoryDestination, staging: Path, journal: Journal) -> None:
        self.dest = dest
        self.staging = self._staging = staging
        self.journal = journal
        self._keep = False

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        self.dest.plan_publish(self.journal, packages, indexes)
        self.dest.sync()  # staged bytes, backups and journal reach the disk before anything points at them

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        self.dest.fence()
        touched: set[tuple[str, str]] = set()
        for p in batch:
            self.dest.put_package(p.channel, p.subdir, p.filename, p.blob.path, self.journal, keep_staged=p.keep)
            touched.add((p.channel, p.subdir))
            if on_bytes is not None:
                on_bytes(p.blob.size)
        self.dest.fsync_dirs(touched)

    def publish_index(self, channel: str, subdir: str, repodata: Repodata) -> None:
        self.dest.fence()
        self.dest.publish_index(channel, subdir, repodata, self.journal)

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        self.dest.fence()
        self.dest._write_receipt(receipt, self.journal)

    def put_document(self, name: str, data: bytes) -> str | None:
        path = self.dest.state_dir / name
        self.journal.prepare_replace(path)  # first: it plans the folders that do not exist yet
        makedirs_tracked(path.parent, self.journal.created_dirs)
        atomic_write_bytes(path, data)
        return f"{STATE_DIR}/{name}"

    def commit(self) -> None:
        self.dest.fence()
        with deferred_signals():
            self.journal.commit()

    def rollback(self) -> None:
        self._keep = True  # until the undo is complete, the journal stays for the next run (even if this one dies)
        if not self.dest.holds_lock():
            log.error(
                "%s: not rolling back: this process no longer holds the lock; the next run rolls back from %s", self.dest, self._staging
            )
            return
        with deferred_signals():  # a second Ctrl-C or a SIGTERM must not cut the undo short
            ok = self.journal.rollback()
            self._keep = not ok
        if not ok:  # keep the saved journal: the next run that takes the lock retries the undo
            log.error("%s: the change could not be undone completely; the next import or clean retries from %s", self.dest, self._staging)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.dest._created.remove(self._staging)
        if not self._keep:
            shutil.rmtree(self._staging, ignore_errors=True)
