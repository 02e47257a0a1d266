"""Fault injection for tests: stop the airgap process at a chosen store call.

Off unless ``AIRGAP_FAULT`` is set. Every store call (an S3 request, a quetz request, a file
placed, written or removed in a directory destination, a lock operation) passes
:func:`point`; ``AIRGAP_FAULT`` lists what to do before which call, comma-separated:

* ``kill@N`` — SIGKILL this process before the Nth store call (as a power cut would);
* ``term@N`` / ``int@N`` — send it SIGTERM / SIGINT there (a systemd stop, a Ctrl-C);
* ``fail@N`` — raise an ``OSError`` from the Nth call;
* ``pause@N`` — sleep ``AIRGAP_FAULT_PAUSE`` seconds (default 3) before it (time to stop a server).

``AIRGAP_FAULT_LOG=FILE`` appends one line per store call (``N what``), so a test learns how
many calls a command makes. Calls are counted per process, across threads.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

_lock = threading.Lock()
_count = 0
_plan: dict[int, str] | None = None  # read from the environment at the first store call
_log: str | None = None


def _load() -> dict[int, str]:
    global _log
    _log = os.environ.get("AIRGAP_FAULT_LOG") or None
    plan: dict[int, str] = {}
    for item in filter(None, (os.environ.get("AIRGAP_FAULT") or "").split(",")):
        action, _, n = item.strip().partition("@")
        if action in ("kill", "term", "int", "fail", "pause") and n.isdigit():
            plan[int(n)] = action
    return plan


def reset() -> None:
    """Read ``AIRGAP_FAULT`` and ``AIRGAP_FAULT_LOG`` again and count from zero (for tests that run airgap in-process)."""
    global _count, _plan
    with _lock:
        _count, _plan = 0, None


def point(what: str) -> None:
    """One store call is about to happen."""
    global _count, _plan
    if _plan is None:
        _plan = _load()
    if not _plan and not _log:
        return
    with _lock:
        _count += 1
        n = _count
        if _log:
            with open(_log, "a") as fh:
                fh.write(f"{n} {what}\n")
    action = _plan.get(n)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    elif action == "int":
        os.kill(os.getpid(), signal.SIGINT)
    elif action == "pause":
        time.sleep(float(os.environ.get("AIRGAP_FAULT_PAUSE") or 3))
    elif action == "fail":
        raise OSError(f"injected fault at store call {n} ({what})")


def attach_boto(client: Any) -> None:
    """Count every request a boto3 client makes (uploads' parts included) as a store call."""
    if os.environ.get("AIRGAP_FAULT") or os.environ.get("AIRGAP_FAULT_LOG"):
        client.meta.events.register("before-call.s3", lambda model, **kw: point(f"s3 {model.name}"))
