"""Leases: the exclusive lock of a destination, renewed while its owner works, fenced before each step.

Written once over a tiny interface (:class:`LeaseStore`: create-if-absent, read, conditional
replace, conditional delete of one small lock object), which each store implements: an S3
object written with ``If-None-Match``/``If-Match``, a file in a directory destination.

The rules:

* **Owner.** :meth:`Lease.acquire` creates the lock object; a heartbeat thread replaces it every
  ``interval`` seconds with the next *generation* (conditionally on the version it last wrote).
  Before each publish step and before committing, :meth:`Lease.check` reads the lock object and
  stops with :class:`LockLostError` if it no longer carries this owner's token, or if the owner
  could not renew it for half the stale limit (by its own monotonic clock): past that point
  another process may judge it stale.
* **Observer.** A lock held by someone else is *stale* when its version did not change for
  ``stale_after`` seconds of the observer's own monotonic clock (a missed renewal), never
  because of the date written in it: clocks of two hosts may disagree, a lock dated in the
  future is judged like any other. A lock object that cannot be parsed is judged the same way.
  A lock whose owner ran on this host (same host name, boot and pid namespace) and whose process
  is gone (no such pid, or a pid started at another time) is stale at once.
* **Takeover** is a conditional replace of the exact version observed, so of two observers
  only one wins, and a lock renewed meanwhile is not taken.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..errors import DestinationError, LockError, LockLostError, StoreUnavailable

log = logging.getLogger(__name__)

LOCK_FORMAT = "airgap-lock/2"
DEFAULT_STALE_AFTER = 600.0


class LeaseStore(Protocol):
    """One small object, changed only through these four calls. A version is opaque (an ETag, a digest)."""

    def lease_create(self, data: bytes) -> str | None:
        """Create the object if there is none: its version, or None if one exists."""

    def lease_read(self) -> tuple[bytes, str] | None:
        """The object's bytes and version, or None if there is none."""

    def lease_replace(self, data: bytes, version: str) -> str | None:
        """Replace the object if it is still at ``version``: the new version, or None if it is not."""

    def lease_delete(self, version: str) -> bool:
        """Delete the object if it is still at ``version``; False if it is not."""


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _pid_ns() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return -1  # exists, unreadable
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def this_process() -> dict[str, Any]:
    """What identifies this process as a lock owner (a pid alone is reused, and means nothing on another host)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pidns": _pid_ns(), "pid": pid, "start": process_start(pid)}


def owner_gone(info: dict[str, Any], me: dict[str, Any]) -> bool:
    """True if ``info`` names a process of this host (same boot, same pid namespace) that no longer runs."""
    if info.get("host") != me["host"] or me["boot"] is None or info.get("pidns") != me["pidns"]:
        return False  # another host or container: only its renewals tell
    if info.get("boot") != me["boot"]:
        return True  # this host restarted since: every process of that boot is gone
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    start = process_start(pid)
    if start is None:
        return True
    return start != -1 and info.get("start") is not None and start != info.get("start")


class Lease:
    """One process's hold on a :class:`LeaseStore` (see the module docstring)."""

    def __init__(
        self,
        store: LeaseStore,
        where: str,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        poll: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.where = where  # "s3://bucket/prefix/.airgap/lock": for messages
        self.stale_after = float(stale_after)
        self.interval = max(0.05, min(self.stale_after / 6, 30.0))  # three renewals may fail before check() gives up
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.me = this_process()
        self.token = uuid.uuid4().hex
        self.generation = 0
        self.version: str | None = None
        self.renewed_at = 0.0  # monotonic time at which the last successful renewal was sent
        self.lost: str | None = None  # why this process no longer holds the lock
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        doc = {
            "format": LOCK_FORMAT,
            "owner": f"{self.me['host']}:{self.me['pid']}",
            **self.me,
            "token": self.token,
            "generation": self.generation,
            "renewed": time.time(),
            "stale_after": self.stale_after,
        }
        return json.dumps(doc, sort_keys=True).encode()

    # -- taking it ---------------------------------------------------------------------

    def acquire(self, timeout: float) -> None:
        deadline = self.clock() + timeout
        seen: tuple[str, float] | None = None  # (version, when first seen): a renewal changes the version
        waited = False
        while True:
            sent = self.clock()
            try:
                version = self.store.lease_create(self._record())
                current = self.store.lease_read() if version is None else None
            except StoreUnavailable as exc:  # a store that is coming back up: ask again until the lock timeout
                if self.clock() >= deadline:
                    raise
                log.warning("%s: %s; trying again", self.where, exc)
                self.sleep(self.poll)
                continue
            if version is not None:
                self.version, self.renewed_at = version, sent
                return
            if current is None:
                continue  # released meanwhile: try again at once
            data, version = current
            now = self.clock()
            if seen is None or seen[0] != version:
                seen = (version, now)
            info = _parse(data)
            reason = None
            if info is not None and owner_gone(info, self.me):
                reason = f"its process {info.get('owner')} is gone"
            elif now - seen[1] >= self.stale_after:
                what = f"of {info.get('owner')}" if info is not None else "(unreadable)"
                reason = f"the lock {what} was not renewed for {now - seen[1]:.0f}s (lock_stale_after {self.stale_after:.0f}s)"
            if reason is not None:
                gen = (info or {}).get("generation")
                self.generation = gen + 1 if isinstance(gen, int) and not isinstance(gen, bool) else 1
                sent = self.clock()
                new = self.store.lease_replace(self._record(), version)
                if new is not None:
                    log.warning("%s: taking over the lock: %s", self.where, reason)
                    self.version, self.renewed_at = new, sent
                    return
                seen = None
                continue  # renewed or taken meanwhile
            if now >= deadline:
                who = f" ({info.get('owner')}, generation {info.get('generation')})" if info is not None else " (unreadable)"
                raise LockError(
                    f"{self.where.rsplit('/.airgap', 1)[0]}: another airgap import or clean holds the lock{who}; waited "
                    f"{timeout:.0f}s; it is taken over once its owner stops renewing it for {self.stale_after:.0f}s "
                    f"(if none is running and you cannot wait, delete {self.where})"
                )
            if not waited:
                log.warning("%s: another airgap process holds the lock; waiting up to %.0fs", self.where, timeout)
                waited = True
            self.sleep(min(self.poll, max(0.0, deadline - now)) or self.poll)

    # -- keeping it --------------------------------------------------------------------

    def renew(self) -> None:
        """Write the next generation (conditionally on the last one); mark the lease lost if another took it."""
        with self._mutex:
            if self.lost is not None or self.version is None:
                return
            self.generation += 1
            sent = self.clock()
            try:
                new = self.store.lease_replace(self._record(), self.version)
            except Exception as exc:  # the store is unreachable: check() decides when that is too long
                log.debug("%s: renewing the lock failed: %s", self.where, exc)
                self.generation -= 1
                return
            if new is None:
                self.lost = "another process replaced the lock (it judged it stale)"
                log.error("%s: this process lost the lock: %s", self.where, self.lost)
            else:
                self.version, self.renewed_at = new, sent

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="airgap-lock-heartbeat", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Before a publish step or a commit: stop with :class:`LockLostError` unless this process surely holds the lock."""
        with self._mutex:
            if self.lost is None:
                age = self.clock() - self.renewed_at
                if age > self.stale_after / 2:
                    self.lost = f"it could not be renewed for {age:.0f}s (half of lock_stale_after {self.stale_after:.0f}s)"
                else:
                    current = self.store.lease_read()
                    info = _parse(current[0]) if current is not None else None
                    if info is None or info.get("token") != self.token:
                        self.lost = f"another process took it over (the lock now names {info.get('owner') if info else 'nobody'})"
            if self.lost is not None:
                raise LockLostError(
                    f"{self.where}: expected this process to hold the lock, found that {self.lost}; stopped "
                    "before changing more (the next run rolls back what this one left)"
                )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self.lost is not None or self.version is None:
                return
            try:
                if not self.store.lease_delete(self.version):
                    log.warning("%s: the lock was no longer this process's; left it", self.where)
            except Exception as exc:  # the work is done; a lock left behind is reported, not fatal
                log.warning("%s: could not release the lock (%s); the next run takes it over once it sees it stale", self.where, exc)
            self.version = None


@contextmanager
def held(store: LeaseStore, where: str, timeout: float, stale_after: float = DEFAULT_STALE_AFTER) -> Iterator[Lease]:
    """Acquire a lease on ``store``, renew it in the background while the body runs, release it after."""
    lease = Lease(store, where, stale_after=stale_after)
    lease.acquire(timeout)
    lease.start()
    try:
        yield lease
    finally:
        lease.release()


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


class LeaseHolder:
    """The fencing a destination that holds a :class:`Lease` while it changes offers its changes."""

    _lease: Lease | None

    def fence(self) -> None:
        """Before a publish step: stop unless this process still holds the lock (see :meth:`Lease.check`)."""
        if self._lease is None:
            raise DestinationError(f"{self}: a change needs the lock (internal error)")
        self._lease.check()

    def holds_lock(self) -> bool:
        try:
            self.fence()
        except (DestinationError, LockLostError):
            return False
        return True
