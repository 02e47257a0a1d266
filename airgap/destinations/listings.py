"""What a store destination remembers under its lock, so that an import reads each folder once.

:class:`Listings` keeps, while the lock is held and until the next write, every folder listed
(``{name: size}``) and the sizes asked key by key of a :class:`~airgap.destinations.store.KeySizes`
store: an import's plan, its vetting and its change share one listing per subdir, or none when
the subdir's index is airgap's own (:mod:`airgap.core.published`) and the store can answer for the
archive's files one by one. :func:`kept_shards` is what a change may keep of the current CEP-16
shards (docs/decisions/0009-delta-import-cost.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from ..core import shards
from ..core.published import names_document
from ..errors import AirgapError
from .base import IndexChange
from .journal import STATE
from .store import KeySizes, LocalFiles, ObjectStore

if TYPE_CHECKING:
    from .engine import StoreDestination


class Listings:
    """Folder listings and key sizes read under the lock (see the module docstring)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._listed: dict[str, dict[str, int]] | None = None  # None: not remembering (no lock)
        self._sized: dict[str, dict[str, int | None]] = {}

    def remember_listings(self, on: bool) -> None:
        """Start (the lock is taken) or stop (released) remembering; either way forget what was read."""
        self._listed, self._sized = ({} if on else None), {}

    def listing(self, folder: str) -> dict[str, int]:
        """``{name: size}`` of the files directly in ``folder`` (a key, "" for the root); under the lock, listed once
        until the next write (do not change the dict returned)."""
        if self._listed is not None and folder in self._listed:
            return self._listed[folder]
        base = folder + "/" if folder else ""
        found = {key[len(base) :]: size for key, size in self.store.list_prefix(base) if "/" not in key[len(base) :]}
        if self._listed is not None:
            self._listed[folder] = found
        return found

    def names_in(self, folder: str) -> AbstractSet[str]:
        """The names of the files directly in ``folder``: its listing if read, else asked without sizes where the store can."""
        if self._listed is not None and folder in self._listed:
            return self._listed[folder].keys()
        if isinstance(self.store, LocalFiles):
            return self.store.names_in(folder)
        return self.listing(folder).keys()

    def sizes_in(self, folder: str, names: list[str]) -> dict[str, int] | None:
        """``{name: size}`` of those of ``names`` in ``folder`` (a key): from its listing if read, else asked of a
        :class:`KeySizes` store (None: cannot), the answers kept for the next question under the lock."""
        if self._listed is not None and folder in self._listed:
            listed = self._listed[folder]
            return {n: listed[n] for n in names if n in listed}
        if not isinstance(self.store, KeySizes):
            return None
        known = self._sized.get(folder, {}) if self._listed is not None else {}
        ask = [n for n in dict.fromkeys(names) if n not in known]
        if ask and len(known) + len(ask) > self.store.sizes_limit:
            return None  # asked about so many that one listing of the folder costs less
        got: dict[str, int | None] = {}
        if ask:
            base = folder + "/" if folder else ""
            answers = self.store.sizes([base + n for n in ask])
            got = {n: answers.get(base + n) for n in ask}
            if self._listed is not None:
                self._sized.setdefault(folder, {}).update(got)
        return {n: size for n in names if (size := got[n] if n in got else known.get(n)) is not None}

    def files_among(self, folder: str, keys: list[str]) -> set[str] | None:
        """Which of ``keys`` (each in ``folder``) are files, as :meth:`sizes_in` finds them, for a caller that keeps the
        answers itself (a change, under its own key strings): nothing remembered here, and the keys asked as they
        are. A full import asks about 300,000: no name split off, no key built again (~60 MB of strings and dicts)."""
        cut = len(folder) + 1 if folder else 0
        if self._listed is not None and folder in self._listed:
            listed = self._listed[folder]
            return {k for k in keys if k[cut:] in listed}
        if not isinstance(self.store, KeySizes):
            return None
        known = self._sized.get(folder, {}) if self._listed is not None else {}
        ask = [k for k in keys if k[cut:] not in known] if known else keys
        if ask and len(known) + len(ask) > self.store.sizes_limit:
            return None  # asked about so many that one listing of the folder costs less
        found = set(self.store.sizes(ask)) if ask else set()
        return found | {k for k in keys if known.get(k[cut:]) is not None} if known else found

    def forget_listings(self) -> None:
        """What was listed no longer holds (a write): the next question lists again."""
        if self._listed is not None:
            self._listed = {}
        self._sized = {}


def index_keys(dest: StoreDestination, channel: str, subdir: str) -> list[str]:
    """Every key a publish of ``channel/subdir``'s index may write: each format's files, and the names table kept
    with the index where the destination holds pages (:mod:`airgap.site.names_file`)."""
    keys = [dest.key(channel, subdir, name) for fmt in dest.formats for name in (*fmt.names, *fmt.stale)]
    if dest.capabilities.holds_other_files:
        keys.append(dest.key(STATE, names_document(channel, subdir)))
    return keys


def ask_keys(dest: StoreDestination, keys: Iterable[str], listed: Container[str], known: dict[str, bool]) -> None:
    """Note in ``known`` which of ``keys`` exist, asked of a :class:`KeySizes` store one folder at a time (one
    question for a folder's 30,000 package files, not one each); keys already known, in ``listed`` folders, in the
    state folder, or in a store that cannot answer key by key are left out (the caller lists their folder)."""
    by_folder: dict[str, list[str]] = {}  # folder -> its keys
    for key in keys:
        folder = key.rpartition("/")[0]
        if key not in known and folder not in listed and folder != STATE and not folder.startswith(STATE + "/"):
            by_folder.setdefault(folder, []).append(key)
    for folder, folder_keys in by_folder.items():
        found = dest.files_among(folder, folder_keys)  # noted in ``known``, not kept twice
        if found is not None:  # noted under the caller's own key strings, not new copies (300,000 at a full import)
            known.update((key, key in found) for key in folder_keys)


def kept_shards(
    dest: StoreDestination, channel: str, subdir: str, changed: IndexChange
) -> tuple[dict[str, bytes], shards.Since | None] | None:
    """Unchanged names' shard hashes from the current shard index, if it is the one airgap published last (its sha256 as
    recorded), keeping only those whose shard file is listed; None: render every shard.

    With them, what an incremental render needs (:class:`~airgap.core.shards.Since`) when the change says which files
    it touched and every unchanged name's shard is there: the changed names' current shards are read, not the subdir."""
    expected = changed.recorded.get(shards.INDEX)
    raw = dest.store.get(dest.key(channel, subdir, shards.INDEX)) if expected is not None else None
    if raw is None or hashlib.sha256(raw).hexdigest() != expected:
        return None
    where = f"{dest}/{channel}/{subdir}/{shards.INDEX}"
    try:
        index = shards.decode_index(raw, where)
    except AirgapError:
        return None
    folder = dest.key(channel, subdir, shards.SHARDS_DIR)
    listed = dest.names_in(folder)  # whether each is there; sizes not needed
    cut = len(shards.SHARDS_DIR) + 1
    kept = {
        name: digest for name, digest in index.shards.items() if name not in changed.names and shards.shard_file(digest)[cut:] in listed
    }
    if changed.files is None or len(kept) + len(changed.names & index.shards.keys()) < len(index.shards):
        return kept, None  # a shard gone missing: render from every record

    def shard_files(name: str) -> list[str] | None:
        digest = index.shards.get(name)
        if digest is None:
            return []
        data = dest.store.get(f"{folder}/{shards.shard_file(digest)[cut:]}")
        if data is None or hashlib.sha256(data).digest() != digest:
            return None
        try:
            shard = shards.decode_shard(data, f"{where}: shard of {name}")
        except AirgapError:
            return None
        return [*shard.packages, *shard.packages_conda]

    return kept, shards.Since(changed.files, shard_files, index.created_at)
