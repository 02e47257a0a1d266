"""Reading a big receipt fast: the held files checked by msgspec's typed decoder, the rest as ever.

Pure. A receipt lists every file its destination holds (300,000 entries, 44 MB, for a
conda-forge subdir); :func:`~airgap.core.receipt.parse_receipt` checks each entry in Python
(three patterns and a tuple per file: most of a delta export's reading of its base). Here the
``channels`` part is decoded into typed structs (types and sizes checked by the decoder), its
names and hashes checked against the same rules a subdir at a time, and each entry becomes the
same :class:`~airgap.core.receipt.Held`; the other, small parts go through ``parse_receipt``
itself. Anything the typed decoder or those checks refuse is read again by
:func:`~airgap.core.receipt.parse_receipt_bytes`, which accepts it or says exactly what is wrong:
this module only ever gives the same receipt, sooner.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from .manifest import is_safe_channel_name, is_safe_subdir
from .receipt import Held, Receipt, parse_receipt, parse_receipt_bytes

# is_safe_package_filename as one expression (tests/test_receipt_fast.py compares them)
FILENAME = re.compile(r"(?!.*\.\.)(?=.*(?:\.tar\.bz2|\.conda)\Z)[A-Za-z0-9_][A-Za-z0-9_.+!=~,-]{0,254}\Z")
_HEX = re.compile(r"[0-9a-f]*\Z")


class _Held(msgspec.Struct, gc=False):
    sha256: str
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    origin: str | None = msgspec.field(default=None, name="from")


_channels = msgspec.json.Decoder(dict[str, dict[str, dict[str, _Held]]]).decode
_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_plain = msgspec.json.Decoder().decode


def parse_receipt_fast(data: bytes, where: str) -> Receipt:
    """:func:`~airgap.core.receipt.parse_receipt_bytes`'s receipt (or its error) for ``data``."""
    try:
        parts = _top(data)
        held = _channels(parts.pop("channels", b"{}"))
        rest: dict[str, Any] = {k: _plain(v) for k, v in parts.items()}
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError: the careful reader says what is wrong
        return parse_receipt_bytes(data, where)
    if not all(_plainly_valid(c, s, files) for c, subs in held.items() for s, files in subs.items()):
        return parse_receipt_bytes(data, where)
    receipt = parse_receipt(rest, where)
    new = tuple.__new__
    receipt.channels = {
        c: {s: {f: new(Held, (h.sha256, h.size, h.origin)) for f, h in files.items()} for s, files in subs.items()}
        for c, subs in held.items()
    }
    return receipt


def _plainly_valid(channel: str, subdir: str, files: dict[str, _Held]) -> bool:
    """The rules of ``parse_receipt`` for one subdir's files, checked a subdir at a time rather than a field at a time."""
    if not (is_safe_channel_name(channel) and is_safe_subdir(subdir) and all(map(FILENAME.match, files))):
        return False
    shas = "".join([h.sha256 for h in files.values()])
    if len(shas) != 64 * len(files) or not _HEX.match(shas):  # every sha256 64 lower-case hex digits
        return False
    return all(o is None or is_safe_channel_name(o) for o in {h.origin for h in files.values()})
