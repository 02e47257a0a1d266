"""The list a child process reads a frame at a time (airgap.archive.frames)."""

from __future__ import annotations

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
