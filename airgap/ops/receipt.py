"""Rebuild a destination's receipt from what it actually holds.

The receipt (``DEST/.airgap/receipt.json``) says which package files a destination holds, by
hash. ``import`` keeps it up to date; this rebuilds it from the published repodata and the
files themselves (every listed file is hashed), e.g. for a destination filled by other tools,
or to carry back to the connected side as the base of a delta export. What the files cannot
tell is kept from the old receipt (if it is readable): the archives applied per channel, where
each archive channel went, and the origin of each file whose bytes did not change.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes
from ..clock import Clock, timestamp
from ..core.receipt import Receipt
from ..destinations import open_destination
from ..destinations.base import Destination, load_receipt
from ..errors import DestinationError
from ..progress import Progress, null_progress
from .options import LOCK_TIMEOUT
from .verify_dest import DestinationCheck, Problem, check_destination

log = logging.getLogger(__name__)


@dataclass
class ReceiptResult:
    receipt: dict[str, Any]
    files: int
    missing: list[str]
    written_to: str
    check: DestinationCheck | None = None  # what the re-hash found (the same check as ``verify --into``)

    @property
    def problems(self) -> list[Problem]:
        return self.check.problems if self.check is not None else []

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "missing": self.missing,
            "written_to": self.written_to,
            "damaged": sorted("/".join(p.place) for p in self.problems if p.kind == "damaged"),
            "problems": [p.to_json() for p in self.problems],
        }


def run_receipt(
    into: Path | str | Destination,
    output: Path | None = None,
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> ReceiptResult:
    """Rebuild the receipt from what passes ``verify --into``'s check: a missing or damaged file is
    reported (:attr:`ReceiptResult.problems`) and not recorded as held, so the next import puts it back."""
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if not dest.exists():
        raise DestinationError(f"{dest}: expected a destination holding channels, found none")
    with dest.locked(lock_timeout):
        try:
            old = load_receipt(dest)
        except DestinationError as exc:  # the one being rebuilt may be what is broken
            log.warning("%s; rebuilding it without its history", exc)
            old = Receipt()
        # kept: what the files cannot tell; not kept: installers and upstream state (re-checked by the next import)
        receipt = Receipt(
            applied=old.applied, channel_map=old.channel_map, fixed_channel=old.fixed_channel, archives=old.archives, extra=old.extra
        )
        # what passes verify --into's check (a rebuilt receipt lists packages only): damaged files are reported, not held
        check = check_destination(dest, progress=progress, installers=False)
        for channel, subdirs in check.good.items():
            for subdir, files_ in subdirs.items():
                receipt.channels.setdefault(channel, {}).setdefault(subdir, {})
                for fn, rec in files_.items():
                    before = old.held(channel, subdir, fn)
                    sha = rec["sha256"]
                    receipt.hold(
                        channel, subdir, fn, sha, rec.get("size"), before.origin if before is not None and before.sha256 == sha else None
                    )
        receipt.extra["rebuilt"] = timestamp(clock())
        doc = receipt.to_json()
        files = sum(len(s) for c in receipt.channels.values() for s in c.values())
        if output is not None:
            atomic_write_bytes(Path(output), json.dumps(doc, sort_keys=True, indent=1).encode())
            where = str(output)
        else:
            where = dest.write_receipt(doc)  # one atomic replace: nothing else changes
        missing = sorted("/".join(p.place) for p in check.problems if p.kind == "missing")
        return ReceiptResult(doc, files, missing, where, check)
