"""encode_sorted: json.dumps(sort_keys=True)'s bytes, with big dicts sorted in Python (issue 15)."""

from __future__ import annotations

import json
import random
from typing import Any

from airgap.cli.render import encode_json
from airgap.core.jsonbytes import by_key, encode_sorted, presorted


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def nearly_sorted(n: int, appended: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = sorted(f"p{rng.randrange(10**6)}-{i}.conda" for i in range(n))
    doc: dict[str, Any] = {k: {"sha256": "ab" * 32, "size": i} for i, k in enumerate(names)}
    for i in range(appended):
        doc[f"a-new-{i}.conda"] = {"sha256": "cd" * 32, "size": None, "from": "conda-forge"}
    return doc


def test_bytes_are_json_dumps_sorted_for_nested_big_and_small_dicts() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        doc = {
            "format": "airgap-receipt/1",
            "channels": {"conda-forge": {"noarch": nearly_sorted(200, 7, seed), "linux-64": nearly_sorted(40, 0, seed)}},
            "archives": [{"z": 1, "a": [3, {"y": True, "b": None}]}, ("t", {"k": "ü"})],
            "zz": {str(rng.random()): i for i in range(50)},
        }
        assert encode_sorted(doc) == dumps(doc)
        assert encode_json(doc) == dumps(doc)


def test_presorted_puts_big_dicts_in_order_and_leaves_small_ones() -> None:
    small = {"b": 1, "a": 2}
    big = nearly_sorted(100, 5, 1)
    out = presorted({"small": small, "big": big})
    assert list(out["big"]) == sorted(big)
    assert out["small"] is small  # nothing inside to rebuild: not copied
    assert list(out["small"]) == ["b", "a"]  # msgspec sorts what is small


def test_presorted_copies_nothing_that_is_already_fine() -> None:
    inner = [{"x": 1}, {"y": [1, 2]}]
    doc = {"k": inner, "t": (1, 2)}
    assert presorted(doc) is doc
    assert presorted(inner) is inner


def test_keys_that_cannot_be_sorted_are_left_to_the_encoder() -> None:
    doc = {i if i % 2 else str(i): i for i in range(40)}
    assert presorted(doc) is doc


def test_a_big_dict_already_in_order_is_not_copied() -> None:
    doc = {f"k{i:04d}": {"sha256": "ab", "size": i} for i in range(100)}
    assert presorted(doc) is doc
    assert presorted({"c": {"s": doc}})["c"]["s"] is doc


def test_a_big_dict_deep_under_small_ones_is_found() -> None:
    big = nearly_sorted(60, 3, 2)
    doc = {"a": {"b": {"c": [{"d": big}]}}, "e": [1, "x", None]}
    out = presorted(doc)
    assert list(out["a"]["b"]["c"][0]["d"]) == sorted(big)
    assert out["e"] is doc["e"]
    assert encode_sorted(doc) == dumps(doc)


def test_by_key_is_the_dict_of_the_sorted_pairs() -> None:
    rng = random.Random(7)
    names = [f"p{rng.randrange(10**6)}-1-0.conda" for _ in range(500)]
    d = {n: {"i": i} for i, n in enumerate(names)}
    got = by_key(d)
    assert list(got.items()) == sorted(d.items(), key=lambda kv: kv[0])
    assert got is not d and list(d) == list(dict.fromkeys(names))  # the input is left as it was
    assert by_key(got) is got  # in order: itself, not a copy


def test_repodata_sections_are_written_in_file_name_order() -> None:
    from airgap.core.repodata import parse_repodata

    records: dict[str, Any] = {
        f"{n}-1-0.tar.bz2": {"name": n, "version": "1", "build": "0", "build_number": 0, "depends": []} for n in ("zz", "a", "mm")
    }
    body = json.dumps({"info": {"subdir": "linux-64"}, "packages": records, "packages.conda": {}}).encode()
    doc = json.loads(parse_repodata(body, "linux-64", "test").to_bytes())
    assert list(doc["packages"]) == ["a-1-0.tar.bz2", "mm-1-0.tar.bz2", "zz-1-0.tar.bz2"]
