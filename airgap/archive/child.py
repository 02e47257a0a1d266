"""A second interpreter doing part of an export's or an import's work while the first goes on.

Both sides of the conversation: :class:`ReportingChild` starts ``python -m <module>`` (a fresh
interpreter, not ``fork``: a forked child shares the parent's heap copy-on-write, and reference
counts write to every object the parent touches, so the kernel copies it page by page), hands it
descriptors, feeds its work on its standard input, and hears its reports on its standard output:
``p <bytes> <files>`` lines of progress, then one outcome line. :func:`child_main` is the child's
side: it runs the work, reports, and turns what stopped it into that outcome line.

Used by :mod:`airgap.archive.forked` (an export's package members) and
:mod:`airgap.archive.blobchild` (an import's package blobs).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from .. import errors
from ..errors import AirgapError

_REPORT_EVERY = 256  # files between progress reports
_PR_SET_PDEATHSIG = 1


class ReportingChild:
    """``python -m module``, told ``work`` on its standard input, with ``fds`` inherited.

    ``on_bytes``/``on_files`` (a count) are called from a thread of this process as the child reports.
    :meth:`outcome` waits and gives its outcome line; :meth:`close` stops a child still running."""

    def __init__(
        self, module: str, work: bytes, fds: Sequence[int], on_bytes: Callable[[int], object], on_files: Callable[[int], object]
    ) -> None:
        self._on_bytes, self._on_files = on_bytes, on_files
        self._outcome: list[bytes] = []
        self._stderr = b""
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very airgap
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        env["AIRGAP_PARENT_PID"] = str(os.getpid())
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(fds),
            env=env,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None and self._proc.stderr is not None
        self._feeder = threading.Thread(target=_feed, args=(self._proc.stdin, work), name=f"{module}-in", daemon=True)
        self._listener = threading.Thread(target=self._listen, args=(self._proc,), name=f"{module}-out", daemon=True)
        self._feeder.start()
        self._listener.start()

    def _listen(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            kind, _, rest = line.rstrip(b"\n").partition(b" ")
            if kind == b"p":
                n, files = (int(x) for x in rest.split())
                self._on_bytes(n)
                self._on_files(files)  # a count: 300,000 calls here took the GIL from the parent's own work
            else:
                self._outcome.append(line.rstrip(b"\n"))
        self._stderr = proc.stderr.read()[-2000:]
        proc.stdout.close()
        proc.stderr.close()

    def outcome(self) -> tuple[bytes, str, int]:
        """Wait for the child: its outcome line's kind and text, and its exit status."""
        self._listener.join()
        proc, self._proc = self._proc, None
        status = 0 if proc is None else proc.wait()
        outcome = self._outcome[-1] if self._outcome else b""
        kind, _, rest = outcome.partition(b" ")
        return kind, rest.decode("utf-8", "replace"), status

    def ended(self, status: int) -> str:
        """How a child that said nothing ended: ``by signal 9 (its last line)``."""
        said = self._stderr.decode("utf-8", "replace").strip().splitlines()
        how = f"by signal {-status}" if status < 0 else f"with status {status}"
        return how + (f" ({said[-1]})" if said else "")

    def close(self) -> None:
        """Stop the child if it still runs."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._feeder.join()
        self._listener.join()


def raise_airgap(kind: bytes, text: str) -> None:
    """Raise the :mod:`airgap.errors` error an ``ae`` outcome names (``ae <ClassName> <message>``), as the child met it."""
    if kind == b"ae":
        name, _, message = text.partition(" ")
        cls = getattr(errors, name, None)
        raise (cls if isinstance(cls, type) and issubclass(cls, AirgapError) else AirgapError)(message)


def os_error(text: str, filename: str | None = None) -> OSError:
    """The ``OSError`` an ``os`` outcome's text says (``<errno> <message>[ @ <file>]``); ``filename``: the file to name
    instead of the child's."""
    code, _, rest = text.partition(" ")
    message, _, said = rest.partition(" @ ")
    return OSError(int(code), message, filename or said or None)


def _feed(stdin: IO[bytes], work: bytes) -> None:
    with contextlib.suppress(OSError):  # the child gone early: its outcome says why
        with stdin:
            stdin.write(work)


def child_main(run: Callable[[bytes, Reporter], bytes], special: Callable[[BaseException], bytes | None] | None = None) -> None:
    """The child's side: ``run(work, reporter)`` gives the ``ok`` text; what stops it is reported as ``os <errno>
    <message>[ @ <file>]`` (:func:`os_error` reads it), ``ae <airgap error class> <message>``, ``err <what>`` (or ``special``'s line); exit 0 or 1."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole group: the parent decides, and stops this one
    _die_with_parent()
    out = sys.stdout.buffer
    code = 1
    try:
        report = Reporter(out)
        said = run(sys.stdin.buffer.read(), report)
        report.flush()
        out.write(b"ok " + said + b"\n")
        code = 0
    except Exception as exc:
        line = special(exc) if special is not None else None
        if line is not None:
            out.write(line + b"\n")
        elif isinstance(exc, OSError):  # os <errno> <message>[ @ <the file it names>]
            where = b"" if exc.filename is None else b" @ " + to_line(os.fsdecode(exc.filename))
            out.write(b"os %d " % (exc.errno or errno.EIO) + to_line(exc.strerror or str(exc)) + where + b"\n")
        elif isinstance(exc, AirgapError):
            out.write(b"ae " + type(exc).__name__.encode() + b" " + to_line(str(exc)) + b"\n")
        else:  # anything else: say what
            out.write(b"err " + to_line(f"{type(exc).__name__}: {exc}") + b"\n")
    with contextlib.suppress(OSError):
        out.flush()
    sys.exit(code)


def _die_with_parent() -> None:
    """A parent killed (a power cut's test, an OOM kill) takes this child with it: the next run's recovery must not
    race a child still writing into the area it removes. Linux only; elsewhere the parent's close stops it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("AIRGAP_PARENT_PID")
    if parent is not None and parent.isdigit() and os.getppid() != int(parent):  # it died before the prctl
        os._exit(1)


def to_line(text: str) -> bytes:
    return text.replace("\n", " ").encode("utf-8", "replace")


class Reporter:
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
