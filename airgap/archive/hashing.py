"""sha256 of large blobs on a second thread, while the first one reads and writes the bytes.

Hashing every byte is the largest CPU cost of export, verify and import on large packages
(about 1.2 GB/s here, as much as the copying around it). ``hashlib`` releases the GIL while it
hashes, so one worker thread hashing chunk *n* while the caller reads chunk *n + 1* and writes
chunk *n* uses the second core. Each blob's digest is compared on the worker, after its last
chunk; the first mismatch is kept and raised by the caller at its next :meth:`HashPipe.check`
or :meth:`HashPipe.finish` — always before the caller's result counts (an archive is renamed
into place, a staged file is published) because both call :meth:`finish` first.

Small blobs are hashed inline by the callers: handing 16 KiB to a thread costs more than
hashing it.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import AirgapError

PIPE_MIN = 256 << 10  # blobs at least this large are hashed on the worker
MAX_PENDING = 8  # chunks handed over and not yet hashed (each up to 1 MiB): memory stays flat


class HashPipe:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-sha256")
        self._pending: deque[Future[None]] = deque()
        self._error: AirgapError | None = None

    def __enter__(self) -> HashPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, job: Callable[[], None]) -> Future[None]:
        while self._pending and (self._pending[0].done() or len(self._pending) >= MAX_PENDING):
            self._pending.popleft().result()  # also re-raises what a job raised
        future = self._pool.submit(job)
        self._pending.append(future)
        return future

    def update(self, h: hashlib._Hash, data: bytes | memoryview) -> Future[None]:
        """Hash ``data`` into ``h`` on the worker; the caller must not change ``data`` until the future is done."""
        return self._submit(lambda: h.update(data))

    def expect(self, h: hashlib._Hash, sha256: str, error: Callable[[str], AirgapError]) -> None:
        """After the blob's last :meth:`update`: if ``h`` is not ``sha256``, keep ``error(found)`` for the caller."""

        def compare() -> None:
            found = h.hexdigest()
            if found != sha256 and self._error is None:
                self._error = error(found)

        self._submit(compare)

    def check(self) -> None:
        """Raise the first mismatch found so far (without waiting)."""
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Wait until every chunk is hashed; raise the first mismatch."""
        while self._pending:
            self._pending.popleft().result()
        self.check()
