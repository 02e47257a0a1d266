"""The cyclic garbage collector while a command runs: rarely, and never over what was there before.

A command holds a subdir's records as Python objects: 300,000 records are over a million dicts
and lists, and CPython's collector walks every one of them at each full collection (the default
thresholds trigger one every ~70,000 new objects, growing). Measured on a 300,000-record plan:
13 s of its 30 s were the collector's. Records hold no reference cycles (a dict of strings,
numbers and lists, freed by reference counting), so collecting often buys nothing here.

While a command runs, what was alive before it (the imported modules) is frozen out of every
collection, and the youngest generation is collected every :data:`YOUNG` new objects instead of
every 700, so a full collection comes ~140 times less often. Both are undone when the command
returns (tests run many commands in one process).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG = 100_000  # new container objects between two young collections (CPython's default: 700)


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Collect rarely while the block runs; the collector's settings as they were afterwards."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(YOUNG, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
