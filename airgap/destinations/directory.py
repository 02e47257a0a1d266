"""A plain directory channel: ``ROOT/<channel>/<subdir>/{repodata.json,repodata.json.zst,<files>}``.

Primitive operations only (lock, stage, place a file, publish an index, remove a file,
receipt); the order in which they are called — packages, then repodata, then removals — is
the import/clean operations' business. Every change is journaled so that a failed import can
roll the directory back to exactly what it was.

``ROOT/.airgap/`` holds airgap's own state: ``receipt.json`` and, during an import, a staging
area. The lock is an ``flock`` on the root directory itself, so locking creates no file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes, fsync_dir, makedirs_tracked
from ..compress import zstd_compress
from ..errors import DestinationError, LockError
from ..repodata import Repodata, parse_repodata

log = logging.getLogger(__name__)

STATE_DIR = ".airgap"
RECEIPT = "receipt.json"
RECEIPT_FORMAT = "airgap-receipt/1"


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
    """Undo log of one import: files added or replaced, directories created."""

    def __init__(self, backup_dir: Path) -> None:
        self.backup_dir = backup_dir
        self.created_dirs: list[Path] = []
        self._steps: list[tuple[str, Path, Path | None]] = []
        self._n = 0

    def prepare_replace(self, target: Path) -> None:
        """Call before overwriting ``target``: keep a copy (hard link) of what was there."""
        if target.exists():
            self._n += 1
            backup = self.backup_dir / f"{self._n}.bak"
            os.link(target, backup)
            self._steps.append(("replaced", target, backup))
        else:
            self._steps.append(("added", target, None))

    def note_removed(self, target: Path, backup: Path) -> None:
        self._steps.append(("removed", target, backup))

    def backup_path(self) -> Path:
        self._n += 1
        return self.backup_dir / f"{self._n}.bak"

    def rollback(self) -> None:
        for kind, target, backup in reversed(self._steps):
            try:
                if kind == "added":
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target)
                elif backup is not None:
                    os.replace(backup, target)
            except OSError as exc:  # keep going: undo as much as possible
                log.error("rollback: could not restore %s: %s", target, exc)
        self._steps.clear()
        for d in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()


class DirectoryDestination:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def __str__(self) -> str:
        return str(self.root)

    # -- state -------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def subdir_path(self, channel: str, subdir: str) -> Path:
        return self.root / channel / subdir

    def read_receipt(self) -> dict[str, Any]:
        path = self.state_dir / RECEIPT
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"format": RECEIPT_FORMAT, "archives": [], "channels": {}}
        except (OSError, ValueError) as exc:
            raise DestinationError(f"{path}: expected an airgap receipt, found something unreadable ({exc}); move it aside to rebuild it") from None
        if not isinstance(doc, dict) or doc.get("format") != RECEIPT_FORMAT:
            raise DestinationError(f"{path}: expected format {RECEIPT_FORMAT}, found {doc.get('format') if isinstance(doc, dict) else doc!r}")
        doc.setdefault("archives", [])
        doc.setdefault("channels", {})
        return doc

    def write_receipt(self, receipt: dict[str, Any], journal: Journal) -> None:
        makedirs_tracked(self.state_dir, journal.created_dirs)
        path = self.state_dir / RECEIPT
        journal.prepare_replace(path)
        data = json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(path, data)

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        path = self.subdir_path(channel, subdir) / "repodata.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DestinationError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            return parse_repodata(data, subdir, str(path))
        except Exception as exc:
            raise DestinationError(f"{path}: expected repodata JSON, found something unreadable ({exc})") from None

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

    def remove_package(self, channel: str, subdir: str, filename: str) -> None:
        """Delete a file the published repodata no longer lists (call after publish_index)."""
        try:
            os.unlink(self.subdir_path(channel, subdir) / filename)
        except FileNotFoundError:
            pass

    def file_matches(self, channel: str, subdir: str, filename: str, size: int) -> bool:
        try:
            return (self.subdir_path(channel, subdir) / filename).stat().st_size == size
        except FileNotFoundError:
            return False

    # -- locking and staging -------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, created: list[Path], timeout: float = 60.0) -> Iterator[None]:
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root}: expected a directory, found a file")
        try:
            makedirs_tracked(self.root, created)
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
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def new_staging(self, name: str, created: list[Path]) -> Path:
        makedirs_tracked(self.state_dir, created)
        staging = self.state_dir / f"staging-{name}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        created.append(staging)
        (staging / "backup").mkdir()
        return staging

    def sync(self) -> None:
        _syncfs(self.root)

    # -- the primitive changes ---------------------------------------------------------------

    def put_package(self, channel: str, subdir: str, filename: str, staged: Path, journal: Journal, keep_staged: bool) -> None:
        """Place a staged, verified file. ``keep_staged``: it is needed again (hard link or copy)."""
        d = self.subdir_path(channel, subdir)
        makedirs_tracked(d, journal.created_dirs)
        target = d / filename
        journal.prepare_replace(target)
        if keep_staged:
            tmp = d / f".{filename}.airgap-tmp"
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
        makedirs_tracked(d, journal.created_dirs)
        raw = repodata.to_bytes()
        for name, data in (("repodata.json.zst", zstd_compress(raw)), ("repodata.json", raw)):
            target = d / name
            journal.prepare_replace(target)
            atomic_write_bytes(target, data)
        stale = d / "current_repodata.json"
        if stale.exists():  # never leave a current_repodata.json that disagrees with repodata.json
            backup = journal.backup_path()
            os.replace(stale, backup)
            journal.note_removed(stale, backup)

    def fsync_dirs(self, dirs: set[tuple[str, str]]) -> None:
        for channel, subdir in sorted(dirs):
            fsync_dir(self.subdir_path(channel, subdir))
