"""Check a published subdir's CEP-16 shards against its ``repodata.json``: what clients do not check.

Clients (rattler/pixi, mamba, conda-libmamba-solver) take a shard's name as its hash and never
hash the bytes they fetch: a tampered shard is solved from silently. So airgap checks, for one
subdir (``airgap verify --into``; an import reads back every shard it writes instead, in the engine,
and its shards hold repodata.json's records by construction: both are rendered from the same records):

* the shard index is readable (bounded, typed: :func:`airgap.core.shards.decode_index`) and names this subdir;
* every shard it names is there, hashes to its name, and decodes;
* each shard holds only records of its package name, and all shards together hold exactly the
  records of ``repodata.json`` (md5/sha256 compared as lower-case hex; records a shard cannot carry,
  :func:`airgap.core.shards.shardable`, are not expected there), and the same ``removed`` names.

Each problem is one ``(file name, what is wrong)`` pair; record mismatches are summed up per kind
(a count and one example) rather than listed one by one. Shards no index names are not problems:
they are kept for clients holding an older index until ``airgap clean`` removes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from ..core import shards
from ..errors import AirgapError

Read = Callable[[str], bytes | None]
Found = tuple[str, str]  # (file name relative to the subdir, what is wrong)


def check_subdir(subdir: str, repodata_raw: bytes | None, read: Read, required: bool = False) -> list[Found]:
    """The problems of one subdir's shards (``read(name)``: a published file's bytes, or None); [] if none.

    ``required``: the destination is set to write shards, so a missing index is a problem (otherwise
    a subdir without a shard index is simply not sharded).
    """
    packed = read(shards.INDEX)
    if packed is None:
        return [(shards.INDEX, "the destination writes shards, found no shard index")] if required else []
    try:
        index = shards.decode_index(packed, shards.INDEX)
    except AirgapError as exc:
        return [(shards.INDEX, str(exc).removeprefix(shards.INDEX + ": "))]
    problems: list[Found] = []
    if index.subdir != subdir:
        problems.append((shards.INDEX, f"expected info.subdir {subdir!r}, found {index.subdir[:40]!r}"))
    if index.shards_base_url not in (shards.SHARDS_BASE_URL, "shards/"):
        return problems + [(shards.INDEX, f"expected shards_base_url {shards.SHARDS_BASE_URL!r}, found {index.shards_base_url[:60]!r}")]
    held: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()
    for name, digest in sorted(index.shards.items()):
        path = shards.shard_file(digest)
        data = read(path)
        if data is None:
            problems.append((path, f"the shard index names it for {name!r}, the storage does not hold it"))
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest.hex():
            problems.append((path, f"expected sha256 {digest.hex()} (its name), found {actual}"))
            continue
        try:
            shard = shards.decode_shard(data, path)
        except AirgapError as exc:
            problems.append((path, str(exc).removeprefix(path + ": ")))
            continue
        for filename, record in shard.records():
            if record.get("name") != name:
                problems.append((path, f"expected records of {name!r} only, found {filename} (name {str(record.get('name'))[:40]!r})"))
            elif filename in held:
                problems.append((path, f"expected {filename} in one shard, found it in two"))
            held[filename] = record
        removed.update(shard.removed)
    if repodata_raw is not None:
        problems.extend(_compare(repodata_raw, held, removed, set(index.shards)))
    return problems


def _compare(raw: bytes, held: dict[str, dict[str, Any]], removed: set[str], names: set[str]) -> list[Found]:
    """Shards' records against ``repodata.json``'s: one line per kind of difference, with a count and an example."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return []  # an unreadable repodata.json is reported by the index check, not here
    if not isinstance(doc, dict):
        return []
    expected: dict[str, dict[str, Any]] = {}
    for section, suffix in (("packages", ".tar.bz2"), ("packages.conda", ".conda")):
        entries = doc.get(section)
        for filename, record in entries.items() if isinstance(entries, dict) else ():
            if shards.shardable(filename, record, suffix):
                expected[filename] = shards.comparable(record)
    out: list[Found] = []
    where = shards.INDEX
    _differ(out, where, "in repodata.json but in no shard", sorted(set(expected) - set(held)))
    _differ(out, where, "in a shard but not in repodata.json", sorted(set(held) - set(expected)))
    _differ(out, where, "in both with different records", sorted(f for f in set(held) & set(expected) if held[f] != expected[f]))
    gone = doc.get("removed")
    want_removed = {f for f in gone if isinstance(f, str) and shards.package_name(f, {}) in names} if isinstance(gone, list) else set()
    _differ(out, where, "listed as removed by one and not the other", sorted(want_removed ^ removed))
    return out


def _differ(out: list[Found], where: str, what: str, files: list[str]) -> None:
    if files:
        out.append((where, f"expected the shards to hold the records of repodata.json, found {len(files)} {what} (first: {files[0]})"))


def check_destination_subdir(dest: Any, channel: str, subdir: str, repodata_raw: bytes | None = None) -> list[Found]:
    """:func:`check_subdir` over a destination's published files (``dest.read_index_file``)."""
    if repodata_raw is None:
        repodata_raw = dest.read_index_file(channel, subdir, "repodata.json")
    return check_subdir(subdir, repodata_raw, lambda name: dest.read_index_file(channel, subdir, name), writes_shards(dest))


def writes_shards(dest: Any) -> bool:
    """The destination is set to write CEP-16 shards (its ``index_formats``)."""
    return any(getattr(f, "name", None) == "shards" for f in getattr(dest, "formats", ()))
