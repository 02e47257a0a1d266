"""Which ``repodata.json`` airgap itself last published into each subdir, by sha256 (kept in the receipt).

An import merges the archive's records into a subdir's current index. When that index is, byte for
byte, the one airgap wrote last (its sha256 is the one recorded here), its records were verified
when they were published: the import trusts them, without listing and checking every file of the
subdir (:mod:`airgap.ops.vetting`), and keeps the CEP-16 shards of unchanged names
(:mod:`airgap.destinations.engine`). Any other index (edited by someone else, rewritten by another
tool, found damaged by ``verify --into``, rewritten by ``clean``) has no matching record and is
vetted as a whole.

The receipt key ``published`` (``{dest channel: {subdir: {index file name: sha256 hex}}}``: ``repodata.json``,
``repodata.json.zst``, ``repodata_shards.msgpack.zst``) is optional: a receipt
without it (written before airgap recorded it) only means the next import vets. Pure.
"""

from __future__ import annotations

import re

from .receipt import Receipt

KEY = "published"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def names_document(channel: str, subdir: str) -> str:
    """Where the names table of ``channel/subdir``'s index is kept, below the state folder (airgap/site/names_file.py)."""
    return f"names/{channel}/{subdir}.msgpack"


def recorded(receipt: Receipt, channel: str, subdir: str) -> dict[str, str]:
    """``{index file name: sha256}`` of what airgap last published at ``channel/subdir`` (empty: unknown; malformed entries left out)."""
    doc = receipt.extra.get(KEY)
    subs = doc.get(channel) if isinstance(doc, dict) else None
    files = subs.get(subdir) if isinstance(subs, dict) else None
    if not isinstance(files, dict):
        return {}
    return {name: sha for name, sha in files.items() if isinstance(name, str) and isinstance(sha, str) and _HEX64.match(sha)}


def record(receipt: Receipt, channel: str, subdir: str, files: dict[str, str]) -> None:
    """Note what was just published at ``channel/subdir`` (``{index file name: sha256}``; empty: nothing known, dropped)."""
    doc = receipt.extra.get(KEY)
    if not isinstance(doc, dict):
        doc = receipt.extra[KEY] = {}
    subs = doc.get(channel)
    if not isinstance(subs, dict):
        subs = doc[channel] = {}
    if files:
        subs[subdir] = dict(sorted(files.items()))
    else:
        subs.pop(subdir, None)
        if not subs:
            doc.pop(channel, None)


def forget(receipt: Receipt, channel: str, subdir: str) -> None:
    """The subdir's index is no longer known to be airgap's (damage found, rewritten by a clean): the next import vets it."""
    if isinstance(receipt.extra.get(KEY), dict):
        record(receipt, channel, subdir, {})
