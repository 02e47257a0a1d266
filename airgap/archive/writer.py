"""Write an airgap/1 archive: a pax tar, streamable, members in manifest order.

The archive is written to a temporary file beside its target and renamed only when it is
complete and synced, so a crash never leaves something that looks like an archive. Each blob
is hashed again as it is copied from the cache: a cache damaged since download is caught here
instead of at the isolated site.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .._fs import atomic_writer
from ..errors import AirgapError
from .layout import MANIFEST, SIGNATURE, blob_member

COPY_BUFSIZE = 1 << 20


class _HashingReader:
    def __init__(self, fh: BinaryIO, on_bytes: Callable[[int], None] | None) -> None:
        self._fh = fh
        self.hash = hashlib.sha256()
        self._on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.hash.update(data)
        if self._on_bytes is not None and data:
            self._on_bytes(len(data))
        return data


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = mtime
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = tarfile.REGTYPE
    return ti


def write_archive(
    target: Path,
    manifest: bytes,
    signature: bytes | None,
    blobs: Iterable[tuple[str, int, Path]],
    mtime: int,
    on_bytes: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> None:
    """Write ``manifest``, ``signature`` and each ``(sha256, size, path)`` blob to ``target``."""
    with atomic_writer(Path(target)) as raw:  # temp file beside the target, fsynced, renamed
        with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFSIZE) as tar:  # type: ignore[call-overload]
            tar.addfile(_info(MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
            if signature is not None:
                tar.addfile(_info(SIGNATURE, len(signature), mtime), io.BytesIO(signature))
            for sha, size, path in blobs:
                with open(path, "rb") as fh:
                    actual = os.fstat(fh.fileno()).st_size
                    if actual != size:
                        raise AirgapError(f"cache file {path}: expected {size} bytes, found {actual}; delete it and export again")
                    reader = _HashingReader(fh, on_bytes)
                    tar.addfile(_info(blob_member(sha), size, mtime), reader)
                    if reader.hash.hexdigest() != sha:
                        raise AirgapError(f"cache file {path}: expected sha256 {sha}, found {reader.hash.hexdigest()}; delete it and export again")
                if on_file is not None:
                    on_file()
