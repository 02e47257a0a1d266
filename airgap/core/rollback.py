"""Rollback protection: is an archive older than what a destination channel already has?

Pure. An import names, per destination channel, the newest archive applied there (by its signed
``created`` time, from the receipt). It is refused when:

* any archive channel goes to a destination channel whose newest archive is newer than this one
  (a replayed or reordered archive would undo what came after it), or
* it is a delta whose base, recorded per channel at export (``bases``), is not the destination
  channel's newest archive (its removals were computed against another state).

With ``allow_downgrade`` such an archive is applied for its additions only (no removal, no file
replaced): :func:`check_order` then returns the reason instead of raising.
A destination channel whose history the receipt does not know (a receipt written before airgap
recorded it, a quetz server) cannot be checked: the first import that records it starts it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import RollbackError, UsageError
from .manifest import Manifest
from .receipt import Receipt, created_order


def check_order(receipt: Receipt, manifest: Manifest, target: Callable[[str], str], allow_downgrade: bool) -> str | None:
    """None: the archive may be applied in full. A reason: it is a downgrade (raised unless allowed)."""
    this = f"archive {manifest.archive_id} (created {manifest.created})"
    created = created_order(manifest.created)
    reason: str | None = None
    for ch in manifest.channels:
        dest = target(ch.name)
        base = manifest.bases.get(ch.name)
        if base is not None and base.channel != dest:
            how = "without --dest-channel" if base.channel == ch.name else f"with --dest-channel {base.channel}"
            raise UsageError(
                f"{this}: expected channel {ch.name!r} to be imported into {base.channel!r}, the destination channel "
                f"the delta was made for (per its receipt, or dest_channel in the export's config), found {dest!r}; "
                f"import it {how}, or export it again for {dest!r}"
            )
        newest = receipt.newest(dest)
        if newest is not None and newest.archive_id == manifest.archive_id:
            continue  # this very archive is the newest there: a repeat (or a repair) changes nothing it did not
        newest_time = created_order(newest.created) if newest is not None else None
        if newest is not None and created is not None and newest_time is not None and created < newest_time:
            reason = f"{this} is older than archive {newest.describe()}, the newest applied to channel {dest!r}"
            break
        current = newest.archive_id if newest is not None else None
        if base is not None and receipt.history_known(dest) and base.after != current:
            built_on = f"archive {base.after}" if base.after else "a destination with no archive applied"
            now = f"archive {newest.describe()}" if newest is not None else "none"
            reason = f"{this} is a delta built on {built_on} for channel {dest!r}, but the newest applied there is {now}"
            break
    if reason is None:
        return None
    if not allow_downgrade:
        raise RollbackError(
            f"{reason}: refusing to roll back; import newer archives only, or pass --allow-downgrade "
            f"to add its new files without removing or replacing any"
        )
    return reason
