"""The reading half of :class:`~airgap.destinations.engine.StoreDestination`: keys, the receipt, index files and
listings read from its :class:`~airgap.destinations.store.ObjectStore`. Split from the engine, which changes them."""

from __future__ import annotations

import mmap
from typing import Any

from ..core.manifest import is_safe_channel_name
from ..core.repodata import Repodata
from .base import OnBytes, parse_index, parse_receipt_bytes
from .journal import STATE
from .listings import Listings
from .store import check_key, sha256_of, view

RECEIPT = f"{STATE}/receipt.json"


class StoreReads(Listings):
    """Reading a store as a conda destination (its listings remembered under the lock: :class:`Listings`)."""

    def key(self, *parts: str) -> str:
        return check_key("/".join(p for p in parts if p))

    def exists(self) -> bool:
        return self.store.exists()

    def channel_url(self, channel: str) -> str:
        return self.store.url(self.key(channel))

    def read_receipt(self) -> dict[str, Any]:
        return parse_receipt_bytes(self.store.get(RECEIPT), f"{self}/{RECEIPT}")

    def stored_receipt(self) -> bytes | mmap.mmap | None:
        return view(self.store, RECEIPT)

    def view_document(self, name: str) -> bytes | mmap.mmap | None:
        return view(self.store, self.key(STATE, name))

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        key = self.key(channel, subdir, "repodata.json")
        return parse_index(self.store.get(key), subdir, f"{self}/{key}")

    def read_index_file(self, channel: str, subdir: str, name: str) -> bytes | None:
        return self.store.get(self.key(channel, subdir, name))

    def view_index_file(self, channel: str, subdir: str, name: str) -> bytes | mmap.mmap | None:
        return view(self.store, self.key(channel, subdir, name))

    def inventory(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, _size in self.store.list_prefix(""):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "repodata.json" and not parts[0].startswith(".") and is_safe_channel_name(parts[0]):
                out.setdefault(parts[0], []).append(parts[1])
        return {ch: sorted(subs) for ch, subs in sorted(out.items())}

    def files(self, channel: str, subdir: str) -> dict[str, int]:
        return dict(self.listing(self.key(channel, subdir)))

    def sizes_of(self, channel: str, subdir: str, names: list[str]) -> dict[str, int] | None:
        return self.sizes_in(self.key(channel, subdir), names)

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        return sha256_of(self.store, self.key(channel, subdir, filename), on_bytes)
