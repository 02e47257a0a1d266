"""Import: verify an archive, then replay it into a destination, transactionally.

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
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..channel_map import targets
from ..destinations import open_destination
from ..destinations.base import BlobRef, Change, Destination, Put, file_identity, load_receipt
from ..errors import DestinationError, UsageError
from ..manifest import BlobEntry
from ..merging import Shadowed, shadowing
from ..placement import import_problem
from ..progress import Progress, null_progress
from ..receipt import Held, Receipt, apply_archive
from ..repodata import Repodata, empty, merge, record_hashes
from ..rollback import check_order
from ..signing import TrustedKeys
from ._archive import load_repodata_blob, open_set, stream_blobs
from .delta_hint import missing_base_message
from .pages import write_pages
from .review import keep_sbom, with_sboms
from .unchanged import same_sources
from .vetting import vetted_index

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    destination: str
    archive_id: str
    signer: str | None
    noop: bool
    packages_added: int = 0
    bytes_written: int = 0
    packages_present: int = 0
    packages_removed: int = 0
    downgrade: bool = False  # an older archive applied for its additions only (--allow-downgrade)
    collisions: int = 0  # file names two merged channels carry with different bytes (the first channel's kept)
    channels: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_import(
    archive: Path | list[Path],
    into: Path | str | Destination,
    trusted: TrustedKeys,
    *,
    dest_channel: str | None = None,
    channel_map: Mapping[str, str] | None = None,
    allow_unsigned: bool = False,
    allow_downgrade: bool = False,
    lock_timeout: float = 60.0,
    progress: Progress = null_progress,
    clock: Any = time.time,
) -> ImportResult:
    paths = [Path(p) for p in archive] if isinstance(archive, list) else [Path(archive)]
    opened = open_set(paths, trusted, allow_unsigned)  # nothing touched before this: signatures, every volume
    return import_opened(
        opened,
        into,
        dest_channel=dest_channel,
        channel_map=channel_map,
        allow_downgrade=allow_downgrade,
        lock_timeout=lock_timeout,
        progress=progress,
        clock=clock,
    )


def import_opened(
    opened: Any,
    into: Path | str | Destination,
    *,
    dest_channel: str | None = None,
    channel_map: Mapping[str, str] | None = None,
    allow_downgrade: bool = False,
    lock_timeout: float = 60.0,
    recheck: bool = False,
    progress: Progress = null_progress,
    clock: Any = time.time,
) -> ImportResult:
    """Publish a verified source of blobs (an archive, or the export cache for sync) into ``into``.

    ``recheck``: do not trust the receipt about which files are present; hash each one.
    ``channel_map``: source channel (URL or name) -> destination channel (see airgap.channel_map).
    ``allow_downgrade``: an archive older than the destination's newest (see airgap.rollback) adds its new files only.
    Even an import that changes nothing reads and hashes every blob (sync: every cache file), so that
    exit 0 always means "every blob verified", as when something is published.
    """
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if dest.fixed_channel is not None:
        if dest_channel not in (None, dest.fixed_channel):
            raise UsageError(
                f"dest_channel: expected {dest.fixed_channel!r} (the channel the destination URL names) or none, found {dest_channel!r}"
            )
        dest_channel = dest.fixed_channel
    mapped = targets(channel_map or {}, [(ch.name, ch.url) for ch in opened.manifest.channels])
    if dest.fixed_channel is not None and set(mapped.values()) - {dest.fixed_channel}:
        raise UsageError(
            f"channel_map: expected only {dest.fixed_channel!r} (the channel the destination URL names), found {sorted(set(mapped.values()))}"
        )
    with opened.stream:
        with dest.locked(lock_timeout):
            result = _import_locked(opened, dest, dest_channel, progress, clock, recheck, allow_downgrade, mapped)
        if result.noop:  # a copy damaged since the import that applied it is refused all the same
            _verify_only(opened, progress)  # after the lock: nothing changed, no other import need wait for this
        return result


def _import_locked(
    opened: Any,
    dest: Destination,
    dest_channel: str | None,
    progress: Progress,
    clock: Any,
    recheck: bool = False,
    allow_downgrade: bool = False,
    mapped: Mapping[str, str] | None = None,
) -> ImportResult:
    manifest = opened.manifest
    receipt = load_receipt(dest)  # read after dest.locked() rolled back any killed import

    def target_channel(name: str) -> str:
        return (mapped or {}).get(name) or dest_channel or name

    downgrade = check_order(receipt, manifest, target_channel, allow_downgrade)
    if downgrade:
        log.warning("%s: applying its new files only (--allow-downgrade)", downgrade)
    skipped, collisions = shadowing(manifest.channels, target_channel)
    for collision in collisions:
        log.warning("%s", collision.message())
    listing: dict[tuple[str, str], dict[str, int]] = {}
    current: dict[tuple[str, str], Repodata | None] = {}

    def held_size(tc: str, subdir: str, filename: str) -> int | None:
        key = (tc, subdir)
        if key not in listing:
            listing[key] = dest.files(tc, subdir)
        return listing[key].get(filename)

    def index(tc: str, subdir: str) -> Repodata | None:
        if (tc, subdir) not in current:
            # records someone else added are checked against the store, not merged blindly (ops/vetting.py)
            current[(tc, subdir)] = vetted_index(dest, tc, subdir, dest.read_repodata(tc, subdir), receipt)
        return current[(tc, subdir)]

    def holds(tc: str, subdir: str, filename: str, sha256: str, size: int) -> bool:
        if recheck:  # the bytes as stored (quetz: downloaded), not what an index or the receipt says
            known = dest.stored_sha256(tc, subdir, filename)
        else:
            rec = receipt.held(tc, subdir, filename)
            known = rec.sha256 if rec is not None else None
        return known == sha256 and held_size(tc, subdir, filename) == size

    # Which package files does the destination lack?
    needed: dict[str, list[tuple[str, str, str]]] = {}  # sha -> placements (channel, subdir, filename)
    present = 0
    for ch in manifest.channels:
        tc = target_channel(ch.name)
        for sub in ch.subdirs:
            skip = skipped.setdefault((ch.name, sub.subdir), set())
            rd = index(tc, sub.subdir) if downgrade else None
            for p in sub.packages:
                if p.filename in skip:
                    continue
                if holds(tc, sub.subdir, p.filename, p.sha256, p.size):
                    present += 1
                    continue
                if downgrade and (held_size(tc, sub.subdir, p.filename) is not None or (rd is not None and rd.get(p.filename))):
                    skip.add(p.filename)  # additions only: what the destination has under this name stays
                    continue
                needed.setdefault(p.sha256, []).append((tc, sub.subdir, p.filename))
            if downgrade:  # its base may be long gone: what it says is present is neither checked nor recorded
                skip.update(p.filename for p in sub.present)
    # Installers go to DEST/<dir>/<filename>: placed like packages, with "" as the subdir.
    channel_names = {target_channel(ch.name) for ch in manifest.channels}
    held_installers = receipt.installers
    installers = list(manifest.installers)
    if installers and not dest.holds_other_files:
        log.warning(
            "%s: a %s destination holds conda packages only; the archive's %d installer(s) are not imported",
            dest,
            dest.kind,
            len(installers),
        )
        installers = []
    misplaced = import_problem(
        channel_names, [(i.dir, i.filename) for i in installers], held_installers, dest.inventory() if installers else ()
    )
    if misplaced:
        raise DestinationError(f"{dest}: {misplaced}; nothing was changed")
    for ins in installers:
        rec = held_installers.get(ins.dir, {}).get(ins.filename)
        if rec and rec.sha256 == ins.sha256 and held_size(ins.dir, "", ins.filename) == ins.size:
            present += 1
            continue
        needed.setdefault(ins.sha256, []).append((ins.dir, "", ins.filename))
    # A delta builds on files the destination must already hold: check them before anything changes.
    base_files = [
        (target_channel(ch.name), sub.subdir, p)
        for ch in manifest.channels
        for sub in ch.subdirs
        for p in sub.present
        if p.filename not in skipped[(ch.name, sub.subdir)]
    ]
    lacking = [f"{tc}/{subdir}/{p.filename}" for tc, subdir, p in base_files if not holds(tc, subdir, p.filename, p.sha256, p.size)]
    if lacking:
        raise DestinationError(
            missing_base_message(base_files, lacking, receipt.to_json()["channels"], [ch.name for ch in manifest.channels], dest_channel)
        )
    present += len(base_files)
    removals = (
        []
        if downgrade
        else [(target_channel(ch.name), sub.subdir, fn) for ch in manifest.channels for sub in ch.subdirs for fn in sub.removals]
    )
    pending_removals = [r for r in removals if held_size(*r) is not None]
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
    if not needed and (manifest.archive_id in applied or (not dest.keeps_repodata and not pending_removals) or unchanged):
        log.debug("archive %s is already imported into %s; nothing to do", manifest.archive_id, dest)
        result.noop = True
        return result

    plan = _Plan(receipt, needed, removals, skipped, downgrade is not None, target_channel, index)
    change = dest.begin(manifest.archive_id[:12])
    try:
        return _publish(opened, dest, change, plan, result, progress, clock)
    finally:
        change.close()


@dataclass
class _Plan:
    """What the import decided before streaming: the receipt, the files to place and to remove, what to leave out."""

    receipt: Receipt
    needed: dict[str, list[tuple[str, str, str]]]  # sha -> placements (channel, subdir, filename)
    removals: list[tuple[str, str, str]]
    skipped: Shadowed  # (archive channel, subdir) -> files left out (shadowed, or kept back by a downgrade)
    downgrade: bool
    target_channel: Callable[[str], str]
    index: Callable[[str, str], Repodata | None]  # a destination subdir's current index (read once)


def _verify_only(opened: Any, progress: Progress) -> None:
    """Every blob read and hashed, every repodata blob checked against the manifest; nothing kept."""
    repodata_blobs = stream_blobs(opened, progress, "verify")
    for ch in opened.manifest.channels:
        for sub in ch.subdirs:
            load_repodata_blob(repodata_blobs[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")


def _publish(
    opened: Any, dest: Destination, change: Change, plan: _Plan, result: ImportResult, progress: Progress, clock: Any
) -> ImportResult:
    needed = plan.needed
    blobs: dict[str, BlobRef] = {}
    identities: dict[Path, tuple[int, int, int, int]] = {}
    scratch: tempfile.TemporaryDirectory[str] | None = None
    staging = f"{change.staging}/" if change.staging is not None else None

    # Stream and verify every blob; keep what is needed (and every repodata blob).
    def stage(entry: BlobEntry, location: tuple[Path, int] | None) -> str | None:
        nonlocal scratch, staging
        if entry.sha256 not in needed:
            return None
        result.bytes_written += entry.size
        if change.staging is None and location is not None:  # a remote destination reads the blob where it lies
            path = location[0]
            if path not in identities:
                identities[path] = file_identity(path)
            blobs[entry.sha256] = BlobRef(path, location[1], entry.size, entry.sha256, identities[path])
            return None
        if staging is None:  # a tape (or pipe) cannot be read twice: copy the blob first
            scratch = tempfile.TemporaryDirectory(prefix="airgap-import-")
            staging = scratch.name + "/"
        target = staging + entry.sha256  # strings: an import may stage 100,000 files
        blobs[entry.sha256] = BlobRef(target, 0, entry.size, entry.sha256)
        return target

    try:
        repodata_blobs = stream_blobs(opened, progress, "import", stage)
        return _replay(dest, change, plan, blobs, repodata_blobs, opened, result, progress, clock)
    finally:
        if scratch is not None:
            scratch.cleanup()


def _new_indexes(plan: _Plan, manifest: Any, repodata_blobs: dict[str, bytes]) -> dict[tuple[str, str], Repodata]:
    """Every touched subdir's next index: the current one, less the removals, plus each channel's records
    (less those left out: shadowed by an earlier channel, or, in a downgrade, names the destination already lists)."""
    incoming: dict[tuple[str, str], list[Repodata]] = {}
    for ch in manifest.channels:
        tc = plan.target_channel(ch.name)
        for sub in ch.subdirs:
            rd = load_repodata_blob(repodata_blobs[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
            skip = plan.skipped.get((ch.name, sub.subdir), set())
            base = plan.index(tc, sub.subdir)
            if skip or plan.downgrade:
                rd = rd.subset(
                    {f for f, _ in rd.records() if f not in skip and not (plan.downgrade and base is not None and base.lists(f))}
                )
            incoming.setdefault((tc, sub.subdir), []).append(rd)
        if (tc, "noarch") not in incoming and plan.index(tc, "noarch") is None:
            incoming[(tc, "noarch")] = [empty("noarch")]
    gone: dict[tuple[str, str], set[str]] = {}
    for tc, subdir, filename in plan.removals:
        gone.setdefault((tc, subdir), set()).add(filename)
    new_index: dict[tuple[str, str], Repodata] = {}
    for key, parts in incoming.items():
        provided = {f for rd in parts for f, _ in rd.records()}
        merged = plan.index(*key)
        if merged is not None:
            merged = merged.without(gone.get(key, set()) - provided)  # gone upstream (or from the filters)
        for rd in parts:
            merged = merge(merged, rd)
        assert merged is not None
        new_index[key] = merged
    return new_index


def _replay(
    dest: Destination,
    change: Change,
    plan: _Plan,
    blobs: dict[str, BlobRef],
    repodata_blobs: dict[str, bytes],
    opened: Any,
    result: ImportResult,
    progress: Progress,
    clock: Any,
) -> ImportResult:
    manifest = opened.manifest
    receipt, needed = plan.receipt, plan.needed
    new_index = _new_indexes(plan, manifest, repodata_blobs)
    # a file another channel merged here still lists is not removed (DESIGN §3: never delete a listed file)
    removals = [r for r in plan.removals if (r[0], r[1]) not in new_index or not new_index[(r[0], r[1])].lists(r[2])]

    # A file the current index lists with other bytes (same name, new build) is replaced only after
    # an interim index that no longer lists it: no index ever lists a file whose bytes differ.
    order = [(sha, place) for sha, places in needed.items() for place in places]
    sizes = {b.sha256: b.size for b in manifest.blobs}

    def listed_otherwise(sha: str, tc: str, subdir: str, filename: str) -> bool:
        rd = plan.index(tc, subdir) if subdir else None
        record = rd.get(filename) if rd is not None else None
        if record is None:
            return False
        rec_sha, _md5, rec_size = record_hashes(record)
        return rec_sha != sha if rec_sha is not None else rec_size != sizes[sha]

    listed = [(sha, place) for sha, place in order if listed_otherwise(sha, *place)]
    dropped: dict[tuple[str, str], set[str]] = {}
    for _, (tc, subdir, filename) in listed:
        dropped.setdefault((tc, subdir), set()).add(filename)
    interim: dict[tuple[str, str], Repodata] = {}
    for key, names in dropped.items():
        rd = plan.index(*key)
        assert rd is not None
        interim[key] = rd.without(names)
    uses = Counter(sha for sha, _ in order)

    def place(batch: list[tuple[str, tuple[str, str, str]]]) -> None:
        puts = []
        for sha, (tc, subdir, filename) in batch:
            uses[sha] -= 1
            puts.append(Put(tc, subdir, filename, blobs[sha], keep=uses[sha] > 0))
        if not puts:
            return
        bar = progress("publish", sum(p.blob.size for p in puts), files=len(puts)) if change.staging is None else None
        change.put_packages(puts, bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
        result.packages_added += len(puts)

    # Publish: plan → packages (durable) → repodata → receipt → commit. Roll back on any failure.
    try:
        change.plan([place for _, place in order], sorted(new_index), sha256={place: sha for sha, place in order})
        late = set(listed)
        place([x for x in order if x not in late])
        if listed:
            for (tc, subdir), rd in sorted(interim.items()):
                change.publish_index(tc, subdir, rd)
            place(listed)
        for (tc, subdir), rd in sorted(new_index.items()):
            change.publish_index(tc, subdir, rd)
        for ins in manifest.installers:
            if ins.sha256 in needed or receipt.installers.get(ins.dir, {}).get(ins.filename):
                receipt.installers.setdefault(ins.dir, {})[ins.filename] = Held(ins.sha256, ins.size)
        sbom = keep_sbom(change, manifest, repodata_blobs)  # journaled: undone with the rest
        apply_archive(
            receipt,
            manifest,
            plan.target_channel,
            skipped=plan.skipped,
            downgrade=plan.downgrade,
            signer=opened.signer,
            imported=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock())),
        )
        if sbom:
            receipt.archives[-1]["sbom"] = sbom
        change.write_receipt(receipt.to_json())
        change.commit()
    except BaseException:
        change.rollback()
        raise
    # the index no longer lists them: the removed files can go (a kill here leaves unlisted files only)
    if removals:
        dest.remove_packages(removals)
        result.packages_removed += len(removals)
    write_pages(dest, {tc for tc, _ in new_index}, with_sboms({"archives": receipt.archives}), new_index, [p for _, p in order] + removals)
    return result
