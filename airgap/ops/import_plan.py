"""What an import will do, decided under the lock before any blob is streamed.

Reads the destination (its receipt, file listings, current indexes) and the verified manifest;
changes nothing. The steps: which package files the destination lacks
(:func:`needed_packages`), which installers (:func:`needed_installers`), whether a delta's base
is there (:func:`check_base`), and what the archive removes. The result is an
:class:`ImportPlan` that :mod:`.publish` carries out.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter

from .._safepath import release_views
from ..core import published
from ..core.manifest import DELTA_FORMAT, Manifest
from ..core.merging import Shadowed
from ..core.placement import import_problem
from ..core.rawindex import trusted_repodata
from ..core.receipt import Receipt
from ..core.repodata import Repodata
from ..destinations.base import Destination, parse_index
from ..errors import DestinationError
from ..site import names_file
from ..site.html import Row
from .delta_hint import empty_base_message, missing_base_message
from .needed import Needed, Place
from .vetting import vetted_index

log = logging.getLogger(__name__)


@dataclass
class ImportPlan:
    """What the import decided before streaming: the receipt, the files to place and to remove, what to leave out."""

    receipt: Receipt
    needed: Needed  # sha -> placements (held per subdir: a tuple per file was 39 MB at 300,000 files)
    removals: list[Place]
    skipped: Shadowed  # (archive channel, subdir) -> files left out (shadowed, or kept back by a downgrade)
    downgrade: bool
    target_channel: Callable[[str], str]
    index: Callable[[str, str], Repodata | None]  # a destination subdir's current index (read once)
    #: the subdir's current index is the one airgap published last (core/published.py): its records are trusted
    trusted: Callable[[str, str], bool] = field(default=lambda channel, subdir: False)
    #: the names table kept with that index (airgap/site/names_file.py), or None
    rows: Callable[[str, str], dict[str, Row] | None] = field(default=lambda channel, subdir: None)


Early = dict[tuple[str, str], tuple[bytes | mmap.mmap | None, "Future[str] | None"]]  # (channel, subdir) -> repodata.json, its sha256


def read_early(dest: Destination, subdirs: Iterable[tuple[str, str]], recheck: bool) -> Early:
    """Each subdir's repodata.json mapped, and hashed on a thread started before the receipt is parsed: the
    hash leaves Python's lock to the receipt's parse and the index's own (their bytes are only trusted once the
    hash is known: :meth:`DestinationView._own_index`). A directory destination only (its files are mapped,
    never written in place: decision 0013; other stores' clients are not shared across threads)."""
    if recheck or dest.kind != "directory" or not dest.capabilities.keeps_repodata:
        return {}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-index")
    try:
        early: Early = {}
        for key in sorted(set(subdirs)):
            raw = dest.view_index_file(*key, "repodata.json")  # a directory's maps (the page cache's pages, no copy)
            early[key] = (raw, pool.submit(_sha256, raw) if raw is not None else None)
        return early
    finally:
        pool.shutdown(wait=False)  # the thread ends when the hashes are done


def _sha256(raw: bytes | mmap.mmap) -> str:
    return hashlib.sha256(raw).hexdigest()


class DestinationView:
    """What the destination holds, each listing and index read once (under the lock).

    A subdir is listed at most once per import (plan, vetting and the engine's change share it:
    :meth:`~airgap.destinations.engine.StoreDestination.listing`), and not at all when its index is
    the one airgap published last (:mod:`airgap.core.published`) and the store can answer for the
    files the archive names one by one (:meth:`~airgap.destinations.base.Destination.sizes_of`)."""

    def __init__(self, dest: Destination, receipt: Receipt, recheck: bool, early: Early | None = None) -> None:
        self.dest, self.receipt, self.recheck = dest, receipt, recheck
        self._early = early or {}
        self._listing: dict[tuple[str, str], dict[str, int]] = {}
        self._current: dict[tuple[str, str], Repodata | None] = {}
        self._trusted: set[tuple[str, str]] = set()
        self._rows: dict[tuple[str, str], dict[str, Row]] = {}

    def listing(self, tc: str, subdir: str) -> dict[str, int]:
        """Every file of the subdir with its size (listed once)."""
        key = (tc, subdir)
        if key not in self._listing:
            self._listing[key] = self.dest.files(tc, subdir)
        return self._listing[key]

    def held_size(self, tc: str, subdir: str, filename: str) -> int | None:
        if (tc, subdir) not in self._listing and (sized := self.dest.sizes_of(tc, subdir, [filename])) is not None:
            return sized.get(filename)
        return self.listing(tc, subdir).get(filename)

    def index(self, tc: str, subdir: str) -> Repodata | None:
        if (tc, subdir) not in self._current:
            current = self._own_index(tc, subdir)
            if current is not None:
                self._trusted.add((tc, subdir))
            else:  # records someone else added are checked against the store, not merged blindly (ops/vetting.py)
                current = self.dest.read_repodata(tc, subdir)
                if current is not None and self.dest.capabilities.keeps_repodata:
                    current = vetted_index(self.dest, tc, subdir, current, self.receipt, self.listing(tc, subdir))
            self._current[(tc, subdir)] = current
        return self._current[(tc, subdir)]

    def trusted(self, tc: str, subdir: str) -> bool:
        """The subdir's current index is, byte for byte, the one airgap published last (not vetted: see core/published.py)."""
        self.index(tc, subdir)
        return (tc, subdir) in self._trusted

    def rows(self, tc: str, subdir: str) -> dict[str, Row] | None:
        """The names table kept with the subdir's current index (:mod:`airgap.site.names_file`), if trusted and there."""
        self.index(tc, subdir)
        return self._rows.get((tc, subdir))

    def _own_index(self, tc: str, subdir: str) -> Repodata | None:
        recorded = published.recorded(self.receipt, tc, subdir)
        expected = recorded.get("repodata.json")
        if expected is None or self.recheck or not self.dest.capabilities.keeps_repodata:  # sync --reset trusts no record
            return None
        early = self._early.pop((tc, subdir), None)
        raw, hashing = early if early is not None else (self.dest.view_index_file(tc, subdir, "repodata.json"), None)
        if raw is None or (hashing is None and _sha256(raw) != expected):
            return None
        where = f"{self.dest}/{tc}/{subdir}/repodata.json"
        # airgap's own output: records kept as bytes, only those an import reads are decoded (decision 0010); read
        # while the thread hashes the same mapped bytes, and used only if they are the ones published
        rows = self._kept_rows(tc, subdir, recorded.get(names_file.KEY), expected)
        trusted = trusted_repodata(raw, subdir, where, plain=rows is not None)
        if hashing is not None and hashing.result() != expected:
            return None
        release_views()  # parsed and hashed: its pages leave the resident set (the new index copies from them later)
        if rows is not None:
            self._rows[(tc, subdir)] = rows
        return trusted or parse_index(bytes(raw), subdir, where)

    def _kept_rows(self, tc: str, subdir: str, sha: str | None, index_sha256: str) -> dict[str, Row] | None:
        data = self.dest.view_document(names_file.document(tc, subdir)) if sha is not None else None
        return names_file.read(data, index_sha256) if data is not None and _sha256(data) == sha else None

    def holds(self, tc: str, subdir: str, filename: str, sha256: str, size: int) -> bool:
        if self.recheck:  # the bytes as stored (quetz: downloaded), not what an index or the receipt says
            known = self.dest.stored_sha256(tc, subdir, filename)
        else:
            rec = self.receipt.held(tc, subdir, filename)
            known = rec.sha256 if rec is not None else None
        return known == sha256 and self.held_size(tc, subdir, filename) == size


_SHA, _FILENAME = attrgetter("sha256"), attrgetter("filename")


def needed_packages(
    manifest: Manifest, view: DestinationView, target_channel: Callable[[str], str], skipped: Shadowed, downgrade: bool
) -> tuple[Needed, int]:
    """The package files the destination lacks (sha -> placements), and how many it holds already.

    A downgrade adds files only: a name the destination has (or lists) is left out, into ``skipped``."""
    needed = Needed()
    present = 0
    for ch in manifest.channels:
        tc = target_channel(ch.name)
        for sub in ch.subdirs:
            skip = skipped.setdefault((ch.name, sub.subdir), set())
            rd = view.index(tc, sub.subdir) if downgrade else None
            if not (downgrade or skip or view.recheck or view.receipt.channels.get(tc, {}).get(sub.subdir)):  # holds nothing
                needed.add_all(tc, sub.subdir, list(map(_SHA, sub.packages)), list(map(_FILENAME, sub.packages)))
                continue
            for p in sub.packages:
                if p.filename in skip:
                    continue
                if view.holds(tc, sub.subdir, p.filename, p.sha256, p.size):
                    present += 1
                    continue
                if downgrade and (view.held_size(tc, sub.subdir, p.filename) is not None or (rd is not None and rd.get(p.filename))):
                    skip.add(p.filename)  # additions only: what the destination has under this name stays
                    continue
                needed.add(p.sha256, (tc, sub.subdir, p.filename))
            if downgrade:  # its base may be long gone: what it says is present is neither checked nor recorded
                skip.update(p.filename for p in sub.present)
    return needed, present


def needed_installers(manifest: Manifest, view: DestinationView, target_channel: Callable[[str], str], needed: Needed) -> int:
    """Installers go to DEST/<dir>/<filename>: placed like packages, with "" as the subdir (added to ``needed``).
    Returns how many the destination holds already; raises if one would collide with a channel."""
    dest = view.dest
    held_installers = view.receipt.installers
    installers = list(manifest.installers)
    if installers and not dest.capabilities.holds_other_files:
        log.warning(
            "%s: a %s destination holds conda packages only; the archive's %d installer(s) are not imported",
            dest,
            dest.kind,
            len(installers),
        )
        installers = []
    channel_names = {target_channel(ch.name) for ch in manifest.channels}
    misplaced = import_problem(
        channel_names, [(i.dir, i.filename) for i in installers], held_installers, dest.inventory() if installers else ()
    )
    if misplaced:
        raise DestinationError(f"{dest}: {misplaced}; nothing was changed")
    present = 0
    for ins in installers:
        rec = held_installers.get(ins.dir, {}).get(ins.filename)
        if rec and rec.sha256 == ins.sha256 and view.held_size(ins.dir, "", ins.filename) == ins.size:
            present += 1
            continue
        needed.add(ins.sha256, (ins.dir, "", ins.filename))
    return present


def check_base(
    manifest: Manifest, view: DestinationView, target_channel: Callable[[str], str], skipped: Shadowed, dest_channel: str | None
) -> int:
    """A delta builds on files the destination must already hold: check them before anything changes.
    Returns how many there are."""
    base_files = [
        (target_channel(ch.name), sub.subdir, p)
        for ch in manifest.channels
        for sub in ch.subdirs
        for p in sub.present
        if p.filename not in skipped[(ch.name, sub.subdir)]
    ]
    if manifest.format == DELTA_FORMAT:  # it lists the base's files of changed names only: the base must be there at all
        _check_base_channels(manifest, view.receipt, target_channel, dest_channel)
    lacking = [f"{tc}/{subdir}/{p.filename}" for tc, subdir, p in base_files if not view.holds(tc, subdir, p.filename, p.sha256, p.size)]
    if lacking:
        raise DestinationError(
            missing_base_message(
                base_files, lacking, view.receipt.to_json()["channels"], [ch.name for ch in manifest.channels], dest_channel
            )
        )
    return len(base_files)


def _check_base_channels(manifest: Manifest, receipt: Receipt, target_channel: Callable[[str], str], dest_channel: str | None) -> None:
    for ch in manifest.channels:
        base, tc = manifest.bases.get(ch.name), target_channel(ch.name)
        held = receipt.history_known(tc) or any(receipt.channels.get(tc, {}).values())  # a known history: airgap.core.rollback checks it
        if base is not None and base.after is not None and not held:
            newest = {c: (a.archive_id if (a := receipt.newest(c)) is not None else None) for c in receipt.applied}
            raise DestinationError(empty_base_message(base.after, tc, receipt.channels, newest, dest_channel))


def removals(manifest: Manifest, target_channel: Callable[[str], str], downgrade: bool) -> list[Place]:
    """The files the archive removes (none in a downgrade)."""
    if downgrade:
        return []
    return [(target_channel(ch.name), sub.subdir, fn) for ch in manifest.channels for sub in ch.subdirs for fn in sub.removals]
