"""zstandard helpers with bounded output (a small compressed blob must not expand without limit)."""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import zstandard

from .errors import AirgapError

LEVEL = 10  # shards, archives: small files or written once
#: a subdir's repodata.json.zst, rewritten at every import, and the archive's repodata blobs: level 1. On
#: compact JSON such as airgap writes it is both faster and smaller than 3 (which was 3x faster than 10 for ~4 %
#: more bytes): 0.14 s and 17.6 MB against 0.24 s and 21.0 MB at 300,000 records, 5-14 % fewer bytes on every
#: real snapshot in tests/data (docs/decisions/0009-delta-import-cost.md)
INDEX_LEVEL = 1


def zstd_compress(data: bytes | bytearray, level: int = LEVEL) -> bytes:
    return zstandard.ZstdCompressor(level=level, threads=-1).compress(data)


def zstd_decompress_bounded(data: bytes | mmap.mmap, limit: int, what: str, error: type[AirgapError] = AirgapError) -> bytes:
    """Decompress ``data``; more than ``limit`` bytes of output is an error, never an OOM."""
    return b"".join(zstd_pieces_bounded(data, limit, what, error))


def zstd_pieces_bounded(data: bytes | mmap.mmap, limit: int, what: str, error: type[AirgapError] = AirgapError) -> Iterator[bytes]:
    """:func:`zstd_decompress_bounded` a MiB at a time (for a consumer that writes them on: a 300 MB SBOM is never held)."""
    seen = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(memoryview(data), read_across_frames=True)  # a map: no copy
        while chunk := reader.read(min(1 << 20, limit + 1 - seen)):  # never more than limit + 1 bytes
            seen += len(chunk)
            if seen > limit:
                raise error(f"{what}: expected at most {limit} bytes once decompressed, found more (refusing a zstd bomb)")
            yield chunk
    except zstandard.ZstdError as exc:
        raise error(f"{what}: expected zstd-compressed data, found something unreadable ({exc})") from None
