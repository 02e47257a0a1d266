"""Import: verify an archive, then publish it into a destination, transactionally.

Order of events:
1. Read ``manifest.json`` and ``manifest.sig`` and verify the signature against the trusted
   keys — before the destination is touched at all. Parse the manifest strictly.
2. Lock the destination; roll back what a killed import left half done (its saved journal)
   and remove its staging area and temporary files. If the receipt says this archive was
   applied and every file it brings is still there, stop: a quick, successful no-op.
3. Stream every blob, hashing it; blobs the destination lacks go to a staging area inside the
   destination (same file system, so placing them is a rename). Any mismatch, unknown or
   missing member aborts here, and the staging area is removed: the destination is unchanged.
4. Journal every path the publish will change (with a hard-link backup of what is there),
   save the journal in the staging area, and flush it with the staged files to disk. Then
   publish: all package files first, then each subdir's repodata (``repodata.json`` and
   ``.zst``, atomically), then the receipt; then drop the journal. A client reading repodata
   at any moment finds every file it lists. If anything fails during publishing, the journal
   puts back exactly what was there — at once, or, if the process was killed, at the start
   of the next import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from .. import leftovers
from ..clock import Clock
from ..core.channel_map import targets
from ..core.merging import shadowing
from ..core.rollback import check_order
from ..destinations import open_destination
from ..destinations.base import Destination, load_receipt
from ..errors import UsageError
from ..progress import Progress, null_progress
from ..signing import TrustedKeys
from ._archive import Opened, load_repodata_blob, open_set, stream_blobs
from .import_plan import DestinationView, ImportPlan, check_base, needed_installers, needed_packages, read_early, removals
from .options import ImportOptions
from .publish import ImportResult, stage
from .unchanged import same_sources

__all__ = ["ImportResult", "import_opened", "run_import"]

log = logging.getLogger(__name__)


def run_import(
    archive: Path | list[Path],
    into: Path | str | Destination,
    trusted: TrustedKeys,
    options: ImportOptions | None = None,
    *,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> ImportResult:
    options = options or ImportOptions()
    paths = [Path(p) for p in archive] if isinstance(archive, list) else [Path(archive)]
    opened = open_set(paths, trusted, options.allow_unsigned)  # nothing touched before this: signatures, every volume
    result = import_opened(opened, into, options, progress=progress, clock=clock)
    if options.public_url:
        write_downloads(result, into, options.public_url)
    return result


def write_downloads(result: ImportResult, into: Path | str | Destination, url: str) -> None:
    """Write DEST/downloads/ (airgap.site.bootstrap) for the mirror's public URL; recorded in ``result``."""
    from ..site.bootstrap import publish_downloads

    dest = into if isinstance(into, Destination) else open_destination(str(into))
    result.public_url = url
    result.downloads = publish_downloads(dest, url)
    if result.downloads is None:
        log.warning("%s: a %s destination holds no installers; no downloads/ written", dest, dest.kind)


def import_opened(
    opened: Opened,
    into: Path | str | Destination,
    options: ImportOptions | None = None,
    *,
    recheck: bool = False,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> ImportResult:
    """Publish a verified source of blobs (an archive, or the export cache for sync) into ``into``.

    ``recheck``: do not trust the receipt about which files are present; hash each one.
    ``options.channel_map``: source channel (URL or name) -> destination channel (see airgap.core.channel_map).
    ``options.allow_downgrade``: an archive older than the destination's newest (see airgap.core.rollback) adds its new files only.
    Even an import that changes nothing reads and hashes every blob (sync: every cache file), so that
    exit 0 always means "every blob verified", as when something is published.
    """
    options = options or ImportOptions()
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    dest_channel = options.dest_channel
    if dest.capabilities.fixed_channel is not None:
        if dest_channel not in (None, dest.capabilities.fixed_channel):
            raise UsageError(
                f"dest_channel: expected {dest.capabilities.fixed_channel!r} (the channel the destination URL names) or none, found {dest_channel!r}"
            )
        dest_channel = dest.capabilities.fixed_channel
    mapped = targets(options.channel_map or {}, [(ch.name, ch.url) for ch in opened.manifest.channels])
    if dest.capabilities.fixed_channel is not None and set(mapped.values()) - {dest.capabilities.fixed_channel}:
        raise UsageError(
            f"channel_map: expected only {dest.capabilities.fixed_channel!r} (the channel the destination URL names), found {sorted(set(mapped.values()))}"
        )
    with opened.stream:
        with dest.locked(options.lock_timeout):
            result = _import_locked(opened, dest, dest_channel, progress, clock, recheck, options.allow_downgrade, mapped)
        if result.noop:  # a copy damaged since the import that applied it is refused all the same
            _verify_only(opened, progress)  # after the lock: nothing changed, no other import need wait for this
        return result


def _import_locked(
    opened: Opened,
    dest: Destination,
    dest_channel: str | None,
    progress: Progress,
    clock: Clock,
    recheck: bool = False,
    allow_downgrade: bool = False,
    mapped: Mapping[str, str] | None = None,
) -> ImportResult:
    """Decide (:mod:`.import_plan`), stop if there is nothing to do, else stage and publish (:mod:`.publish`)."""
    manifest = opened.manifest

    def target_channel(name: str) -> str:
        return (mapped or {}).get(name) or dest_channel or name

    early = read_early(dest, [(target_channel(ch.name), s.subdir) for ch in manifest.channels for s in ch.subdirs], recheck)
    receipt = load_receipt(dest)  # read after dest.locked() rolled back any killed import

    downgrade = check_order(receipt, manifest, target_channel, allow_downgrade)
    if downgrade:
        log.warning("%s: applying its new files only (--allow-downgrade)", downgrade)
    skipped, collisions = shadowing(manifest.channels, target_channel)
    for collision in collisions:
        log.warning("%s", collision.message())
    view = DestinationView(dest, receipt, recheck, early)
    needed, present = needed_packages(manifest, view, target_channel, skipped, downgrade is not None)
    present += needed_installers(manifest, view, target_channel, needed)
    present += check_base(manifest, view, target_channel, skipped, dest_channel)
    gone = removals(manifest, target_channel, downgrade is not None)
    pending_removals = [r for r in gone if view.held_size(*r) is not None]
    applied = {a.get("archive_id") for a in receipt.archives}
    result = ImportResult(
        str(dest),
        manifest.archive_id,
        opened.signer,
        noop=False,
        packages_present=present,
        downgrade=downgrade is not None,
        collisions=len(collisions),
    )
    for ch in manifest.channels:
        result.channels.setdefault(target_channel(ch.name), []).extend(s.subdir for s in ch.subdirs)
    # a server that rebuilds its repodata from the packages keeps no archive history: holding every file is enough
    unchanged = not pending_removals and same_sources(manifest, receipt)  # see ops/unchanged.py
    if not needed and (manifest.archive_id in applied or (not dest.capabilities.keeps_repodata and not pending_removals) or unchanged):
        log.debug("archive %s is already imported into %s; nothing to do", manifest.archive_id, dest)
        result.noop = True
        return result

    plan = ImportPlan(receipt, needed, gone, skipped, downgrade is not None, target_channel, view.index, view.trusted, view.rows)
    change = dest.begin(manifest.archive_id[:12])
    try:
        result = stage(opened, dest, change, plan, result, progress, clock)
    finally:
        change.close()
    leftovers.keep(opened, receipt, view, plan)  # a subdir's receipt and index: the process's end frees them (airgap/leftovers.py)
    return result


def _verify_only(opened: Opened, progress: Progress) -> None:
    """Every blob read and hashed, every repodata blob checked against the manifest; nothing kept."""
    repodata_blobs = stream_blobs(opened, progress, "verify")
    for ch in opened.manifest.channels:
        for sub in ch.subdirs:
            load_repodata_blob(repodata_blobs[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
