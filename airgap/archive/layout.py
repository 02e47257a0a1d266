"""Member names of the airgap/1 archive. Pure.

Order: ``manifest.json``, ``manifest.sig`` (absent only in an explicitly unsigned archive),
then ``blobs/sha256/<hex>`` for every blob the manifest lists. Nothing else is allowed.
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BLOB_PREFIX = "blobs/sha256/"
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})\Z")


def blob_member(sha256: str) -> str:
    return BLOB_PREFIX + sha256


def parse_blob_member(name: str) -> str | None:
    """The sha256 a member name stands for, or None if it is not exactly a blob name."""
    m = _BLOB.match(name)
    return m.group(1) if m else None
