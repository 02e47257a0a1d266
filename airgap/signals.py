"""Signals: SIGTERM stops airgap like Ctrl-C does, and neither cuts a rollback or a journal's removal short.

By default SIGTERM ends the process at once: no ``finally`` runs, an export leaves its
half-written ``.tmp`` beside the target and an import leaves its lock and journal for the next
run. :func:`install` (called by the CLI) and :func:`terminate_raises` (a block) make SIGTERM
raise :class:`Terminated`, a ``KeyboardInterrupt``: a systemd stop, ``timeout`` or a cancelled job
then cleans up, rolls back and releases the lock as Ctrl-C does, and the CLI exits with 143
(128 + SIGTERM). :func:`deferred_signals` wraps the steps that must finish once begun (undoing a
change, removing its journal): a SIGINT or SIGTERM that arrives meanwhile is held, and raised
when the step is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as after Ctrl-C (clean up, roll back, release the lock), exit 143."""

    exit_code = 128 + signal.SIGTERM


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise Terminated("terminated (SIGTERM)")


def install() -> None:
    """In the main thread: SIGTERM raises :class:`Terminated` from now on."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block (main thread), SIGTERM raises :class:`Terminated`; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the body runs; re-deliver the first one after it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous: dict[int, Any] = {}
    for sig in _HANDLED:
        previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])
