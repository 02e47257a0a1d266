"""Carry out an :class:`~.import_plan.ImportPlan`: stage the blobs, then publish them in the safe order.

:func:`stage` streams and verifies every blob of the source, keeping those the plan needs
(in the destination's staging area, a scratch folder, or where they lie for a remote store);
:func:`publish` then writes, in one journaled change: package files, interim indexes for
files replaced under the same name, the new indexes, the receipt; commits; and only then
removes what no index lists any more. Any failure before the commit rolls everything back.
"""

from __future__ import annotations

import mmap
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._heap import give_back
from .._safepath import release_views
from ..clock import Clock, timestamp
from ..core import delta_index
from ..core.manifest import BlobEntry, Manifest
from ..core.receipt import Held, apply_archive
from ..core.repodata import Repodata, empty, merge, record_hashes
from ..core.run_exports import NAME as RUN_EXPORTS
from ..core.run_exports import for_import as run_exports_files
from ..destinations.base import BlobRef, Change, Destination, Put, file_identity
from ..progress import Progress
from ._archive import Opened, Pending, load_repodata_blob, stream_beside
from .import_body import beside, new_folder_targets
from .import_plan import ImportPlan
from .index_change import IndexPublisher
from .needed import Place
from .pages import write_ahead, write_pages
from .review import keep_sbom, with_sboms

_Index = dict[tuple[str, str], Repodata]  # (destination channel, subdir) -> index
_CHUNK = 4096  # package files handed to the change at a time


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
    downloads: list[str] | None = None  # the installer scripts written into DEST/downloads/ (not part of the JSON)
    public_url: str | None = None  # the URL they were written for

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.__dict__)
        del doc["downloads"], doc["public_url"]
        return doc


def stage(
    opened: Opened, dest: Destination, change: Change, plan: ImportPlan, result: ImportResult, progress: Progress, clock: Clock
) -> ImportResult:
    """Stream and verify every blob; keep what is needed (and every repodata blob); then publish."""
    needed = plan.needed
    blobs = Blobs()
    identities: dict[Path, tuple[int, int, int, int]] = {}
    scratch: tempfile.TemporaryDirectory[str] | None = None
    staging = f"{change.staging}/" if change.staging is not None else None

    def keep(entry: BlobEntry, location: tuple[Path, int] | None) -> str | None:
        nonlocal scratch, staging
        places = needed.get(entry.sha256)
        if places is None:
            return None
        result.bytes_written += entry.size
        if len(places) == 1 and (folder := _new_folder(change, blobs, places[0])) is not None:
            return f"{folder}/{places[0][2]}"  # staged under its own name in a new subdir's folder, placed with it
        if change.staging is None and location is not None:  # a remote destination reads the blob where it lies
            path = location[0]
            if path not in identities:
                identities[path] = file_identity(path)
            blobs.refs[entry.sha256] = BlobRef(path, location[1], entry.size, entry.sha256, identities[path])
            return None
        if staging is None:  # a tape (or pipe) cannot be read twice: copy the blob first
            scratch = tempfile.TemporaryDirectory(prefix="airgap-import-")
            staging = scratch.name + "/"
        blobs.folder = staging
        blobs.staged[entry.sha256] = entry.size  # the manifest's strings and ints: nothing new per file
        return staging + entry.sha256

    pending: Pending | None = None
    try:  # the package blobs in a second process, where it pays (import_body), while this one does the index work
        many = new_folder_targets(needed, lambda key: _new_folder(change, blobs, (*key, "")), result)
        repodata_blobs, pending = stream_beside(
            opened, progress, "import", keep, beside(keep, many) if change.staging is not None else None
        )
        opened.manifest.forget_package_blobs()  # streamed and checked (or told to the child): the package entries say the same
        return publish(dest, change, plan, blobs, repodata_blobs, opened, result, progress, clock, pending)
    finally:
        if pending is not None:
            pending.close()  # stopped, if something failed before it was waited for
        if scratch is not None:
            scratch.cleanup()


class _Shas(Mapping[tuple[str, str, str], str]):
    """The planned sha256 of each place, made only if a destination asks (quetz does; a directory never: a dict
    of 300,000 places was ~20 MB of the plan's peak)."""

    def __init__(self, places: Callable[[], Iterable[tuple[str, Place]]]) -> None:
        self._places: Callable[[], Iterable[tuple[str, Place]]] | None = places
        self._by: dict[Place, str] = {}

    def _made(self) -> dict[Place, str]:
        if self._places is not None:
            self._by, self._places = {place: sha for sha, place in self._places()}, None
        return self._by

    def __getitem__(self, place: Place) -> str:
        return self._made()[place]

    def __iter__(self) -> Iterator[Place]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())


def _new_folder(change: Change, blobs: Blobs, place: Place) -> Path | None:
    """The folder a new subdir is staged in whole (decided once per subdir); None: its files are placed one by one."""
    tc, subdir, _ = place
    if (tc, subdir) not in blobs.folders:
        blobs.folders[(tc, subdir)] = change.new_folder(tc, subdir)
    return blobs.folders[(tc, subdir)]


class Blobs(Mapping[str, BlobRef]):
    """The blobs an import keeps, by sha256: where they lie (a remote store reads them there), or staged in one
    folder under their sha256, whose references are made when asked rather than held (a reference and its path
    string per file were ~80 MB of a full import's peak at 300,000 files, measured)."""

    def __init__(self) -> None:
        self.refs: dict[str, BlobRef] = {}
        self.staged: dict[str, int] = {}  # sha256 -> size, staged as folder + sha256
        self.folder = ""
        self.folders: dict[tuple[str, str], Path | None] = {}  # new subdirs staged whole: their files are not in staged

    def __getitem__(self, sha: str) -> BlobRef:
        ref = self.refs.get(sha)
        return ref if ref is not None else BlobRef(self.folder + sha, 0, self.staged[sha], sha)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.refs, *self.staged])

    def __len__(self) -> int:
        return len(self.refs) + len(self.staged)

    def clear(self) -> None:
        self.refs.clear()
        self.staged.clear()


def new_indexes(
    plan: ImportPlan,
    manifest: Manifest,
    repodata_blobs: dict[str, bytes | mmap.mmap],
    loaded: _Index | None = None,
    touched: dict[tuple[str, str], set[str]] | None = None,
) -> _Index:
    """Every touched subdir's next index: the current one, less the removals, plus each channel's records
    (less those left out: shadowed by an earlier channel, or, in a downgrade, names the destination already lists).
    ``touched`` gets, per subdir the destination lists, every file name whose record may differ from the current index's."""
    incoming: dict[tuple[str, str], list[Repodata]] = {}
    for ch in manifest.channels:
        tc = plan.target_channel(ch.name)
        for sub in ch.subdirs:
            rd = load_repodata_blob(repodata_blobs[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
            if loaded is not None:  # by archive channel, as carried: the receipt's name index (airgap.core.delta_index)
                loaded[(ch.name, sub.subdir)] = rd
            skip = plan.skipped.get((ch.name, sub.subdir), set())
            base = plan.index(tc, sub.subdir)
            if skip or plan.downgrade:
                rd = rd.subset(
                    {
                        f
                        for f in (*rd.packages, *rd.packages_conda)
                        if f not in skip and not (plan.downgrade and base is not None and base.lists(f))
                    }
                )
            incoming.setdefault((tc, sub.subdir), []).append(rd)
        if (tc, "noarch") not in incoming and plan.index(tc, "noarch") is None:
            incoming[(tc, "noarch")] = [empty("noarch")]
    gone: dict[tuple[str, str], set[str]] = {}
    for tc, subdir, filename in plan.removals:
        gone.setdefault((tc, subdir), set()).add(filename)
    new_index: _Index = {}
    for key, parts in incoming.items():
        current = merged = plan.index(*key)
        if merged is not None:  # a new subdir has nothing to compare with: no set of its 300,000 file names
            provided = {f for rd in parts for f in (*rd.packages, *rd.packages_conda)}  # file names: no record decoded
            merged = merged.without(gone.get(key, set()) - provided)  # gone upstream (or from the filters)
            if touched is not None:
                touched[key] = provided | gone.get(key, set())
        for rd in parts:
            merged = merge(merged, rd)
        assert merged is not None
        new_index[key] = merged
        if loaded is not None and current is None and len(parts) == 1:  # a new subdir, from one archive subdir
            for archived, rd in list(loaded.items()):
                if rd is parts[0]:  # taken whole: the same records, so the archive's copy (300,000 entries) need not stay
                    loaded[archived] = merged
    return new_index


def _replaced_in_place(
    plan: ImportPlan, manifest: Manifest, order: Iterable[tuple[str, Place]]
) -> tuple[list[tuple[str, Place]], _Index, dict[tuple[str, str], set[str]]]:
    """The files the current index lists with other bytes (same name, new build), and the interim indexes
    that no longer list them: they are replaced only after those, so no index ever lists a file whose bytes differ."""
    sizes: dict[str, int] = {}  # made only if a record has no sha256 (a dict of 300,000 blobs otherwise, for nothing)

    def listed_otherwise(sha: str, tc: str, subdir: str, filename: str) -> bool:
        rd = plan.index(tc, subdir) if subdir else None
        record = rd.get(filename) if rd is not None else None
        if record is None:
            return False
        rec_sha, _md5, rec_size = record_hashes(record)
        if rec_sha is not None:
            return rec_sha != sha
        if not sizes:  # the package entries' sizes: their blobs' (checked when the manifest was read)
            sizes.update((p.sha256, p.size) for ch in manifest.channels for sub in ch.subdirs for p in sub.packages)
        return rec_size != sizes[sha]

    listed = [(sha, place) for sha, place in order if listed_otherwise(sha, *place)]
    dropped: dict[tuple[str, str], set[str]] = {}
    for _, (tc, subdir, filename) in listed:
        dropped.setdefault((tc, subdir), set()).add(filename)
    interim: _Index = {}
    for key, names in dropped.items():
        rd = plan.index(*key)
        assert rd is not None
        interim[key] = rd.without(names)
    return listed, interim, dropped


def publish(
    dest: Destination,
    change: Change,
    plan: ImportPlan,
    blobs: Blobs,
    repodata_blobs: dict[str, bytes | mmap.mmap],
    opened: Opened,
    result: ImportResult,
    progress: Progress,
    clock: Clock,
    pending: Pending | None = None,
) -> ImportResult:
    """Publish: plan → packages (durable) → repodata → receipt → commit; roll back on any failure; then remove.
    ``pending``: the package blobs still being checked and staged by another process: the index files of new subdirs
    are written into their staged folders meanwhile, and it is waited for before anything else is placed."""
    manifest = opened.manifest
    carried: _Index = {}
    touched: dict[tuple[str, str], set[str]] = {}
    new_index = new_indexes(plan, manifest, repodata_blobs, carried, touched)
    # a file another channel merged here still lists is not removed (DESIGN §3: never delete a listed file)
    removals = [r for r in plan.removals if (r[0], r[1]) not in new_index or not new_index[(r[0], r[1])].lists(r[2])]
    places = plan.needed.places  # each (sha256, place), made anew each pass: no list of 300,000 (two tuples a file: 36 MB)
    indexed = {key for key in new_index if plan.index(*key) is not None}  # a new subdir lists nothing: not a call per file
    listed, interim, dropped = _replaced_in_place(plan, manifest, (x for x in places() if x[1][:2] in indexed) if indexed else ())
    uses = plan.needed.uses()  # a blob placed more than once

    def place(batch: list[tuple[str, Place]]) -> None:
        if not batch:
            return
        bar = progress("publish", sum(blobs[sha].size for sha, _ in batch), files=len(batch)) if change.staging is None else None
        for at in range(0, len(batch), _CHUNK):  # a chunk's references at a time: 300,000 at once were ~100 MB
            puts = []
            for sha, (tc, subdir, filename) in batch[at : at + _CHUNK]:
                left = 0  # places of this blob still to come: all but its last take a copy
                if sha in uses:
                    left = uses[sha] = uses[sha] - 1
                puts.append(Put(tc, subdir, filename, blobs[sha], keep=left > 0))
            change.put_packages(puts, bar.update if bar is not None else None)
            result.packages_added += len(puts)
        if bar is not None:
            bar.close()

    try:
        if pending is not None:
            change.staging_later()  # the child still writes them: staged_written makes them durable
            for key in new_index:  # a new subdir without packages (an empty noarch): its index staged too, placed with it
                if key not in blobs.folders and plan.index(*key) is None:
                    blobs.folders[key] = change.new_folder(*key)
        whole = {key for key, folder in blobs.folders.items() if folder is not None}  # new subdirs: one rename each
        # a place in a new subdir's folder needs no entry of its own (decision 0022): the plan is told of the others
        change.plan([p for _, p in places() if (p[0], p[1]) not in whole], sorted(new_index), sha256=_Shas(places))
        late = set(listed)
        rest: list[tuple[str, Place]] = []  # placed one by one
        placed: dict[tuple[str, str], list[str]] = {}  # the pages' changed names: a file name per file, not a tuple (19 MB)
        for sha, p in places():
            if (p[0], p[1]) in whole and sha not in uses:  # as keep() staged it: in its folder, placed with it
                result.packages_added += 1
            elif (sha, p) not in late:
                rest.append((sha, p))
            placed.setdefault((p[0], p[1]), []).append(p[2])
        brought = {ins.sha256 for ins in manifest.installers if ins.sha256 in plan.needed}
        plan.needed.clear()  # the placements (a dict and a tuple per file: ~24 MB at 300,000 files) before the indexes' peak
        indexes = IndexPublisher(
            change, plan, plan.receipt, dest.capabilities.holds_other_files
        )  # what changed since the last publish, and what was published
        sidecars = run_exports_files(dest, manifest, plan.target_channel, repodata_blobs, new_index)  # CEP-12

        def publish_index(tc: str, subdir: str) -> None:
            if (tc, subdir) in sidecars:
                change.publish_index_file(tc, subdir, RUN_EXPORTS, sidecars[(tc, subdir)])
            indexes.publish(tc, subdir, new_index[(tc, subdir)], touched.get((tc, subdir)))
            release_views()  # the shards read every record: mapped pages back to the page cache (decision 0018)
            give_back()  # and what the shards and repodata.json freed back to the system (~107 MB at 300,000 files)

        ahead = [key for key in sorted(new_index) if key in whole and key not in interim] if pending is not None else []
        for tc, subdir in ahead:  # into the staged folder while the child stages the packages beside them
            publish_index(tc, subdir)
            if (tc, subdir) in indexes.rows and write_ahead(change, tc, new_index[(tc, subdir)], indexes.rows[(tc, subdir)]):
                placed[(tc, subdir)] = []  # its name and letter pages are written: after the commit, index.html only
        receipt = None  # every index written ahead: the receipt is known before the child is done
        if pending is not None and len(ahead) == len(new_index):
            receipt = _receipt(change, plan, opened, repodata_blobs, clock, carried, brought)
            change.stage_receipt(receipt)  # written while the child works; placed last, as ever
        if pending is not None:
            pending.wait()  # every blob checked and staged: now the destination changes
            change.staged_written()
        for tc, subdir in sorted(whole):
            change.put_folder(tc, subdir)
        place(rest)
        if listed:
            for (tc, subdir), rd in sorted(interim.items()):
                indexes.publish(tc, subdir, rd, dropped[(tc, subdir)])
            place(listed)
        blobs.clear()  # every file placed: what the blobs left behind goes before the indexes' peak
        for tc, subdir in sorted(new_index):
            if (tc, subdir) not in ahead:
                publish_index(tc, subdir)
        change.write_receipt(receipt or _receipt(change, plan, opened, repodata_blobs, clock, carried, brought))
        change.commit()
    except BaseException:
        if pending is not None:
            pending.close()  # stopped before the undo removes what it writes
        change.rollback()
        raise
    # the index no longer lists them: the removed files can go (a kill here leaves unlisted files only)
    if removals:
        dest.remove_packages(removals)
        result.packages_removed += len(removals)
    archives = plan.receipt.archives
    give_back()  # the receipt's encoding freed: the pages start from what is still held
    for tc, subdir, filename in removals:
        placed.setdefault((tc, subdir), []).append(filename)
    write_pages(dest, {tc for tc, _ in new_index}, with_sboms({"archives": archives}), new_index, placed, indexes.rows)
    return result


def _receipt(
    change: Change,
    plan: ImportPlan,
    opened: Opened,
    repodata_blobs: dict[str, bytes | mmap.mmap],
    clock: Clock,
    carried: _Index,
    brought: set[str],
) -> dict[str, Any]:
    """The receipt with the archive applied (its installers: ``brought`` by this import or already held; its SBOM,
    kept in the change: undone with the rest), to be written last."""
    manifest, receipt = opened.manifest, plan.receipt
    for ins in manifest.installers:
        if ins.sha256 in brought or receipt.installers.get(ins.dir, {}).get(ins.filename):
            receipt.installers.setdefault(ins.dir, {})[ins.filename] = Held(ins.sha256, ins.size)
    sbom = keep_sbom(change, manifest, repodata_blobs)  # journaled: undone with the rest
    repodata_blobs.clear()  # read for the last time: the compressed repodata and SBOM (37 MB at 300,000 files) go
    give_back()  # before apply_archive moves the sources on, with what the SBOM's copy freed (24 MB); the records'
    # mapped pages go back as they are digested
    delta_index.record(receipt, manifest, carried, downgrade=plan.downgrade, every=release_views)
    release_views()  # digested: the records' mapped pages go back to the page cache
    give_back()
    apply_archive(
        receipt,
        manifest,
        plan.target_channel,
        skipped=plan.skipped,
        downgrade=plan.downgrade,
        signer=opened.signer,
        imported=timestamp(clock()),
    )
    if sbom:
        receipt.archives[-1]["sbom"] = sbom
    return receipt.to_json(encodable=True)  # held files encoded as they are (300,000 at conda-forge scale)
