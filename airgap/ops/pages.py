"""Write the browsable ``index.html`` pages of a destination's channels (after a publish).

Cosmetic: the pages are written atomically but outside the import's transaction, and a
failure to write them is logged, never fatal — the channel itself is already consistent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .._fs import atomic_write_bytes
from ..destinations.directory import DirectoryDestination
from ..html import channel_page, subdir_page
from ..repodata import Repodata

log = logging.getLogger(__name__)


def write_pages(dest: DirectoryDestination, channels: Iterable[str], origin: Mapping[str, Any] | None = None,
                known: Mapping[tuple[str, str], Repodata] | None = None) -> None:
    """``known``: repodata the caller just published, so it is not read and parsed again."""
    inventory = dest.inventory()
    known = known or {}
    for channel in sorted(set(channels)):
        try:
            subdirs: dict[str, Repodata] = {}
            for subdir in inventory.get(channel, []):
                rd = known.get((channel, subdir)) or dest.read_repodata(channel, subdir)
                if rd is not None:
                    subdirs[subdir] = rd
            for subdir, rd in subdirs.items():
                atomic_write_bytes(dest.subdir_path(channel, subdir) / "index.html",
                                   subdir_page(channel, rd, origin).encode("utf-8"), durable=False)
            atomic_write_bytes(dest.root / channel / "index.html", channel_page(channel, subdirs, origin).encode("utf-8"),
                               durable=False)
        except OSError as exc:
            log.warning("%s: could not write the index.html pages: %s", channel, exc)
