"""Warnings for configuration files carried over from cas-mirror, where a key means less in airgap.

Pure: each function takes the running :class:`~airgap.config.Config` and returns the lines to
warn with (the CLI logs them). Nothing here refuses a config: these keys are valid, they just
do not do what a cas-mirror user expects in that command.
"""

from __future__ import annotations

from .config import Config

# the keys that choose what a mirror holds (what clean compares the destination with)
FILTER_KEYS = (
    "platforms",
    "pkg_list",
    "python_versions",
    "license_blacklist",
    "blacklist",
    "whitelist",
    "include",
    "exclude",
    "latest",
    "snapshot_date",
    "with_dependencies",
    "channels",
)


def import_notes(config: Config) -> list[str]:
    """What an import config sets that import does not use."""
    notes = []
    if "channels" in config.given:
        notes.append(
            f"{config.path}: channels has no effect on the import of an archive: the archive names the channels it carries "
            f"(dest_channel merges them, channel_map sends them apart); without ARCHIVE, import publishes the file:// trees it lists"
        )
    return notes


def clean_notes(config: Config) -> list[str]:
    """Clean keeps what the filters select: a config without filters selects everything."""
    if config.given & set(FILTER_KEYS) - {"channels"}:
        return []
    where = config.path or "the default configuration"
    return [
        f"{where} sets no filters (pkg_list, blacklist, platforms, ...): it selects everything, so clean finds "
        f"nothing to remove; run clean with the config that exported the packages (e.g. -f export.yaml)"
    ]
