"""Reading a big receipt fast: the held files checked by msgspec's typed decoder, the rest as ever.

Pure. A receipt lists every file its destination holds (300,000 entries, 44 MB, for a
conda-forge subdir); :func:`~airgap.core.receipt.parse_receipt` checks each entry in Python
(three patterns and a tuple per file: most of a delta export's reading of its base). Here the
``channels`` part is decoded into typed structs (types and sizes checked by the decoder), its
names and hashes checked against the same rules a subdir at a time (:mod:`~airgap.core.receipt_check`),
and each entry becomes the
same :class:`~airgap.core.receipt.Held`; the other, small parts go through ``parse_receipt``
itself. Anything the typed decoder or those checks refuse is read again by
:func:`~airgap.core.receipt.parse_receipt_bytes`, which accepts it or says exactly what is wrong:
this module only ever gives the same receipt, sooner.
"""

from __future__ import annotations

import mmap
from typing import Any

import msgspec

from .receipt import Receipt, parse_receipt, parse_receipt_bytes
from .receipt_check import Files, plainly_valid

_channels = msgspec.json.Decoder(dict[str, dict[str, Files]]).decode
_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_plain = msgspec.json.Decoder().decode


def parse_receipt_fast(data: bytes | mmap.mmap, where: str) -> Receipt:
    """:func:`~airgap.core.receipt.parse_receipt_bytes`'s receipt (or its error) for ``data``."""
    try:
        parts = _top(data)
        held = _channels(parts.pop("channels", b"{}"))
        rest: dict[str, Any] = {k: _plain(v) for k, v in parts.items()}
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError: the careful reader says what is wrong
        return parse_receipt_bytes(data, where)
    if not all(plainly_valid(c, s, files) for c, subs in held.items() for s, files in subs.items()):
        return parse_receipt_bytes(data, where)
    receipt = parse_receipt(rest, where)
    receipt.channels = held  # the decoder's entries are the Held structs themselves
    return receipt
