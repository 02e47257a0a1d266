"""What each destination says it can do: one :class:`Capabilities` value, read by the operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap.destinations import open_destination
from airgap.destinations.capabilities import STORE, Capabilities


@pytest.mark.parametrize("spec", ["memory://caps", "DIR"])
def test_a_store_destination_can_do_everything(spec: str, tmp_path: Path) -> None:
    dest = open_destination(str(tmp_path) if spec == "DIR" else spec)
    assert dest.capabilities == STORE == Capabilities()
    assert dest.capabilities.keeps_repodata and dest.capabilities.holds_other_files and dest.capabilities.keeps_receipt
    assert dest.capabilities.fixed_channel is None


def test_quetz_declares_what_it_cannot_do() -> None:
    dest = open_destination("quetz+http://127.0.0.1:9/get/mirror", {"api_key": "k"})  # no request is made
    assert dest.capabilities == Capabilities(keeps_repodata=False, holds_other_files=False, keeps_receipt=False, fixed_channel="mirror")


def test_capabilities_is_a_value() -> None:
    with pytest.raises(AttributeError):
        STORE.keeps_receipt = False  # type: ignore[misc]
    assert Capabilities(fixed_channel="a") == Capabilities(fixed_channel="a") != Capabilities(fixed_channel="b")
