"""Free heap handed back to the system between an import's stages (airgap/_heap.py, issue 15)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli

from airgap import _heap

# the shared fixtures (archives): tests/remote.py
pytest_plugins = ("remote", "ociparts")

_HOLES = """
import sys
from airgap._heap import give_back

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024

held = [bytes(1024) for _ in range(96 * 1024)]  # 96 MiB of blocks too big for Python's own allocator: glibc's heap
pin = bytes(1024)  # allocated last, kept: the heap's top stays in use, so glibc does not shrink it by itself
del held
before = anon()
asked = give_back()
print(asked, before, anon())
"""


def test_give_back_returns_the_free_middle_of_the_heap_to_the_system() -> None:
    """The freed blocks lie below one still in use: they stay resident until ``malloc_trim`` hands them back."""
    out = subprocess.run([sys.executable, "-c", _HOLES], capture_output=True, text=True, check=True).stdout.split()
    asked, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert asked == _heap.give_back() == sys.platform.startswith("linux")  # CI: Linux with glibc
    if asked:
        assert before - after >= 48, (before, after)  # of the 96 MiB freed, most goes back


def test_give_back_asks_nothing_where_the_c_library_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_heap, "_trim", lambda: None)
    assert _heap.give_back() is False
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(_heap, "_trim", lambda: trim)
    assert _heap.give_back() is True and calls == [0]


def test_an_import_gives_back_after_each_index_the_receipt_and_before_the_pages(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airgap.ops.pages
    import airgap.ops.publish as publish
    from airgap.ops.index_change import IndexPublisher

    events: list[str] = []
    real_publish = IndexPublisher.publish

    def index(self: IndexPublisher, channel: str, subdir: str, *args: object, **kwargs: object) -> None:
        events.append(f"index {channel}/{subdir}")
        real_publish(self, channel, subdir, *args, **kwargs)  # type: ignore[arg-type]

    real_pages = airgap.ops.pages.write_pages

    def pages(*args: object, **kwargs: object) -> None:
        events.append("pages")
        real_pages(*args, **kwargs)  # type: ignore[arg-type]

    def give_back() -> bool:
        events.append("give back")
        return True

    monkeypatch.setattr(IndexPublisher, "publish", index)
    monkeypatch.setattr(publish, "write_pages", pages)
    monkeypatch.setattr(publish, "give_back", give_back)
    assert cli("import", archives["v1"], "--into", tmp_path / "d", "--trusted-key", archives["pub"]).exit_code == 0
    indexes = [e for e in events if e.startswith("index")]
    assert len(indexes) >= 2
    for i, event in enumerate(events[:-1]):
        if event.startswith("index"):
            assert events[i + 1] == "give back", events  # each index's leftovers go before the next is built
    assert events[-2:] == ["give back", "pages"] and events.count("give back") == len(indexes) + 3  # + the SBOM's copy, the digests
