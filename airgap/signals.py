"""SIGTERM as an exception, so that a terminated command cleans up like an interrupted one.

By default SIGTERM ends the process at once: no ``finally`` runs, and an export leaves its
half-written ``.tmp`` archive beside the target. Inside :func:`terminate_raises` it raises
:class:`Terminated` instead, a ``BaseException`` like ``KeyboardInterrupt``: every cleanup on the
way out runs, and the CLI exits with 143 (128 + SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(BaseException):
    """The process received SIGTERM."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
