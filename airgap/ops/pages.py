"""Write the browsable ``index.html`` pages of a destination's channels (after a publish).

Cosmetic: the pages are written outside the import's transaction, and a failure to write them
is logged, never fatal — the channel itself is already consistent. Destinations that hold
conda packages only (quetz) keep no pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..destinations.base import Destination
from ..errors import AirgapError
from ..html import channel_page, subdir_page
from ..repodata import Repodata

log = logging.getLogger(__name__)


def write_pages(
    dest: Destination,
    channels: Iterable[str],
    origin: Mapping[str, Any] | None = None,
    known: Mapping[tuple[str, str], Repodata] | None = None,
) -> None:
    """``known``: repodata the caller just published, so it is not read and parsed again."""
    if not dest.capabilities.holds_other_files:
        return
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
                dest.put_page(channel, subdir, subdir_page(channel, rd, origin).encode("utf-8"))
            dest.put_page(channel, None, channel_page(channel, subdirs, origin).encode("utf-8"))
        except (OSError, AirgapError) as exc:
            log.warning("%s: could not write the index.html pages: %s", channel, exc)
