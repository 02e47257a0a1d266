"""Channels published into one destination channel: the first listed wins a file name (airgap.core.merging)."""

from __future__ import annotations

from typing import Any

import pytest

from airgap.core.manifest import ChannelEntry, PackageEntry, RepodataBlob, SubdirEntry
from airgap.core.merging import shadowing


def _channel(name: str, files: dict[str, dict[str, str]], packages: Any = None) -> ChannelEntry:
    subs = tuple(
        SubdirEntry(
            subdir,
            RepodataBlob("0" * 64, 1, 1),
            packages if packages is not None else tuple(PackageEntry(f, sha, 1) for f, sha in fs.items()),
        )
        for subdir, fs in files.items()
    )
    return ChannelEntry(name, f"https://example.org/{name}", subs)


class _Untouchable(tuple[PackageEntry, ...]):
    def __iter__(self) -> Any:
        raise AssertionError("every file was looked at")


def test_the_first_channel_wins_a_file_name_and_different_bytes_are_a_collision() -> None:
    a = _channel("a", {"noarch": {"x-1-0.conda": "1" * 64, "y-1-0.conda": "2" * 64}, "linux-64": {"z-1-0.conda": "3" * 64}})
    b = _channel("b", {"noarch": {"x-1-0.conda": "1" * 64, "y-1-0.conda": "9" * 64, "w-1-0.conda": "4" * 64}})
    shadowed, collisions = shadowing([a, b], lambda name: "merged")
    assert shadowed == {("b", "noarch"): {"x-1-0.conda", "y-1-0.conda"}}
    assert [(c.filename, c.kept, c.shadowed) for c in collisions] == [("y-1-0.conda", "a", "b")]


@pytest.mark.parametrize("target", [lambda name: name, lambda name: "merged"], ids=["own channels", "one channel, other subdirs"])
def test_where_no_two_channels_share_a_subdir_no_file_is_looked_at(target: Any) -> None:
    """A subdir names each file once (the manifest's rule): channels that never meet in one subdir shadow nothing, and
    300,000 files are not walked to find that out."""
    a = _channel("a", {"noarch": {}}, packages=_Untouchable())
    b = _channel("b", {"linux-64": {}} if target("a") == target("b") else {"noarch": {}}, packages=_Untouchable())
    assert shadowing([a, b], target) == ({}, [])
