"""The archive's package members written by a child process while the parent renders the SBOM.

The manifest, the archive's first member, names the SBOM blob by its sha256, so the SBOM is
rendered before the archive's first byte. For 300,000 small files that is some 5 s of Python,
and writing the 300,000 package members is about as long again, one after the other on one core.
:class:`BodyChild` forks: the child writes the package members (:func:`.writer.write_body`: the
same bytes, each file checked the same way) into an unlinked temporary file beside the archive,
while the parent renders the SBOM; the parent then writes the head (manifest, signature,
repodata and SBOM blobs) and appends the body by a kernel copy (:func:`.writer.write_archive`'s
``body``). The archive is byte for byte what one process writes (tests/test_forked_body.py).

The body is written twice (the temporary file, then the archive), so the export uses this only
where that costs less than the SBOM (:func:`worth_it`): many small files, a body that stays in
the page cache, Linux. The child reports its progress and its outcome on a pipe; it touches no
lock the parent's other threads may hold (no logging, no imports) and leaves by ``os._exit``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from ..errors import AirgapError
from .writer import BadBlob, write_body

AVAILABLE = sys.platform.startswith("linux") and hasattr(os, "fork")
MIN_FILES = 10_000  # fewer: the SBOM takes a fraction of a second, not worth a process
MAX_AVERAGE = 16 << 10  # bytes per member: copying more than this costs about what its SBOM component does
MAX_BODY = 1 << 30  # a body this large would leave the page cache and double the disk's writes
_REPORT_EVERY = 256  # files between progress reports
Blobs = Iterable[tuple[str, int, str]]  # (sha256, size, path) of each member, in order


def worth_it(sizes: Sequence[int]) -> bool:
    """Whether writing members of these sizes in a child pays for writing them twice."""
    if not AVAILABLE or len(sizes) < MIN_FILES:
        return False
    body = sum(sizes) + 1024 * len(sizes)  # a header and the padding to the next block, at most, per member
    return body <= MAX_BODY and body <= MAX_AVERAGE * len(sizes)


class BodyChild:
    """A child process writing ``blobs`` as archive members to a temporary file in ``directory``
    (an iterable the child consumes: a generator's work is done there, not here).

    ``on_bytes``/``on_file`` are called from a thread of the parent as the child reports.
    :meth:`result` waits and gives ``(fd, length)``; it raises what the child met
    (:class:`BadBlob`, ``OSError``). Leaving the block stops a child still running."""

    def __init__(
        self,
        directory: Path,
        blobs: Blobs,
        mtime: int,
        fresh: Container[str],
        on_bytes: Callable[[int], None],
        on_file: Callable[[], None],
    ) -> None:
        self._directory, self._on_bytes, self._on_file = directory, on_bytes, on_file
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".airgap-body-")
        os.unlink(tmp)  # nothing is left behind, however the export ends
        self._fd = fd
        read, write = os.pipe()
        with warnings.catch_warnings():  # Python 3.12 warns of forking with threads: the child needs none of their locks
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            os.close(read)
            _child(fd, write, blobs, mtime, fresh)
        os.close(write)
        self._pid: int | None = pid
        self._read = read
        self._outcome: list[bytes] = []
        self._listener = threading.Thread(target=self._listen, name="airgap-body", daemon=True)
        self._listener.start()

    def __enter__(self) -> BodyChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self) -> None:
        with open(self._read, "rb") as reports:
            for line in reports:
                kind, _, rest = line.rstrip(b"\n").partition(b" ")
                if kind == b"p":
                    n, files = (int(x) for x in rest.split())
                    self._on_bytes(n)
                    for _ in range(files):
                        self._on_file()
                else:
                    self._outcome.append(line.rstrip(b"\n"))

    def result(self) -> tuple[int, int]:
        """Wait for the child: ``(fd, length)`` of the members it wrote, the file's offset at its start."""
        self._listener.join()
        status = self._wait()
        outcome = self._outcome[-1] if self._outcome else b""
        kind, _, rest = outcome.partition(b" ")
        text = rest.decode("utf-8", "replace")
        if kind == b"ok" and status == 0:
            os.lseek(self._fd, 0, os.SEEK_SET)
            return self._fd, int(text)
        if kind == b"bad":
            raise BadBlob(text)
        if kind == b"os":
            code, _, message = text.partition(" ")
            raise OSError(int(code), message, os.fspath(self._directory / ".airgap-body"))
        if kind == b"err":
            raise AirgapError(f"{self._directory}: writing the archive's packages failed: {text}; no archive was written")
        how = f"by signal {-status}" if status < 0 else f"with status {status}"
        raise AirgapError(f"{self._directory}: the process writing the archive's packages ended {how}; no archive was written")

    def _wait(self) -> int:
        pid, self._pid = self._pid, None
        if pid is None:
            return 0
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        """Stop the child if it still runs, and let go of the temporary file."""
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self._wait()
        self._listener.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _child(fd: int, write: int, blobs: Blobs, mtime: int, fresh: Container[str]) -> NoReturn:
    """In the child: write the members, report, and leave without running the parent's clean-ups."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, and kills this process if it stops
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        report = _Reporter(write)
        length = write_body(fd, blobs, mtime, fresh, report.bytes, report.file)
        report.flush()
        _send(write, b"ok %d" % length)
        code = 0
    except BadBlob as exc:
        _send(write, b"bad " + _line(str(exc)))
    except OSError as exc:
        _send(write, b"os %d " % (exc.errno or errno.EIO) + _line(exc.strerror or str(exc)))
    except BaseException as exc:  # anything else: say what, never run the parent's code on
        _send(write, b"err " + _line(f"{type(exc).__name__}: {exc}"))
    finally:
        os._exit(code)


def _line(text: str) -> bytes:
    return text.replace("\n", " ").encode("utf-8", "replace")


def _send(fd: int, message: bytes) -> None:
    data = memoryview(message + b"\n")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # the parent is gone: nobody to tell


class _Reporter:
    """Progress batched into a report every few hundred files."""

    def __init__(self, fd: int) -> None:
        self._fd, self._bytes, self._files = fd, 0, 0

    def bytes(self, n: int) -> None:
        self._bytes += n

    def file(self) -> None:
        self._files += 1
        if self._files >= _REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._bytes or self._files:
            message = b"p %d %d\n" % (self._bytes, self._files)
            self._bytes = self._files = 0
            data = memoryview(message)
            while data:  # the parent gone: OSError (EPIPE) ends the child
                data = data[os.write(self._fd, data) :]
