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


@dataclass
class ReceiptResult:
    receipt: dict[str, Any]
    files: int
    missing: list[str]
    written_to: str

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "missing": self.missing, "written_to": self.written_to}


def run_receipt(into: Path | str | Destination, output: Path | None = None, *, lock_timeout: float = 60.0,
                progress: Progress = null_progress, clock: Any = time.time) -> ReceiptResult:
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if not dest.exists():
        raise DestinationError(f"{dest}: expected a destination holding channels, found none")
    with dest.locked(lock_timeout):
        try:
            old = dest.read_receipt()
        except DestinationError:
            old = {"archives": []}
        channels: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        missing: list[str] = []
        listed: list[tuple[str, str, str, int]] = []
        for channel, subdirs in dest.inventory().items():
            for subdir in subdirs:
                rd = dest.read_repodata(channel, subdir)
                if rd is None:
                    continue
                channels.setdefault(channel, {}).setdefault(subdir, {})
                held = dest.files(channel, subdir)
                for fn, _ in rd.records():
                    if fn in held:
                        listed.append((channel, subdir, fn, held[fn]))
                    else:
                        missing.append(f"{channel}/{subdir}/{fn}")
        bar = progress("hash", sum(size for *_, size in listed), files=len(listed))
        for channel, subdir, fn, size in listed:
            sha = dest.file_sha256(channel, subdir, fn, bar.update)
            bar.file_done()
            if sha is None:
                missing.append(f"{channel}/{subdir}/{fn}")
                continue
            channels[channel][subdir][fn] = {"sha256": sha, "size": size}
        bar.close()
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
        return ReceiptResult(receipt, files, sorted(missing), where)
