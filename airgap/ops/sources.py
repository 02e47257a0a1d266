"""What a configuration asks to carry: its filters, its upstream channels, its installers.

Read by every operation that selects from upstream (export, plan, sync, clean); fetches only
the installer folders' listings (``fetch_installers``), nothing else.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..core.channel_map import distinct_names, export_names
from ..core.filters import Filters
from ..core.manifest import is_safe_channel_name, is_safe_installer_filename
from ..core.placement import installer_problem
from ..errors import ConfigError, UsageError
from ..upstream.channels import Channel, channel_from_string, list_directory
from ..upstream.fetch import Fetcher
from ..upstream.network import network_from

log = logging.getLogger(__name__)


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
    channels = distinct_names(export_names(config.channel_map, [channel_from_string(c) for c in config.channels]))
    names: dict[str, str] = {}
    for ch in channels:
        if ch.name in names:
            raise UsageError(
                f"channels: expected channels with distinct names, found two named {ch.name!r} ({names[ch.name]} and {ch.url}); "
                "list each channel once, or name them with channel_map (source URL: destination channel)"
            )
        names[ch.name] = ch.url
    return channels


@dataclass(frozen=True)
class InstallerWant:
    dir: str
    filename: str
    url: str
    sha256: str | None


def installer_wants(config: Config, fetcher: Fetcher) -> list[InstallerWant]:
    """The installers to carry: listed by URL (``installers``) or chosen by pattern from
    ``<remote_url><dir_name>/`` listings (``fetch_installers``, ``dir_names``, ``installer_patterns``)."""
    out: list[InstallerWant] = []
    default_dir = config.dir_names[0] if config.dir_names else "installers"
    for entry in config.installers:
        url = str(entry["url"])
        if "://" not in url:
            url = Path(os.path.abspath(url)).as_uri()
        name = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
        out.append(InstallerWant(entry.get("dir") or default_dir, name, url, entry.get("sha256")))
    if config.fetch_installers:
        if not config.dir_names:
            raise ConfigError(
                "fetch_installers: expected dir_names too (e.g. ['archive']): the folders under remote_url to take installers from"
            )
        if not config.installer_patterns:
            raise ConfigError(
                "fetch_installers: expected installer_patterns (e.g. ['Miniforge3-*-Linux-x86_64.sh']); "
                "refusing to carry a whole installer folder"
            )
        for d in config.dir_names:
            base = config.remote_url.rstrip("/") + "/" + d + "/"
            names = [n for n in list_directory(fetcher, base) if any(fnmatch.fnmatchcase(n, pat) for pat in config.installer_patterns)]
            if not names:
                log.warning("%s: no installer matches %s", base, ", ".join(config.installer_patterns))
            out.extend(InstallerWant(d, n, base + urllib.parse.quote(n), None) for n in names)
    seen: set[tuple[str, str]] = set()
    channel_names = [c.name for c in resolve_channels(config)] + ([config.dest_channel] if config.dest_channel else [])
    for w in out:
        problem = installer_problem(w.dir, w.filename, channel_names)
        if problem:
            raise ConfigError(f"installers: {problem}")
        if not is_safe_channel_name(w.dir) or not is_safe_installer_filename(w.filename):
            raise ConfigError(f"installers: expected a folder and a file name of letters, digits, . _ + - ~ =, found {w.dir}/{w.filename}")
        if (w.dir, w.filename) in seen:
            raise ConfigError(f"installers: expected each installer once, found {w.dir}/{w.filename} twice")
        seen.add((w.dir, w.filename))
    return out


@contextlib.contextmanager
def fetcher_for(config: Config, given: Fetcher | None) -> Iterator[Fetcher]:
    """``given``, else a fetcher built from the config (closed on exit)."""
    if given is not None:
        yield given
        return
    with Fetcher(
        workers=config.workers, retries=config.retries, timeout=config.timeout, min_rate=config.min_rate, network=network_from(config)
    ) as f:
        yield f
