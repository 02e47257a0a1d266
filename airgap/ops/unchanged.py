"""When an import (or a sync) would leave the destination exactly as it is.

``noop`` means the same for both commands: nothing was written, added, removed or republished.
An import of an archive already applied is one case (its id is in the receipt). The other:
every package file is held, nothing is to be removed, and each subdir's repodata comes from the
same upstream document (by sha256) the destination's index was last built from — a second
``sync`` with nothing new upstream, or a fresh export of an unchanged channel. Merging the
same records again would rewrite the index with the same content. Such an archive is still
read and verified whole (a damaged one is refused as ever); it is only not published.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.receipt import Receipt


def same_sources(manifest: Any, receipt: Receipt) -> bool:
    """Every subdir of ``manifest`` was built from the upstream repodata the receipt says the destination has
    (the receipt keeps upstream state per archive channel)."""
    for ch in manifest.channels:
        held = receipt.sources.get(ch.name, {})
        for sub in ch.subdirs:
            sha = sub.source.get("sha256") if isinstance(sub.source, Mapping) else None
            if not sha or held.get(sub.subdir) != sha or sub.removals:
                return False
    return True
