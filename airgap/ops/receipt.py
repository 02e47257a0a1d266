"""Rebuild a destination's receipt from what it actually holds.

The receipt (``DEST/.airgap/receipt.json``) says which package files a destination holds, by
hash. ``import`` keeps it up to date; this rebuilds it from the published repodata and the
files themselves (every listed file is hashed), e.g. for a destination filled by other tools,
or to carry back to the connected side as the base of a delta export.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes
from ..destinations import open_destination
from ..destinations.base import RECEIPT_FORMAT, Destination
from ..errors import DestinationError
from ..progress import Progress, null_progress
from .verify_dest import DestinationCheck, Problem, check_destination


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
        return {"files": self.files, "missing": self.missing, "written_to": self.written_to,
                "damaged": sorted("/".join(p.place) for p in self.problems if p.kind == "damaged"),
                "problems": [p.to_json() for p in self.problems]}


def run_receipt(into: Path | str | Destination, output: Path | None = None, *, lock_timeout: float = 60.0,
                progress: Progress = null_progress, clock: Any = time.time) -> ReceiptResult:
    """Rebuild the receipt from what passes ``verify --into``'s check: a missing or damaged file is
    reported (:attr:`ReceiptResult.problems`) and not recorded as held, so the next import puts it back."""
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if not dest.exists():
        raise DestinationError(f"{dest}: expected a destination holding channels, found none")
    with dest.locked(lock_timeout):
        try:
            old = dest.read_receipt()
        except DestinationError:
            old = {"archives": []}
        check = check_destination(dest, progress=progress, installers=False)  # a rebuilt receipt lists packages only
        channels = check.good
        receipt = {
            "format": RECEIPT_FORMAT,
            "archives": old.get("archives", []),
            "channels": channels,
            "rebuilt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock())),
        }
        files = sum(len(s) for c in channels.values() for s in c.values())
        if output is not None:
            atomic_write_bytes(Path(output), json.dumps(receipt, sort_keys=True, indent=1).encode())
            where = str(output)
        else:
            where = dest.write_receipt(receipt)  # one atomic replace: nothing else changes
        missing = sorted("/".join(p.place) for p in check.problems if p.kind == "missing")
        return ReceiptResult(receipt, files, missing, where, check)
