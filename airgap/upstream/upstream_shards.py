"""An upstream's CEP-16 shards at export: fetch only the package names the filters need, and check
that an upstream's shards agree with its ``repodata.json``.

**Fetching by name** (:func:`fetch_channel`). When the filters name packages (``pkg_list`` and
``include``: every selected record is one of those names, or, with ``with_dependencies``, in their
dependency closure) and the upstream serves ``repodata_shards.msgpack.zst`` in every subdir asked
for, the export fetches the shard index and then the shards of those names, following every
``depends`` name until none is new (in every subdir: a noarch record's dependency may live in
linux-64 and the other way round), instead of each subdir's whole ``repodata.json``. conda-forge's
linux-64 repodata is 254 MB (38 MB as .zst); its shard index about 1 MB, a shard a few KB. Each
shard is hashed against the name the index gives it (clients do not check; we do), decoded with
bounds (:mod:`airgap.core.shards`) and its records go through the same checks as ``repodata.json``'s.
Any doubt (no index in a subdir, an unreadable one) falls back to ``repodata.json`` for the channel,
with a warning; a shard that does not hash to its name stops the export (an upstream serving bad
bytes). ``upstream_shards: never`` (config) always reads ``repodata.json``.

**Checking** (:func:`warn_disagreements`). conda-forge has shipped shards that disagree with its
``repodata.json`` (conda/infrastructure#1326): a sharding client then sees another channel than
a conda reading ``repodata.json``. When an export read ``repodata.json`` and the upstream also
serves shards, the shards of up to :data:`CHECK_NAMES` selected names per subdir are fetched and
compared; a disagreement is a warning naming the subdir, the count and one example.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..clock import timestamp
from ..core import shards
from ..core.filters import Filters, Selection, SpecSet
from ..core.repodata import from_document
from ..errors import AirgapError, NotFound, UpstreamError
from ..redact import redact
from . import channels as upstream
from .channels import Channel, FetchedRepodata, packages_base
from .fetch import Fetcher
from .urlpolicy import check_link

log = logging.getLogger(__name__)

CHECK_NAMES = 64  # names per subdir whose upstream shards are compared with repodata.json at export
_DEP_NAME = re.compile(r"[^\s=<>!~\[]+")


def wanted_names(filters: Filters) -> set[str] | None:
    """The package names every selected record belongs to (before the closure), or None: the filters select by more than names."""
    specs = filters.pkg_list + filters.include
    if not specs:
        return None
    return set(SpecSet("pkg_list", specs).by_name)  # the names the filters match records by, exactly


def dependency_names(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Package names the records' ``depends`` name (virtual packages, ``__glibc``, left out)."""
    out = set()
    for record in records:
        for dep in record.get("depends") or ():
            found = _DEP_NAME.match(dep.strip()) if isinstance(dep, str) else None
            if found is not None and not found.group(0).startswith("__"):
                out.add(found.group(0).lower())
    return out


@dataclass
class _Index:
    url: str
    raw: bytes
    index: shards.ShardIndex

    def shard_url(self, digest: bytes) -> str:
        base = urllib.parse.urljoin(self.url, self.index.shards_base_url or "./shards/")
        return urllib.parse.urljoin(base if base.endswith("/") else base + "/", digest.hex() + shards.SUFFIX)


def _fetch_index(fetcher: Fetcher, channel: Channel, subdir: str) -> _Index | None:
    url = channel.subdir_url(subdir) + shards.INDEX
    try:
        raw = fetcher.get_bytes(url, shards.MAX_INDEX_BYTES)
    except NotFound:
        return None
    found = _Index(url, raw, shards.decode_index(raw, redact(url), UpstreamError))
    check_link(url, found.shard_url(b"\0" * 32), "info.shards_base_url")  # where shards come from obeys the rules base_url does
    return found


def _fetch_shard(fetcher: Fetcher, where: _Index, name: str) -> tuple[shards.Shard, int]:
    digest = where.index.shards[name]
    url = where.shard_url(digest)
    data = fetcher.get_bytes(url, shards.MAX_SHARD_BYTES)
    if hashlib.sha256(data).digest() != digest:
        raise UpstreamError(
            f"{redact(url)}: expected the shard of {name!r} to hash to its name {digest.hex()}, found "
            f"{hashlib.sha256(data).hexdigest()}; the upstream serves bad bytes (set upstream_shards: never to read repodata.json)"
        )
    return shards.decode_shard(data, redact(url), UpstreamError), len(data)


@dataclass
class ShardFetch:
    """What fetching by name cost: requests and bytes (for the log and the benchmark)."""

    requests: int = 0
    bytes: int = 0
    names: int = 0


def fetch_channel(
    fetcher: Fetcher, channel: Channel, subdirs: list[str], filters: Filters, workers: int = 8, stats: ShardFetch | None = None
) -> dict[str, FetchedRepodata] | None:
    """The records of the names the filters need, from the upstream's shards; None: read ``repodata.json`` instead."""
    roots = wanted_names(filters)
    if roots is None:
        return None
    indexes: dict[str, _Index] = {}
    stats = stats if stats is not None else ShardFetch()
    for subdir in subdirs:
        try:
            found = _fetch_index(fetcher, channel, subdir)
        except AirgapError as exc:
            log.warning("%s; reading repodata.json instead", exc)
            return None
        if found is None:
            return None  # not sharded (in this subdir): the whole channel reads repodata.json
        indexes[subdir] = found
        stats.requests += 1
        stats.bytes += len(found.raw)
    docs: dict[str, dict[str, Any]] = {
        s: {"info": {"subdir": s}, "packages": {}, "packages.conda": {}, "removed": [], "repodata_version": 1} for s in subdirs
    }
    seen: set[str] = set()
    todo = set(roots)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        while todo:
            batch = sorted(todo - seen)
            seen.update(batch)
            jobs = [(s, n) for n in batch for s in subdirs if n in indexes[s].index.shards]
            found_records: list[Mapping[str, Any]] = []
            for (subdir, _name), (shard, size) in zip(
                jobs, pool.map(lambda j: _fetch_shard(fetcher, indexes[j[0]], j[1]), jobs), strict=True
            ):
                stats.requests += 1
                stats.bytes += size
                docs[subdir]["packages"].update(shard.packages)
                docs[subdir]["packages.conda"].update(shard.packages_conda)
                docs[subdir]["removed"].extend(shard.removed)
                found_records.extend(r for _, r in shard.records())
            todo = (dependency_names(found_records) - seen) if filters.with_dependencies else set()
    stats.names = len(seen)
    fetched = timestamp()
    out: dict[str, FetchedRepodata] = {}
    for subdir, where in indexes.items():
        doc = docs[subdir]
        if where.index.base_url:  # CEP-16: the packages' folder, relative to the shard index
            doc["info"]["base_url"] = where.index.base_url
        rd = from_document(doc, subdir, redact(where.url))
        packages_base(where.url, rd, where.url)  # a base_url that may not be followed fails here, before any download
        out[subdir] = FetchedRepodata(channel, subdir, where.url, hashlib.sha256(where.raw).hexdigest(), len(where.raw), fetched, rd)
    log.info(
        "%s: %d names fetched from shards in %d requests (%d bytes) instead of repodata.json",
        redact(channel.url),
        len(seen),
        stats.requests,
        stats.bytes,
    )
    return out


def fetch_upstream(config: Any, filters: Filters, fetcher: Fetcher, channel: Channel, subdirs: list[str]) -> dict[str, FetchedRepodata]:
    """One channel's records for the plan: from its shards when that is enough (:func:`fetch_channel`), else its repodata.json."""
    if config.upstream_shards == "auto" and not config.environments:
        got = fetch_channel(fetcher, channel, subdirs, filters, config.workers)
        if got is not None:
            return got
    return upstream.fetch_channel(fetcher, channel, subdirs, config.max_repodata_size)


def check_upstream(config: Any, fetcher: Fetcher, fetched: Mapping[str, FetchedRepodata], selections: Mapping[str, Selection]) -> None:
    """:func:`warn_disagreements` unless ``upstream_shards: never``."""
    if config.upstream_shards == "auto":
        warn_disagreements(fetcher, fetched, selections, config.workers)


def warn_disagreements(
    fetcher: Fetcher, fetched: Mapping[str, FetchedRepodata], selections: Mapping[str, Selection], workers: int = 8
) -> list[str]:
    """Compare the upstream's shards of (up to :data:`CHECK_NAMES`) selected names with its ``repodata.json``; one warning per subdir."""
    warnings = []
    for subdir, fr in sorted(fetched.items()):
        if fr.url.endswith(shards.INDEX) or subdir not in selections:
            continue  # read from shards: nothing to compare with
        try:
            where = _fetch_index(fetcher, fr.channel, subdir)
        except AirgapError as exc:
            warnings.append(f"{exc} (the upstream's shards cannot be checked against its repodata.json)")
            continue
        if where is None:
            continue
        by_name: dict[str, dict[str, dict[str, Any]]] = {}
        for filename in selections[subdir].selected:
            record = fr.repodata.get(filename)
            if record is not None:
                by_name.setdefault(str(record.get("name")), {})[filename] = shards.comparable(record)
        names = sorted(by_name)
        names = names[:: max(1, len(names) // CHECK_NAMES)][:CHECK_NAMES]  # spread over the alphabet
        differ: list[str] = []
        missing = [n for n in names if n not in where.index.shards]
        present = [n for n in names if n in where.index.shards]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            try:
                for name, (shard, _size) in zip(present, pool.map(lambda n, at=where: _fetch_shard(fetcher, at, n), present), strict=True):
                    held = dict(shard.records())
                    for filename, record in by_name[name].items():
                        if held.get(filename) != record:
                            differ.append(f"{name}: {filename} {'differs' if filename in held else 'is not in its shard'}")
                            break
            except AirgapError as exc:
                differ.append(str(exc))
        problems = [f"{n}: no shard" for n in missing] + differ
        if problems:
            warnings.append(
                f"{redact(fr.channel.url)}{subdir}: the upstream's shards disagree with its repodata.json for {len(problems)} of "
                f"{len(names)} names checked (first: {problems[0]}); sharding clients of the upstream see another channel "
                f"(conda/infrastructure#1326); airgap mirrors repodata.json and writes its own shards from it"
            )
    for line in warnings:
        log.warning("%s", line)
    return warnings
