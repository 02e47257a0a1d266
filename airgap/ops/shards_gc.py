"""Garbage collection of CEP-16 shards: ``airgap clean`` removes shards no index names, after a grace period.

An import never deletes a shard: a client that fetched the previous shard index a moment ago
still asks for the shards it names, and CEP-16 asks servers to keep them about a week. Stores do
not all say how old an object is, so the age is kept in the receipt, mark and sweep:

* the first clean that finds a shard no shard index names records when it saw it
  (``unreferenced_shards`` in the receipt: ``{"<channel>/<subdir>": {"<sha256>": "<UTC time>"}}``);
* a later clean removes it once that time is ``shard_grace_days`` (config; default 7) old and
  the index still does not name it; a shard named again leaves the record.

So a shard stays at least the grace period after airgap first saw it unreferenced (with weekly
cleans: one to two weeks). The receipt is changed in a journaled change; the files go after it
committed (a run killed in between leaves them for the next clean to mark again). ``--dry-run``
says what would go and records nothing. A subdir whose shard index cannot be read keeps all its
shards (the index check of ``verify --into`` reports it).
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from ..clock import TIMESTAMP_FORMAT
from ..core import shards
from ..destinations.base import Destination, load_receipt
from ..errors import AirgapError

log = logging.getLogger(__name__)

GRACE_DAYS = 7
RECEIPT_KEY = "unreferenced_shards"
_STAMP = TIMESTAMP_FORMAT


@dataclass
class ShardSweep:
    """What a clean did (or, dry, would do) to unreferenced shards."""

    removed: list[str] = field(default_factory=list)  # "<channel>/<subdir>/shards/<file>"
    marked: int = 0  # first seen unreferenced by this clean
    waiting: int = 0  # unreferenced, within the grace period

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "marked": self.marked, "waiting": self.waiting}


def decide(
    referenced: set[str], present: set[str], marks: Mapping[str, str], now: float, grace: float
) -> tuple[dict[str, str], list[str], int]:
    """Pure: ``(marks to keep, hashes to remove, newly marked)`` for one subdir.

    ``referenced``: hashes its shard index names; ``present``: hashes of the shard files held;
    ``marks``: ``{hash: time first seen unreferenced}`` from the receipt.
    """
    keep: dict[str, str] = {}
    remove: list[str] = []
    new = 0
    for digest in sorted(present - referenced):
        seen = marks.get(digest)
        since = _parse(seen) if isinstance(seen, str) else None
        if since is None:
            keep[digest] = time.strftime(_STAMP, time.gmtime(now))
            new += 1
        elif now - since >= grace:
            remove.append(digest)
        else:
            keep[digest] = str(seen)
    return keep, remove, new


def _parse(stamp: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(stamp, _STAMP)))
    except ValueError:
        return None


def _scan(dest: Destination, channel: str, subdir: str) -> tuple[set[str], set[str]] | None:
    """``(referenced, present)`` hashes of one subdir, or None if its shard index cannot be read."""
    folder = f"{subdir}/{shards.SHARDS_DIR}"
    present = {name[: -len(shards.SUFFIX)] for name in dest.files(channel, folder) if shards.is_shard_file(name)}
    packed = dest.read_index_file(channel, subdir, shards.INDEX)
    if packed is None:
        return set(), present  # not sharded (any more): every shard left is unreferenced
    try:
        index = shards.decode_index(packed, f"{dest}/{channel}/{subdir}/{shards.INDEX}")
    except AirgapError as exc:
        log.warning("%s; its shards are kept (airgap verify --into reports it)", exc)
        return None
    return {d.hex() for d in index.shards.values()}, present


def sweep(
    dest: Destination, *, now: float, grace_days: float = GRACE_DAYS, dry_run: bool, channels: AbstractSet[str] | None = None
) -> ShardSweep:
    """Mark and remove unreferenced shards of every subdir ``dest`` publishes (``channels``: only these). Under the lock unless dry."""
    result = ShardSweep()
    if not dest.capabilities.keeps_receipt:
        return result  # a server that indexes itself (quetz) holds no shards of airgap's
    receipt = load_receipt(dest)
    before = receipt.extra.get(RECEIPT_KEY)
    old: dict[str, Any] = dict(before) if isinstance(before, dict) else {}
    marks: dict[str, dict[str, str]] = {k: v for k, v in old.items() if isinstance(v, dict)}
    gone: list[tuple[str, str, str]] = []
    for channel, subdirs in dest.inventory().items():
        if channels is not None and channel not in channels:
            continue
        for subdir in subdirs:
            scanned = _scan(dest, channel, subdir)
            if scanned is None:
                continue
            where = f"{channel}/{subdir}"
            keep, remove, new = decide(*scanned, marks.get(where, {}), now, grace_days * 86400.0)
            result.marked += new
            result.waiting += len(keep)
            if keep:
                marks[where] = keep
            else:
                marks.pop(where, None)
            for digest in remove:
                gone.append((channel, f"{subdir}/{shards.SHARDS_DIR}", digest + shards.SUFFIX))
                result.removed.append(f"{where}/{shards.shard_file(digest)}")
    if dry_run or marks == old:
        return result
    if marks:
        receipt.extra[RECEIPT_KEY] = marks
    else:
        receipt.extra.pop(RECEIPT_KEY, None)
    change = dest.begin("shards")
    try:
        try:
            change.plan([], [])
            change.write_receipt(receipt.to_json(encodable=True))
            change.commit()
        except BaseException:
            change.rollback()
            raise
    finally:
        change.close()
    if gone:  # no index names them, and the receipt no longer counts them: they can go
        dest.remove_packages(gone)
        log.info("%s: removed %d shards no index has named for %g days", dest, len(gone), grace_days)
    return result
