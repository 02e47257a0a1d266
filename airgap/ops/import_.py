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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..channel_map import targets
from ..destinations import open_destination
from ..destinations.base import BlobRef, Change, Destination, Put, file_identity
from ..errors import DestinationError, UsageError
from ..manifest import BlobEntry
from ..placement import import_problem
from ..progress import Progress, null_progress
from ..repodata import Repodata, empty, merge, record_hashes
from ..signing import TrustedKeys
from ._archive import load_repodata_blob, open_set, stream_blobs
from .pages import write_pages

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
    lock_timeout: float = 60.0,
    progress: Progress = null_progress,
    clock: Any = time.time,
) -> ImportResult:
    paths = [Path(p) for p in archive] if isinstance(archive, list) else [Path(archive)]
    opened = open_set(paths, trusted, allow_unsigned)  # nothing touched before this: signatures, every volume
    return import_opened(opened, into, dest_channel=dest_channel, channel_map=channel_map, lock_timeout=lock_timeout,
                         progress=progress, clock=clock)


def import_opened(opened: Any, into: Path | str | Destination, *, dest_channel: str | None = None,
                  channel_map: Mapping[str, str] | None = None, lock_timeout: float = 60.0,
                  recheck: bool = False, progress: Progress = null_progress, clock: Any = time.time) -> ImportResult:
    """Publish a verified source of blobs (an archive, or the export cache for sync) into ``into``.

    ``recheck``: do not trust the receipt about which files are present; hash each one.
    ``channel_map``: source channel (URL or name) -> destination channel (see airgap.channel_map).
    """
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    if dest.fixed_channel is not None:
        if dest_channel not in (None, dest.fixed_channel):
            raise UsageError(f"dest_channel: expected {dest.fixed_channel!r} (the channel the destination URL names) or none, found {dest_channel!r}")
        dest_channel = dest.fixed_channel
    mapped = targets(channel_map or {}, [(ch.name, ch.url) for ch in opened.manifest.channels])
    if dest.fixed_channel is not None and set(mapped.values()) - {dest.fixed_channel}:
        raise UsageError(f"channel_map: expected only {dest.fixed_channel!r} (the channel the destination URL names), found {sorted(set(mapped.values()))}")
    with opened.stream, dest.locked(lock_timeout):
        return _import_locked(opened, dest, dest_channel, progress, clock, recheck, mapped)


def _import_locked(opened: Any, dest: Destination, dest_channel: str | None,
                   progress: Progress, clock: Any, recheck: bool = False, mapped: Mapping[str, str] | None = None) -> ImportResult:
    manifest = opened.manifest
    receipt = dest.read_receipt()  # read after dest.locked() rolled back any killed import
    held: dict[str, dict[str, dict[str, Any]]] = receipt["channels"]

    def target_channel(name: str) -> str:
        return (mapped or {}).get(name) or dest_channel or name

    listing: dict[tuple[str, str], dict[str, int]] = {}

    def held_size(tc: str, subdir: str, filename: str) -> int | None:
        key = (tc, subdir)
        if key not in listing:
            listing[key] = dest.files(tc, subdir)
        return listing[key].get(filename)

    def holds(tc: str, subdir: str, filename: str, sha256: str, size: int) -> bool:
        if recheck:
            known = dest.file_sha256(tc, subdir, filename)
        else:
            known = (held.get(tc, {}).get(subdir, {}).get(filename) or {}).get("sha256")
        return known == sha256 and held_size(tc, subdir, filename) == size

    # Which package files does the destination lack?
    needed: dict[str, list[tuple[str, str, str]]] = {}  # sha -> placements (channel, subdir, filename)
    present = 0
    for ch in manifest.channels:
        tc = target_channel(ch.name)
        for sub in ch.subdirs:
            for p in sub.packages:
                if holds(tc, sub.subdir, p.filename, p.sha256, p.size):
                    present += 1
                    continue
                needed.setdefault(p.sha256, []).append((tc, sub.subdir, p.filename))
    # Installers go to DEST/<dir>/<filename>: placed like packages, with "" as the subdir.
    channel_names = {target_channel(ch.name) for ch in manifest.channels}
    held_installers: dict[str, dict[str, Any]] = receipt.setdefault("installers", {})
    installers = list(manifest.installers)
    if installers and not dest.holds_other_files:
        log.warning("%s: a %s destination holds conda packages only; the archive's %d installer(s) are not imported",
                    dest, dest.kind, len(installers))
        installers = []
    collision = import_problem(channel_names, [(i.dir, i.filename) for i in installers], held_installers,
                               dest.inventory() if installers else ())
    if collision:
        raise DestinationError(f"{dest}: {collision}; nothing was changed")
    for ins in installers:
        rec = held_installers.get(ins.dir, {}).get(ins.filename)
        if rec and rec.get("sha256") == ins.sha256 and held_size(ins.dir, "", ins.filename) == ins.size:
            present += 1
            continue
        needed.setdefault(ins.sha256, []).append((ins.dir, "", ins.filename))
    # A delta builds on files the destination must already hold: check them before anything changes.
    base_files = [(target_channel(ch.name), sub.subdir, p) for ch in manifest.channels for sub in ch.subdirs for p in sub.present]
    lacking = [f"{tc}/{subdir}/{p.filename}" for tc, subdir, p in base_files if not holds(tc, subdir, p.filename, p.sha256, p.size)]
    if lacking:
        raise DestinationError(
            f"this delta archive builds on {len(base_files)} files the destination should hold; {len(lacking)} are missing "
            f"or different (first: {lacking[0]}); import its base first, or export without --since"
        )
    present += len(base_files)
    removals = [(target_channel(ch.name), sub.subdir, fn) for ch in manifest.channels for sub in ch.subdirs for fn in sub.removals]
    pending_removals = [r for r in removals if held_size(*r) is not None]
    applied = {a.get("archive_id") for a in receipt["archives"] if isinstance(a, dict)}
    result = ImportResult(str(dest), manifest.archive_id, opened.signer, noop=False, packages_present=present)
    for ch in manifest.channels:
        result.channels.setdefault(target_channel(ch.name), []).extend(s.subdir for s in ch.subdirs)
    # a server that rebuilds its repodata from the packages keeps no archive history: holding every file is enough
    if not needed and (manifest.archive_id in applied or (not dest.keeps_repodata and not pending_removals)):
        log.debug("archive %s is already imported into %s; nothing to do", manifest.archive_id, dest)
        result.noop = True
        return result

    change = dest.begin(manifest.archive_id[:12])
    try:
        return _publish(opened, dest, change, receipt, needed, removals, result, target_channel, progress, clock)
    finally:
        change.close()


def _publish(opened: Any, dest: Destination, change: Change, receipt: dict[str, Any], needed: dict[str, list[tuple[str, str, str]]],
             removals: list[tuple[str, str, str]], result: ImportResult, target_channel: Any, progress: Progress,
             clock: Any) -> ImportResult:
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
        return _replay(dest, change, receipt, needed, removals, blobs, repodata_blobs, opened, result, target_channel,
                       progress, clock)
    finally:
        if scratch is not None:
            scratch.cleanup()


def _replay(dest: Destination, change: Change, receipt: dict[str, Any], needed: dict[str, list[tuple[str, str, str]]],
            removals: list[tuple[str, str, str]], blobs: dict[str, BlobRef], repodata_blobs: dict[str, bytes], opened: Any,
            result: ImportResult, target_channel: Any, progress: Progress, clock: Any) -> ImportResult:
    manifest = opened.manifest
    held: dict[str, dict[str, dict[str, Any]]] = receipt["channels"]
    held_installers: dict[str, dict[str, Any]] = receipt["installers"]
    # Build the new repodata of every touched subdir (every channel gets a noarch).
    current: dict[tuple[str, str], Repodata | None] = {}
    new_index: dict[tuple[str, str], Repodata] = {}
    for ch in manifest.channels:
        tc = target_channel(ch.name)
        for sub in ch.subdirs:
            incoming = load_repodata_blob(repodata_blobs[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
            key = (tc, sub.subdir)
            if key not in current:
                current[key] = dest.read_repodata(tc, sub.subdir)
            base = new_index.get(key) or current[key]
            merged = merge(base, incoming)
            for filename in sub.removals:  # gone upstream (or from the filters): drop from the index
                merged.drop(filename)
            new_index[key] = merged
        if (tc, "noarch") not in new_index and dest.read_repodata(tc, "noarch") is None:
            new_index[(tc, "noarch")] = empty("noarch")

    # A file the current index lists with other bytes (same name, new build) is replaced only after
    # an interim index that no longer lists it: no index ever lists a file whose bytes differ.
    order = [(sha, place) for sha, places in needed.items() for place in places]
    sizes = {b.sha256: b.size for b in manifest.blobs}

    def listed_otherwise(sha: str, tc: str, subdir: str, filename: str) -> bool:
        rd = current.get((tc, subdir))
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
        rd = current[key]
        assert rd is not None
        interim[key] = rd.subset({f for f, _ in rd.records() if f not in names})
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
        change.plan([place for _, place in order], sorted(new_index))
        late = set(listed)
        place([x for x in order if x not in late])
        if listed:
            for (tc, subdir), rd in sorted(interim.items()):
                change.publish_index(tc, subdir, rd)
            place(listed)
        for (tc, subdir), rd in sorted(new_index.items()):
            change.publish_index(tc, subdir, rd)
        for ch in manifest.channels:
            tc = target_channel(ch.name)
            for sub in ch.subdirs:
                slot = held.setdefault(tc, {}).setdefault(sub.subdir, {})
                for p in sub.packages:
                    slot[p.filename] = {"sha256": p.sha256, "size": p.size}
        sources = receipt.setdefault("sources", {})
        for ch in manifest.channels:
            tc = target_channel(ch.name)
            for sub in ch.subdirs:
                slot = held.setdefault(tc, {}).setdefault(sub.subdir, {})
                for filename in sub.removals:
                    slot.pop(filename, None)
                if sub.source.get("sha256"):
                    sources.setdefault(tc, {})[sub.subdir] = sub.source["sha256"]
        for ins in manifest.installers:
            if ins.sha256 in needed or held_installers.get(ins.dir, {}).get(ins.filename):
                held_installers.setdefault(ins.dir, {})[ins.filename] = {"sha256": ins.sha256, "size": ins.size}
        receipt["archives"].append({
            "archive_id": manifest.archive_id,
            "created": manifest.created,
            "imported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock())),
            "signer": opened.signer,
            "base": manifest.base,
        })
        change.write_receipt(receipt)
        change.commit()
    except BaseException:
        change.rollback()
        raise
    # the index no longer lists them: the removed files can go (a kill here leaves unlisted files only)
    if removals:
        dest.remove_packages(removals)
        result.packages_removed += len(removals)
    write_pages(dest, {tc for tc, _ in new_index}, receipt["archives"][-1], new_index)  # new_index is what was published
    return result
