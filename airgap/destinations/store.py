"""Object stores: what differs between a directory, an S3 bucket, an in-memory test store (DESIGN §5).

A store holds bytes under keys and knows nothing about conda: no channels, no repodata, no
receipt. Keys are relative, ``/``-separated paths of plain components (:func:`check_key`).
The transaction engine (:mod:`airgap.destinations.engine`) builds the conda destination once,
over any store; a new backend is one store module and one line in
:mod:`airgap.destinations.registry`.

What a store must guarantee:

* :meth:`ObjectStore.put` and :meth:`ObjectStore.put_blob` are atomic: a reader sees the old
  bytes or the new ones, never a part; when they return, the bytes are durable.
* :meth:`ObjectStore.backup` and :meth:`ObjectStore.restore` copy inside the store (a hard link,
  a server-side copy): the journal keeps what it will undo without moving bytes through airgap.
* The four lock primitives act on one small object each, conditionally on an opaque version
  (an ETag, a counter): the lease of :mod:`airgap.destinations.lease` needs no more
  (:class:`KeyLease` adapts one key to its ``LeaseStore`` interface).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import DestinationError
from .base import BlobRef, OnBytes


def check_key(key: str) -> str:
    """``key`` if it is a plain relative path (no empty, ``.`` or ``..`` component, no NUL, no ``\\``).

    Substring scans, not a pattern: a full import checks ~1.4 million keys (300,000 files), 0.3 µs each
    this way against 1.5 µs with the regular expression it replaced (tests/test_store_keys.py holds the two equal)."""
    if (
        not isinstance(key, str)
        or not key
        or key in (".", "..")
        or key.startswith(("/", "./", "../"))
        or key.endswith(("/", "/.", "/.."))
        or "//" in key  # an empty component
        or "/./" in key
        or "/../" in key
        or "\0" in key
        or "\\" in key
    ):
        raise DestinationError(f"store: expected a key of plain path components, found {key!r}")
    return key


class ObjectStore(Protocol):
    """Bytes under keys. Every method may raise :class:`~airgap.errors.DestinationError` (one line: what failed)."""

    def __str__(self) -> str:
        """Where the store is, for messages (``memory://NAME``, ``s3://BUCKET/PREFIX``)."""
        ...

    def exists(self) -> bool:
        """The store is there (a directory, a bucket)."""
        ...

    # -- objects ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""
        ...

    def chunks(self, key: str) -> Iterator[bytes] | None:
        """The object's bytes in bounded pieces (for hashing large files), or None if there is none."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object, atomically and durably."""
        ...

    def put_blob(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        """:meth:`put` from verified bytes in a local file (streamed; multipart where the store has it)."""
        ...

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object whose key starts with ``prefix`` (at any depth), in no set order."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Remove the objects; a key that is not there is no error."""
        ...

    def url(self, key: str) -> str:
        """The URL a client reads ``key`` (or the folder ``key``) at."""
        ...

    # -- the journal's copies ----------------------------------------------------------------

    def backup(self, key: str, backup_key: str) -> bool:
        """Copy ``key`` to ``backup_key`` inside the store (durably); False if ``key`` is not there."""
        ...

    def restore(self, backup_key: str, key: str) -> None:
        """Put the copy at ``backup_key`` back over ``key``, atomically (the copy may stay)."""
        ...

    # -- the lock ---------------------------------------------------------------------------

    def create(self, key: str, data: bytes) -> str | None:
        """Create the object if there is none: its version, or None if one exists."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version, or None if there is none."""
        ...

    def replace_if(self, key: str, data: bytes, version: str) -> str | None:
        """Replace the object if it is still at ``version``: the new version, or None if it is not."""
        ...

    def delete_if(self, key: str, version: str) -> bool:
        """Delete the object if it is still at ``version``; False if it is not."""
        ...


@runtime_checkable
class KeySizes(Protocol):
    """A store that answers for a few keys without listing their folder (a local file system: one stat each; S3: a HEAD each).

    An import that trusts a subdir's index (airgap published it) asks only about the files the
    archive names, instead of listing (and stat-ing) every file of a big subdir."""

    #: keys of one folder asked one by one, at most, before listing the folder is the cheaper question (a remote
    #: store answers each with a request; a local one with a stat)
    sizes_limit: int

    def sizes(self, keys: list[str]) -> dict[str, int]:
        """``{key: size}`` of those of ``keys`` held as plain files (absent: not there)."""
        ...


@runtime_checkable
class LocalFiles(Protocol):
    """What a store on this host's file system adds (:class:`~airgap.destinations.localstore.LocalStore`):
    a change stages its blobs in a folder inside the store and moves each into place, and the
    bytes reach the disk once, at :meth:`flush`, instead of at every write."""

    def staging_dir(self, area: str) -> Path:
        """The local folder of a change's area (created), where the operations copy verified blobs."""
        ...

    def take(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        """:meth:`ObjectStore.put_blob` of a blob staged there and not needed again: moved, not copied."""
        ...

    def stage_folder(self, area: Path, key: str) -> Path | None:
        """A folder in a change's ``area`` that becomes ``key`` whole (:meth:`take_folder`), created; None: ``key`` is there."""
        ...

    def take_folder(self, key: str, area: Path) -> None:
        """Rename the folder staged for ``key`` to it, files and all (a new subdir: one rename, not one per file)."""
        ...

    def drop_staged_folders(self, area: Path) -> None:
        """Remove what :meth:`stage_folder` made in ``area`` and :meth:`take_folder` did not place."""
        ...

    def write_staged(self, items: Sequence[tuple[str, bytes]]) -> None:
        """New files in a change's staging area, made durable by :meth:`flush`."""
        ...

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`ObjectStore.put` of many keys at once (each atomic, all durable on return, no durable order among them)."""
        ...

    def view(self, key: str) -> bytes | mmap.mmap | None:
        """:meth:`ObjectStore.get`, mapped read-only when big: the page cache's pages, no copy (for files never written in place)."""
        ...

    def names_in(self, folder: str) -> set[str]:
        """The names of the files (not links) directly in ``folder`` (a key): :meth:`ObjectStore.list_prefix` without a
        ``stat`` per file (30,000 shards: a tenth of the time)."""
        ...

    def flush(self) -> None:
        """Everything written so far (the staged blobs included) is on disk when this returns."""
        ...


def sha256_of(store: ObjectStore, key: str, on_bytes: OnBytes | None = None) -> str | None:
    """The sha256 of the stored bytes of ``key`` (read a chunk at a time; ``on_bytes`` told each), or None: no such key."""
    chunks = store.chunks(key)
    if chunks is None:
        return None
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    return h.hexdigest()


def view(store: ObjectStore, key: str) -> bytes | mmap.mmap | None:
    """The stored bytes of ``key``; from a directory, mapped when big. Only for the index files and the receipt:
    airgap replaces them by renames, never writes them in place (docs/decisions/0013-mapped-own-files.md)."""
    return store.view(key) if isinstance(store, LocalFiles) else store.get(key)


class KeyLease:
    """One key of a store seen as the ``LeaseStore`` of :mod:`airgap.destinations.lease` (one lock object)."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.store = store
        self.key = check_key(key)

    def lease_create(self, data: bytes) -> str | None:
        return self.store.create(self.key, data)

    def lease_read(self) -> tuple[bytes, str] | None:
        return self.store.read_versioned(self.key)

    def lease_replace(self, data: bytes, version: str) -> str | None:
        return self.store.replace_if(self.key, data, version)

    def lease_delete(self, version: str) -> bool:
        return self.store.delete_if(self.key, version)
