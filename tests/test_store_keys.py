"""``check_key``: its substring fast path accepts only what the full pattern accepts, and refuses what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgap.destinations.store import _NOT_PLAIN, check_key
from airgap.errors import DestinationError


def _plain(key: str) -> bool:
    return bool(key) and not _NOT_PLAIN.search(key)


def _accepted(key: str) -> bool:
    try:
        return check_key(key) == key
    except DestinationError:
        return False


HOSTILE = ["", "/", "a/", "/a", "a//b", ".", "..", "./a", "../a", "a/.", "a/..", "a/./b", "a/../b", "a\0b", "a\\b", "\\"]
PLAIN = ["a", "a/b", "big/linux-64/x-1.0-0.conda", ".airgap/receipt.json", "a/.airgap/x", "a/..b", "a/b..", "a.b/c", "...", "a/..."]


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_keys_are_refused(key: str) -> None:
    with pytest.raises(DestinationError, match="expected a key of plain path components"):
        check_key(key)


@pytest.mark.parametrize("key", PLAIN)
def test_plain_keys_pass_as_they_are(key: str) -> None:
    assert check_key(key) is key


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="a./\\\0-", max_size=12))
def test_the_fast_path_agrees_with_the_pattern(key: str) -> None:
    assert _accepted(key) == _plain(key)
