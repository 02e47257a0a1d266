"""Export: upstream repodata → filter → download into the cache → signed archive.

Wires the pieces; owns no format knowledge. The manifest is complete (every blob downloaded
and verified) before the archive file is opened; any failed download fails the export with a
per-file summary and no archive is written.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..archive.writer import write_archive
from ..cache import BlobCache, Expected
from ..compress import zstd_compress
from ..config import Config
from ..errors import ConfigError, DownloadError, UpstreamError, UsageError
from ..fetch import Fetcher
from ..filters import Filters, select_channel
from ..manifest import BlobEntry, ChannelEntry, Manifest, PackageEntry, RepodataBlob, SubdirEntry
from ..progress import Progress, null_progress
from ..repodata import record_hashes
from ..signing import Signer
from ..upstream import Channel, FetchedRepodata, channel_from_string, fetch_channel

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    archive: Path
    archive_id: str
    signer: str | None
    packages: int
    package_bytes: int
    archive_bytes: int
    downloaded: int
    downloaded_bytes: int
    cached: int
    excluded: int
    channels: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> subdir -> packages

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, archive=str(self.archive))


@dataclass(frozen=True)
class _Want:
    channel: str
    subdir: str
    filename: str
    url: str
    expected: Expected


def filters_from_config(config: Config) -> Filters:
    unsupported = config.unsupported_in_use()
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)}: expected the default value, found a setting this airgap version "
            f"does not implement yet; remove it rather than get a mirror that silently ignores it"
        )
    if not config.channels:
        raise ConfigError("channels: expected at least one upstream channel, found none")
    filters = Filters(
        platforms=config.platforms,
        pkg_list=config.pkg_list,
        license_blacklist=tuple(f.upper() for f in config.license_blacklist),
        blacklist=config.blacklist,
        whitelist=config.whitelist,
        python_versions=config.python_versions,
        include=config.include,
        exclude=config.exclude,
        latest=config.latest,
        snapshot_date=config.snapshot_date,
        with_dependencies=config.with_dependencies,
    )
    filters.validate()
    return filters


def resolve_channels(config: Config) -> list[Channel]:
    channels = [channel_from_string(c) for c in config.channels]
    names: dict[str, str] = {}
    for ch in channels:
        if ch.name in names:
            raise UsageError(f"channels: expected channels with distinct names, found two named {ch.name!r} ({names[ch.name]} and {ch.url})")
        names[ch.name] = ch.url
    return channels


def run_export(
    config: Config,
    archive: Path,
    signer: Signer | None,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
    clock: Any = time.time,
) -> ExportResult:
    filters = filters_from_config(config)
    channels = resolve_channels(config)
    archive = Path(archive)
    if not archive.parent.is_dir():
        raise UsageError(f"{archive}: expected an existing directory to write the archive in, found none")
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(workers=config.workers, retries=config.retries, timeout=config.timeout)
    try:
        return _export(config, filters, channels, archive, signer, fetcher, progress, clock)
    finally:
        if own_fetcher:
            fetcher.close()


def _export(config: Config, filters: Filters, channels: list[Channel], archive: Path, signer: Signer | None,
            fetcher: Fetcher, progress: Progress, clock: Any) -> ExportResult:
    cache = BlobCache(Path(config.mirror_dir))
    subdirs = filters.subdirs()

    # 1. repodata and selection
    fetched: dict[str, dict[str, FetchedRepodata]] = {}
    selected: dict[tuple[str, str], list[str]] = {}
    excluded = 0
    bar = progress("repodata", len(channels) * len(subdirs), unit="subdir")
    for ch in channels:
        fetched[ch.name] = fetch_channel(fetcher, ch, subdirs)
        bar.update(len(subdirs))
        selections = select_channel({s: fr.repodata for s, fr in fetched[ch.name].items()}, filters)
        for subdir, sel in selections.items():
            selected[(ch.name, subdir)] = sel.selected
            excluded += len(sel.excluded)
    bar.close()

    # 2. what to download
    wants: list[_Want] = []
    for (cname, subdir), names in selected.items():
        fr = fetched[cname][subdir]
        for filename in names:
            record = fr.repodata.get(filename)
            assert record is not None
            sha, md5, size = record_hashes(record)
            if sha is None and md5 is None:
                raise UpstreamError(f"{fr.url}: {filename}: expected a sha256 or md5 in its record, found neither; cannot verify it")
            wants.append(_Want(cname, subdir, filename, fr.package_url(filename), Expected(sha, md5, size)))

    # 3. downloads (parallel), results keyed by (channel, subdir, filename)
    actual: dict[tuple[str, str, str], str] = {}
    todo: list[_Want] = []
    for w in wants:
        hit = cache.lookup(w.expected)
        if hit is not None:
            actual[(w.channel, w.subdir, w.filename)] = hit
        else:
            todo.append(w)
    cached = len(wants) - len(todo)
    failures: list[str] = []
    todo_bytes = sum(w.expected.size or 0 for w in todo)
    if todo:
        log.info("downloading %d packages (%d bytes); %d already in the cache", len(todo), todo_bytes, cached)
        bar = progress("download", todo_bytes or None)
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            futures = {pool.submit(cache.download, fetcher, w.url, w.expected, bar.update): w for w in todo}
            for fut in as_completed(futures):
                w = futures[fut]
                try:
                    actual[(w.channel, w.subdir, w.filename)] = fut.result()
                except UpstreamError as exc:
                    failures.append(str(exc))
                    log.error("%s", exc)
        bar.close()
    if failures:
        failures.sort()
        raise DownloadError(
            f"{len(failures)} of {len(todo)} downloads failed; no archive was written (first: {failures[0]})",
            failures,
        )

    # 4. repodata blobs and the manifest
    blobs: dict[str, BlobEntry] = {}
    channel_entries: list[ChannelEntry] = []
    counts: dict[str, dict[str, int]] = {}
    for ch in channels:
        sub_entries: list[SubdirEntry] = []
        for subdir, fr in sorted(fetched[ch.name].items()):
            names = selected[(ch.name, subdir)]
            pkgs: list[PackageEntry] = []
            for filename in names:
                sha = actual[(ch.name, subdir, filename)]
                size = cache.path(sha).stat().st_size
                pkgs.append(PackageEntry(filename, sha, size))
                blobs.setdefault(sha, BlobEntry(sha, size, "package"))
            raw = fr.repodata.subset(set(names)).to_bytes(keep_base_url=False)
            packed = zstd_compress(raw)
            rd_sha = cache.put_bytes(packed)
            if rd_sha not in blobs:
                blobs[rd_sha] = BlobEntry(rd_sha, len(packed), "repodata")
            source = {"url": fr.url, "sha256": fr.sha256, "size": fr.size, "fetched": fr.fetched}
            sub_entries.append(SubdirEntry(subdir, RepodataBlob(rd_sha, len(packed), len(raw)), tuple(pkgs), source))
            counts.setdefault(ch.name, {})[subdir] = len(pkgs)
        channel_entries.append(ChannelEntry(ch.name, ch.url, tuple(sub_entries)))
    ordered = sorted(blobs.values(), key=lambda b: (b.kind != "repodata", b.sha256))
    now = clock()
    manifest = Manifest(
        archive_id=uuid.uuid4().hex,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        tool=f"airgap {__version__}",
        channels=tuple(channel_entries),
        blobs=tuple(ordered),
        filters=filters.to_json(),
    )
    manifest_bytes = manifest.to_bytes()
    signature = signer.sign(manifest_bytes) if signer is not None else None

    # 5. the archive
    total = sum(b.size for b in ordered)
    bar = progress("archive", total)
    write_archive(archive, manifest_bytes, signature,
                  ((b.sha256, b.size, cache.path(b.sha256)) for b in ordered), int(now), bar.update)
    bar.close()
    totals = manifest.totals()
    return ExportResult(
        archive=archive,
        archive_id=manifest.archive_id,
        signer=signer.keyid if signer else None,
        packages=totals["packages"],
        package_bytes=totals["package_bytes"],
        archive_bytes=archive.stat().st_size,
        downloaded=len(todo),
        downloaded_bytes=todo_bytes,
        cached=cached,
        excluded=excluded,
        channels=counts,
    )
