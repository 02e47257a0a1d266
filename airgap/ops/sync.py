"""Sync: the connected-mirror mode (cas-sync, ``anaconda-mirror sync``) — fetch, filter, download
and publish into a destination in one step, with no archive file.

It is an export and an import joined at the cache: the packages are downloaded and verified
into ``mirror_dir`` exactly as for an export, the manifest is built the same way, and the
import's transactional publish reads the blobs from the cache instead of a tar stream (hashing
each again as it copies). Incremental: files the destination already holds (per its receipt)
are not written again; ``--reset`` forgets that and re-checks every file by hashing it, still
writing only what differs.

Like a delta export, a sync builds on the destination's receipt (see airgap.core.delta): a file the
destination holds that the selection no longer has (gone upstream, or dropped by a changed
filter) is removed from the index and the store. ``--reset`` trusts no receipt, so it sends
every selected file in full and removes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from ..clock import Clock
from ..config import Config
from ..core.manifest import BlobEntry, Manifest
from ..destinations import open_destination
from ..destinations.base import Destination, load_receipt
from ..errors import IntegrityError
from ..progress import Progress, null_progress
from ..upstream.cache import BlobCache
from ..upstream.fetch import Fetcher
from ._archive import Opened
from .collect import collect
from .import_ import ImportResult, import_opened, write_downloads
from .options import ImportOptions, SyncOptions
from .plan import make_plan
from .sources import fetcher_for, filters_from_config


class _CacheStream:
    """The blob source an import reads, backed by the export cache instead of a tar file."""

    def __init__(self, cache: BlobCache) -> None:
        self.cache = cache
        self.path = cache.root

    def __enter__(self) -> _CacheStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def blobs(self, manifest: Manifest) -> Iterator[tuple[BlobEntry, _Located]]:
        for entry in manifest.blobs:
            path = self.cache.path(entry.sha256)
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise IntegrityError(f"{path}: expected the verified cache file, found none (was the cache cleaned meanwhile?)") from None
            with fh:
                yield entry, _Located(fh, path)


class _Located:
    """A cache file as a blob: its bytes can be read again at offset 0."""

    def __init__(self, fh: IO[bytes], path: Path) -> None:
        self.read = fh.read
        self.location = (path, 0)


@dataclass
class SyncResult:
    imported: ImportResult
    downloaded: int
    downloaded_bytes: int
    cached: int
    excluded: int

    def to_json(self) -> dict[str, Any]:
        return {
            **self.imported.to_json(),
            "downloaded": self.downloaded,
            "downloaded_bytes": self.downloaded_bytes,
            "cached": self.cached,
            "excluded": self.excluded,
        }


def run_sync(
    config: Config,
    into: Path | str | Destination,
    options: SyncOptions | None = None,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> SyncResult:
    options = options or SyncOptions()
    filters = filters_from_config(config)
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    base = None
    if not options.reset and dest.exists():
        with dest.locked(options.lock_timeout):  # a killed run's uncommitted receipt is rolled back first: build on what is committed
            base = load_receipt(dest)
    if base is not None and not base.channels:
        base = None  # a first sync: nothing to build on
    if options.dest_channel is not None:
        config = replace(config, dest_channel=options.dest_channel)  # where the delta base maps the channels
    with fetcher_for(config, fetcher) as f:
        plan = make_plan(config, filters, f, progress)
        got = collect(config, filters, plan, f, progress, clock, base, unwritten="nothing was published")
    source = Opened(_CacheStream(got.cache), got.manifest, len(got.manifest.to_bytes()), signer=None)
    imported = import_opened(
        source,
        dest,
        ImportOptions(
            dest_channel=options.dest_channel,
            channel_map=config.channel_map,
            allow_downgrade=options.allow_downgrade,
            lock_timeout=options.lock_timeout,
        ),
        recheck=options.reset,
        progress=progress,
        clock=clock,
    )
    if base is not None:  # subdirs with nothing new were left out of the delta: their files are there too
        sent = {(ch.name, sub.subdir) for ch in got.manifest.channels for sub in ch.subdirs}
        imported.packages_present += sum(1 for w in plan.wants if (w.channel, w.subdir) not in sent)
    if options.public_url:
        write_downloads(imported, dest, options.public_url)
    return SyncResult(imported, got.downloaded, got.downloaded_bytes, got.cached, got.excluded)
