"""A subdir's held files when one archive channel brought all of them: the manifest's entries, read as held files.

An import into a subdir the receipt lists no file of (a first import, a new platform) records every file the
archive carries there. As one :class:`~.receipt_check.Held` per file in a dict that was 300,000 structs and
slots (~29 MB) held from the receipt's update until it is written, beside the manifest's entries that hold the
same name, sha256 and size. :class:`Brought` keeps the manifest's entries sorted by name and makes a file's
``Held`` when it is read; the receipt's section is encoded from them a chunk at a time
(:class:`~.held_bytes.Section`), the same bytes as from the dict. The first change (a second channel merged
into the subdir, a file forgotten) turns it into that dict. Pure.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableMapping
from operator import attrgetter

from .manifest import PackageEntry
from .receipt_check import Files, Held


class Brought(MutableMapping[str, Held]):
    """``{filename: Held(sha256, size, origin)}`` over ``entries`` (each file name once, as a manifest's subdir lists them)."""

    __slots__ = ("_entries", "_names", "_origin", "_files")

    def __init__(self, entries: Iterable[PackageEntry], origin: str) -> None:
        self._entries = sorted(entries, key=attrgetter("filename"))
        self._names = [e.filename for e in self._entries]
        self._origin = origin
        self._files: Files | None = None  # every file as a dict, once something changed one

    def _held(self, entry: PackageEntry) -> Held:
        return Held(entry.sha256, entry.size, self._origin)

    def _dict(self) -> Files:
        if self._files is None:
            files = self.sorted_chunk(0, len(self._names))
            self._entries, self._names, self._files = [], [], files
        return self._files

    @property
    def changed(self) -> bool:
        """Held as a dict now (:meth:`sorted_chunk` no longer answers)."""
        return self._files is not None

    def sorted_chunk(self, start: int, stop: int) -> dict[str, Held]:
        """The files from the ``start``-th to before the ``stop``-th in name order (while not :attr:`changed`)."""
        assert self._files is None, "a changed Brought is a dict: read it as one"
        return {e.filename: self._held(e) for e in self._entries[start:stop]}

    def __getitem__(self, filename: str) -> Held:
        if self._files is not None:
            return self._files[filename]
        at = bisect_left(self._names, filename)
        if at == len(self._names) or self._names[at] != filename:
            raise KeyError(filename)
        return self._held(self._entries[at])

    def __contains__(self, filename: object) -> bool:
        if self._files is not None:
            return filename in self._files
        if not isinstance(filename, str):
            return False
        at = bisect_left(self._names, filename)
        return at < len(self._names) and self._names[at] == filename

    def __setitem__(self, filename: str, held: Held) -> None:
        self._dict()[filename] = held

    def __delitem__(self, filename: str) -> None:
        del self._dict()[filename]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files if self._files is not None else self._names)  # a change replaces the list, never edits it

    def __len__(self) -> int:
        return len(self._files) if self._files is not None else len(self._names)
