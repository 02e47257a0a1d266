"""An archive's repodata blob with its records in lines of ``LINE``, split a line at a time (decision 0021).

An import keeps each record of the archive's index as its bytes in the mapped blob (decision 0018). Splitting
the blob into records was one msgspec pass over all of it: at 300,000 records it touched 123 MB of mapped
pages at once, on top of the heap, and that was the full import's peak (docs/performance.md, twenty-first
session). Nothing can give pages back in the middle of one C call.

So the export writes each section's records ``LINE`` to a line (JSON allows a newline between two members)::

    {"info":{...},"packages":{
    "a-1-0.tar.bz2":{...},"b-1-0.tar.bz2":{...},...,
    "c-1-0.tar.bz2":{...},...
    },"packages.conda":{},"removed":[],"repodata_version":1}

and :func:`split_lined` reads such a blob a line at a time: the line's first byte (the newline before it) and
its last (the comma after it) are made ``{`` and ``}`` in the private map for as long as msgspec reads that
line as one object of records, each kept as its bytes, and the pages read go back before the next line. The
rest of the document (all of it but the sections' insides) is read as one document with each section
standing in for a marker member, which proves where the sections are.

A raw newline is never inside a JSON string, so the lines break the document only between two tokens;
a line that does not hold whole members fails to decode (an object must close where it ends). Whatever is
not this layout, or fails anywhere, returns None and the caller splits the blob in one pass as before
(tests/test_lined.py compares the two on hostile blobs). Pure, but for the bytes it changes and puts back.
"""

from __future__ import annotations

import mmap
import os
from itertools import islice
from typing import Any

import msgspec

from .._safepath import release_views

LINE = 8192  # records per line
RELEASE = 16 << 20  # bytes scanned between two givings back of the pages
SECTIONS = ("packages", "packages.conda")

_raws = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def encode_lined(doc: dict[str, Any], encoder: msgspec.json.Encoder) -> bytes | bytearray:
    """``encoder.encode(doc)`` with each big section's records ``LINE`` to a line (the same JSON value), written
    into one buffer a line at a time: no list of lines and no joined copy (300,000 records are 123 MB)."""
    big = [s for s in SECTIONS if isinstance(doc.get(s), dict) and len(doc[s]) > LINE]
    token = os.urandom(16).hex()  # a member name no record holds
    skeleton = encoder.encode({k: f"{token}{k}" if k in big else v for k, v in doc.items()})
    marks = {s: f'"{token}{s}"'.encode() for s in big}
    if any(skeleton.count(m) != 1 for m in marks.values()):  # a record that holds the token: never, but then plainly
        return encoder.encode(doc)
    out, at = bytearray(), 0
    for section, mark in sorted(marks.items(), key=lambda sm: skeleton.index(sm[1])):
        where = skeleton.index(mark)
        out += skeleton[at:where]
        out += b"{"
        records = iter(doc[section].items())
        while line := dict(islice(records, LINE)):
            start = len(out)
            encoder.encode_into(line, out, -1)  # {"a":{...},...}: its brace becomes the newline before the line
            out[start] = 0x0A
            out[-1] = 0x2C  # and its closing brace the comma after it
        out[-1] = 0x0A  # the last line's: a newline, then the section's brace
        out += b"}"
        at = where + len(mark)
    out += skeleton[at:]
    return out


def split_lined(data: mmap.mmap) -> tuple[bytes, dict[bytes, dict[str, msgspec.Raw]]] | None:
    """``(the document with each section's records replaced by a marker member, {marker: {filename: its bytes}})`` of a
    blob in :func:`encode_lined`'s layout, mapped privately (its bytes change while a line is read, and are put
    back); None: any other blob. The caller reads the document and finds each marker alone in a section."""
    cuts = _newlines(data)
    if not cuts:
        return None
    token = os.urandom(16).hex().encode()
    skeleton, found = [bytes(data[: cuts[0]])], dict[bytes, dict[str, msgspec.Raw]]()
    records: dict[str, msgspec.Raw] | None = None
    for n, start in enumerate(cuts):
        stop = cuts[n + 1] if n + 1 < len(cuts) else len(data)
        closes = data[start + 1 : start + 2] == b"}"
        if records is None:  # the part before this line opens a section
            if closes or not skeleton[-1].endswith(b"{"):
                return None
            marker = b'"%s%d"' % (token, len(found))
            skeleton.append(marker + b":0")
            records = found[marker[1:-1]] = {}
        if closes:  # the rest of the document, up to the next section or its end
            skeleton.append(bytes(data[start + 1 : stop]))
            records = None
            continue
        if n + 1 == len(cuts):
            return None  # records with no section's end after them
        if data[stop + 1 : stop + 2] == b"}":
            end = stop  # the section's last line: no comma after it, its newline becomes the brace
        elif data[stop - 1 : stop] == b",":
            end = stop - 1
        else:
            return None
        line = _line(data, start, end)
        if not line:  # refused, or no record at all (a blank line: the comma before it would end the section)
            return None
        records.update(line)  # a name twice: the last record, at the first place (as one pass over the section)
        release_views(data)
    return (b"".join(skeleton), found) if records is None else None


def _newlines(data: mmap.mmap) -> list[int]:
    """Where the blob's newlines are ([] when there are more than its lines of records could need)."""
    cuts: list[int] = []
    most = len(data) // 4096 + 16  # a line of LINE records is far longer; a pretty-printed document is not this
    given = 0
    at = data.find(b"\n")
    while at != -1:
        cuts.append(at)
        if len(cuts) > most:
            return []
        if at - given > RELEASE:
            release_views(data)  # the pages scanned so far
            given = at
        at = data.find(b"\n", at + 1)
    release_views(data)
    return cuts


def _line(data: mmap.mmap, start: int, end: int) -> dict[str, msgspec.Raw] | None:
    """The records between ``start`` (a newline) and ``end`` (a comma or newline), read as one object."""
    before, after = data[start], data[end]
    data[start], data[end] = ord("{"), ord("}")
    try:
        return _raws(memoryview(data)[start : end + 1])
    except (msgspec.DecodeError, RecursionError):
        return None
    finally:
        data[start], data[end] = before, after
