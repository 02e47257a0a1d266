"""The list a child process reads a frame at a time (airgap.archive.frames)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from airgap.archive import frames


def test_entries_come_back_in_frames_in_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "FRAME", 3)
    entries = [(f"{i:064x}", i, None if i % 2 else f"/s/{i}") for i in range(8)]
    fh, count = frames.listing(frames.chunked(entries), "test-")
    with fh:
        got = list(frames.read(fh, list[tuple[str, int, str | None]]))
    assert count == 8 and [len(f) for f in got] == [3, 3, 2]
    assert [e for f in got for e in f] == entries


def test_no_entries_is_an_empty_list() -> None:
    fh, count = frames.listing(frames.chunked([]), "test-")
    with fh:
        assert count == 0 and list(frames.read(fh, list[int])) == []


@pytest.mark.parametrize("cut", [2, 9])
def test_a_list_cut_short_is_refused(tmp_path: object, cut: int) -> None:
    fh, _ = frames.listing(frames.chunked(range(5)), "test-")
    with fh:
        data = fh.read()
        fh.seek(0)
        fh.truncate(cut)
        assert len(data) > cut
        with pytest.raises(ValueError, match="ends inside a frame"):
            list(frames.read(fh, list[int]))


def test_a_growing_list_is_read_as_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import's blob child starts on the first frames; the reader waits at the end until it has them all."""
    monkeypatch.setattr(frames, "FRAME", 2)
    entries = list(range(9))
    listing = frames.Growing("test-")
    try:
        listing.write(frames.chunked(entries[:4]))  # two frames before the reader starts
        got: list[list[int]] = []
        reader = os.fdopen(os.dup(listing.fileno()), "rb")  # as the child: the same open file, its offset shared
        done = threading.Event()

        def read() -> None:
            got.extend(frames.read(reader, list[int], len(entries)))
            done.set()

        thread = threading.Thread(target=read)
        thread.start()
        for _ in range(1000):  # the two frames read
            if len(got) == 2:
                break
            time.sleep(0.01)
        time.sleep(0.05)
        assert not done.is_set() and [e for f in got for e in f] == entries[:4]  # waiting at the end, not ended
        listing.write(frames.chunked(entries[4:]))
        thread.join(10)
        assert done.is_set() and [e for f in got for e in f] == entries and listing.count == len(entries)
        reader.close()
    finally:
        listing.close()


def test_a_growing_list_longer_than_said_is_refused() -> None:
    listing = frames.Growing("test-")
    try:
        listing.write(frames.chunked(range(5)))
        with os.fdopen(os.dup(listing.fileno()), "rb") as reader, pytest.raises(ValueError, match="more than the 3"):
            list(frames.read(reader, list[int], 3))
    finally:
        listing.close()
