"""Import of existing channel trees: ``airgap import -f import.yaml`` with no ARCHIVE.

The guide's offline workflow copies a tree that cas-sync wrote (``/opt/mirror/export/pkgs/``, or an
expanded ``x64-repo-mirrors-*.tar``) to the isolated host and runs ``cas-sync-api-v4 -f
import.yaml`` with ``channels: [file:///opt/mirror/export/pkgs/]``. Users type the airgap command
that maps to it, ``airgap import -f import.yaml``, so that command does the job rather than
pointing elsewhere: with no ARCHIVE and channels that are all ``file://`` trees, it runs the same
code as ``airgap sync`` — every file is read from the tree and verified (sha256, or md5 for old
records, and size) against the tree's own repodata into the cache, then the destination is
published transactionally (all or nothing). A tree carries no signature: trust rests on how it
was carried, as it did with cas-sync.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from ..clock import Clock
from ..config import Config
from ..destinations.base import Destination
from ..errors import UsageError
from ..progress import Progress, null_progress
from ..upstream.channels import channel_from_string
from .options import SyncOptions
from .sync import SyncResult, run_sync

log = logging.getLogger(__name__)


def tree_channels(config: Config) -> list[str]:
    """The config's channels when every one is a local tree; a UsageError saying what to run otherwise."""
    urls = [channel_from_string(c).url for c in config.channels]
    online = [u for u in urls if not u.startswith("file://")]
    if online or not urls:
        where = f" ({config.path})" if config.path else ""
        raise UsageError(
            f"import: expected ARCHIVE (the file airgap export wrote), or channels that are all file:// trees in the "
            f"config{where}; found none, and the channels {', '.join(online) or '(none)'} are online: "
            f"to mirror them here run `airgap sync -f {config.path or 'FILE'}`"
        )
    return urls


def run_tree_import(
    config: Config,
    into: Path | str | Destination,
    options: SyncOptions | None = None,
    *,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> SyncResult:
    """Verify every file of the config's file:// trees against their repodata, then publish them, all or nothing."""
    options = options or SyncOptions()
    trees = tree_channels(config)
    log.info("no ARCHIVE given: publishing the tree(s) %s as `airgap sync` does, each file verified against its repodata", ", ".join(trees))
    return run_sync(config, into, dataclasses.replace(options, reset=False), progress=progress, clock=clock)
