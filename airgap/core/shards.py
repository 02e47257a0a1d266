"""CEP-16 sharded repodata: encode a subdir's records as shards plus a shard index, and decode them safely.

Pure: bytes in, bytes out. Layout (relative to the subdir):

* ``repodata_shards.msgpack.zst`` — zstd(msgpack(``{"info": {"subdir", "base_url": "",
  "shards_base_url": "./shards/", "created_at"}, "shards": {name: sha256 as 32 raw bytes}}``));
* ``shards/<hex sha256>.msgpack.zst`` — zstd(msgpack(``{"packages": {...}, "packages.conda": {...},
  "removed": [...]}``)), one per package name; the name of the file is the sha256 of its own
  (compressed) bytes.

Records are the published ``repodata.json``'s, verbatim (every key, in its order), except that a
well-formed hex ``md5`` or ``sha256`` becomes raw bytes, as CEP-16 asks. Output is deterministic:
the same records give the same bytes (shards in file-name order, the index in package-name order,
compression single-threaded at a fixed level, ``created_at`` taken from the newest record's
``timestamp``, not from the clock), so a re-import writes nothing new. An import that renders only the
changed names' shards (:class:`Since`) keeps the current index's ``created_at`` unless a changed record is newer:
it never goes back, even when the newest record is removed.

Decoding assumes hostile bytes (a tampered destination, an upstream's shards): sizes are bounded
before and after decompression, msgpack lengths are bounded, and every type is checked; a bad
document is one :class:`~airgap.errors.IntegrityError` line (or the error class the caller names).
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zstandard

from ..clock import TIMESTAMP_FORMAT, timestamp
from ..compress import zstd_decompress_bounded
from ..errors import AirgapError, IntegrityError
from . import rawindex
from .manifest import is_safe_package_filename

INDEX = "repodata_shards.msgpack.zst"
SHARDS_DIR = "shards"
SHARDS_BASE_URL = "./shards/"
SUFFIX = ".msgpack.zst"
LEVEL = 3  # zstd, of shards and index (deterministic: one thread); not 10: a full import renders them all (decision 0009)
EVERY = 512  # shards rendered between two calls of render_changed's ``every`` (~2.5 MiB of records at conda-forge's sizes)
#: bounds on what a decoder accepts (conda-forge linux-64's index is ~1 MB, its largest shard a few MB)
MAX_INDEX_BYTES = 256 << 20
MAX_SHARD_BYTES = 64 << 20
_SECTIONS = (("packages", ".tar.bz2"), ("packages.conda", ".conda"))
_HASHES = (("md5", 16), ("sha256", 32))
_packb = msgspec.msgpack.Encoder().encode


def shard_file(digest: bytes | str) -> str:
    """The shard's path relative to the subdir: ``shards/<hex>.msgpack.zst``."""
    hexdigest = digest.hex() if isinstance(digest, bytes) else digest
    return f"{SHARDS_DIR}/{hexdigest}{SUFFIX}"


def is_shard_file(name: str) -> bool:
    """``name`` (relative to ``shards/``) looks like a shard: 64 lower-case hex digits and the suffix."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else ""
    return len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)


def package_name(filename: str, record: Mapping[str, Any]) -> str:
    """The package name a record is sharded under: its ``name``, else the file name's (``name-version-build.ext``)."""
    name = record.get("name")
    if isinstance(name, str) and name:
        return name
    stem = filename[: -len(".tar.bz2")] if filename.endswith(".tar.bz2") else filename.rsplit(".", 1)[0]
    return stem.rsplit("-", 2)[0]


def shardable(filename: Any, record: Any, suffix: str, fields: bool = True) -> bool:
    """A record a shard can carry: a safe file name of its section's kind, a map with string name, version and build
    (``fields=False``: the caller checked those on the record's head).

    A destination may keep records airgap cannot read verbatim in ``repodata.json`` (never dropped
    by an unrelated import); clients could not use them from a shard either, so they have none.
    """
    return (
        isinstance(filename, str)
        and is_safe_package_filename(filename)
        and filename.endswith(suffix)
        and (not fields or (isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("name", "version", "build"))))
    )


def _decoded(record: Any) -> Any:
    """A record as grouped: a dict, or its bytes (core/rawindex.py) decoded now, for this shard alone."""
    return record if type(record) is dict else rawindex.decode_record(record)


def pack_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as a shard holds it: a well-formed hex md5/sha256 as raw bytes, everything else as is."""
    out = dict(record)
    for key, size in _HASHES:
        value = out.get(key)
        if isinstance(value, str) and len(value) == 2 * size:
            try:
                out[key] = bytes.fromhex(value)
            except ValueError:
                pass  # not hex: kept verbatim
    return out


def unpack_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as ``repodata.json`` would hold it: raw md5/sha256 bytes back to lower-case hex."""
    out = dict(record)
    for key, _size in _HASHES:
        if isinstance(out.get(key), bytes):
            out[key] = out[key].hex()
    return out


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A ``repodata.json`` record as :func:`unpack_record` of its shard form gives it back (hex hashes in lower case)."""
    return unpack_record(pack_record(record))


def _compress(doc: Any, compressor: zstandard.ZstdCompressor | None = None) -> bytes:
    """zstd(msgpack(doc)); ``compressor``: one made for this level to reuse (a new one per shard costs as much
    as compressing it: 30,000 shards of a full import). msgspec writes the bytes ``msgpack.packb(doc, use_bin_type=True)``
    does for what JSON records hold (tests/test_shards.py compares them), 2.4x as fast."""
    try:
        raw = _packb(doc)
    except (OverflowError, TypeError, ValueError, msgspec.EncodeError) as exc:  # an integer beyond 64 bits, say
        raise IntegrityError(f"shards: expected records msgpack can carry, found one it cannot ({str(exc)[:100]})") from None
    out = (compressor or zstandard.ZstdCompressor(level=LEVEL, threads=0)).compress(raw)
    # python-zstandard sizes its result for the worst case (the input's size and more) and only shortens its length:
    # a copy holds the compressed bytes alone (a full import keeps 30,000 shards until stored: ~100 MB, not ~30)
    return bytes(memoryview(out))


def _newer(newest: int, ts: Any) -> int:
    """``newest`` or the record's ``timestamp`` in seconds (ms or s), whichever is later; a value that is no time leaves it."""
    if type(ts) is int and ts > 0:
        return max(newest, ts // 1000 if ts > 100_000_000_000 else ts)
    return newest


def _created(newest: int) -> str:
    """The shard index's ``created_at``: the newest record's ``timestamp``, so the bytes follow the records, not the clock."""
    return timestamp(min(newest, 253402300799))  # 9999-12-31: a timestamp from a broken record does not break the format


@dataclass(frozen=True)
class Rendered:
    """One subdir's shards: ``{hex sha256: compressed bytes}`` and the index naming them."""

    index: bytes
    shards: dict[str, bytes]


def render(subdir: str, document: Mapping[str, Any]) -> Rendered:
    """Shards and shard index of a ``repodata.json`` document (as :meth:`~airgap.core.repodata.Repodata.to_document` gives it).

    Every record (:func:`shardable`) goes into the shard of its package name; ``removed`` file names go into the shard
    of their name when there is one (a name with no record left has no shard).
    """
    return render_changed(subdir, document, None, {})


@dataclass(frozen=True)
class Since:
    """What an incremental render knows of the subdir's current shards (airgap's own, as recorded).

    ``touched``: every file name whose record may differ from the current index's (the import's additions,
    replacements and removals); ``shard_files(name)``: the file names the current shard of ``name`` lists
    ([] when it has none, None when it cannot be read); ``created_at``: the current shard index's."""

    touched: AbstractSet[str]
    shard_files: Callable[[str], list[str] | None]
    created_at: str | None


def render_changed(
    subdir: str,
    document: Mapping[str, Any],
    changed: AbstractSet[str] | None,
    kept: Mapping[str, bytes],
    since: Since | None = None,
    every: Callable[[], object] | None = None,
    emit: Callable[[str, bytes], object] | None = None,
) -> Rendered:
    """:func:`render`, rendering only the shards of ``changed`` names (None: every name) and of names ``kept`` lacks;
    every other name keeps the hash ``kept`` gives it (its shard, unchanged, is already stored). ``Rendered.shards``
    holds the shards rendered; the index names them all. Same bytes as :func:`render` when ``kept`` is right.

    With ``since`` (``kept`` then names every unchanged name), no pass over the subdir: the changed names' records
    are those their current shards list plus the touched files (:func:`_changed_only`), and ``created_at`` never goes
    back (the current index's, or a changed record's if newer). ``every``: called after each ``EVERY`` names (the caller
    gives back the records' mapped pages, decision 0018); ``emit(hex, bytes)``: each shard as rendered, not kept (28 MB)."""
    found = _changed_only(document, changed, kept, since) if since is not None and changed is not None else None
    if found is not None:
        grouped, names, newest = found
    else:
        grouped, names, newest = _grouped(document, changed, kept)
    removed: dict[str, list[str]] = {}
    for filename in sorted(set(document.get("removed") or ())):
        name = package_name(filename, {})
        if name in grouped:
            removed.setdefault(name, []).append(filename)
    shards: dict[str, bytes] = {}
    digests: dict[str, bytes] = {}
    keep = emit if emit is not None else shards.__setitem__
    compressor = zstandard.ZstdCompressor(level=LEVEL, threads=0)  # the same bytes as a new one each time
    sections = [(section, suffix, document.get(section) or {}) for section, suffix in _SECTIONS]
    for name in sorted(names):
        if name not in grouped:
            digests[name] = kept[name]
            continue
        if every is not None and len(digests) % EVERY == EVERY - 1:
            every()
        # packed a name at a time, each record taken from the document now: no dict of them per name (17 MB at 300,000)
        files = sorted(grouped[name])
        shard = {
            section: {f: pack_record(_decoded(rawindex.entry(records, f))) for f in files if f.endswith(suffix)}
            for section, suffix, records in sections
        }
        data = _compress({**shard, "removed": removed.get(name, [])}, compressor)
        digests[name] = digest = hashlib.sha256(data).digest()
        keep(digest.hex(), data)
    info = {"subdir": subdir, "base_url": "", "shards_base_url": SHARDS_BASE_URL, "created_at": _created(newest)}
    return Rendered(_compress({"info": info, "shards": digests}), shards)


#: the names to render, each with its records' file names (their suffix says their section); every name; the newest timestamp
_Grouped = tuple[dict[str, list[str]], set[str], int]


def _grouped(document: Mapping[str, Any], changed: AbstractSet[str] | None, kept: Mapping[str, bytes]) -> _Grouped:
    """One pass over every record: the file names of the names to render, by name; every name; the newest timestamp."""
    grouped: dict[str, list[str]] = {}
    names: set[str] = set()
    newest = 0  # the newest record's timestamp (the index's created_at), found in the same pass
    for section, suffix in _SECTIONS:
        records = document.get(section) or {}
        for filename, head in rawindex.heads(records):  # a record kept as bytes is decoded only to be rendered
            kind = type(head)
            if kind is dict:
                name, ts = head.get("name"), head.get("timestamp")
            elif kind is rawindex.Head:
                name, ts = head.name, head.timestamp
            else:
                name = ts = None
            newest = _newer(newest, ts)
            if changed is not None and type(name) is str and name not in changed and name in kept:
                names.add(name)  # its records are the ones its kept shard was rendered from: no check, no render
                continue
            if kind is rawindex.Head:  # kept as bytes: its head says what shardable() asks of the record, decoded at render
                ok = type(name) is str and type(head.version) is str and type(head.build) is str and shardable(filename, {}, suffix, False)
            else:
                record = records[filename]
                ok = shardable(filename, record, suffix)
                name = record["name"] if ok else None
            if ok:
                names.add(name)
                if changed is None or name in changed or name not in kept:
                    if (group := grouped.get(name)) is None:
                        grouped[name] = [filename]
                    else:
                        group.append(filename)
    return grouped, names, newest


def _changed_only(document: Mapping[str, Any], changed: AbstractSet[str], kept: Mapping[str, bytes], since: Since) -> _Grouped | None:
    """The changed names' records without a pass over the subdir: the files their current shards list and the
    touched files, each read where the document holds it now. None (the caller makes the pass) when a current
    shard cannot be read or when a record found belongs to a name neither changed nor kept."""
    candidates = set(since.touched)
    for name in changed:
        files = since.shard_files(name)
        if files is None:
            return None
        candidates.update(files)
    grouped: dict[str, list[str]] = {}
    newest = _newer(0, _seconds(since.created_at))
    sections = [(suffix, document.get(section) or {}) for section, suffix in _SECTIONS]
    for filename in sorted(candidates):
        for suffix, records in sections:
            if not filename.endswith(suffix) or filename not in records:
                continue
            record = records[filename]
            if not shardable(filename, record, suffix):
                continue
            name = record["name"]
            if name not in changed:
                if name in kept:
                    continue  # a touched file whose record its name's kept shard already holds as it is
                return None
            newest = _newer(newest, record.get("timestamp"))
            grouped.setdefault(name, []).append(filename)
    return grouped, set(kept) | set(grouped), newest


def _seconds(stamp: str | None) -> int:
    """A ``created_at`` back in seconds since the epoch (0 when there is none or it is not one)."""
    if not stamp:
        return 0
    try:
        return calendar.timegm(time.strptime(stamp, TIMESTAMP_FORMAT))
    except ValueError:
        return 0


# -- decoding (hostile input) -------------------------------------------------------------------


@dataclass
class ShardIndex:
    subdir: str
    base_url: str
    shards_base_url: str
    created_at: str | None
    shards: dict[str, bytes] = field(default_factory=dict)  # package name -> sha256 (32 bytes)


@dataclass
class Shard:
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    packages_conda: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self.packages.items()
        yield from self.packages_conda.items()


def _unpack(data: bytes, limit: int, where: str, error: type[AirgapError]) -> Any:
    if len(data) > limit:
        raise error(f"{where}: expected at most {limit} bytes, found {len(data)}")
    raw = zstd_decompress_bounded(data, limit, where, error)
    import msgpack

    try:
        return msgpack.unpackb(
            raw, raw=False, strict_map_key=True, max_str_len=limit, max_bin_len=limit, max_array_len=limit // 2, max_map_len=limit // 4
        )
    except Exception as exc:  # msgpack raises several kinds (ExtraData, FormatError, StackError, ValueError, UnicodeDecodeError)
        raise error(f"{where}: expected msgpack, found something unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None


def _expect(ok: bool, where: str, expected: str, found: Any, error: type[AirgapError]) -> None:
    if not ok:
        shown = type(found).__name__ if not isinstance(found, str | int) else repr(found)[:60]
        raise error(f"{where}: expected {expected}, found {shown}")


def decode_index(data: bytes, where: str, error: type[AirgapError] = IntegrityError) -> ShardIndex:
    """A shard index, validated: a map with ``info`` (``subdir``, ``base_url``, ``shards_base_url`` strings) and
    ``shards`` (package name → 32 bytes)."""
    doc = _unpack(data, MAX_INDEX_BYTES, where, error)
    _expect(isinstance(doc, dict), where, "a shard index (a map)", doc, error)
    info, shards = doc.get("info"), doc.get("shards")
    _expect(isinstance(info, dict), where, "'info' to be a map", info, error)
    _expect(isinstance(shards, dict), where, "'shards' to be a map", shards, error)
    for key in ("subdir", "base_url", "shards_base_url"):
        _expect(isinstance(info.get(key), str), where, f"info.{key} to be a string", info.get(key), error)
    stamp = info.get("created_at")
    _expect(stamp is None or isinstance(stamp, str), where, "info.created_at to be a string", stamp, error)
    for name, digest in shards.items():
        _expect(isinstance(name, str) and bool(name), where, "package names as keys of 'shards'", name, error)
        _expect(isinstance(digest, bytes) and len(digest) == 32, where, f"a 32-byte sha256 for {name!r}", digest, error)
    return ShardIndex(info["subdir"], info["base_url"], info["shards_base_url"], stamp, dict(shards))


def decode_shard(data: bytes, where: str, error: type[AirgapError] = IntegrityError) -> Shard:
    """A shard, validated: ``packages`` and ``packages.conda`` map safe file names of their kind to records
    (maps with string ``name``, ``version``, ``build``; ``md5``/``sha256`` as 16/32 bytes or strings);
    ``removed`` (optional) is a list of strings."""
    doc = _unpack(data, MAX_SHARD_BYTES, where, error)
    _expect(isinstance(doc, dict), where, "a shard (a map)", doc, error)
    shard = Shard()
    for section, suffix in _SECTIONS:
        entries = doc.get(section, {})
        _expect(isinstance(entries, dict), where, f"{section!r} to be a map", entries, error)
        target = shard.packages if section == "packages" else shard.packages_conda
        for filename, record in entries.items():
            ok_name = isinstance(filename, str) and is_safe_package_filename(filename) and filename.endswith(suffix)
            _expect(ok_name, where, f"a {suffix} file name in {section!r}", filename, error)
            _expect(isinstance(record, dict), where, f"a record (a map) for {filename}", record, error)
            for key in ("name", "version", "build"):
                _expect(isinstance(record.get(key), str), where, f"{filename}: {key} to be a string", record.get(key), error)
            for key, size in _HASHES:
                value = record.get(key)
                ok = value is None or isinstance(value, str) or (isinstance(value, bytes) and len(value) == size)
                _expect(ok, where, f"{filename}: {key} as {size} bytes", value, error)
            target[filename] = unpack_record(record)
    removed = doc.get("removed", [])
    _expect(
        isinstance(removed, list) and all(isinstance(r, str) for r in removed), where, "'removed' to be a list of strings", removed, error
    )
    shard.removed = list(removed)
    return shard
