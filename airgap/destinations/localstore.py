"""A directory as an :class:`~airgap.destinations.store.ObjectStore` (``KEY`` is the file ``ROOT/KEY``): what the
transaction engine (:mod:`airgap.destinations.engine`) needs from a directory, no more.

* **Writes.** :meth:`LocalStore.put` writes a temporary file, fsyncs it and renames it over the target
  (:mod:`airgap._fs`). A package file staged in the change's folder inside the store (:meth:`LocalStore.staging_dir`)
  is moved into place by one rename (:meth:`LocalStore.take`), or hard-linked to a temporary name and renamed when
  needed again (:meth:`LocalStore.put_blob`); staged bytes (and :meth:`LocalStore.write_staged`'s) reach the disk
  at :meth:`LocalStore.flush` (one ``syncfs``), which the engine calls before anything points at them.
* **Order.** :meth:`put` and :meth:`delete` first fsync every folder changed since (renames,
  unlinks), so what came before them is on disk before they act (package files before the index
  that lists them, an undo before its journal goes); each is durable when it returns.
* **Journal copies.** :meth:`backup` is a hard link, :meth:`restore` a rename (a backup already put
  back is no error: a rollback may run twice). :meth:`delete` removes the folders it empties.
* **Links.** Every folder a key lies in is checked (:func:`~airgap._safepath.check_beneath`), files are read with ``O_NOFOLLOW``, a listing skips links.
* **The lock.** The lock primitives act on one file as :mod:`airgap.destinations.lease` wants:
  created with a hard link (refused if the name exists, on NFS too), replaced by a rename,
  versioned by the sha256 of its bytes. The read-then-rename compare is safe because every
  process first holds the ``flock`` on the root (:meth:`exclusive`).
* **Its own leftovers** (temporary files of killed writes, empty staging folders):
  :meth:`remove_leftovers`, under the lock.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import shutil
import stat
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._fs import atomic_write_bytes, create_new, fsync_dir, named
from .._safepath import check_beneath, open_nofollow, read_nofollow, view_nofollow
from ..errors import DestinationError
from ..faults import point
from .base import BlobRef, OnBytes
from .journal import AREA_PREFIX, STAGED_DIR, STATE
from .localbatch import syncfs, write_temps
from .localleftovers import TMP, remove_leftovers
from .locallock import LocalLock
from .store import check_key

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class LocalStore(LocalLock):
    """The files under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.text = os.fspath(self.root).rstrip("/") or "/"
        self._base = self.text.rstrip("/") + "/"
        self._checked: set[str] = set()  # folders (keys) seen free of links while this lock is held
        self._dirty: set[str] = set()  # folders whose entries changed since their last fsync
        self._mutex = threading.Lock()

    def __str__(self) -> str:
        return self.text

    def exists(self) -> bool:
        return self.root.is_dir()

    def url(self, key: str) -> str:
        return Path(self.path(key)).as_uri()

    def path(self, key: str) -> str:
        return self._base + check_key(key)  # the methods below check once, in _folder, and then use _base + key

    def _folder(self, key: str, create: bool = False) -> str:
        """The folder ``key`` lies in, checked free of links (and created)."""
        return self._dir(check_key(key).rpartition("/")[0], create)

    def _dir(self, folder: str, create: bool = False) -> str:
        """``folder`` (a key, "" for the root) checked free of links; created if asked, each new folder noted for the fsync."""
        if folder in self._checked:
            return folder
        path = self._base + check_key(folder) if folder else self.text
        check_beneath(self.text, path)
        if create:
            missing = []
            up = folder
            while up and not os.path.isdir(self._base + up):
                missing.append(up)
                up = up.rpartition("/")[0]
            for made in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self._base + made)
                self._mark(made.rpartition("/")[0])
        if os.path.isdir(path):
            self._checked.add(folder)
        return folder

    def _mark(self, folder: str) -> None:
        with self._mutex:
            self._dirty.add(folder)

    def _sync_dirty(self) -> None:
        """Make every rename and unlink so far durable (deepest folders first: a new folder's entry after its content)."""
        with self._mutex:
            dirty, self._dirty = self._dirty, set()
        for folder in sorted(dirty, key=lambda f: f.count("/") + bool(f), reverse=True):
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(Path(self._base + folder if folder else self.text))

    def get(self, key: str) -> bytes | None:
        data = self._read(key, False)
        return None if data is None else bytes(data)  # read_nofollow's bytes themselves (bytes() of bytes copies nothing)

    def view(self, key: str) -> bytes | mmap.mmap | None:
        """:meth:`get`, mapped read-only when big (``_safepath.view_nofollow``): for files only replaced by renames."""
        return self._read(key, True)

    def _read(self, key: str, mapped: bool) -> bytes | mmap.mmap | None:
        self._folder(key)
        path = self._base + key
        try:
            return view_nofollow(path) if mapped else read_nofollow(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DestinationError(f"{path}: cannot read: {exc.strerror}") from None

    def chunks(self, key: str) -> Iterator[bytes] | None:
        self._folder(key)
        try:
            fd = open_nofollow(self._base + key)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link is not a file the store holds
                return None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None

        fh = open(fd, "rb")  # owns the descriptor now: closed with the generator even if it is never started

        def read() -> Iterator[bytes]:
            with fh:
                yield from iter(lambda: fh.read(CHUNK), b"")

        return read()

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` to a temporary file under ``.airgap/tmp/``, then rename it into place: a write killed
        half-way leaves it where :meth:`remove_leftovers` always looks (pages are written outside a change)."""
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`put` of many keys: each atomic, all durable when it returns, renamed in the given order.

        Every temporary file is written first, then their bytes reach the disk together (one ``syncfs``
        past :data:`~.localbatch.SYNC_EACH` files, not an fsync per file), then each is renamed into place and every
        folder changed is fsynced once. A crash can leave any of the renames done and the others not
        (no order among them is durable): a caller that needs an order puts in separate calls."""
        if not items:
            return
        folders = [self._folder(key, create=True) for key, _ in items]  # every folder checked before the first write
        self._sync_dirty()
        tmpdir = self._base + TMP
        os.makedirs(tmpdir, exist_ok=True)  # puts run one at a time (the engine's pool stores blobs, not puts)
        stem = f"{tmpdir}/.{uuid.uuid4().hex[:8]}-"
        tmps: list[str] = []
        moved = 0  # tmps[:moved] are gone (renamed, in order): a failure removes only the rest
        try:
            tmps = write_temps(stem, [data for _, data in items], [self._base + key for key, _ in items])
            for (key, data), folder, tmp in zip(items, folders, tmps, strict=True):
                point("dir write")
                try:
                    os.replace(tmp, self._base + key)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise named(exc, self._base + key) from None
                    atomic_write_bytes(Path(self._base + key), data)  # a channel folder on another file system (durable)
                    os.unlink(tmp)
                    moved += 1
                    continue
                moved += 1
                self._mark(folder)
        finally:
            for tmp in tmps[moved:]:  # what a failure left
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            with contextlib.suppress(OSError):
                os.rmdir(tmpdir)  # empty again: the tree holds nothing it did not hold before
        self._sync_dirty()

    def write_staged(self, items: Sequence[tuple[str, bytes]]) -> None:
        """New files in a change's staging area, made durable by :meth:`flush` (before anything points at them)."""
        for key, data in items:
            self._folder(key, create=True)
            point("dir write")
            create_new(self._base + key, data)

    def put_blob(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        """Place verified bytes: a staged file is hard-linked (kept for its next use), anything else copied."""
        folder = self._folder(key, create=True)
        point("dir put")
        self._place(key, blob, folder)
        if on_bytes is not None:
            on_bytes(blob.size)

    def take(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        """Move a blob staged in this store into place (one rename; the staged file is gone after)."""
        folder = self._folder(key, create=True)
        point("dir put")
        if self._staged(blob, sized=False):  # the import wrote exactly the verified bytes there: no stat per file
            os.replace(blob.path, (self._base + key))
            self._mark(folder)
        else:
            self._place(key, blob, folder)
        if on_bytes is not None:
            on_bytes(blob.size)

    def stage_folder(self, area: Path, key: str) -> Path | None:
        """The folder of ``area`` (a change's staging folder) that :meth:`take_folder` makes ``key``, created; None when
        something is at ``key`` already (its files are then placed one by one)."""
        staged = area / STAGED_DIR / check_key(key)  # beside the blobs staged by sha256: never one of their names
        self._dir(key.rpartition("/")[0])
        if not staged.is_dir() and os.path.lexists(self._base + key):
            return None
        staged.mkdir(parents=True, exist_ok=True)
        return staged

    def take_folder(self, key: str, area: Path) -> None:
        """Move the folder staged for ``key`` in ``area`` into place (one rename; ``key`` must not hold files); the
        folders that leaves empty in the area go."""
        staged = area / STAGED_DIR / check_key(key)
        self._dir(key.rpartition("/")[0], create=True)
        point("dir put folder")
        try:
            os.rename(staged, self._base + key)
        except OSError as exc:
            raise DestinationError(f"{self._base + key}: expected no folder there, found one ({exc.strerror}); retry the import") from None
        self._mark(key.rpartition("/")[0])
        for up in staged.parents:
            if up == area:
                break
            with contextlib.suppress(OSError):
                up.rmdir()

    def folder_exists(self, key: str) -> bool:
        return os.path.isdir(self._base + check_key(key))

    def drop_staged_folders(self, area: Path) -> None:
        """Remove the folders staged in ``area`` and never placed (an import that failed first), files and all; and the
        area, if that leaves it empty (a rollback removed the rest before)."""
        shutil.rmtree(area / STAGED_DIR, ignore_errors=True)
        with contextlib.suppress(OSError):
            area.rmdir()

    def _tmp(self, key: str, suffix: str) -> str:
        folder, _, name = key.rpartition("/")
        return f"{self._base}{folder + '/' if folder else ''}.{name}.{suffix}"

    def _staged(self, blob: BlobRef, sized: bool = True) -> bool:
        """A whole file in this store's staging area (``sized``: checked to hold ``blob.size`` bytes, one stat)."""
        if blob.offset != 0 or not os.fspath(blob.path).startswith(self._base + AREA_PREFIX):
            return False
        return not sized or os.path.getsize(blob.path) == blob.size

    def _place(self, key: str, blob: BlobRef, folder: str) -> None:
        target = self._base + key
        tmp = self._tmp(key, "airgap-tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        linked = False
        if self._staged(blob):
            with contextlib.suppress(OSError):
                os.link(blob.path, tmp)  # its bytes were flushed with the staging folder (flush)
                linked = True
        if not linked:
            with blob.open() as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, target)
        self._mark(folder)

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Files (not links) whose key starts with ``prefix``, at any depth."""
        folder, _, start = prefix.rpartition("/")
        self._dir(folder)
        found: list[tuple[str, int]] = []
        todo = [(folder, start)]
        while todo:
            at, name_start = todo.pop()
            try:
                with os.scandir(self._base + at if at else self.text) as it:
                    entries = [e for e in it if e.name.startswith(name_start)]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                key = f"{at}/{e.name}" if at else e.name
                if e.is_dir(follow_symlinks=False):
                    todo.append((key, ""))
                elif e.is_file(follow_symlinks=False):
                    found.append((key, e.stat(follow_symlinks=False).st_size))
        return iter(found)

    def names_in(self, folder: str) -> set[str]:
        """Files (not links) directly in ``folder``: the directory's entry types, no ``stat`` (see :class:`LocalFiles`)."""
        self._dir(folder)
        try:
            with os.scandir(self._base + folder if folder else self.text) as it:
                return {e.name for e in it if e.is_file(follow_symlinks=False)}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    sizes_limit = sys.maxsize  # a stat per key never costs more than listing the folder (which stats every file)

    def sizes(self, keys: list[str]) -> dict[str, int]:
        """One ``lstat`` per key (:class:`~airgap.destinations.store.KeySizes`): plain files only, as :meth:`list_prefix`."""
        found: dict[str, int] = {}
        present: dict[str, bool] = {}  # folder -> it is a folder (checked once: an import asks about 30,000 keys of one)
        for key in keys:
            folder = check_key(key).rpartition("/")[0]
            if folder not in present:
                present[folder] = self._dir(folder) in self._checked or not folder
            if not present[folder]:  # no such folder: none of its keys exists (one stat, not three per key)
                continue
            try:
                st = os.lstat(self._base + key)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                found[key] = st.st_size
        return found

    def delete(self, keys: list[str]) -> None:
        """Remove the files (a missing one is no error), then every folder that left empty, root excluded."""
        self._remove(keys, "dir remove")

    def _remove(self, keys: list[str], what: str | None) -> None:
        if not keys:
            return
        folders = {self._folder(key) for key in keys}  # every folder checked before the first removal
        self._sync_dirty()
        for key in keys:
            if what is not None:
                point(what)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._base + key)
        for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
            self._mark(folder)
            while folder:
                try:
                    os.rmdir(self._base + folder)
                except OSError:
                    break
                self._checked.discard(folder)
                folder = folder.rpartition("/")[0]
                self._mark(folder)
        self._sync_dirty()

    def backup(self, key: str, backup_key: str) -> bool:
        self._folder(key)
        folder = self._folder(backup_key, create=True)
        try:
            os.link((self._base + key), (self._base + backup_key), follow_symlinks=False)  # a link is kept as the link
        except FileNotFoundError:
            return False
        self._mark(folder)
        return True

    def restore(self, backup_key: str, key: str) -> None:
        folder = self._folder(key, create=True)
        self._folder(backup_key)
        point("dir undo")
        try:
            os.replace((self._base + backup_key), (self._base + key))
        except FileNotFoundError:  # put back by an earlier rollback that did not finish
            return
        self._mark(folder)

    def staging_dir(self, area: str) -> Path:
        """The folder of a change's area, where the operations stage verified blobs (created)."""
        return Path(self._base + self._dir(area.rstrip("/"), create=True))

    def flush(self) -> None:
        """Everything written so far reaches the disk: staged files, backups, renames (one ``syncfs``)."""
        with self._mutex:
            self._dirty.clear()
        syncfs(self.text)

    def remove_leftovers(self, everywhere: bool) -> list[str]:
        """Under the lock, after the journals are done: staging folders left empty, and (``everywhere``:
        a killed run was found) the temporary files of killed writes in ``.airgap`` and each channel's subdirs."""
        return remove_leftovers(self.root, self._base + self._dir(STATE), self._base + TMP, everywhere)
