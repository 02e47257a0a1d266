"""A blob's reader owns its descriptor once: a refused open never closes a number that is someone else's later."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from airgap.destinations.base import BlobRef
from airgap.errors import IntegrityError


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def test_a_changed_blob_is_refused_and_its_reader_closes_nothing_later(tmp_path: Path) -> None:
    blob_file = tmp_path / "blob"
    blob_file.write_bytes(b"hello")
    stale = _identity(blob_file)
    blob_file.write_bytes(b"hello, changed")
    other = tmp_path / "other"
    other.write_bytes(b"someone else's")

    with pytest.raises(IntegrityError, match="found it changed") as info:
        BlobRef(str(blob_file), 0, 5, "sha", identity=stale).open()
    fd = os.open(other, os.O_RDONLY)  # takes the number the refused reader had
    try:
        del info  # the traceback held the half-built reader: it is finalized now
        gc.collect()
        assert os.pread(fd, 64, 0) == b"someone else's"
    finally:
        os.close(fd)


def test_a_reader_closed_twice_closes_its_descriptor_once(tmp_path: Path) -> None:
    blob_file = tmp_path / "blob"
    blob_file.write_bytes(b"hello")
    reader = BlobRef(str(blob_file), 0, 5, "sha", identity=_identity(blob_file)).open()
    assert reader.read() == b"hello"
    reader.close()
    fd = os.open(blob_file, os.O_RDONLY)
    try:
        reader.close()
        del reader
        gc.collect()
        assert os.pread(fd, 5, 0) == b"hello"
    finally:
        os.close(fd)
