"""A receipt's held files checked a subdir at a time by msgspec, not a field at a time in Python. Pure.

A receipt lists every file its destination holds (300,000 entries for a conda-forge subdir);
checking each entry's name, hash, size and origin in Python is most of reading it. Here msgspec
checks the types and sizes (decoding the bytes, or converting an already decoded dict), and the
names and hashes are checked against the manifest's rules with a few scans per subdir. Whatever these checks refuse is read again by the careful per-file check of
:mod:`airgap.core.receipt`, which accepts it or says exactly what is wrong: this module only ever
gives the same files, sooner (tests/test_receipt_fast.py compares the two).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .manifest import FILENAME, all_hex64, is_safe_channel_name, is_safe_subdir


class Held(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A file the destination holds: its sha256, size, and the archive channel it came from (None: unknown).

    A msgspec struct: a receipt holds one per file (300,000 for a conda-forge subdir), decoded straight from
    the receipt's bytes (types and the size's sign checked by the decoder) and encoded straight back
    (``from`` left out when unknown: the same bytes as :meth:`to_json`'s dict). Not tracked by the collector."""

    sha256: str
    size: Annotated[int, msgspec.Meta(ge=0)] | None
    origin: str | None = msgspec.field(default=None, name="from")

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"sha256": self.sha256, "size": self.size}
        if self.origin is not None:
            doc["from"] = self.origin
        return doc


Files = dict[str, Held]
REBUILD = "rebuild it from the files with `airgap receipt --into DEST` (move the bad one aside first)"


def typed_files(files: Any) -> Files | None:
    """A decoded ``{filename: {sha256, size, from?}}`` as typed entries; None where msgspec refuses a type."""
    if type(files) is not dict:
        return None
    try:
        return msgspec.convert(files, Files)
    except msgspec.ValidationError:
        return None


def plainly_valid(channel: str, subdir: str, files: Files) -> bool:
    """The rules of ``parse_receipt`` for one subdir's files, checked a subdir at a time rather than a field at a time."""
    if not (is_safe_channel_name(channel) and is_safe_subdir(subdir) and all(map(FILENAME.match, files))):
        return False
    held = list(files.values())
    if not all_hex64([h.sha256 for h in held]):  # a chunk at a time
        return False
    return all(o is None or is_safe_channel_name(o) for o in {h.origin for h in files.values()})
