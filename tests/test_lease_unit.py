"""The lease logic alone, over an in-memory store and an injected clock (no timing in the asserts)."""

from __future__ import annotations

import hashlib
import json

import pytest

from airgap.destinations.lease import Lease
from airgap.errors import DestinationError, LockError, StoreUnavailable


class MemoryStore:
    def __init__(self) -> None:
        self.data: bytes | None = None
        self.failures: list[BaseException] = []

    def _v(self) -> str:
        assert self.data is not None
        return hashlib.sha256(self.data).hexdigest()

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def lease_create(self, data: bytes) -> str | None:
        self._maybe_fail()
        if self.data is not None:
            return None
        self.data = data
        return self._v()

    def lease_read(self) -> tuple[bytes, str] | None:
        return None if self.data is None else (self.data, self._v())

    def lease_replace(self, data: bytes, version: str) -> str | None:
        if self.data is None or self._v() != version:
            return None
        self.data = data
        return self._v()

    def lease_delete(self, version: str) -> bool:
        if self.data is not None and self._v() != version:
            return False
        self.data = None
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def lease(store: MemoryStore, clock: Clock, stale: float = 10.0) -> Lease:
    return Lease(store, "mem/.airgap/lock", stale_after=stale, poll=1.0, clock=clock, sleep=clock.sleep)


def test_a_lock_renewed_while_watched_is_not_taken_and_one_silent_for_the_limit_is() -> None:
    store, clock = MemoryStore(), Clock()
    owner = lease(store, clock)
    owner.acquire(0)
    other = lease(store, clock)
    renewals = 0

    def sleep(s: float) -> None:  # the owner renews every 3 s of the observer's clock, five times
        nonlocal renewals
        clock.now += s
        if renewals < 5 and clock.now % 3 < 1:
            owner.renew()
            renewals += 1

    other.sleep = sleep
    with pytest.raises(LockError, match="holds the lock"):
        other.acquire(12)  # renewed all along: never stale
    other.acquire(30)  # then silent: taken after 10 s unchanged
    assert json.loads(store.data or b"{}")["token"] == other.token
    owner.renewed_at = clock.now  # even an owner that thinks it renewed a moment ago finds the token changed
    with pytest.raises(LockError, match="another process took it over"):
        owner.check()


def test_a_lock_dated_in_the_future_or_unreadable_is_judged_by_renewals_only() -> None:
    for body in (json.dumps({"owner": "far:1", "renewed": 4e9, "time": 4e9}).encode(), b"\x00not json"):
        store, clock = MemoryStore(), Clock()
        store.data = body
        taker = lease(store, clock)
        taker.acquire(60)
        assert clock.now - 1000.0 >= 10.0  # watched unchanged for the whole limit first


def test_a_store_coming_back_up_is_asked_again_and_a_refusal_is_not() -> None:
    store, clock = MemoryStore(), Clock()
    store.failures = [StoreUnavailable("InternalError"), StoreUnavailable("InternalError")]
    lease(store, clock).acquire(10)
    assert store.data is not None
    store, clock = MemoryStore(), Clock()
    store.failures = [DestinationError("access denied")]
    with pytest.raises(DestinationError, match="access denied"):
        lease(store, clock).acquire(10)
    assert clock.now == 1000.0  # no waiting on a refusal


def test_an_owner_that_could_not_renew_for_half_the_limit_stops() -> None:
    store, clock = MemoryStore(), Clock()
    owner = lease(store, clock)
    owner.acquire(0)
    owner.check()
    clock.now += 6  # renewals failed for more than half of the stale limit
    with pytest.raises(LockError, match="could not be renewed"):
        owner.check()
