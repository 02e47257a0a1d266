"""Records a destination's index already lists are republished only if the destination can stand behind them.

An import merges the archive's records into each subdir's current ``repodata.json``. That index
may have been changed by someone else (an entry added for a file that does not exist, a size
or sha256 that is not the file's): merged blindly, the channel would keep listing a missing or
different file. So before the merge every current record is checked against what the store
holds: its file must be there with the record's size, and where the receipt knows the file
(airgap put it there), with the receipt's sha256. Records that fail are not republished, one
warning each (the archive's own records are verified by hash and always go in).

An index that is, byte for byte, the one airgap published last (its sha256 is in the receipt:
:mod:`airgap.core.published`) is not vetted again: its records were checked when they were
published, and the import then looks only at the files the archive names.
"""

from __future__ import annotations

import logging

from ..core.receipt import Receipt
from ..core.repodata import Repodata, record_hashes
from ..destinations.base import Destination

log = logging.getLogger(__name__)


def vetted_index(
    dest: Destination, channel: str, subdir: str, current: Repodata | None, receipt: Receipt, present: dict[str, int] | None = None
) -> Repodata | None:
    """``current`` without the records whose file the destination does not hold as described (``present``: the
    subdir's listing, if already read)."""
    if current is None or not dest.capabilities.keeps_repodata:
        return current
    if present is None:
        present = dest.files(channel, subdir)
    known = receipt.holdings(channel, subdir)
    for filename, record in list(current.records()):
        sha, _md5, size = record_hashes(record)
        placed = known.get(filename)
        why = None
        if filename not in present:
            why = "the destination does not hold that file"
        elif size is not None and present[filename] != size:
            why = f"the file holds {present[filename]} bytes, the record says {size}"
        elif placed is not None and sha is not None and placed.sha256 != sha:
            why = f"airgap placed it with sha256 {placed.sha256}, the record says {sha}"
        if why is not None:
            log.warning("%s: %s/%s/repodata.json lists %s, but %s: not republished", dest, channel, subdir, filename, why)
            current.drop(filename)
    return current
