"""``check_key``'s substring scans accept exactly what the regular expression they replaced accepted."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgap.destinations.store import check_key
from airgap.errors import DestinationError

_NOT_PLAIN = re.compile(r"\A/|/\Z|//|(?:\A|/)\.\.?(?:/|\Z)|[\0\\]")  # the pattern check_key used: the oracle


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
def test_the_scans_agree_with_the_pattern(key: str) -> None:
    assert _accepted(key) == _plain(key)
