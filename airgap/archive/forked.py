"""The archive's package members written by a second process while the exporting one renders the SBOM.

The manifest, the archive's first member, names the SBOM blob by its sha256, so the SBOM is
rendered before the archive's first byte. For 300,000 small files that is some 5 s of Python,
and writing the 300,000 package members is about as long again, one after the other on one core.
:class:`BodyChild` starts a fresh interpreter (``python -m airgap.archive.forked``) that writes
the package members (:func:`.writer.write_body`: the same bytes, each file checked the same way)
into an unlinked temporary file beside the archive, while the exporting process goes on; that
one then writes the head (manifest, signature, repodata and SBOM blobs) and appends the body by
a kernel copy (:func:`.writer.write_archive`'s ``body``). The archive is byte for byte what one
process writes (tests/test_forked_body.py).

A fresh interpreter, not ``fork``: a forked child shares the exporter's heap copy-on-write, and
Python's reference counts write to every object the exporter touches, so the kernel copied most
of a 900 MB heap page by page (3 s more system time at 300,000 files); the child needs only the
list of files, sent on its standard input (about 40 bytes per file). It reports its progress and
its outcome on its standard output.

The body is written twice (the temporary file, then the archive), so the export uses this only
where that costs less than the SBOM (:func:`worth_it`): many small files, a body that stays in
the page cache.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import IO

import msgspec

from ..errors import AirgapError
from .writer import BadBlob

AVAILABLE = os.name == "posix"  # a descriptor passed to the child (pass_fds)
MIN_FILES = 10_000  # fewer: the SBOM takes a fraction of a second, not worth a process
MAX_AVERAGE = 16 << 10  # bytes per member: copying more than this costs about what its SBOM component does
MAX_BODY = 1 << 30  # a body this large would leave the page cache and double the disk's writes
_REPORT_EVERY = 256  # files between progress reports

#: each member: sha256, size, where it lies (a path, or a file:// folder URL and a file name), hashed already
Entry = tuple[str, int, str | tuple[str, str], bool]


class _Work(msgspec.Struct, frozen=True):
    """What the child is told on its standard input."""

    fd: int  # the temporary file, inherited
    mtime: int
    sort: bool  # write the members in the order of their sha256
    blobs: list[Entry]


def worth_it(count: int, total: int) -> bool:
    """Whether writing ``count`` members of ``total`` bytes in a child pays for writing them twice."""
    if not AVAILABLE or count < MIN_FILES:
        return False
    body = total + 1024 * count  # a header and the padding to the next block, at most, per member
    return body <= MAX_BODY and body <= MAX_AVERAGE * count


class BodyChild:
    """A child process writing ``blobs`` as archive members to a temporary file in ``directory``.

    ``on_bytes``/``on_file`` are called from a thread of this process as the child reports.
    :meth:`result` waits and gives ``(fd, length)``; it raises what the child met
    (:class:`BadBlob`, ``OSError``). Leaving the block stops a child still running."""

    def __init__(
        self,
        directory: Path,
        blobs: list[Entry],
        mtime: int,
        sort: bool,
        on_bytes: Callable[[int], None],
        on_file: Callable[[], None],
    ) -> None:
        self._directory, self._on_bytes, self._on_file = directory, on_bytes, on_file
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".airgap-body-")
        os.unlink(tmp)  # nothing is left behind, however the export ends
        self._fd = fd
        self._outcome: list[bytes] = []
        self._stderr = b""
        work = msgspec.msgpack.encode(_Work(fd, mtime, sort, blobs))
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very airgap
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "airgap.archive.forked"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(fd,),
                env=env,
            )
        except BaseException:
            os.close(fd)
            raise
        assert self._proc.stdin is not None and self._proc.stdout is not None and self._proc.stderr is not None
        self._feeder = threading.Thread(target=_feed, args=(self._proc.stdin, work), name="airgap-body-in", daemon=True)
        self._listener = threading.Thread(target=self._listen, args=(self._proc,), name="airgap-body-out", daemon=True)
        self._feeder.start()
        self._listener.start()

    def __enter__(self) -> BodyChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            kind, _, rest = line.rstrip(b"\n").partition(b" ")
            if kind == b"p":
                n, files = (int(x) for x in rest.split())
                self._on_bytes(n)
                for _ in range(files):
                    self._on_file()
            else:
                self._outcome.append(line.rstrip(b"\n"))
        self._stderr = proc.stderr.read()[-2000:]
        proc.stdout.close()
        proc.stderr.close()

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
        said = self._stderr.decode("utf-8", "replace").strip().splitlines()
        how = f"by signal {-status}" if status < 0 else f"with status {status}"
        more = f" ({said[-1]})" if said else ""
        raise AirgapError(f"{self._directory}: the process writing the archive's packages ended {how}{more}; no archive was written")

    def _wait(self) -> int:
        proc, self._proc = self._proc, None
        return 0 if proc is None else proc.wait()

    def close(self) -> None:
        """Stop the child if it still runs, and let go of the temporary file."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._wait()
        self._feeder.join()
        self._listener.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _feed(stdin: IO[bytes], work: bytes) -> None:
    with contextlib.suppress(OSError):  # the child gone early: its outcome says why
        with stdin:
            stdin.write(work)


def _main() -> None:
    """The child: write the members it is told of, report, and exit 0 (or 1 with the reason reported)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole group: the exporter decides, and stops this one
    from .. import faults
    from ..upstream.cache import in_place_path
    from .writer import write_body

    out = sys.stdout.buffer
    code = 1
    try:
        work = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=_Work)
        blobs = sorted(work.blobs, key=itemgetter(0)) if work.sort else work.blobs
        fresh = {sha for sha, _, _, hashed in blobs if hashed}
        folders: dict[str, str] = {}
        where = ((sha, size, at if isinstance(at, str) else in_place_path(at[0], at[1], folders)) for sha, size, at, _ in blobs)
        report = _Reporter(out)
        faults.point("archive body")  # tests: AIRGAP_FAULT stops or fails the child here
        length = write_body(work.fd, where, work.mtime, fresh, report.bytes, report.file)
        report.flush()
        out.write(b"ok %d\n" % length)
        code = 0
    except BadBlob as exc:
        out.write(b"bad " + _line(str(exc)) + b"\n")
    except OSError as exc:
        out.write(b"os %d " % (exc.errno or errno.EIO) + _line(exc.strerror or str(exc)) + b"\n")
    except Exception as exc:  # anything else: say what
        out.write(b"err " + _line(f"{type(exc).__name__}: {exc}") + b"\n")
    with contextlib.suppress(OSError):
        out.flush()
    sys.exit(code)


def _line(text: str) -> bytes:
    return text.replace("\n", " ").encode("utf-8", "replace")


class _Reporter:
    """Progress batched into a report every few hundred files."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out, self._bytes, self._files = out, 0, 0

    def bytes(self, n: int) -> None:
        self._bytes += n

    def file(self) -> None:
        self._files += 1
        if self._files >= _REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._bytes or self._files:
            self._out.write(b"p %d %d\n" % (self._bytes, self._files))
            self._out.flush()
            self._bytes = self._files = 0


if __name__ == "__main__":
    _main()
