"""A deadline on an HTTP response's status line and headers.

urllib3's read timeout bounds each wait for bytes, so a server that sends its headers one byte
at a time never trips it. :func:`bound_header_wait` makes the connections of a pool manager
shut their socket down when the status line and headers have not all arrived ``seconds``
after the request was sent; the blocked read then fails like a reset connection (a transient
fault, retried). The body is paced elsewhere (``fetch._Pace``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class _Watchdog:
    """One thread that runs each armed callback at its deadline unless it was disarmed first.

    A thread per request (``threading.Timer``) costs ~0.4 ms to start and stop; an export may
    make 100,000 requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._armed: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        with self._lock:
            token = next(self._ids)
            entry = (time.monotonic() + seconds, token, callback)
            heapq.heappush(self._heap, entry)
            self._armed.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="airgap-header-deadline", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # the earliest now: the thread sleeps on a later deadline (or none)
                self._lock.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.discard(token)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed: forget it
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, token, callback = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(token)
            with contextlib.suppress(Exception):  # one failing callback must not stop every later deadline
                callback()


_WATCHDOG = _Watchdog()


def _deadline_class(base: type[HTTPConnection], seconds: float) -> type[HTTPConnection]:
    class Connection(base):  # type: ignore[valid-type,misc]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            sock = self.sock
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

            token = _WATCHDOG.arm(seconds, expire) if sock is not None else None
            try:
                response = super().getresponse(*args, **kwargs)
            finally:
                if token is not None:
                    _WATCHDOG.disarm(token)
            if expired.is_set():  # a shut-down socket reads as the end of the headers: never believe them
                response.close()
                raise urllib3.exceptions.ProtocolError(f"the response headers took more than {seconds:g}s")
            return response

    return Connection


def bound_header_wait(manager: urllib3.PoolManager, seconds: float) -> None:
    """Give every connection ``manager`` makes from now on a ``seconds`` deadline for the response headers."""

    class Pool(HTTPConnectionPool):
        ConnectionCls = _deadline_class(HTTPConnection, seconds)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = _deadline_class(HTTPSConnection, seconds)  # type: ignore[assignment]

    manager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}
