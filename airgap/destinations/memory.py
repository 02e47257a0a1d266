"""An in-memory :class:`~airgap.destinations.store.ObjectStore`: ``memory://NAME``.

For tests: the contract suite runs on it without servers, and crash tests run on it without
killing processes. Every handle opened on the same NAME (in one process) sees the same objects,
so "the next run" is a new handle on the old bytes. It is thread-safe: one mutex per NAME.

Fault injection (:class:`Faults`, set on one handle): every store call passes
:meth:`Faults.point`. ``fail_at=N`` makes the Nth call raise a
:class:`~airgap.errors.DestinationError` (the run notices and rolls back); ``kill_at=N`` makes
the Nth call and every later one on this handle raise :class:`StoreKilled`, a
``BaseException``: nothing more reaches the store, as if the process had died there (no
rollback, no lock release). ``Faults.log`` names each call, so a test learns how many there are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DestinationError, UsageError
from .base import BlobRef, OnBytes
from .engine import StoreDestination
from .formats import DEFAULT
from .lease import DEFAULT_STALE_AFTER
from .registry import check_site
from .store import check_key

CHUNK = 1 << 20


class StoreKilled(BaseException):
    """The simulated process died at a store call (see :class:`Faults`)."""


@dataclass
class Faults:
    """Which store call of one handle fails or "kills" (counted from 1), and a log of every call."""

    kill_at: int | None = None
    fail_at: int | None = None
    calls: int = 0
    killed: bool = False
    log: list[str] = field(default_factory=list)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def point(self, what: str) -> None:
        with self._mutex:
            self.calls += 1
            n = self.calls
            self.log.append(what)
            if self.killed or n == self.kill_at:
                self.killed = True
                raise StoreKilled(f"killed at store call {n} ({what})")
        if n == self.fail_at:
            raise DestinationError(f"injected failure at store call {n} ({what})")


class _Space:
    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.objects: dict[str, tuple[bytes, int]] = {}  # key -> (bytes, version)
        self.counter = 0

    def set(self, key: str, data: bytes) -> str:
        self.counter += 1
        self.objects[key] = (data, self.counter)
        return str(self.counter)


_spaces: dict[str, _Space] = {}
_spaces_mutex = threading.Lock()


def drop(name: str) -> None:
    """Forget every object of ``memory://NAME`` (tests)."""
    with _spaces_mutex:
        _spaces.pop(name, None)


def clone(source: str, target: str) -> None:
    """Make ``memory://TARGET`` a copy of ``memory://SOURCE`` (tests: one starting state, many runs)."""
    with _spaces_mutex:
        src = _spaces.setdefault(source, _Space())
        copy = _Space()
        with src.mutex:
            copy.objects = dict(src.objects)
            copy.counter = src.counter
        _spaces[target] = copy


class MemoryStore:
    """A handle on the objects of ``memory://NAME``; ``faults`` applies to this handle only."""

    def __init__(self, name: str, faults: Faults | None = None) -> None:
        if not name or "/" in name:
            raise UsageError(f"memory: expected memory://NAME (one path component), found {name!r}")
        self.name = name
        self.faults = faults
        with _spaces_mutex:
            self._space = _spaces.setdefault(name, _Space())

    def __str__(self) -> str:
        return f"memory://{self.name}"

    def _point(self, what: str) -> None:
        if self.faults is not None:
            self.faults.point(what)

    def exists(self) -> bool:
        self._point("exists")
        with self._space.mutex:
            return bool(self._space.objects)

    def get(self, key: str) -> bytes | None:
        self._point(f"get {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(key))
        return held[0] if held is not None else None

    def chunks(self, key: str) -> Iterator[bytes] | None:
        data = self.get(key)
        if data is None:
            return None
        return (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))

    def put(self, key: str, data: bytes) -> None:
        self._point(f"put {key}")
        with self._space.mutex:
            self._space.set(check_key(key), bytes(data))

    def put_blob(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        self._point(f"put {key}")
        parts = []
        with blob.open() as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                parts.append(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        data = b"".join(parts)
        if len(data) != blob.size:
            raise DestinationError(f"{self}: {key}: expected {blob.size} bytes from {blob.path}, found {len(data)}")
        with self._space.mutex:  # all at once: a reader never sees a part
            self._space.set(check_key(key), data)

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        self._point(f"list {prefix or '/'}")
        with self._space.mutex:
            found = [(k, len(v[0])) for k, v in self._space.objects.items() if k.startswith(prefix)]
        return iter(found)

    sizes_limit = 256  # as a remote store's (S3Store): past that, one listing

    def sizes(self, keys: list[str]) -> dict[str, int]:
        self._point(f"sizes {keys[0] if keys else '/'}{f' (+{len(keys) - 1})' if len(keys) > 1 else ''}")
        with self._space.mutex:
            held = {k: self._space.objects.get(check_key(k)) for k in keys}
        return {k: len(v[0]) for k, v in held.items() if v is not None}

    def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        self._point(f"delete {keys[0]}{f' (+{len(keys) - 1})' if len(keys) > 1 else ''}")
        with self._space.mutex:
            for key in keys:
                self._space.objects.pop(check_key(key), None)

    def url(self, key: str) -> str:
        return f"memory://{self.name}/{key}"

    def backup(self, key: str, backup_key: str) -> bool:
        self._point(f"backup {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(key))
            if held is None:
                return False
            self._space.set(check_key(backup_key), held[0])
            return True

    def restore(self, backup_key: str, key: str) -> None:
        self._point(f"restore {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(backup_key))
            if held is None:
                raise DestinationError(f"{self}: expected the backup {backup_key} to restore {key} from, found none")
            self._space.set(check_key(key), held[0])

    def create(self, key: str, data: bytes) -> str | None:
        self._point(f"create {key}")
        with self._space.mutex:
            if check_key(key) in self._space.objects:
                return None
            return self._space.set(key, bytes(data))

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        self._point(f"read {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(key))
        return (held[0], str(held[1])) if held is not None else None

    def replace_if(self, key: str, data: bytes, version: str) -> str | None:
        self._point(f"replace {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(key))
            if held is None or str(held[1]) != version:
                return None
            return self._space.set(key, bytes(data))

    def delete_if(self, key: str, version: str) -> bool:
        self._point(f"delete {key}")
        with self._space.mutex:
            held = self._space.objects.get(check_key(key))
            if held is None or str(held[1]) != version:
                return False
            del self._space.objects[key]
            return True


class MemoryDestination(StoreDestination):
    """The engine over a :class:`MemoryStore`."""

    kind = "memory"


SITE_KEYS = {"url", "index_formats", "lock_stale_after", "workers"}


def open_memory(spec: str, site: Mapping[str, Any]) -> MemoryDestination:
    """``memory://NAME`` as a destination (the registry's opener); ``site`` may choose index formats and lock staleness."""
    check_site("memory", site, SITE_KEYS)
    formats = site.get("index_formats", DEFAULT)
    if isinstance(formats, str) or not isinstance(formats, (list, tuple)):
        raise UsageError(f"sites: expected index_formats to be a list of format names, found {formats!r}")
    return MemoryDestination(
        MemoryStore(spec[len("memory://") :].rstrip("/")),
        index_formats=tuple(formats),
        lock_stale_after=float(site.get("lock_stale_after", DEFAULT_STALE_AFTER)),
        workers=int(site.get("workers", 4)),
    )
