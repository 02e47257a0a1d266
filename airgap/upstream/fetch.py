"""Reading bytes from upstream: ``http(s)://`` through one pooled urllib3 client, ``file://``.

The only module that talks to the network. It knows nothing about conda: it streams bytes,
tells "not found" apart from transient faults, and retries the transient ones (5xx, 429,
resets, timeouts, truncated bodies, transfers slower than ``min_rate``) with exponential
backoff. Callers hash and verify.

Redirects are followed here, by the rules of :mod:`airgap.upstream.urlpolicy` (at most 5, http(s)
only, never https → http, credentials only to their own origin). A URL's ``user:password@``
is sent as Basic auth to that URL's origin and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import __version__
from ..errors import NotFound, TransientError, UpstreamError
from ..redact import has_secret
from .network import Bandwidth, Network, Transport, explain, status_problem
from .urlpolicy import REDIRECT_STATUSES, headers_for_hop, redirect_target, request_parts

# urllib3 (~0.1 s to import) is imported by the first http(s) request: a file:// upstream never needs it

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


def _url2pathname(path: str) -> str:
    """``urllib.request.url2pathname`` without importing urllib.request (it imports http.client and ssl: ~50 ms)."""
    if os.name == "nt":  # pragma: no cover
        from nturl2path import url2pathname

        return url2pathname(path)
    return urllib.parse.unquote(path)  # what urllib.request.url2pathname is on POSIX


def url_to_path(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise UpstreamError(f"{url}: expected a local file:// URL, found host {parsed.netloc!r}")
    return _url2pathname(parsed.path)


class Fetcher:
    """Pooled, retrying byte source. Thread-safe: one instance serves all download workers."""

    def __init__(
        self,
        workers: int = 8,
        retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        min_rate: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        network: Network | None = None,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        # a transfer slower than min_rate bytes/s over any `timeout` seconds is a transient fault:
        # a server trickling a byte at a time never trips the socket's read timeout
        self._pace = _Pace(min_rate, float(timeout), clock)
        # proxies, TLS trust, client certificates, stored credentials, a bandwidth cap: airgap.upstream.network
        self._net = network or Network()
        self._bandwidth = Bandwidth(self._net.max_bandwidth) if self._net.max_bandwidth else None
        self._workers, self._timeout = workers, timeout
        self._pools: Transport | None = None
        self._pools_lock = threading.Lock()

    @property
    def _transport(self) -> Transport:
        """The pools, made for the first http(s) request (urllib3 is imported then); one for every worker."""
        with self._pools_lock:
            if self._pools is None:
                self._pools = self._new_transport()
            return self._pools

    def _new_transport(self) -> Transport:
        import urllib3

        timeout = self._timeout
        return Transport(
            self._net,
            float(timeout),  # headers trickled a byte at a time: the same deadline
            num_pools=16,
            maxsize=max(self._workers, 1),
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout, 30.0), read=timeout),
            headers={"User-Agent": f"airgap/{__version__}"},
        )

    def close(self) -> None:
        if self._pools is not None:  # made only if a request was
            self._pools.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- single attempts ------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, url: str) -> Iterator[tuple[Iterator[bytes], int | None]]:
        """One attempt: yield ``(chunks, length)``. Raises NotFound or TransientError."""
        with self.open_from(url, 0) as (chunks, length, _start):
            yield chunks, length

    @contextlib.contextmanager
    def open_from(self, url: str, offset: int, whole: int | None = None) -> Iterator[tuple[Iterator[bytes], int | None, int]]:
        """Like :meth:`open`, asking for the bytes from ``offset`` on (HTTP Range).

        Yields ``(chunks, length of what follows, start)``: ``start`` is ``offset`` when the
        server honoured the range and 0 when it sent the whole body. ``whole``: a local file's first
        chunk is all of it, up to that many bytes and one more (one buffer of its size, not chunks
        joined: a 254 MB repodata.json read in half the time, with half the fresh memory).
        """
        scheme = urllib.parse.urlparse(url).scheme
        if scheme == "file":
            path = url_to_path(url)
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise NotFound(f"{url}: not found") from None
            except IsADirectoryError:
                raise NotFound(f"{url}: is a directory, expected a file") from None
            except OSError as exc:
                raise UpstreamError(f"{url}: cannot read: {exc.strerror}") from None
            with fh:
                size = os.fstat(fh.fileno()).st_size
                start = offset if 0 < offset <= size else 0
                fh.seek(start)
                n = min(size - start, whole) + 1 if whole is not None else CHUNK  # one more: a file that grew shows
                yield iter(lambda: fh.read(n), b""), size - start, start
            return
        if scheme not in ("http", "https"):
            raise UpstreamError(f"{url}: expected an http://, https:// or file:// URL, found scheme {scheme!r}")
        resp = self._get(url, {"Range": f"bytes={offset}-"} if offset > 0 else {})
        try:
            if resp.status in (404, 410):
                raise NotFound(f"{url}: HTTP {resp.status} not found")
            if resp.status == 416 and offset > 0:  # the partial file is no prefix of this one: start over
                raise TransientError(f"{url}: HTTP 416 for a resumed download; restarting it")
            problem = status_problem(url, resp.status, self._net.proxy_for(url), resp.airgap_credentials)
            if problem is not None:
                raise UpstreamError(problem)
            if resp.status in RETRY_STATUSES:
                raise TransientError(f"{url}: HTTP {resp.status}")
            start = 0
            if resp.status == 206 and offset > 0 and str(resp.headers.get("Content-Range", "")).startswith(f"bytes {offset}-"):
                start = offset
            elif resp.status != 200:
                raise UpstreamError(f"{url}: expected HTTP 200, found HTTP {resp.status} {resp.reason or ''}".rstrip())
            length_header = resp.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            yield _guarded(resp, url, length, self._pace, self._bandwidth), length, start
        finally:
            resp.release_conn()

    def _get(self, url: str, extra: dict[str, str]) -> Any:
        """GET ``url``, following redirects by :mod:`airgap.upstream.urlpolicy`; the final response, body unread."""
        import urllib3

        url, stored = self._net.credentials.apply(url)  # RATTLER_AUTH_FILE, ~/.netrc: for this origin only
        current, headers = request_parts(url)
        headers.update(stored)
        headers.update(extra)
        hop = 0
        while True:
            try:
                resp = self._transport.manager_for(current).request(
                    "GET", current, preload_content=False, decode_content=False, redirect=False, headers=headers
                )
            except urllib3.exceptions.HTTPError as exc:
                message, transient = explain(exc, current, self._net.proxy_for(current))
                raise (TransientError if transient else UpstreamError)(message) from None
            if resp.status not in REDIRECT_STATUSES:
                # whether credentials went along (a header, or a token in the path): for a 401's message
                resp.airgap_credentials = "Authorization" in headers or has_secret(current)  # type: ignore[attr-defined]
                return resp
            location = resp.headers.get("Location")
            resp.close()  # a redirect's body is not read (it may be endless); the pool reconnects
            resp.release_conn()
            hop += 1
            target = redirect_target(current, location, hop)
            log.debug("%s: HTTP %d redirect to %s", current, resp.status, target)
            headers = headers_for_hop(current, target, headers)
            current = target

    # -- with retries -------------------------------------------------------------------

    def with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, retrying TransientError with backoff."""
        for n in range(self.retries):
            try:
                return attempt()
            except TransientError as exc:
                if n + 1 >= self.retries:
                    raise TransientError(f"{exc} (gave up after {self.retries} attempts)") from None
                delay = min(self.backoff * (2**n), 30.0) * (0.5 + random.random() / 2)
                log.info("%s; retrying in %.1fs (attempt %d of %d)", exc, delay, n + 2, self.retries)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def get_bytes(self, url: str, max_bytes: int) -> bytes:
        """The whole body of ``url`` (at most ``max_bytes``). Raises NotFound."""

        def attempt() -> bytes:
            parts: list[bytes] = []
            total = 0
            with self.open_from(url, 0, whole=max_bytes) as (chunks, _length, _start):
                for chunk in chunks:
                    total += len(chunk)
                    if total > max_bytes:
                        raise UpstreamError(f"{url}: expected at most {max_bytes} bytes, found more")
                    parts.append(chunk)
            return b"".join(parts)

        return self.with_retries(url, attempt)


class _Pace:
    """The slowest transfer tolerated: ``min_rate`` bytes/s, measured over windows of ``window`` seconds."""

    def __init__(self, min_rate: int, window: float, clock: Callable[[], float]) -> None:
        self.min_rate, self.window, self.clock = min_rate, window, clock

    def watch(self, url: str) -> Callable[[int, float], None]:
        """A callback taking each chunk's size; raises TransientError once a window is too slow."""
        start = self.clock()
        got = 0

        def arrived(n: int, paused: float = 0.0) -> None:
            nonlocal start, got
            got += n
            start += paused  # time spent waiting for max_bandwidth is not the server's slowness
            elapsed = self.clock() - start
            if elapsed < self.window or self.min_rate <= 0:
                return
            if got < self.min_rate * elapsed:
                raise TransientError(
                    f"{url}: expected at least {self.min_rate} bytes/s (min_rate), found {got} bytes in {elapsed:.0f}s; "
                    f"the server is too slow"
                )
            start, got = self.clock(), 0

        return arrived


def _guarded(resp: Any, url: str, length: int | None, pace: _Pace, bandwidth: Bandwidth | None = None) -> Iterator[bytes]:
    import urllib3

    got = 0
    arrived = pace.watch(url)
    try:
        while True:
            chunk = resp.read1(CHUNK)  # whatever has arrived: a trickle must reach the pace check
            if not chunk:
                break
            got += len(chunk)
            arrived(len(chunk), bandwidth.take(len(chunk)) if bandwidth is not None else 0.0)
            yield chunk
    except urllib3.exceptions.HTTPError as exc:
        raise TransientError(f"{url}: connection broke after {got} bytes ({type(exc).__name__})") from None
    if length is not None and got != length:
        raise TransientError(f"{url}: expected {length} bytes, the body ended after {got}")
