"""Collect: download what a plan selects into the cache (each file verified) and build the manifest.

Shared by export (which then writes the archive) and sync (which publishes from the cache).
The steps, in order: drop what a delta's base already holds (:func:`.delta_select.to_fetch`), download
packages in parallel (:func:`_download_packages`) and installers one at a time
(:func:`_download_installers`), fail with every failure named if any download failed, then
describe each subdir (:func:`_subdir_entries`), keep the subdirs with something new
(:func:`_channel_entries`), record which files merged channels shadow (:func:`_mark_shadowed`)
and assemble the manifest (:func:`_manifest`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from .. import __version__
from ..clock import Clock, timestamp
from ..compress import INDEX_LEVEL, zstd_compress
from ..config import Config
from ..core import delta_index, environments, jsonbytes
from ..core.channel_map import match
from ..core.delta import DeltaBase
from ..core.filters import Filters
from ..core.lined import encode_lined
from ..core.manifest import DELTA_FORMAT, FORMAT, BlobEntry, ChannelEntry, InstallerEntry, Manifest, PackageEntry, RepodataBlob, SubdirEntry
from ..core.merging import shadowing
from ..core.receipt import Held, Receipt
from ..core.repodata import Repodata
from ..core.run_exports import carry as carry_run_exports
from ..errors import DownloadError, UpstreamError, UsageError
from ..progress import Progress
from ..redact import redact
from ..upstream.cache import BlobCache, Expected
from ..upstream.channels import Channel, FetchedRepodata
from ..upstream.fetch import Fetcher
from .delta_select import Groups, name_change, to_fetch
from .local_files import all_travel, batches, cached_shas, fetch_batch, take_unread
from .plan import Plan, Want
from .sources import InstallerWant

log = logging.getLogger(__name__)

_Place = tuple[str, str]  # (channel, subdir)
BLOB_LEVEL = INDEX_LEVEL  # the archive's repodata blobs: compact JSON as the index is (airgap/compress.py)


@dataclass
class Collected:
    """Everything an archive would hold, downloaded and verified in the cache, and its manifest."""

    manifest: Manifest
    cache: BlobCache
    downloaded: int
    downloaded_bytes: int
    cached: int
    excluded: int
    channels: dict[str, dict[str, int]]
    fresh: frozenset[str] = frozenset()  # downloaded (and verified as they arrived) by this process


@dataclass
class _Downloads:
    """Where each selected file lies in the cache (by sha256), and how it got there."""

    actual: dict[_Place, dict[str, str]] = field(default_factory=dict)  # file name -> sha256, by subdir
    fresh: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    fetched: int = 0  # files downloaded by this run
    fetched_bytes: int = 0
    cached: int = 0  # files found in the cache
    sizes: dict[str, int] = field(default_factory=dict)  # sha256 -> size, where checked already (no stat then)


def collect(
    config: Config,
    filters: Filters,
    plan: Plan,
    fetcher: Fetcher,
    progress: Progress,
    clock: Clock,
    base: Receipt | None = None,
    unwritten: str = "no archive was written",
    read_local: bool = True,
) -> Collected:
    """Download what the plan selects into the cache (verified) and build the manifest.

    With ``base`` (a destination's receipt) the manifest is a delta (format ``airgap/2``, see
    airgap.core.delta and airgap.core.delta_index): each subdir carries only the package names whose
    records changed (their files the base holds are listed as ``present``: no blob, and not
    downloaded when their record has a sha256), files the base holds that the selection dropped
    become ``removals``, and subdirs where no name changed (in every channel published into the
    same destination channel) are left out. ``unwritten`` says, when a download
    fails, what the caller did not write (an archive; for sync, the destination). ``read_local=False``: see .local_files.
    """
    cache = BlobCache(Path(config.mirror_dir))
    delta = DeltaBase.from_receipt(base, [c.name for c in plan.channels], config.dest_channel, "receipt") if base is not None else None
    got = _download_packages(cache, fetcher, to_fetch(plan.wants, delta), config.workers, progress, read_local)
    installers = _download_installers(cache, fetcher, plan.installers, got, progress)
    if got.failures:
        got.failures.sort()
        raise DownloadError(
            f"{len(got.failures)} of {got.fetched + len(plan.installers)} downloads failed; {unwritten} (first: {got.failures[0]})",
            got.failures,
        )
    selected = {(c, s): sel.selected for c, subs in plan.selections.items() for s, sel in subs.items()}
    blobs: dict[str, BlobEntry] = {}
    entries, changed = _subdir_entries(
        plan.channels, plan.fetched, selected, got.actual, delta, cache, blobs, fetcher, config.max_repodata_size, got.sizes
    )
    channel_entries, counts = _channel_entries(plan.channels, entries, changed, delta, blobs)
    mapped = match(config.channel_map, [(c.name, c.url) for c in plan.channels])  # channels several map to keep their names
    merged_into = (
        delta.targets
        if delta is not None
        else {c.name: t or config.dest_channel or c.name for c, t in zip(plan.channels, mapped, strict=True)}
    )
    channel_entries = _mark_shadowed(channel_entries, merged_into)
    manifest = _manifest(channel_entries, blobs, installers, filters, plan, base, delta, clock)
    excluded = sum(len(sel.excluded) for subs in plan.selections.values() for sel in subs.values())
    return Collected(manifest, cache, got.fetched, got.fetched_bytes, got.cached, excluded, counts, frozenset(got.fresh))


def _download_packages(cache: BlobCache, fetcher: Fetcher, wants: list[Want], workers: int, progress: Progress, reads: bool) -> _Downloads:
    """Find each file in the cache or download it (``workers`` at a time), verified as it arrives;
    small ``file://`` files are read and checked in batches (:mod:`.local_files`)."""
    got = _Downloads()
    todo: list[Want] = []
    listed = cached_shas(cache)
    for w in wants:
        if w.sha256 and w.sha256 not in listed:  # not in the cache: no lookup (and no Expected made)
            todo.append(w)
            continue
        e = w.expected
        hit = cache.lookup(e)
        if hit is not None:
            got.actual.setdefault((w.channel, w.subdir), {})[w.filename] = hit
            if e.size is not None:
                got.sizes[hit] = e.size  # lookup checked it
        else:
            todo.append(w)
    got.cached = len(wants) - len(todo)
    got.fetched = len(todo)
    got.fetched_bytes = sum(w.size or 0 for w in todo)
    todo = todo if reads else take_unread(cache, todo, got.actual, got.sizes)
    if not todo:
        return got
    log.info("downloading %d packages (%d bytes); %d already in the cache", len(todo), got.fetched_bytes, got.cached)
    bar = progress("download", got.fetched_bytes or None, files=len(todo))

    def found(w: Want, sha: str) -> None:
        got.actual.setdefault((w.channel, w.subdir), {})[w.filename] = sha
        if w.expected.size is not None:
            got.sizes[sha] = w.expected.size  # checked as it was read
        got.fresh.update(cache.hashed_here(sha))  # file:// files: hashed as the archive takes them

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fetch_batch, cache, fetcher, batch, bar.update) for batch in batches(todo)]
        try:
            for fut in as_completed(futures):
                for w, sha, error in fut.result():
                    if sha is not None:
                        found(w, sha)
                    else:
                        got.failures.append(str(error))
                    bar.file_done()
        except BaseException:  # interrupted or terminated: start no other download
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    bar.close()
    return got


def _download_installers(
    cache: BlobCache, fetcher: Fetcher, wants: list[InstallerWant], got: _Downloads, progress: Progress
) -> list[InstallerEntry]:
    """Few and large: one at a time, each verified against its sha256 if given; failures join ``got.failures``."""
    entries: list[InstallerEntry] = []
    for iw in wants:
        try:
            sha = cache.lookup(Expected(iw.sha256, None, None)) if iw.sha256 else None
            if sha is None:
                bar = progress(iw.filename, None)
                sha = cache.download(fetcher, iw.url, Expected(iw.sha256, None, None), bar.update)
                bar.close()
            entries.append(InstallerEntry(iw.dir, iw.filename, sha, cache.path(sha).stat().st_size, redact(iw.url)))
        except UpstreamError as exc:
            got.failures.append(str(exc))
            log.info("%s", exc)
    return entries


def _subdir_entries(
    channels: list[Channel],
    fetched: dict[str, dict[str, FetchedRepodata]],
    selected: dict[tuple[str, str], list[str]],
    actual: dict[_Place, dict[str, str]],
    delta: DeltaBase | None,
    cache: BlobCache,
    blobs: dict[str, BlobEntry],
    fetcher: Fetcher,
    max_size: int,
    sizes: dict[str, int],
) -> tuple[dict[tuple[str, str], SubdirEntry], set[tuple[str, str]]]:
    """Each subdir's entry (its packages, what the base holds, its removals, its repodata blob, stored
    in the cache), and the (destination channel, subdir) pairs with something new for any channel.

    A delta's entry carries only the package names that changed (airgap.core.delta_index): for every
    channel published into the same destination channel, the names any of them changed, so that
    merged channels resolve the same files as a full archive would."""
    parts: dict[tuple[str, str], _Part] = {}
    changed: set[tuple[str, str]] = set()
    for ch in channels:
        for subdir, fr in sorted(fetched[ch.name].items()):
            names = selected[(ch.name, subdir)]
            pkgs: list[PackageEntry] = []
            present: list[tuple[str, Held]] = []  # entries made only for the names that travel (_entry)
            holdings = delta.holdings(ch.name, subdir) if delta is not None else {}
            found = actual.get((ch.name, subdir), {})
            todo = names
            if not holdings:  # every file travels (a full export, a new subdir): column by column
                pkgs, todo = all_travel(names, found, sizes, cache.size, blobs), []
            for filename in todo:
                sha = found.get(filename)
                held = holdings.get(filename)
                if held is not None and (sha is None or sha == held.sha256):
                    present.append((filename, held))
                    continue
                assert sha is not None
                size = sizes[sha] if sha in sizes else cache.size(sha)
                pkgs.append(PackageEntry(filename, sha, size))
                blobs.setdefault(sha, BlobEntry(sha, size, "package"))
            removals = delta.removals(ch.name, subdir, selected) if delta is not None else []
            rd = fr.repodata if len(names) == len(fr.repodata) else fr.repodata.subset(set(names))  # all selected: no copy
            part = _Part(fr, rd, pkgs, present, removals, ch.subdir_url(subdir))
            if delta is not None:
                part.change, part.groups = name_change(delta, ch.name, subdir, fr.sha256, rd, [p.filename for p in pkgs], removals)
                if part.change.names or part.change.gone:
                    changed.add((delta.targets[ch.name], subdir))
            else:
                changed.add((ch.name, subdir))
            parts[(ch.name, subdir)] = part
    travel: dict[tuple[str, str], set[str]] = {}  # (destination channel, subdir) -> names any of its channels changed
    if delta is not None:
        for (cname, subdir), part in parts.items():
            assert part.change is not None
            travel.setdefault((delta.targets[cname], subdir), set()).update(part.change.names)
    entries: dict[tuple[str, str], SubdirEntry] = {}
    for (cname, subdir), part in parts.items():
        target = delta.targets[cname] if delta is not None else cname
        if (target, subdir) in changed:
            entries[(cname, subdir)] = _entry(
                subdir, part, travel.get((target, subdir)) if delta is not None else None, cache, fetcher, max_size
            )
    return entries, changed


@dataclass
class _Part:
    """One channel's subdir while the entries are decided: the selection's repodata, its files, its removals."""

    fr: FetchedRepodata
    rd: Repodata
    pkgs: list[PackageEntry]
    present: list[tuple[str, Held]]  # the base's files (a delta's), by name
    removals: list[str]
    url: str  # the upstream subdir (its run_exports.json beside repodata.json)
    change: delta_index.NameChange | None = None
    groups: Groups | None = None  # rd's records by package name (a delta's)


def _entry(subdir: str, part: _Part, travel: set[str] | None, cache: BlobCache, fetcher: Fetcher, max_size: int) -> SubdirEntry:
    """The manifest's subdir entry, its repodata blob stored in the cache; a delta's holds only the names in ``travel``
    (and its run_exports.json only their files: the import merges it into the destination's)."""
    rd, present, names = part.rd, part.present, None
    gone: tuple[str, ...] = ()
    if travel is not None:
        assert part.change is not None
        groups = part.groups if part.groups is not None else delta_index.by_name(rd)
        keep = {f for n in travel if n in groups for f, _ in groups[n]}
        rd = rd.subset(keep)
        present = [p for p in present if p[0] in keep]
        names = tuple(sorted({delta_index.name_of(f) for f in keep}))
        gone = tuple(sorted(part.change.gone))
    raw = _repodata_bytes(rd)
    packed = zstd_compress(raw, BLOB_LEVEL)
    rd_sha = cache.put_bytes(packed)
    fr = part.fr
    source = {"url": redact(fr.url), "sha256": fr.sha256, "size": fr.size, "fetched": fr.fetched}
    rx = carry_run_exports(fetcher, part.url, subdir, (f for f, _ in rd.records()), max_size, cache.put_bytes)
    return SubdirEntry(
        subdir,
        RepodataBlob(rd_sha, len(packed), len(raw)),
        tuple(part.pkgs),
        source,
        tuple(PackageEntry(f, h.sha256, h.size or 0) for f, h in present),
        tuple(part.removals),
        (),
        names,
        gone,
        run_exports=rx,
    )


def _repodata_bytes(rd: Repodata) -> bytes | bytearray:
    """The blob's JSON by msgspec, 10x ``json``'s speed. Not always json's bytes (a float may be spelled
    ``1e16`` for ``1e+16``: the same value), which nothing needs: the blob is hashed, not re-derived.
    NaN and Infinity, which msgspec writes as null, the parser keeps out of records (tests/test_hostile_upstream.py)."""
    try:
        return encode_lined(rd.to_document(keep_base_url=False), jsonbytes.ENCODER)  # an import splits it a line at a time
    except (TypeError, msgspec.EncodeError):  # something msgspec does not know: json says what
        return rd.to_bytes(keep_base_url=False)


def _channel_entries(
    channels: list[Channel],
    entries: dict[tuple[str, str], SubdirEntry],
    changed: set[tuple[str, str]],
    delta: DeltaBase | None,
    blobs: dict[str, BlobEntry],
) -> tuple[list[ChannelEntry], dict[str, dict[str, int]]]:
    """Each channel with the subdirs that changed (their repodata blobs added), and the files counted per subdir."""
    channel_entries: list[ChannelEntry] = []
    counts: dict[str, dict[str, int]] = {}
    for ch in channels:
        target = delta.targets[ch.name] if delta is not None else ch.name
        subs = []
        for (cname, subdir), entry in entries.items():
            if cname != ch.name or (target, subdir) not in changed:
                continue  # nothing changed here since the base (for any channel published into the same place)
            blobs.setdefault(entry.repodata.sha256, BlobEntry(entry.repodata.sha256, entry.repodata.size, "repodata"))
            if entry.run_exports is not None:  # CEP-12 run_exports.json, filtered (airgap/run_exports.py)
                blobs.setdefault(entry.run_exports.sha256, BlobEntry(entry.run_exports.sha256, entry.run_exports.size, "repodata"))
            subs.append(entry)
            counts.setdefault(ch.name, {})[subdir] = len(entry.packages) + len(entry.present)
        channel_entries.append(ChannelEntry(ch.name, redact(ch.url), tuple(subs)))  # the manifest never holds a secret
    return channel_entries, counts


def _mark_shadowed(channel_entries: list[ChannelEntry], merged_into: dict[str, str]) -> list[ChannelEntry]:
    """Channels merged into one destination channel: record which files an earlier channel shadows."""
    if len(set(merged_into.values())) == len(merged_into):
        return channel_entries  # no two channels merge: nothing to shadow (and no pass over every file)
    shadowed, collisions = shadowing(channel_entries, merged_into.__getitem__)
    for collision in collisions:  # the export knows which channels merge: record the choice
        log.warning("%s", collision.message())
    return [
        dataclasses.replace(
            c, subdirs=tuple(dataclasses.replace(s, shadowed=tuple(sorted(shadowed.get((c.name, s.subdir), ())))) for s in c.subdirs)
        )
        for c in channel_entries
    ]


def _manifest(
    channel_entries: list[ChannelEntry],
    blobs: dict[str, BlobEntry],
    installers: list[InstallerEntry],
    filters: Filters,
    plan: Plan,
    base: Receipt | None,
    delta: DeltaBase | None,
    clock: Clock,
) -> Manifest:
    """The manifest: blobs ordered repodata, installers, packages; the installers' blobs added."""
    for ie in installers:
        if blobs.setdefault(ie.sha256, BlobEntry(ie.sha256, ie.size, "installer")).kind != "installer":
            raise UsageError(f"installers: {ie.filename} has the same bytes as a package; carry it once")
    ranks = {"repodata": 0, "installer": 1}  # then packages; each kind by sha256
    groups: tuple[list[str], list[str], list[str]] = ([], [], [])
    for sha, b in blobs.items():
        groups[ranks.get(b.kind, 2)].append(sha)
    ordered = [blobs[sha] for group in groups[:2] for sha in sorted(group)]  # strings sort at C speed: no key per blob
    # the packages' entries made again in the manifest's order: made in the plan's, every later pass over them in
    # sha256 order (the body check, the manifest's bytes, its totals, the writer's) jumped about the heap, which cost
    # more than making 300,000 small structs (docs/performance.md, "The full export's own passes, memory order and the collector")
    ordered += [BlobEntry(b.sha256, b.size, b.kind) for b in map(blobs.__getitem__, sorted(groups[2]))]
    return Manifest(
        archive_id=uuid.uuid4().hex,
        created=timestamp(clock()),
        tool=f"airgap {__version__}",
        channels=tuple(channel_entries),
        blobs=tuple(ordered),
        filters=environments.manifest_filters(filters, plan.pulled_by),
        installers=tuple(installers),
        base=base.state_id() if base is not None else None,
        bases=delta.bases() if delta is not None else {},
        format=DELTA_FORMAT if delta is not None else FORMAT,
    )
