"""The blobs an import places, and where: ``{sha256: (place, ...)}`` held as one small dict per subdir.

A full import of a conda-forge-sized subdir places 300,000 files. Held as ``{sha: ((channel, subdir,
filename),)}``, every file cost a dict slot, a 3-tuple and a 1-tuple around it: 39 MB, held from the plan
through the split of the archive's index (the full import's peak, docs/performance.md, twenty-first session).
:class:`Needed` keeps each blob's first place as ``{(channel, subdir): {sha: filename}}`` (the manifest's
strings, nothing new per file) and any further place of the same blob (a file in two channels, an installer
that is also a package) beside it; a place's tuple is made when it is asked for. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import cast

Place = tuple[str, str, str]  # (destination channel, subdir, filename); installers: (dir, "", filename)


class Needed(Mapping[str, tuple[Place, ...]]):
    """``{sha256: the places of that blob, first one first}``; built by :meth:`add`, read as a mapping."""

    __slots__ = ("_first", "_more", "_last")

    def __init__(self) -> None:
        self._first: dict[tuple[str, str], dict[str, str]] = {}  # (channel, subdir) -> {sha: filename}: first places
        self._more: dict[str, tuple[Place, ...]] = {}  # sha -> its places after the first (rare)
        self._last: tuple[tuple[str, str], dict[str, str]] | None = None  # the subdir the last lookup found

    def add(self, sha256: str, place: Place) -> None:
        """``place`` is one more place of the blob ``sha256`` (after those added before)."""
        if sha256 in self:
            self._more[sha256] = (*self._more.get(sha256, ()), place)
            return
        self._first.setdefault((place[0], place[1]), {})[sha256] = place[2]

    def add_all(self, channel: str, subdir: str, shas: list[str], names: list[str]) -> None:
        """:meth:`add` of each ``(sha, (channel, subdir, name))``, in order: at C speed where the subdir has no place yet
        and none of the blobs is placed already (a new subdir's files: 300,000), else one by one."""
        new = dict(zip(shas, names, strict=True))
        key = (channel, subdir)
        if len(new) == len(shas) and key not in self._first and all(map(new.keys().isdisjoint, self._first.values())):
            self._first[key] = new
            return
        for sha, name in zip(shas, names, strict=True):
            self.add(sha, (channel, subdir, name))

    def _find(self, sha256: str) -> tuple[tuple[str, str], str] | None:
        """The subdir holding the blob's first place and its file name: the last subdir found is asked first (blobs
        stream in manifest order, a subdir after another), then each in turn."""
        last = self._last
        if last is not None and (name := last[1].get(sha256)) is not None:
            return last[0], name
        for key, names in self._first.items():
            name = names.get(sha256)
            if name is not None:
                self._last = key, names
                return key, name
        return None

    def __getitem__(self, sha256: str) -> tuple[Place, ...]:
        found = self._find(sha256)
        if found is None:
            raise KeyError(sha256)
        (channel, subdir), name = found
        return ((channel, subdir, name), *self._more.get(sha256, ()))

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and self._find(sha256) is not None

    def __iter__(self) -> Iterator[str]:
        for names in list(self._first.values()):
            yield from names

    def __len__(self) -> int:
        return sum(map(len, self._first.values()))

    def places(self) -> Iterator[tuple[str, Place]]:
        """Every ``(sha256, place)``: each blob's places together, in the order the blobs were added by subdir."""
        more = self._more
        for (channel, subdir), names in list(self._first.items()):
            for sha, name in names.items():
                yield sha, (channel, subdir, name)
                if sha in more:
                    yield from ((sha, place) for place in more[sha])

    def only_places(self, shas: list[str], prefix: Callable[[tuple[str, str]], str | None]) -> list[str] | None:
        """``prefix((channel, subdir)) + file name`` for each of ``shas`` when each has one place, in a subdir ``prefix``
        names (None: it names none); else None. For a frame of a full import's blobs (sorted by sha256, so of every
        subdir at once): a pass at C speed per subdir and a short loop, not a lookup per blob."""
        if not shas or not self._more.keys().isdisjoint(shas):
            return None
        out: list[str] = [""] * len(shas)
        left = list(range(len(shas)))  # positions not found yet
        for key, names in self._first.items():
            got = list(map(names.get, map(shas.__getitem__, left)))
            if got.count(None) == len(got):
                continue
            if (start := prefix(key)) is None:
                return None
            if len(left) == len(shas) and None not in got:  # the whole frame in this subdir: joined at C speed
                return list(map(start.__add__, cast("list[str]", got)))
            still = []
            for i, name in zip(left, got, strict=True):
                if name is None:
                    still.append(i)
                else:
                    out[i] = start + name
            if not still:
                return out
            left = still
        return None

    def uses(self) -> dict[str, int]:
        """``{sha256: how many places}`` of the blobs placed more than once."""
        return {sha: 1 + len(places) for sha, places in self._more.items()}

    def clear(self) -> None:
        self._first.clear()
        self._more.clear()
        self._last = None
