"""Index formats: a subdir's records rendered into the files a conda client reads (DESIGN §5).

A format is a plug-in: it turns one :class:`~airgap.core.repodata.Repodata` into named files, in the
order they must be written (the file a client reads first comes last, so it never names a file
that is not there yet). The engine (:mod:`airgap.destinations.engine`) writes them, journaled,
whatever the store; a destination selects its formats by name (:func:`select`).

Formats:

* ``repodata`` (always): ``repodata.json`` then ``repodata.json.zst`` (the one most clients read
  goes last: :func:`airgap.destinations.base.index_files`), byte for byte what the directory and
  S3 backends write; a ``current_repodata.json`` left by another tool is removed
  so that it never disagrees.
* ``shards``: CEP-16 sharded repodata (:mod:`airgap.core.shards`): ``shards/<sha256>.msgpack.zst``
  first, then ``repodata_shards.msgpack.zst`` naming them; rendered from the same records as
  ``repodata.json`` (never by re-indexing package files, which would undo upstream's patches).
  Shards are content-addressed (:attr:`IndexFormat.immutable`): one already stored with the right
  bytes is not written again, and one no index names any more is left for clients holding an
  older index until ``airgap clean`` removes it after a grace period (:mod:`airgap.ops.shards_gc`).
* slot ``html``: the browsable ``index.html`` pages, today written by :mod:`airgap.ops.pages`
  outside the change; as a format they would be journaled with the index they describe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._safepath import release_views
from ..core import rawindex, shards
from ..core.repodata import Repodata
from ..core.repodata_stream import json_pieces
from ..errors import UsageError
from .base import BlobRef, index_files
from .streamed import read_back, write_index

if TYPE_CHECKING:
    from .store import LocalFiles, ObjectStore


class IndexFormat(Protocol):
    """Render a subdir's index into files. Pure: no I/O."""

    name: str
    #: every file name :meth:`render` may write, and :attr:`stale` names (the engine journals them before the change)
    names: tuple[str, ...]
    #: files another tool may have left that would disagree with the new index: removed after rendering
    stale: tuple[str, ...]
    #: a folder (relative to the subdir, ending in ``/``) of content-addressed files :meth:`render` may add
    #: besides :attr:`names`: named by their bytes, never replaced, removed only by a clean; None: none
    immutable: str | None

    def render(self, subdir: str, repodata: Repodata) -> list[tuple[str, bytes]]:
        """``[(file name, bytes)]`` in write order: the entry point a client reads first comes last."""
        ...


class RepodataJson:
    """``repodata.json`` and its zstd twin (what every conda client reads)."""

    name: str = "repodata"
    names: tuple[str, ...] = ("repodata.json", "repodata.json.zst")
    stale: tuple[str, ...] = ("current_repodata.json",)
    immutable: str | None = None

    def render(self, subdir: str, repodata: Repodata) -> list[tuple[str, bytes]]:
        return index_files(repodata.to_bytes())  # the same files, in the same order, as every other backend

    def render_files(self, subdir: str, repodata: Repodata, folder: Path | str, durable: bool | None = True) -> list[tuple[str, BlobRef]]:
        """:meth:`render`'s files (the same bytes), written to new files in ``folder`` a piece at a time (synced when
        ``durable``): never the whole index in memory (:mod:`airgap.destinations.streamed`)."""
        return write_index(json_pieces(repodata), folder, durable)


class Shards:
    """CEP-16 sharded repodata: the shards, then the shard index (what a sharding client reads first)."""

    name: str = "shards"
    names: tuple[str, ...] = (shards.INDEX,)
    stale: tuple[str, ...] = ()
    immutable: str | None = shards.SHARDS_DIR + "/"

    def render(self, subdir: str, repodata: Repodata) -> list[tuple[str, bytes]]:
        return self.render_changed(subdir, repodata, None, {})

    def render_changed(
        self,
        subdir: str,
        repodata: Repodata,
        changed: AbstractSet[str] | None,
        kept: Mapping[str, bytes],
        since: shards.Since | None = None,
    ) -> list[tuple[str, bytes]]:
        """:meth:`render`, with only the shards of ``changed`` names (and of names ``kept`` lacks): the others keep their
        hash from ``kept`` (:func:`airgap.core.shards.render_changed`; ``since``: without a pass over the subdir)."""
        out = shards.render_changed(subdir, _sections(repodata), changed, kept, since, every=release_views)  # pages packed: back
        return [(shards.shard_file(h), data) for h, data in sorted(out.shards.items())] + [(shards.INDEX, out.index)]

    def render_staged(self, subdir: str, repodata: Repodata, put: Callable[[str, bytes], object]) -> list[tuple[str, bytes]]:
        """:meth:`render`, each shard handed to ``put(file name, bytes)`` as it is rendered (none held: 28 MB at 300,000
        records); the shard index, which must come after them all, returned."""
        out = shards.render_changed(
            subdir, _sections(repodata), None, {}, every=release_views, emit=lambda h, b: put(shards.shard_file(h), b)
        )
        return [(shards.INDEX, out.index)]


def put_staged(
    fmt: IndexFormat,
    store: ObjectStore,
    local: LocalFiles,
    subdir: str,
    repodata: Repodata,
    folder: Path | str,
    key_of: Callable[[str], str],
    published: dict[str, str],
) -> None:
    """``fmt``'s files of a new subdir, written into its staged folder as they are rendered (no shard held past its
    write), in any order, not fsynced: the change's flush makes the folder durable before it is placed (decision
    0023). Each file ``fmt`` names has its sha256 in ``published``; a content-addressed one is read back."""

    def put(name: str, data: bytes | BlobRef) -> None:
        key = key_of(name)
        if name in fmt.names:
            published[name] = data.sha256 if isinstance(data, BlobRef) else hashlib.sha256(data).hexdigest()
        if isinstance(data, BlobRef):
            local.take(key, data)
            return
        local.write_staged([(key, data)])
        if fmt.immutable:
            read_back(store, [(key, data)], str(store))

    files: Iterable[tuple[str, bytes | BlobRef]]
    if isinstance(fmt, Shards):
        files = fmt.render_staged(subdir, repodata, put)  # the shards put as rendered; their index after them
    elif isinstance(fmt, RepodataJson):
        files = fmt.render_files(subdir, repodata, folder, durable=None)  # its writeback started: the final syncfs finds less
    else:
        files = fmt.render(subdir, repodata)
    for name, data in files:
        put(name, data)


def _sections(repodata: Repodata) -> dict[str, Any]:
    """What shards are rendered from: the records of :meth:`Repodata.to_document` (opaque ones too), unsorted."""
    opaque = repodata.opaque
    return {  # records kept as bytes stay so (core/rawindex.py): only the shards rendered decode theirs
        "packages": rawindex.merged(opaque["packages"], repodata.packages) if opaque.get("packages") else repodata.packages,
        "packages.conda": rawindex.merged(opaque["packages.conda"], repodata.packages_conda)
        if opaque.get("packages.conda")
        else repodata.packages_conda,
        "removed": repodata.removed,
    }


#: every format airgap can write, by name; "html" goes here when it is built
FORMATS: dict[str, IndexFormat] = {"repodata": RepodataJson(), "shards": Shards()}
PLANNED = ("html",)
#: what a destination writes unless its site says otherwise (``index_formats``): shards for
#: sharding clients over http(s)/s3, repodata.json for every client (file:// ones read only that)
DEFAULT = ("shards", "repodata")


def from_site(site: Mapping[str, Any], default: tuple[str, ...] = DEFAULT) -> tuple[IndexFormat, ...]:
    """The formats a site's ``index_formats`` names (a list of format names; absent: ``default``)."""
    chosen = site.get("index_formats", default)
    if isinstance(chosen, str) or not isinstance(chosen, list | tuple) or not all(isinstance(n, str) for n in chosen):
        raise UsageError(f"sites: expected index_formats to be a list of format names ({', '.join(sorted(FORMATS))}), found {chosen!r}")
    return select(tuple(chosen))


def select(names: tuple[str, ...] | list[str] = DEFAULT) -> tuple[IndexFormat, ...]:
    """The formats a destination writes, in write order, ``repodata`` always included and always last.

    Last, because ``repodata.json`` is what every client reads first: a newer format's files
    are in place before it names the packages.
    """
    chosen: list[IndexFormat] = []
    for name in names:
        if name in PLANNED:
            raise UsageError(f"index_formats: {name!r} is planned, not built yet; expected one of {', '.join(sorted(FORMATS))}")
        if name not in FORMATS:
            raise UsageError(f"index_formats: expected one of {', '.join(sorted(FORMATS))}, found {name!r}")
        if FORMATS[name] not in chosen:
            chosen.append(FORMATS[name])
    chosen = [f for f in chosen if f.name != "repodata"] + [FORMATS["repodata"]]
    return tuple(chosen)
