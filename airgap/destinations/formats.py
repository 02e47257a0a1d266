"""Index formats: a subdir's records rendered into the files a conda client reads (DESIGN §5).

A format is a plug-in: it turns one :class:`~airgap.repodata.Repodata` into named files, in the
order they must be written (the file a client reads first comes last, so it never names a file
that is not there yet). The engine (:mod:`airgap.destinations.engine`) writes them, journaled,
whatever the store; a destination selects its formats by name (:func:`select`).

Formats:

* ``repodata`` (always): ``repodata.json`` then ``repodata.json.zst`` (the one most clients read
  goes last: :func:`airgap.destinations.base.index_files`), byte for byte what the directory and
  S3 backends write; a ``current_repodata.json`` left by another tool is removed
  so that it never disagrees.
* slot ``shards``: CEP-16 sharded repodata (``repodata_shards.msgpack.zst`` and
  ``shards/<sha256>.msgpack.zst``); render the shards first, then the shard index. Not yet built.
* slot ``html``: the browsable ``index.html`` pages, today written by :mod:`airgap.ops.pages`
  outside the change; as a format they would be journaled with the index they describe.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import UsageError
from ..repodata import Repodata
from .base import index_files


class IndexFormat(Protocol):
    """Render a subdir's index into files. Pure: no I/O."""

    name: str
    #: every file name :meth:`render` may write, and :attr:`stale` names (the engine journals them before the change)
    names: tuple[str, ...]
    #: files another tool may have left that would disagree with the new index: removed after rendering
    stale: tuple[str, ...]

    def render(self, subdir: str, repodata: Repodata) -> list[tuple[str, bytes]]:
        """``[(file name, bytes)]`` in write order: the entry point a client reads first comes last."""
        ...


class RepodataJson:
    """``repodata.json`` and its zstd twin (what every conda client reads)."""

    name: str = "repodata"
    names: tuple[str, ...] = ("repodata.json", "repodata.json.zst")
    stale: tuple[str, ...] = ("current_repodata.json",)

    def render(self, subdir: str, repodata: Repodata) -> list[tuple[str, bytes]]:
        return index_files(repodata.to_bytes())  # the same files, in the same order, as every other backend


#: every format airgap can write, by name; "shards" (CEP-16) and "html" go here when they are built
FORMATS: dict[str, IndexFormat] = {"repodata": RepodataJson()}
PLANNED = ("shards", "html")
DEFAULT = ("repodata",)


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
