"""Big buffers reach the disk a slice at a time (airgap._fs.WRITE_SLICE, benchmarks/write_slices.py).

A delta import into a 300,000-record subdir writes a 124 MiB repodata.json and a 44 MB receipt; on
the test VMs one write(2) of such a buffer into new page-cache pages took 20x as long as 1 MiB
slices. These tests hold every writer of big buffers to the slice and to the bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airgap import _fs
from airgap._fs import WRITE_SLICE, atomic_write_bytes, write_all
from airgap.archive.blobcopy import FdWriter as _FdWriter
from airgap.archive.writer import _Out
from airgap.destinations.localbatch import write_temps

BIG = bytes(range(256)) * (3 * WRITE_SLICE // 256) + b"tail"  # three slices and a bit


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every write(2) made, and short writes now and then (the kernel may write less)."""
    sizes: list[int] = []
    real = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        sizes.append(len(data))
        return real(fd, data[: len(data) - 1] if len(sizes) % 3 == 0 and len(data) > 1 else data)

    monkeypatch.setattr(os, "write", write)
    return sizes


def test_write_all_writes_everything_in_slices(tmp_path: Path, calls: list[int]) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, BIG)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == BIG
    assert max(calls) == WRITE_SLICE and len(calls) == 4  # the short third write resumed where it stopped


def test_a_store_writes_a_big_index_in_slices(tmp_path: Path, calls: list[int]) -> None:
    (tmp, _small) = write_temps(str(tmp_path / "t"), [BIG, b"x"], ["repodata.json", "x"])
    assert Path(tmp).read_bytes() == BIG
    assert max(calls) <= WRITE_SLICE


def test_atomic_write_bytes_writes_in_slices(tmp_path: Path, calls: list[int]) -> None:
    atomic_write_bytes(tmp_path / "cache.json", BIG)
    assert (tmp_path / "cache.json").read_bytes() == BIG
    assert calls and max(calls) <= WRITE_SLICE


def test_a_staged_blob_and_an_archive_blob_are_written_in_slices(tmp_path: Path, calls: list[int]) -> None:
    fd = os.open(tmp_path / "staged", os.O_WRONLY | os.O_CREAT)
    try:
        assert _FdWriter(fd, tmp_path / "staged").write(BIG) == len(BIG)
    finally:
        os.close(fd)
    assert (tmp_path / "staged").read_bytes() == BIG
    with open(tmp_path / "archive", "wb") as fh:
        out = _Out(fh, 0, writeback=False)
        out.add(b"head")
        out.add(BIG)
        out.flush()
        assert out.offset == len(BIG) + 4
    assert (tmp_path / "archive").read_bytes() == b"head" + BIG
    assert max(calls) <= WRITE_SLICE


def test_the_slice_is_what_the_benchmark_found_fast() -> None:
    assert _fs.WRITE_SLICE == 1 << 20
