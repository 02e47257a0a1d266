"""Rebuild a destination's receipt from what it actually holds.

The receipt (``DEST/.airgap/receipt.json``) says which package files a destination holds, by
hash. ``import`` keeps it up to date; this rebuilds it from the published repodata and the
files themselves (every listed file is hashed), e.g. for a destination filled by other tools,
or to carry back to the connected side as the base of a delta export.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes
from ..destinations.directory import RECEIPT_FORMAT, DirectoryDestination
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


def _sha256(path: Path, bar: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def run_receipt(into: Path, output: Path | None = None, *, lock_timeout: float = 60.0,
                progress: Progress = null_progress, clock: Any = time.time) -> ReceiptResult:
    dest = DirectoryDestination(Path(into))
    if not dest.root.is_dir():
        raise DestinationError(f"{dest.root}: expected a destination directory holding channels, found none")
    with dest.locked([], lock_timeout):
        try:
            old = dest.read_receipt()
        except DestinationError:
            old = {"archives": []}
        channels: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        missing: list[str] = []
        listed: list[tuple[str, str, str]] = []
        for channel, subdirs in dest.inventory().items():
            for subdir in subdirs:
                rd = dest.read_repodata(channel, subdir)
                if rd is None:
                    continue
                channels.setdefault(channel, {}).setdefault(subdir, {})
                listed.extend((channel, subdir, fn) for fn, _ in rd.records())
        total = 0
        for channel, subdir, fn in listed:
            p = dest.subdir_path(channel, subdir) / fn
            if p.is_file():
                total += p.stat().st_size
        bar = progress("hash", total)
        for channel, subdir, fn in listed:
            p = dest.subdir_path(channel, subdir) / fn
            if not p.is_file():
                missing.append(f"{channel}/{subdir}/{fn}")
                continue
            channels[channel][subdir][fn] = {"sha256": _sha256(p, bar), "size": p.stat().st_size}
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
            dest.write_receipt(receipt, None)  # one atomic replace: nothing else changes
            where = str(dest.state_dir / "receipt.json")
        return ReceiptResult(receipt, files, missing, where)
