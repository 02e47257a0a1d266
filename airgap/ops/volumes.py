"""Splitting an archive into volumes: which blob goes into which file, so that each fits a medium.

Pure: takes a manifest and a size, returns the manifest with every blob's volume number.
"""

from __future__ import annotations

import dataclasses

import msgspec

from ..core.manifest import Manifest
from ..errors import UsageError

_BLOCK, _RECORD = 512, 10240  # tar block and record sizes (tarfile's defaults)


def _tar_member(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


def split_into_volumes(manifest: Manifest, volume_size: int, signature_size: int | None) -> Manifest:
    """Assign each blob to a volume so that every volume file (header + its blobs) fits ``volume_size``.

    Every volume repeats the whole signed manifest; the assignment is part of it, so its size is
    estimated generously before the numbers are known (``"volume":NNNN`` on every blob).
    """
    estimate = len(manifest.to_bytes()) + len(manifest.blobs) * len(',"volume":9999')
    header = _tar_member(estimate) + (_tar_member(signature_size) if signature_size is not None else 0)
    end = 2 * _BLOCK  # end-of-archive marker

    def file_size(content: int) -> int:
        return -(-(header + content + end) // _RECORD) * _RECORD

    if file_size(0) > volume_size:
        raise UsageError(f"--volume-size: expected at least {file_size(0)} bytes (every volume carries the manifest), found {volume_size}")
    numbers: dict[str, int] = {}
    current, used = 1, 0
    for b in manifest.blobs:
        need = _tar_member(b.size)
        if file_size(need) > volume_size:
            raise UsageError(
                f"--volume-size: expected room for the largest file ({b.size} bytes, blob {b.sha256[:16]}), found {volume_size} bytes per volume"
            )
        if used and file_size(used + need) > volume_size:
            current, used = current + 1, 0
        numbers[b.sha256] = current
        used += need
    if current > 9999:
        raise UsageError(f"--volume-size: expected at most 9999 volumes, found {current}; use bigger volumes")
    blobs = tuple(msgspec.structs.replace(b, volume=numbers[b.sha256]) for b in manifest.blobs)
    return dataclasses.replace(manifest, blobs=blobs)
