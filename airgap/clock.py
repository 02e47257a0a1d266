"""Time as the operations see it: an injected clock, and the one timestamp format they record.

Every operation takes a :data:`Clock` (``time.time`` unless a test injects a fixed one) and
writes times into manifests, receipts and review pages with :func:`timestamp` alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: seconds since the epoch, as ``time.time`` returns them
Clock = Callable[[], float]

#: the format of every time an archive, a receipt or a page records (UTC, to the second)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def timestamp(seconds: float | None = None) -> str:
    """``seconds`` (default: now) in :data:`TIMESTAMP_FORMAT`."""
    return time.strftime(TIMESTAMP_FORMAT, time.gmtime(seconds))
