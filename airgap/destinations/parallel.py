"""Store calls ``workers`` at a time, stopping at the first failure (the engine's package files)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


def each(workers: int, calls: Sequence[Callable[[], None]], name: str = "airgap-put") -> None:
    """Run ``calls``, ``workers`` at a time (in order, one by one when 1 or fewer than two calls). The first failure is
    raised once the calls already running finish (a rollback never races an upload); no call begins after it, nor
    after a Ctrl-C here."""
    if workers == 1 or len(calls) < 2:
        for call in calls:
            call()
        return
    stop = threading.Event()  # set by the first failure, seen by every worker before its next call

    def run(call: Callable[[], None]) -> None:
        if stop.is_set():
            return
        try:
            call()
        except BaseException:
            stop.set()
            raise

    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        for future in [pool.submit(run, call) for call in calls]:
            future.result()
    except BaseException:
        stop.set()
        raise
    finally:  # on a failure the calls not begun are dropped; the ones running finish
        pool.shutdown(wait=True, cancel_futures=True)
