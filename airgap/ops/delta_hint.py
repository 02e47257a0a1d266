"""What to say when a delta archive's base is missing at the destination.

A delta lists the files its base holds (``present``). When the destination lacks them under
the channel the import targets, it may hold them under another channel name: the base was
imported with ``dest_channel`` (or without it) and this import is not. The receipt's channels
then show the mapping, and the message names the ``--dest-channel`` that would match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _holds(held: Mapping[str, Any], channel: str, subdir: str, filename: str, sha256: str) -> bool:
    rec = held.get(channel, {}).get(subdir, {}).get(filename)
    return isinstance(rec, Mapping) and rec.get("sha256") == sha256


def missing_base_message(
    base_files: list[tuple[str, str, Any]],
    lacking: list[str],
    held: Mapping[str, Any],
    archive_channels: list[str],
    dest_channel: str | None,
) -> str:
    """``base_files``: (target channel, subdir, package entry); ``lacking``: those missing, as paths;
    ``held``: the receipt's channels; ``archive_channels``: the channel names the archive carries."""
    head = (
        f"this delta archive builds on {len(base_files)} files the destination should hold; {len(lacking)} are missing "
        f"or different (first: {lacking[0]})"
    )
    targets = sorted({tc for tc, _, _ in base_files})
    # does another channel of the destination hold every base file (same subdir, name and sha256)?
    candidates = [
        name
        for name in sorted(held)
        if name not in targets and all(_holds(held, name, subdir, p.filename, p.sha256) for _, subdir, p in base_files)
    ]
    if len(candidates) == 1:
        mapping = f"{', '.join(archive_channels)} -> {', '.join(targets)}"
        return (
            f"{head}; the destination holds them under channel {candidates[0]!r}, but this import maps the archive's "
            f"channels {mapping}; pass --dest-channel {candidates[0]} (or dest_channel: {candidates[0]} in the import config)"
        )
    known = ", ".join(sorted(held)) or "none"
    asked = f" (--dest-channel {dest_channel})" if dest_channel else ""
    return (
        f"{head}; the destination's receipt holds channels: {known}, this import writes to {', '.join(targets)}{asked}; "
        f"import its base first, pass the --dest-channel the base was imported with, or export without --since"
    )


def empty_base_message(
    after: str, target: str, receipt_channels: Mapping[str, Any], newest: Mapping[str, str | None], dest_channel: str | None
) -> str:
    """A delta that carries changed names only (format airgap/2) built on archive ``after`` for channel ``target``,
    which the destination does not hold at all. ``newest``: each destination channel's newest archive id."""
    head = f"this delta archive builds on archive {after} in channel {target!r}, and the destination holds no file there"
    there = [name for name, aid in sorted(newest.items()) if aid == after and name != target]
    if len(there) == 1:
        return f"{head}; the destination applied that archive to channel {there[0]!r}; pass --dest-channel {there[0]} (or dest_channel: {there[0]} in the import config)"
    known = ", ".join(sorted(receipt_channels)) or "none"
    asked = f" (--dest-channel {dest_channel})" if dest_channel else ""
    return (
        f"{head}; the destination's receipt holds channels: {known}, this import writes to {target}{asked}; "
        f"import its base first, pass the --dest-channel the base was imported with, or export without --since"
    )
