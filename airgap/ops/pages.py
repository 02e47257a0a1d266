"""Write the browsable pages of a destination's channels (after a publish).

Cosmetic: the pages are written outside the import's transaction, and a failure to write them
is logged, never fatal — the channel itself is already consistent. Destinations that hold
conda packages only (quetz) keep no pages.

Pages cost what changed, not what the channel holds: a subdir's ``index.html`` lists package
names (one row each), each name has its page under ``names/``, and an import rewrites the pages
of the names whose files it placed or removed (``touched``), the index pages of the subdirs it
published, and the channel's page (which lists platforms only, so no other subdir is read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import msgspec

from .._safepath import release_views
from ..core import rawindex
from ..core.repodata import Repodata
from ..destinations.base import Change, Destination
from ..errors import AirgapError
from ..site.html import (
    Row,
    channel_page,
    gone_page,
    group_by_name,
    letter_of,
    letter_page_file,
    lettered,
    name_page_file,
    name_pages,
    rows_of,
    subdir_pages,
)

log = logging.getLogger(__name__)

_BATCH, _BATCH_BYTES = 1000, 16 << 20  # name pages written in one put_pages call


def write_pages(
    dest: Destination,
    channels: Iterable[str],
    origin: Mapping[str, Any] | None = None,
    known: Mapping[tuple[str, str], Repodata] | None = None,
    touched: Mapping[tuple[str, str], Collection[str]] | None = None,
    rows: Mapping[tuple[str, str], Mapping[str, Row]] | None = None,
) -> None:
    """``known``: repodata the caller just published (only those subdirs' pages are rewritten; without
    it every subdir that ``touched`` names is read and rewritten, or every subdir). ``touched``:
    ``{(channel, subdir): file names}`` placed or removed; without it every name's page is rewritten.
    ``rows``: the names table of a subdir of ``known`` (:mod:`airgap.site.names_file`); without it, made here."""
    if not dest.capabilities.holds_other_files:
        return
    inventory = dest.inventory()
    for channel in sorted(set(channels)):
        try:
            subdirs: dict[str, Repodata | None] = {}
            for subdir in inventory.get(channel, []):
                if known is not None:
                    subdirs[subdir] = known.get((channel, subdir))
                elif touched is None or (channel, subdir) in touched:  # a subdir nothing touched keeps its pages
                    subdirs[subdir] = dest.read_repodata(channel, subdir)
                else:
                    subdirs[subdir] = None
            for subdir, rd in subdirs.items():
                if rd is not None:
                    table = (rows or {}).get((channel, subdir))
                    _write_subdir(dest, channel, rd, origin, None if touched is None else touched.get((channel, subdir), ()), table)
            dest.put_page(channel, None, channel_page(channel, subdirs, origin).encode("utf-8"))
        except (OSError, AirgapError) as exc:
            log.warning("%s: could not write the index.html pages: %s", channel, exc)


def _write_subdir(
    dest: Destination,
    channel: str,
    rd: Repodata,
    origin: Mapping[str, Any] | None,
    files: Collection[str] | None,
    rows: Mapping[str, Row] | None,
) -> None:
    """The subdir's index page, and the pages of the names of ``files`` (placed or removed; None: of every name).
    ``rows``: its names table (None: made from every record)."""
    groups = group_by_name(rd) if rows is None else None
    table = rows if rows is not None else rows_of(groups or {})
    if files is not None and table and not dest.has_page(channel, rd.subdir, name_page_file(min(table))):
        files = None  # pages never written here in this layout (a new subdir, an older airgap): write them all
    if files is None:
        names = set(table)
    else:  # the file name's, and the record's own name where it differs (looked up per file, not over the subdir)
        names = {_name_of(fn) for fn in files} | {str(rec.get("name")) for fn in files if (rec := rd.get(fn)) is not None}
    _name_pages(lambda batch: dest.put_pages(channel, rd.subdir, batch), channel, rd, names, groups, table)
    letters = None if files is None else _letters_to_write(dest, channel, rd.subdir, table, names)
    for file, page in reversed(subdir_pages(channel, rd.subdir, table, len(rd), origin, letters)):  # index.html last: it links the others
        dest.put_page(channel, rd.subdir, page.encode("utf-8"), file)


def write_ahead(change: Change, channel: str, rd: Repodata, table: Mapping[str, Row]) -> bool:
    """A new subdir's name and letter pages, every one but ``index.html`` (which names the import), written into its
    staged folder while another process stages its packages (decision 0023): placed with it. False: it is not staged
    (they are written after the commit, as ever)."""
    if not change.put_ahead(channel, rd.subdir, []):
        return False
    _name_pages(lambda batch: change.put_ahead(channel, rd.subdir, batch), channel, rd, set(table), None, table)
    letters = [(file, page.encode("utf-8")) for file, page in subdir_pages(channel, rd.subdir, table, len(rd)) if file != "index.html"]
    change.put_ahead(channel, rd.subdir, letters)
    return True


def _name_pages(
    put: Callable[[list[tuple[str, bytes]]], object],
    channel: str,
    rd: Repodata,
    names: set[str],
    groups: Mapping[str, list[tuple[str, Any]]] | None,
    table: Mapping[str, Row],
) -> None:
    """The pages of ``names``, handed to ``put`` a bounded batch at a time (written together: one flush each)."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    for name in sorted(names):
        items = _items(rd, name, groups, table)  # whole records: a name page shows licenses
        pages = name_pages(channel, rd.subdir, name, items) if items else [(name_page_file(name), gone_page(channel, rd.subdir, name))]
        for file, page in pages:
            batch.append((file, page.encode("utf-8")))
            size += len(batch[-1][1])
        if len(batch) >= _BATCH or size >= _BATCH_BYTES:
            put(batch)
            batch, size = [], 0
            release_views()  # the records shown so far: their mapped pages back to the page cache (decision 0018)
    put(batch)


def _items(rd: Repodata, name: str, groups: Mapping[str, list[tuple[str, Any]]] | None, table: Mapping[str, Row]) -> list[tuple[str, Any]]:
    """``[(file name, record)]`` of a name's files, from its group or its row."""
    if groups is not None:
        return [(fn, _peek(rd, fn) or rec) for fn, rec in groups.get(name, [])]
    r = table.get(name)
    return [(fn, rec) for fn in r.files.split("\n") if (rec := _peek(rd, fn)) is not None] if r is not None else []


class _Shown(msgspec.Struct):
    """What a name page shows of a record (:func:`~airgap.site.html.name_pages` asks ``get``), the rest skipped: a
    record decoded whole as a dict, for four of its fields, was 0.5 s of a full import's 300,000 (this: 0.15)."""

    version: Any = None
    build: Any = None
    size: Any = None
    license: Any = None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


_shown = msgspec.json.Decoder(_Shown).decode


def _peek(rd: Repodata, filename: str) -> Any:
    """A record for its page alone: one kept as bytes is decoded and dropped (a full import's are not all held decoded)."""
    return rawindex.peek(rd.packages_conda if filename.endswith(".conda") else rd.packages, filename, _shown)


def _letters_to_write(dest: Destination, channel: str, subdir: str, groups: Mapping[str, Any], names: set[str]) -> set[str] | None:
    """The first letters whose pages list a changed name (a subdir past SUBDIR_PAGE_NAMES names); None: every letter,
    when some other letter's page is not there yet (the subdir has just grown past that many names)."""
    if not lettered(groups):
        return None
    letters = {letter_of(n) for n in names}
    others = {letter_of(n) for n in groups} - letters
    return letters if all(dest.has_page(channel, subdir, letter_page_file(b)) for b in others) else None


def _name_of(filename: str) -> str:
    """The package name a conda file name carries (``name-version-build.ext``)."""
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    return stem.rsplit("-", 2)[0]
