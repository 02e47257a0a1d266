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


def test_a_frame_of_new_subdirs_blobs_is_answered_at_once_and_any_other_is_not() -> None:
    adds: list[tuple[str, Place]] = [
        ("a" * 64, ("main", "linux-64", "a-1-0.conda")),
        ("b" * 64, ("main", "linux-64", "b-1-0.conda")),
        ("c" * 64, ("main", "noarch", "c-1-0.conda")),
        ("d" * 64, ("main", "linux-64", "d-1-0.conda")),
        ("d" * 64, ("extra", "linux-64", "d-1-0.conda")),  # placed twice
        ("e" * 64, ("old", "linux-64", "e-1-0.conda")),  # in a subdir that is not new
    ]
    needed, _ = _both(adds)
    asked: list[tuple[str, str]] = []

    def prefix(key: tuple[str, str]) -> str | None:
        asked.append(key)
        return None if key[0] == "old" else f"/s/{key[0]}/{key[1]}/"

    assert needed.only_places(["b" * 64, "a" * 64], prefix) == ["/s/main/linux-64/b-1-0.conda", "/s/main/linux-64/a-1-0.conda"]
    assert asked == [("main", "linux-64")]  # only the subdirs the frame's blobs are in
    both = ["c" * 64, "a" * 64, "b" * 64]  # sorted by sha256, a frame holds blobs of every subdir
    assert needed.only_places(both, prefix) == [
        "/s/main/noarch/c-1-0.conda",
        "/s/main/linux-64/a-1-0.conda",
        "/s/main/linux-64/b-1-0.conda",
    ]
    assert needed.only_places(["a" * 64, "e" * 64], prefix) is None  # one in a subdir placed file by file: keep() asks each
    assert needed.only_places(["a" * 64, "d" * 64], prefix) is None  # one blob with two places
    assert needed.only_places(["a" * 64, "f" * 64], prefix) is None  # one not needed
    assert needed.only_places([], prefix) is None


def test_add_all_answers_as_add_one_by_one_would() -> None:
    """A new subdir's files at once (at C speed) where nothing is placed yet; else, a blob placed already, one twice in
    the list or the subdir begun, one by one: the same places in the same order either way."""
    a, b, c, d = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    cases: list[list[tuple[str, str, list[str], list[str]]]] = [
        [("main", "linux-64", [a, b], ["a-1-0.conda", "b-1-0.conda"])],  # the fast case
        [("main", "noarch", [c], ["c-1-0.conda"]), ("main", "linux-64", [a, c], ["a-1-0.conda", "c-1-0.conda"])],  # c placed already
        [("main", "linux-64", [a, d, a], ["a-1-0.conda", "d-1-0.conda", "a-2-0.conda"])],  # a twice in one subdir
        [("main", "linux-64", [a], ["a-1-0.conda"]), ("main", "linux-64", [b], ["b-1-0.conda"])],  # the subdir begun
    ]

    class Counting(Needed):
        calls = 0

        def add(self, sha256: str, place: Place) -> None:
            Counting.calls += 1
            super().add(sha256, place)

    for n, case in enumerate(cases):
        batched, one_by_one = Counting(), Needed()
        Counting.calls = 0
        for channel, subdir, shas, names in case:
            batched.add_all(channel, subdir, shas, names)
            for sha, name in zip(shas, names, strict=True):
                one_by_one.add(sha, (channel, subdir, name))
        assert list(batched.places()) == list(one_by_one.places()) and dict(batched) == dict(one_by_one), case
        assert batched.uses() == one_by_one.uses()
        assert (Counting.calls == 0) == (n == 0), case  # one by one only where the fast case does not hold
