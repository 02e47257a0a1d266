"""Where installers go in a destination, and the names they must not take. Pure: names in, a problem out.

An installer is restored as ``DEST/<dir>/<filename>``, beside the channels ``DEST/<channel>/``.
Its folder must therefore never be a channel's folder, or the installer lands among the
channel's subdirs and pages (``DEST/main/index.html`` replaced by an installer called
``index.html``), and a later channel of that name would land among installers. The rule holds
both ways, checked three times: at export from the config, at manifest parsing (one archive's
installers against its own channels), and at import against what the destination holds.
"""

from __future__ import annotations

from collections.abc import Iterable

#: files airgap itself writes into a folder of the destination: an installer may not take these names
RESERVED_FILENAMES = frozenset({"index.html"})


def installer_problem(folder: str, filename: str, channels: Iterable[str]) -> str | None:
    """Why ``folder/filename`` cannot hold an installer beside ``channels``, or None if it can."""
    if folder in set(channels):
        return (
            f"expected an installer folder that is no channel's, found {folder!r}, a channel's folder too; give the installer another dir"
        )
    if filename in RESERVED_FILENAMES:
        return f"expected an installer file name other than the pages airgap writes, found {folder}/{filename}; rename it"
    return None


def channel_problem(channel: str, installer_folders: Iterable[str]) -> str | None:
    """Why ``channel`` cannot be placed in a destination holding ``installer_folders``, or None."""
    if channel in set(installer_folders):
        return f"expected a channel name that is no installer folder, found {channel!r}, which the destination holds installers in ({channel}/); import it with --dest-channel NAME"
    return None


def import_problem(
    channels: Iterable[str], installers: Iterable[tuple[str, str]], held_folders: Iterable[str], held_channels: Iterable[str]
) -> str | None:
    """The first collision an import would make, or None.

    ``channels``: the archive's channels as the destination names them; ``installers``: its
    ``(folder, filename)`` pairs; ``held_folders`` and ``held_channels``: what the destination holds.
    """
    channels = set(channels)
    for ch in sorted(channels):
        problem = channel_problem(ch, held_folders)
        if problem:
            return problem
    every_channel = channels | set(held_channels)
    for folder, filename in installers:
        problem = installer_problem(folder, filename, every_channel)
        if problem:
            return problem
    return None
