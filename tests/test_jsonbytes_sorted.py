"""encode_sorted: json.dumps(sort_keys=True)'s bytes, with big dicts sorted in Python (issue 15)."""

from __future__ import annotations

import json
import random
from typing import Any

from airgap.cli.render import encode_json
from airgap.core.jsonbytes import encode_sorted, presorted


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
