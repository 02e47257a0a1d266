"""A bounded HTTP/1.1 server: a fixed pool of worker threads, a bounded queue, timeouts.

The standard ``ThreadingHTTPServer`` starts one thread per connection and waits for a client
forever: 300 half-sent requests hold 301 threads, and when the process runs out of file
descriptors its accept loop spins at 100% CPU. This server instead

- hands each accepted connection to one of ``workers`` threads through a queue of at most
  ``backlog`` connections; when that is full it answers ``503`` at once and closes;
- gives every connection an idle timeout (no byte for ``idle_timeout`` seconds: closed) and
  every request a deadline for its request line and headers (a client sending one byte at a
  time cannot hold a worker longer than ``header_timeout``);
- backs off briefly when ``accept`` fails for lack of file descriptors, instead of spinning;
- treats a client that disconnects as the normal thing it is (logged at DEBUG, no traceback).

What to answer is the handler's business (:mod:`airgap.site.serve`); this module knows no paths.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

log = logging.getLogger(__name__)

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"


class TimedRequestHandler(BaseHTTPRequestHandler):
    """A request handler whose connection has the server's idle timeout and header deadline."""

    server: BoundedHTTPServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # type: ignore[misc]  # StreamRequestHandler applies it to the socket
        super().setup()

    def handle_one_request(self) -> None:
        self.server.watch(self.connection)  # from the first byte of the request line to the last header
        try:
            super().handle_one_request()
        finally:
            self.server.unwatch(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.unwatch(self.connection)  # headers read: the response phase has the idle timeout only
        return ok


class BoundedHTTPServer(HTTPServer):
    """An HTTP server with ``workers`` threads, a queue of ``backlog`` connections and timeouts."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[TimedRequestHandler],
        *,
        workers: int = 16,
        backlog: int = 64,
        idle_timeout: float = 15.0,
        header_timeout: float = 30.0,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.request_queue_size = max(backlog, 5)  # the kernel's listen backlog
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=backlog)
        self._deadlines: dict[socket.socket, float] = {}
        self._deadlines_lock = threading.Lock()
        self._closed = threading.Event()
        self._last_shortage = 0.0
        super().__init__(address, handler)
        self._threads = [threading.Thread(target=self._work, name=f"airgap-serve-{i}", daemon=True) for i in range(workers)]
        self._threads.append(threading.Thread(target=self._reap, name="airgap-serve-reaper", daemon=True))
        for t in self._threads:
            t.start()

    # -- accepting ---------------------------------------------------------------------

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                now = time.monotonic()
                if now - self._last_shortage > 60:
                    log.warning("cannot accept a connection: %s (raise the limit of open files, ulimit -n)", exc.strerror)
                self._last_shortage = now
                self._closed.wait(0.05)  # the listening socket stays readable: wait instead of spinning
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            log.debug("%s: busy (%d connections waiting); answered 503", client_address[0], self._queue.qsize())
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_BUSY)
            self.shutdown_request(request)

    def _work(self) -> None:
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # a client that went away, or went quiet
            log.debug("%s: %s", client_address[0], exc)
            return
        log.error("%s: request failed: %s", client_address[0], exc, exc_info=log.isEnabledFor(logging.DEBUG))

    # -- the header deadline ---------------------------------------------------------------

    def watch(self, conn: socket.socket) -> None:
        with self._deadlines_lock:
            self._deadlines[conn] = time.monotonic() + self.header_timeout

    def unwatch(self, conn: socket.socket) -> None:
        with self._deadlines_lock:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        """Cut connections whose request line and headers did not arrive in time."""
        while not self._closed.wait(min(1.0, self.header_timeout / 4)):
            now = time.monotonic()
            with self._deadlines_lock:
                late = [c for c, d in self._deadlines.items() if d <= now]
                for c in late:
                    del self._deadlines[c]
            for c in late:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)  # the worker's blocked read returns at once

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()
        while True:  # connections still waiting for a worker are closed
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
