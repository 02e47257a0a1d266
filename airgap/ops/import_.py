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
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..destinations.directory import DirectoryDestination, Journal
from ..errors import DestinationError, UsageError
from ..manifest import BlobEntry
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
    into: Path,
    trusted: TrustedKeys,
    *,
    dest_channel: str | None = None,
    allow_unsigned: bool = False,
    lock_timeout: float = 60.0,
    progress: Progress = null_progress,
    clock: Any = time.time,
) -> ImportResult:
    paths = [Path(p) for p in archive] if isinstance(archive, list) else [Path(archive)]
    opened = open_set(paths, trusted, allow_unsigned)  # nothing touched before this: signatures, every volume
    return import_opened(opened, Path(into), dest_channel=dest_channel, lock_timeout=lock_timeout,
                         progress=progress, clock=clock)


def import_opened(opened: Any, into: Path, *, dest_channel: str | None = None, lock_timeout: float = 60.0,
                  recheck: bool = False, progress: Progress = null_progress, clock: Any = time.time) -> ImportResult:
    """Publish a verified source of blobs (an archive, or the export cache for sync) into ``into``.

    ``recheck``: do not trust the receipt about which files are present; hash each one.
    """
    dest = DirectoryDestination(Path(into))
    created: list[Path] = []
    try:
        with opened.stream, dest.locked(created, lock_timeout):
            try:
                return _import_locked(opened, dest, created, dest_channel, progress, clock, recheck)
            except BaseException:
                _remove_created(created)  # under the lock: the next import must not see it half removed
                raise
    except BaseException:
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    """Remove what this import created (staging area, state dir, root), newest first."""
    for d in reversed(created):
        if d.name.startswith("staging-"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            try:
                d.rmdir()
            except OSError:
                pass
    created.clear()


def _import_locked(opened: Any, dest: DirectoryDestination, created: list[Path], dest_channel: str | None,
                   progress: Progress, clock: Any, recheck: bool = False) -> ImportResult:
    manifest = opened.manifest
    receipt = dest.read_receipt()  # read after dest.locked() rolled back any killed import
    held: dict[str, dict[str, dict[str, Any]]] = receipt["channels"]

    def target_channel(name: str) -> str:
        return dest_channel or name

    # Which package files does the destination lack?
    needed: dict[str, list[tuple[str, str, str]]] = {}  # sha -> placements (channel, subdir, filename)
    present = 0
    for ch in manifest.channels:
        tc = target_channel(ch.name)
        for sub in ch.subdirs:
            have = held.get(tc, {}).get(sub.subdir, {})
            for p in sub.packages:
                rec = have.get(p.filename)
                if recheck:
                    rec = {"sha256": dest.file_sha256(tc, sub.subdir, p.filename)}
                if rec and rec.get("sha256") == p.sha256 and dest.file_matches(tc, sub.subdir, p.filename, p.size):
                    present += 1
                    continue
                needed.setdefault(p.sha256, []).append((tc, sub.subdir, p.filename))
    # Installers go to DEST/<dir>/<filename>: placed like packages, with "" as the subdir.
    channel_names = {target_channel(ch.name) for ch in manifest.channels}
    held_installers: dict[str, dict[str, Any]] = receipt.setdefault("installers", {})
    for ins in manifest.installers:
        if ins.dir in channel_names:
            raise UsageError(f"installers: expected a directory name other than the channels', found {ins.dir!r} (a channel too)")
        rec = held_installers.get(ins.dir, {}).get(ins.filename)
        if rec and rec.get("sha256") == ins.sha256 and dest.file_matches(ins.dir, "", ins.filename, ins.size):
            present += 1
            continue
        needed.setdefault(ins.sha256, []).append((ins.dir, "", ins.filename))
    # A delta builds on files the destination must already hold: check them before anything changes.
    base_files = [(target_channel(ch.name), sub.subdir, p) for ch in manifest.channels for sub in ch.subdirs for p in sub.present]
    lacking = [f"{tc}/{subdir}/{p.filename}" for tc, subdir, p in base_files
               if not ((held.get(tc, {}).get(subdir, {}).get(p.filename) or {}).get("sha256") == p.sha256
                       and dest.file_matches(tc, subdir, p.filename, p.size))]
    if lacking:
        raise DestinationError(
            f"this delta archive builds on {len(base_files)} files the destination should hold; {len(lacking)} are missing "
            f"or different (first: {lacking[0]}); import its base first, or export without --since"
        )
    present += len(base_files)
    applied = {a.get("archive_id") for a in receipt["archives"] if isinstance(a, dict)}
    result = ImportResult(str(dest.root), manifest.archive_id, opened.signer, noop=False, packages_present=present)
    for ch in manifest.channels:
        result.channels.setdefault(target_channel(ch.name), []).extend(s.subdir for s in ch.subdirs)
    if manifest.archive_id in applied and not needed:
        log.debug("archive %s is already imported into %s; nothing to do", manifest.archive_id, dest.root)
        result.noop = True
        return result

    staging = dest.new_staging(manifest.archive_id[:12], created)
    journal = Journal(staging / "backup", dest.root)

    # Stream and verify every blob; stage what is needed (and every repodata blob).
    def stage(entry: BlobEntry) -> Path | None:
        if entry.sha256 not in needed:
            return None
        result.bytes_written += entry.size
        return staging / entry.sha256

    repodata_blobs = stream_blobs(opened, progress, "import", stage)

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
        touched: set[tuple[str, str]] = set()
        for sha, (tc, subdir, filename) in batch:
            uses[sha] -= 1
            dest.put_package(tc, subdir, filename, staging / sha, journal, keep_staged=uses[sha] > 0)
            touched.add((tc, subdir))
            result.packages_added += 1
        dest.fsync_dirs(touched)

    # Publish: journal → packages (durable) → repodata → receipt. Roll back on any failure.
    try:
        dest.plan_publish(journal, [place for _, place in order], sorted(new_index))
        dest.sync()  # staged bytes, backups and journal reach the disk before anything points at them
        late = set(listed)
        place([x for x in order if x not in late])
        if listed:
            for (tc, subdir), rd in sorted(interim.items()):
                dest.publish_index(tc, subdir, rd, journal)
            place(listed)
        for (tc, subdir), rd in sorted(new_index.items()):
            dest.publish_index(tc, subdir, rd, journal)
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
            held_installers.setdefault(ins.dir, {})[ins.filename] = {"sha256": ins.sha256, "size": ins.size}
        receipt["archives"].append({
            "archive_id": manifest.archive_id,
            "created": manifest.created,
            "imported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock())),
            "signer": opened.signer,
            "base": manifest.base,
        })
        dest.write_receipt(receipt, journal)
        journal.commit()
    except BaseException:
        journal.rollback()
        raise
    # the index no longer lists them: the removed files can go (a kill here leaves unlisted files only)
    gone = {(target_channel(ch.name), sub.subdir) for ch in manifest.channels for sub in ch.subdirs if sub.removals}
    for ch in manifest.channels:
        for sub in ch.subdirs:
            for filename in sub.removals:
                dest.remove_package(target_channel(ch.name), sub.subdir, filename)
                result.packages_removed += 1
    if gone:
        dest.fsync_dirs(gone)
    shutil.rmtree(staging, ignore_errors=True)
    write_pages(dest, {tc for tc, _ in new_index}, receipt["archives"][-1], new_index)  # new_index is what was published
    return result
