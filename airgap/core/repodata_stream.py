"""``repodata.json`` in pieces: the bytes of :meth:`~airgap.core.repodata.Repodata.to_bytes`, a few thousand records at a time.

Pure. A destination's index of 300,000 records is 124 MiB of JSON; made whole, it costs its size
in memory again, beside the index it was read from. :func:`json_pieces` yields the same bytes in
pieces of :data:`CHUNK` records (the engine writes, hashes and compresses each as it comes:
:mod:`airgap.destinations.streamed`), so only a piece is ever held. Concatenated, the pieces are
``to_bytes()`` byte for byte (tests/test_streamed_index.py): msgspec writes a dict compactly
(``{"k":v,...}``), so a section is ``{`` + each piece's entries joined by ``,`` + ``}``.

The guard against values JSON cannot carry (NaN, Infinity, lone surrogates) is ``to_bytes``'s:
the few records put as dicts and the envelope are looked at before anything is yielded; when
most records are dicts (a whole index decoded), each piece holding a ``null`` is looked at before
it is yielded, so nothing unwritable is ever handed on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .jsonbytes import encode

if TYPE_CHECKING:
    from .repodata import Repodata

#: records a piece: ~1.7 MB of JSON at the sizes of conda-forge's records, a few ms of encoding
CHUNK = 4096
_SECTIONS = ("packages", "packages.conda")


def json_pieces(rd: Repodata, keep_base_url: bool = False, chunk: int = CHUNK) -> Iterator[bytes | memoryview]:
    """The bytes of ``rd.to_bytes(keep_base_url)``, in pieces; raises its ValueError for a value JSON cannot carry."""
    from .repodata import not_json

    doc = rd.to_document(keep_base_url, raw=True, shared=True)  # records kept as bytes are written verbatim; read only
    parts = decoded_parts(doc)

    def guarded(data: bytes, value: Any) -> bytes:
        if parts is None and b"null" in data and (reason := not_json(value)) is not None:
            raise ValueError(f"repodata {rd.subdir}: expected values JSON can carry, found {reason}")
        return data

    if parts is not None and (reason := not_json(parts)) is not None:
        raise ValueError(f"repodata {rd.subdir}: expected values JSON can carry, found {reason}")
    yield b"{"
    for i, (key, value) in enumerate(doc.items()):
        lead = (b"," if i else b"") + encode(key) + b":"
        if key not in _SECTIONS or type(value) is not dict or len(value) <= chunk:
            yield lead + guarded(encode(value), value)
            continue
        yield lead + b"{"
        items = iter(value.items())
        sep = b""
        while piece := dict(itertools.islice(items, chunk)):
            data = guarded(encode(piece), piece)
            if sep:
                yield sep
            yield memoryview(data)[1:-1]  # its members as encoded: a slice and a join copied each piece twice, and the
            sep = b","  # copies of ~1.7 MB left ~40 MB of the heap resident by the end (300,000 records)
        yield b"}"
    yield b"}"


def decoded_parts(doc: Mapping[str, Any], few: int = 10_000) -> list[Any] | None:
    """What of an index document msgspec encodes from Python objects rather than copies as verbatim bytes: every
    value but the two sections, and each section's records that are dicts, with their file names; None when more
    than ``few`` records are dicts (a whole index decoded: the caller looks at all of it)."""
    parts: list[Any] = [v for k, v in doc.items() if k not in ("packages", "packages.conda")]
    for section in ("packages", "packages.conda"):
        records = doc.get(section) or {}
        decoded = list(filter(dict.__instancecheck__, records.values()))
        if len(parts) + len(decoded) > few:
            return None
        parts += [x for f, r in records.items() if type(r) is dict for x in (f, r)] if decoded else []
    return parts
