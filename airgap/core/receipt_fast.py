"""Reading a big receipt fast: the held files as their bytes or checked by msgspec's typed decoder, the rest as ever.

Pure. A receipt lists every file its destination holds (300,000 entries, 44 MB, for a
conda-forge subdir); :func:`~airgap.core.receipt.parse_receipt` checks each entry in Python
(three patterns and a tuple per file: most of a delta export's reading of its base). Here a
subdir's section that hashes to the sha256 airgap recorded when it wrote it (``held_sha256``)
is kept as its bytes (:class:`~airgap.core.held_bytes.HeldFiles`: looked up by binary search,
spliced when written, decoded and checked only if something reads every entry); any other
section is decoded into typed structs (types and sizes checked by the decoder), its names and
hashes checked against the same rules a subdir at a time (:mod:`~airgap.core.receipt_check`),
each entry the same :class:`~airgap.core.receipt.Held`; the other, small parts go through
``parse_receipt`` itself. Anything the typed decoder or those checks refuse is read again by
:func:`~airgap.core.receipt.parse_receipt_bytes`, which accepts it or says exactly what is wrong:
this module only ever gives the same receipt, sooner.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
from collections.abc import MutableMapping
from typing import Any

import msgspec

from .held_bytes import HeldFiles
from .manifest import is_safe_channel_name, is_safe_subdir
from .receipt import HELD_SHA256, Receipt, parse_receipt, parse_receipt_bytes
from .receipt_check import Files, Held, plainly_valid

_sections = msgspec.json.Decoder(dict[str, dict[str, msgspec.Raw]]).decode
_sums = msgspec.json.Decoder(dict[str, dict[str, str]]).decode
_files = msgspec.json.Decoder(Files).decode
_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_plain = msgspec.json.Decoder().decode


def parse_receipt_fast(data: bytes | mmap.mmap, where: str) -> Receipt:
    """:func:`~airgap.core.receipt.parse_receipt_bytes`'s receipt (or its error) for ``data``."""
    try:
        parts = _top(data)
        sections = _sections(parts.pop("channels", b"{}"))
        try:
            sums = _sums(parts.pop(HELD_SHA256, b"{}"))
        except msgspec.DecodeError:
            sums = {}  # every section checked entry by entry
        held = {c: {s: _held(c, s, raw, sums.get(c, {}).get(s), where, data) for s, raw in subs.items()} for c, subs in sections.items()}
        rest: dict[str, Any] = {k: _plain(v) for k, v in parts.items()}
    except (msgspec.DecodeError, RecursionError, _Refused):  # ValidationError is a DecodeError: the careful reader says what is wrong
        return parse_receipt_bytes(data, where)
    receipt = parse_receipt(rest, where)
    receipt.channels = held  # the decoder's entries are the Held structs themselves, or the section's bytes
    return receipt


class _Refused(Exception):
    """A section the quick checks refuse: the careful reader reads the receipt again."""


def _held(
    channel: str, subdir: str, raw: msgspec.Raw, recorded: str | None, where: str, data: bytes | mmap.mmap
) -> MutableMapping[str, Held]:
    """A subdir's held files: as their bytes when they hash to what airgap recorded writing them (``held_sha256``),
    else decoded and checked a subdir at a time."""
    if not (is_safe_channel_name(channel) and is_safe_subdir(subdir)):
        raise _Refused
    where = f"{where}: channels.{channel}.{subdir}"
    if recorded is not None and hashlib.sha256(raw).hexdigest() == recorded:
        span = _span(data, raw)  # the receipt's own bytes (mapped), not a copy of them (41 MB at 300,000 files)
        return HeldFiles(data, channel, subdir, where, span) if span is not None else HeldFiles(bytes(raw), channel, subdir, where)
    files = _files(raw)
    if not plainly_valid(channel, subdir, files):
        raise _Refused
    return files


def _span(data: bytes | mmap.mmap, raw: msgspec.Raw) -> tuple[int, int] | None:
    """Where in ``data`` bytes equal to ``raw`` (a section, a view into ``data``) lie: found by its first bytes,
    compared whole (no copy); None when they are not at the first place those bytes start."""
    view = memoryview(raw)
    at = data.find(bytes(view[:64]))
    if at == -1 or not hmac.compare_digest(memoryview(data)[at : at + len(view)], view):
        return None
    return at, at + len(view)
