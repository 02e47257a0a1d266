"""The import's placements held per subdir (airgap/ops/needed.py): the same answers as a dict of tuples, in less memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from airgap.ops.needed import Needed, Place


def _both(adds: list[tuple[str, Place]]) -> tuple[Needed, dict[str, tuple[Place, ...]]]:
    needed, plain = Needed(), dict[str, tuple[Place, ...]]()
    for sha, (channel, subdir, name) in adds:  # a place made as the plan makes it, from the manifest's strings
        needed.add(sha, (channel, subdir, name))
        plain[sha] = (*plain.get(sha, ()), (channel, subdir, name))
    return needed, plain


def test_it_answers_as_a_dict_of_tuples_would() -> None:
    adds: list[tuple[str, Place]] = [
        ("a" * 64, ("main", "linux-64", "a-1-0.conda")),
        ("b" * 64, ("main", "noarch", "b-1-0.conda")),
        ("a" * 64, ("extra", "linux-64", "a-1-0.conda")),  # the same file in a second channel
        ("c" * 64, ("main", "linux-64", "c-1-0.tar.bz2")),
        ("b" * 64, ("installers", "", "b.sh")),  # an installer that is also a package
        ("a" * 64, ("installers", "", "a.sh")),
    ]
    needed, plain = _both(adds)
    assert dict(needed) == plain
    assert len(needed) == len(plain) == 3
    assert set(needed) == set(plain)
    assert needed.get("a" * 64) == plain["a" * 64]
    assert needed.get("d" * 64) is None and "d" * 64 not in needed
    assert sorted(needed.places()) == sorted((sha, place) for sha, places in plain.items() for place in places)
    assert needed.uses() == {sha: len(places) for sha, places in plain.items() if len(places) > 1}
    needed.clear()
    assert len(needed) == 0 and not needed and "a" * 64 not in needed


def test_each_blobs_places_come_together_first_one_first() -> None:
    needed, _ = _both(
        [("a" * 64, ("x", "noarch", "a.conda")), ("b" * 64, ("x", "linux-64", "b.conda")), ("a" * 64, ("y", "noarch", "a.conda"))]
    )
    assert list(needed.places()) == [
        ("a" * 64, ("x", "noarch", "a.conda")),
        ("a" * 64, ("y", "noarch", "a.conda")),
        ("b" * 64, ("x", "linux-64", "b.conda")),
    ]


def _held(build: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        size = tracemalloc.get_traced_memory()[0] - before
        del kept
        return size
    finally:
        tracemalloc.stop()


def test_it_holds_no_tuple_per_file() -> None:
    """20,000 placements in two subdirs: the strings are the caller's; a dict of tuples holds two tuples per file more."""
    shas = [f"{n:064x}" for n in range(20_000)]
    names = [f"p{n}-1-0.conda" for n in range(20_000)]
    adds = [(sha, ("main", "linux-64" if n % 4 else "noarch", name)) for n, (sha, name) in enumerate(zip(shas, names, strict=True))]
    compact = _held(lambda: _both(adds)[0])  # what is left once the other one is dropped
    tuples = _held(lambda: _both(adds)[1])
    assert compact < tuples * 0.4, (compact, tuples)
