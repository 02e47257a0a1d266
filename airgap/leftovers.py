"""Big objects a command is done with, left to the end of the process (when airgap runs as a program).

A full export of 300,000 files holds millions of Python objects (records, manifest entries, SBOM
components): freeing them one by one when the command returns took 0.9 s, after the archive was
written and synced, and a delta import's receipt and index some tenths of a second more. When
airgap runs as a program (:func:`airgap.cli.run`: the ``airgap`` script, ``python -m airgap``),
the process ends by ``os._exit`` once stdout, stderr and the log handlers are flushed, so what a
command handed to :func:`keep` is never freed object by object; the kernel takes the memory back
at once. Everything the command wrote is closed (and synced) before it returns, as always.

In-process callers (tests, a program importing airgap) never enable this: :func:`keep` then
keeps nothing and objects go as usual.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import NoReturn

_kept: list[object] = []
_enabled = False


def enable() -> None:
    """From now on :func:`keep` keeps (the program's entry point only)."""
    global _enabled
    _enabled = True


def collect_again() -> None:
    """``gc.enable()`` after a pause in which many objects were made (decision 0014). When the process ends with
    the command, they are frozen first: re-enabled, the collector would walk them all at its next collection to
    find no cycle. The command's own freeze (airgap/cli/_gc.py) is undone when it returns. A library call (the
    process goes on) freezes nothing: ``gc.freeze`` would keep its cyclic garbage for good."""
    if _enabled:
        gc.freeze()
    gc.enable()


def keep(*objects: object) -> None:
    """Objects the command no longer needs: left for the process's end when enabled, else nothing happens."""
    if _enabled:
        _kept.extend(objects)


def leave(code: int) -> NoReturn:
    """End the process with ``code``: at once (``os._exit``) when something was kept, by ``sys.exit`` otherwise."""
    if not _kept:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or a closed stream: nothing more to say
            pass
    logging.shutdown()
    os._exit(code)
