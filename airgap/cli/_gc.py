"""The cyclic garbage collector while a command runs: no full collection over the records.

A command holds a subdir's records as Python objects: 300,000 records are over a million dicts
and lists. CPython collects its young objects often (cheap: they are few and recently touched)
and, every tenth middle collection once the heap has grown by a quarter, walks every object
it tracks: ~5 walks of every record while a subdir is parsed. Measured on a 300,000-record
plan: 13 s of its 30 s were the collector's, nearly all in full collections. Records hold no
reference cycles (dicts of strings, numbers and lists, freed by reference counting), so
walking them finds nothing.

While a command runs, what was alive before it (the imported modules) is frozen out of every
collection, and a full collection comes after :data:`FULL_EVERY` middle ones instead of 10:
young objects are still collected as often as CPython does (a cycle that dies young is freed as
before). Both are undone when the command returns (tests run many commands in one process).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FULL_EVERY = 1_000  # middle collections between two full ones (CPython's default: 10); ~7 million new objects


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """No full collection while the block runs (short of millions of new objects); the collector as it was afterwards."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(before[0], before[1], max(FULL_EVERY, before[2]))
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
