"""The SBOM's components in (channel, subdir, name, file name) order, whatever the names hold."""

from __future__ import annotations

from typing import Any

from airgap.core import sbom
from airgap.core.manifest import ChannelEntry, Manifest, PackageEntry, RepodataBlob, SubdirEntry
from airgap.core.repodata import Repodata


def _manifest(subdirs: dict[tuple[str, str], list[str]]) -> Manifest:
    channels: dict[str, list[SubdirEntry]] = {}
    for (channel, subdir), files in subdirs.items():
        packages = tuple(PackageEntry(f, f"{i:064x}", 1) for i, f in enumerate(files))
        channels.setdefault(channel, []).append(SubdirEntry(subdir, RepodataBlob("0" * 64, 1, 1), packages))
    chans = tuple(ChannelEntry(name, f"https://example.org/{name}", tuple(subs)) for name, subs in channels.items())
    return Manifest("a" * 32, "2024-01-01T00:00:00Z", "airgap test", chans, ())


class _Records:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def get(self, filename: str) -> dict[str, Any]:
        return {"name": self.names[filename], "version": "1", "build": "0"}


def _check(subdirs: dict[tuple[str, str], list[str]], names: dict[str, str]) -> None:
    records: Any = {key: _Records(names) for key in subdirs}
    got = [(c.channel, c.subdir, c.name, c.filename) for c in sbom.components(_manifest(subdirs), records)]
    assert got == sorted(got)
    assert len(got) == sum(len(f) for f in subdirs.values())


def test_names_that_are_prefixes_of_others_sort_as_pairs() -> None:
    files = ["ab-1-0.conda", "a-1-0.conda", "a-b-1-0.conda", "a_-1-0.conda", "A-1-0.conda"]
    names = {"ab-1-0.conda": "ab", "a-1-0.conda": "a", "a-b-1-0.conda": "a-b", "a_-1-0.conda": "a_", "A-1-0.conda": "A"}
    _check({("z", "noarch"): files, ("c", "linux-64"): files[::-1], ("c", "noarch"): files}, names)


def test_a_name_with_a_nul_still_sorts_as_the_pair() -> None:
    files = ["x-1-0.conda", "y-1-0.conda", "w-1-0.conda"]
    # "a\0b" < "a" + "\0" + file would put the file of "a\0b" first if the two were joined: the pair says "a" first
    names = {"x-1-0.conda": "a\0b", "y-1-0.conda": "a", "w-1-0.conda": "a\0"}
    _check({("c", "linux-64"): files}, names)


def test_odd_depends_entries_resolve_and_never_break_the_memo() -> None:
    def comp(name: str, depends: Any) -> sbom.Component:
        return sbom.Component(
            "c",
            "https://example.org/c",
            "noarch",
            f"{name}-1-0.conda",
            "0" * 64,
            1,
            {"name": name, "version": "1", "build": "0", "depends": depends},
        )

    comps = [
        comp("a", []),
        comp("b", ["a >=1", {"not": "hashable"}]),  # an unhashable entry: resolved on its own
        comp("c", ["a >=1", 1]),  # not a string: skipped
        comp("d", ["a >=1", 1]),  # the same list: the same answer
        comp("e", ["a >=1", ["nested"]]),
        comp("f", ["zzz"]),  # nothing provides it
    ]
    assert sbom.dependencies(comps) == [[], [0], [0], [0], [0], []]


def test_each_file_gets_its_own_sections_record_or_none() -> None:
    """A .conda file's record from packages.conda, a .tar.bz2 one's from packages, an unlisted file's an empty record
    (the name then from the file name), a subdir without repodata all empty; shas and sizes from the manifest."""
    rd = Repodata("linux-64")
    rd.packages["b-1-0.tar.bz2"] = {"name": "b", "version": "1", "build": "0", "license": "MIT"}
    rd.packages_conda["b-1-0.conda"] = {"name": "b", "version": "1", "build": "0", "license": "BSD"}
    rd.packages["a-2-0.conda"] = {"name": "wrong", "version": "2", "build": "0"}  # in the other section: not its record
    files = ["b-1-0.tar.bz2", "b-1-0.conda", "a-2-0.conda"]
    manifest = _manifest({("c", "linux-64"): files, ("c", "noarch"): ["z-3-0.conda"]})
    got = [
        (c.subdir, c.filename, c.name, c.version, c.sha256, c.size, dict(c.record))
        for c in sbom.components(manifest, {("c", "linux-64"): rd})
    ]
    assert got == [
        ("linux-64", "a-2-0.conda", "a", "2", f"{2:064x}", 1, {}),
        ("linux-64", "b-1-0.conda", "b", "1", f"{1:064x}", 1, rd.packages_conda["b-1-0.conda"]),
        ("linux-64", "b-1-0.tar.bz2", "b", "1", f"{0:064x}", 1, rd.packages["b-1-0.tar.bz2"]),
        ("noarch", "z-3-0.conda", "z", "3", f"{0:064x}", 1, {}),
    ]
