"""A subdir's names table, kept beside the index airgap published (decision 0016).

A subdir's pages list its package names, one row each (:class:`~airgap.site.html.Row`: the name's files, latest
version and size). At 300,000 records, making the rows means reading every record's head: decoding them from the
index (0.4 s) and grouping them by name (0.25 s), at every import, for a change of a few names. The publish that
writes an index therefore keeps its rows too, as msgpack in airgap's state folder
(``.airgap/names/<channel>/<subdir>.msgpack``, journaled with the index), zstd-compressed (:func:`render`; one
written before, plain msgpack, is read too), and records the file's sha256 in the
receipt beside the index's (:mod:`airgap.core.published`, key :data:`KEY`); the file names the sha256 of the index
it describes. The next import into that index takes the rows of the names it did not change from it and makes
only the changed names' rows (their files: the ones the old row lists and the ones the import touched).

Only an index whose records are all plain (none kept opaque: admitted, or read from an index airgap published)
gets the file, so a recorded one also tells the next import that no record of the index needs checking again
(:func:`airgap.core.rawindex.parse_trusted`, ``plain``). A file that is not the recorded one, or does not name
the index being read, is not used: that import decodes and checks every head, as before. Pure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from itertools import islice
from typing import Any

import msgspec
import zstandard

from ..core import published, rawindex
from ..core.repodata import Repodata
from .html import Row, row, rows_of

FORMAT = 1
LEVEL = 3  # zstd: ~7x smaller (300,000 records: 22 MB of msgpack), deterministic (one thread)
CHUNK = 1024  # rows encoded at a time
MAX_BYTES = 1 << 30  # decompressed: a names file of some 10 million records
_ZSTD = b"\x28\xb5\x2f\xfd"  # a zstd frame's first bytes
#: the entry of a subdir's ``published`` record (the receipt) that holds this file's sha256
KEY = "names"


document = published.names_document


class _File(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    format: int
    repodata_sha256: str
    names: dict[str, Row]


_decode = msgspec.msgpack.Decoder(_File).decode
_encode = msgspec.msgpack.Encoder().encode


def every_row(rd: Repodata) -> dict[str, Row]:
    """The rows of every name of ``rd``, sorted by name: one pass over every record's head (:func:`group_by_name`'s
    grouping, each name's file names and heads in two lists: a ``(file name, head)`` pair per record was 19 MB)."""
    groups: dict[str, tuple[list[str], list[Any]]] = {}
    get, head = groups.get, rawindex.Head
    for section in (rd.packages, rd.packages_conda):
        for filename, rec in rawindex.heads(section):  # made a chunk at a time
            name = rec.name if type(rec) is head else str(rec.get("name"))
            group = get(name)
            if group is None:
                groups[name] = ([filename], [rec])
            else:
                group[0].append(filename)
                group[1].append(rec)
    rows = {}
    for name in sorted(groups):  # each name's lists go as its row is made: not every record and every row at once
        files, recs = groups.pop(name)
        rows[name] = row(zip(files, recs, strict=True))
    return rows


def changed_rows(before: Mapping[str, Row], rd: Repodata, changed: AbstractSet[str], touched: AbstractSet[str]) -> dict[str, Row]:
    """The rows of ``rd`` from ``before`` (the rows of the index it was made from) and what differs: the names
    ``changed`` (:func:`airgap.ops.index_change.changed_names`) and every file name ``touched`` whose record may
    differ. A changed name's files are among those its row listed and the touched ones; each is looked up in ``rd``."""
    candidates = set(touched)
    for name in changed:
        if (old := before.get(name)) is not None:
            candidates.update(old.files.split("\n"))
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for filename in candidates:
        section = rd.packages_conda if filename.endswith(".conda") else rd.packages
        if filename not in section:
            continue
        record = rawindex.head(section, filename)
        owner = record.get("name")
        if isinstance(owner, str) and owner in changed:
            groups.setdefault(owner, []).append((filename, record))
    rows = {name: r for name, r in before.items() if name not in changed}
    rows.update(rows_of(groups))
    return dict(sorted(rows.items()))


def render(rows: Mapping[str, Row], rd: Repodata, index_sha256: str) -> bytes | None:
    """The names file of ``rd``, whose ``repodata.json`` hashes to ``index_sha256``; None: ``rd`` keeps a record opaque
    (not every record is plain), or a size msgpack cannot carry."""
    if any(rd.opaque.values()):
        return None
    try:
        return _compressed(rows, index_sha256)
    except (msgspec.EncodeError, OverflowError, TypeError):
        return None


def _compressed(rows: Mapping[str, Row], index_sha256: str) -> bytes:
    """zstd of ``_encode(_File(FORMAT, index_sha256, dict(rows)))``, encoded ``CHUNK`` rows at a time: the whole
    msgpack (22 MB at 300,000 records, the full import's peak) is never held, only its compressed bytes (3 MB)."""
    head = _encode(_File(FORMAT, index_sha256, {}))
    assert head.endswith(_map_header(0))  # the last field, its names: an empty map
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=LEVEL, threads=0).stream_writer(out, closefd=False) as writer:
        writer.write(head[: -len(_map_header(0))] + _map_header(len(rows)))
        items = iter(rows.items())
        while chunk := dict(islice(items, CHUNK)):
            writer.write(_encode(chunk)[len(_map_header(len(chunk))) :])  # its members, after the map's header
    return out.getvalue()


def _map_header(n: int) -> bytes:
    """msgpack's header of a map of ``n`` members, as msgspec writes it (the shortest form)."""
    if n < 16:
        return bytes([0x80 | n])
    return b"\xde" + n.to_bytes(2, "big") if n < 1 << 16 else b"\xdf" + n.to_bytes(4, "big")


def read(data: Any, index_sha256: str) -> dict[str, Row] | None:
    """The rows a names file holds, if it describes the index hashing to ``index_sha256``; None: it does not."""
    try:
        got = _decode(_decompressed(data) if bytes(data[:4]) == _ZSTD else data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError, zstandard.ZstdError):
        return None
    return got.names if got.format == FORMAT and got.repodata_sha256 == index_sha256 else None


def _decompressed(data: Any) -> bytearray:
    """``data`` decompressed into one buffer (no pieces and their joined copy); more than :data:`MAX_BYTES`: ValueError."""
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(memoryview(data), read_across_frames=True)
    while piece := reader.read(1 << 20):
        out += piece
        if len(out) > MAX_BYTES:
            raise ValueError("a names file larger than any index")
    return out
