"""Files whose ``depends`` lists are the same resolve once (builds of a package repeat their lists); the answers stay each file's."""

from __future__ import annotations

from typing import Any

from airgap.core import sbom


def _comp(subdir: str, name: str, version: str, depends: Any, bn: int = 0) -> sbom.Component:
    rec = {"name": name, "version": version, "build": f"h_{bn}", "build_number": bn, "depends": depends}
    return sbom.Component("c", "https://example.org/c/", subdir, f"{name}-{version}-h_{bn}.conda", "0" * 64, 1, rec)


def test_the_same_list_gives_the_same_references_but_never_the_file_itself() -> None:
    comps = [
        _comp("linux-64", "lib", "1", ["lib", "zlib"]),  # the newest lib: its own match, dropped from its own list
        _comp("linux-64", "lib", "0.9", ["lib", "zlib"]),
        _comp("linux-64", "zlib", "1.3", []),
        _comp("osx-64", "zlib", "1.3", []),
        _comp("osx-64", "app", "1", ["lib", "zlib"]),  # the same list in another subdir: resolved there
        _comp("linux-64", "odd", "1", ("zlib",)),  # not a list: resolved on its own all the same
    ]
    deps = sbom.dependencies(comps)
    assert deps[0] == [2]
    assert deps[1] == [0, 2]
    assert deps[4] == [3]
    assert deps[5] == [2]
