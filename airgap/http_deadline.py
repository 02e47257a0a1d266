"""A deadline on an HTTP response's status line and headers.

urllib3's read timeout bounds each wait for bytes, so a server that sends its headers one byte
at a time never trips it. :func:`bound_header_wait` makes the connections of a pool manager
shut their socket down when the status line and headers have not all arrived ``seconds``
after the request was sent; the blocked read then fails like a reset connection (a transient
fault, retried). The body is paced elsewhere (``fetch._Pace``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


def _deadline_class(base: type[HTTPConnection], seconds: float) -> type[HTTPConnection]:
    class Connection(base):  # type: ignore[valid-type,misc]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            sock = self.sock
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

            timer = threading.Timer(seconds, expire) if sock is not None else None
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                response = super().getresponse(*args, **kwargs)
            finally:
                if timer is not None:
                    timer.cancel()
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
