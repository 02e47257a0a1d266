"""Several archive channels published into one destination channel: which file wins.

Pure. The rule: when two channels merged into one destination channel (``dest_channel``) carry
the same file name in the same subdir, the channel listed first in ``channels`` (the order of
the manifest) wins: its record is published and its file placed; the other channel's record
and file are left out ("shadowed"). Different bytes under one name is a collision: each one is
reported, naming both sources. Export records the outcome in the manifest (``shadowed``) when
it knows the mapping; import and the receipt apply the same function, so they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .manifest import ChannelEntry


@dataclass(frozen=True)
class Collision:
    dest: str
    subdir: str
    filename: str
    kept: str  # archive channel whose file is published
    kept_sha256: str
    shadowed: str  # archive channel whose file is left out
    shadowed_sha256: str

    def message(self) -> str:
        return (
            f"{self.dest}/{self.subdir}/{self.filename}: channels {self.kept!r} and {self.shadowed!r} both carry it with "
            f"different bytes ({self.kept_sha256[:12]} and {self.shadowed_sha256[:12]}); keeping {self.kept!r}'s, "
            f"the first in channels"
        )


Shadowed = dict[tuple[str, str], set[str]]  # (archive channel, subdir) -> file names left out


def shadowing(channels: Sequence[ChannelEntry], target: Callable[[str], str]) -> tuple[Shadowed, list[Collision]]:
    """For channels in order, mapped to destination channels by ``target``: what each loses to an earlier one.
    A subdir's entries name each file once (the manifest's rule; collect's come from dicts by file name), so where no
    two channels publish into one (destination channel, subdir), nothing is shadowed: no pass over every file (300,000).
    """
    places = [(target(ch.name), sub.subdir) for ch in channels for sub in ch.subdirs]
    if len(set(places)) == len(places):
        return {}, []
    claimed: dict[tuple[str, str, str], tuple[str, str]] = {}  # (dest, subdir, filename) -> (channel, sha256)
    shadowed: Shadowed = {}
    collisions: list[Collision] = []
    for ch in channels:
        dest = target(ch.name)
        for sub in ch.subdirs:
            for entry in (*sub.packages, *sub.present):
                key = (dest, sub.subdir, entry.filename)
                first = claimed.get(key)
                if first is None:
                    claimed[key] = (ch.name, entry.sha256)
                    continue
                shadowed.setdefault((ch.name, sub.subdir), set()).add(entry.filename)
                if first[1] != entry.sha256:
                    collisions.append(Collision(dest, sub.subdir, entry.filename, first[0], first[1], ch.name, entry.sha256))
    return shadowed, collisions
