"""A receipt's files brought whole by one archive channel, kept as the manifest's entries (airgap/core/brought.py)."""

from __future__ import annotations

import hashlib
import tracemalloc

from airgap.core.brought import Brought
from airgap.core.held_bytes import CHUNK, Section
from airgap.core.manifest import Manifest
from airgap.core.manifest.model import ChannelEntry, PackageEntry, RepodataBlob, SubdirEntry
from airgap.core.receipt import Held, Receipt, apply_archive, receipt_json


def _entries(n: int, tag: str = "") -> list[PackageEntry]:
    # out of name order, as a manifest may list them
    return [PackageEntry(f"p{(k * 7919) % n:06d}{tag}-1-0.conda", hashlib.sha256(f"{k}{tag}".encode()).hexdigest(), k) for k in range(n)]


def _manifest(*channels: tuple[str, list[PackageEntry]], removals: tuple[str, ...] = ()) -> Manifest:
    blob = RepodataBlob("0" * 64, 1, 1)
    return Manifest(
        "a" * 64,
        "2026-12-05T00:00:00Z",
        "airgap test",
        tuple(
            ChannelEntry(name, f"https://example.invalid/{name}", (SubdirEntry("linux-64", blob, tuple(e), removals=removals),))
            for name, e in channels
        ),
        (),
    )


def _as_dict(entries: list[PackageEntry], origin: str) -> dict[str, Held]:
    return {e.filename: Held(e.sha256, e.size, origin) for e in entries}


def test_it_reads_and_encodes_as_the_dict_of_held_files_would() -> None:
    entries = _entries(3 * CHUNK + 5)  # several chunks of the section, the last one short
    brought, plain = Brought(entries, "main"), _as_dict(entries, "main")
    assert len(brought) == len(plain) and list(brought) == sorted(plain)
    name = entries[17].filename
    assert brought[name] == plain[name] and name in brought and "q-1-0.conda" not in brought and brought.get("q-1-0.conda") is None
    ours, theirs = Section(brought), Section(plain)
    assert b"".join(ours.pieces()) == b"".join(theirs.pieces()) and ours.sha256 == theirs.sha256
    assert not brought.changed


def test_a_change_turns_it_into_a_dict_with_the_same_answers() -> None:
    entries = _entries(CHUNK + 10)
    brought, plain = Brought(entries, "main"), _as_dict(entries, "main")
    gone = entries[3].filename
    del brought[gone], plain[gone]
    brought["z-1-0.conda"] = plain["z-1-0.conda"] = Held("f" * 64, 5, "extra")
    assert brought.changed and dict(brought) == plain
    assert b"".join(Section(brought).pieces()) == b"".join(Section(plain).pieces())


def test_a_first_import_records_the_entries_and_writes_the_same_receipt() -> None:
    main, extra = _entries(CHUNK + 100), _entries(50, "x")
    manifest = _manifest(("main", main), ("extra", extra))
    ours, theirs = Receipt(), Receipt()
    apply_archive(ours, manifest, lambda name: "merged", skipped={}, downgrade=False, signer=None, imported="2026-12-05T01:00:00Z")
    for channel, entries in (("main", main), ("extra", extra)):  # the old way: a Held per file
        for e in entries:
            theirs.hold("merged", "linux-64", e.filename, e.sha256, e.size, channel)
    theirs.archives = ours.archives
    theirs.applied, theirs.channel_map = ours.applied, ours.channel_map
    assert receipt_json(ours.to_json()) == receipt_json(theirs.to_json())


def test_a_first_import_holds_no_held_file_per_file() -> None:
    entries = _entries(20_000)
    manifest = _manifest(("main", entries))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        receipt = Receipt()
        apply_archive(receipt, manifest, lambda name: name, skipped={}, downgrade=False, signer=None, imported="2026-12-05T01:00:00Z")
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert isinstance(receipt.channels["main"]["linux-64"], Brought)
    assert kept < 20_000 * 24, kept  # two lists of pointers and the sort's leftovers: no struct and slot per file (~90 B)
