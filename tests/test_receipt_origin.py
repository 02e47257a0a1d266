"""A receipt whose ``from`` is not a string is refused with one line, not a traceback (found by tests/test_fuzz.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airgap.core.receipt import parse_receipt_bytes
from airgap.errors import ReceiptError

SHA = "ab" * 32


@pytest.mark.parametrize("origin", [[], {}, ["main"], 7])
def test_a_file_origin_that_is_no_channel_name_is_refused(origin: Any) -> None:
    doc = {"format": "airgap-receipt/1", "channels": {"main": {"noarch": {"a-1.0-0.conda": {"sha256": SHA, "size": 1, "from": origin}}}}}
    with pytest.raises(ReceiptError, match=r"channels\.main\.noarch\.a-1\.0-0\.conda\.from: expected a channel name"):
        parse_receipt_bytes(json.dumps(doc).encode(), "fuzz")
