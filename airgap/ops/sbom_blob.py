"""The SBOM blob: written zstd-compressed into the cache by export, read back by import (docs/decisions/0011).

The CycloneDX document of a small-file mirror is about half of the archive's bytes (33 of 70 MB
at 100,000 files) and compresses some twentyfold. Export streams the rendered pieces through one
zstd compressor into the cache, hashing the compressed bytes (the blob) and counting the
document's (``raw_size``); import gives the kept document back, decompressed and no larger
than ``raw_size``. An archive written before (format ``CycloneDX-1.6``) holds the document as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import zstandard

from ..compress import zstd_pieces_bounded
from ..core.manifest import SbomRef
from ..errors import IntegrityError
from ..upstream.cache import BlobCache

#: level 1: the document repeats itself (purls, property names, the supplier), and level 1 finds that as well as 3
#: does: 7-16 % fewer bytes than level 3 on real records and on the scale bed, in half the CPU (docs/decisions/0011)
LEVEL = 1
COMPRESS = True  # False writes the format of archives before 0011 (tests read both)
#: the largest document import keeps decompressed; a larger one (a full import of ~60,000 files and more: 330 MB at
#: 300,000) is kept as the archive's zstd blob, ``.cdx.json.zst`` (docs/decisions/0011, "Later: large SBOMs kept compressed")
KEEP_PLAIN_MAX = 64 << 20


class Stored:
    """What :func:`store` wrote: the blob's sha256 and size, and the document's size."""

    __slots__ = ("sha256", "size", "raw_size")

    def __init__(self, sha256: str, size: int, raw_size: int) -> None:
        self.sha256, self.size, self.raw_size = sha256, size, raw_size


def store(cache: BlobCache, pieces: Iterable[bytes]) -> Stored:
    """The pieces of the document stored in the cache under the blob's hash (zstd-compressed unless
    :data:`COMPRESS` is False), hashed as they are written (``cache.made``: the archive writer takes them
    as they are); not fsynced."""
    compress = COMPRESS
    fd, tmp = tempfile.mkstemp(dir=cache.tmp_dir, suffix=".sbom")
    h, raw_size = hashlib.sha256(), 0
    try:
        os.fchmod(fd, 0o644)  # as every cache file
        with os.fdopen(fd, "wb") as fh:
            sink = _Hashing(fh, h)
            if compress:
                # zstd's own threads: compressing runs beside the rendering (the same bytes however many cores)
                z = zstandard.ZstdCompressor(level=LEVEL, threads=-1).compressobj()
                for piece in pieces:
                    sink.write(z.compress(piece))
                    raw_size += len(piece)
                sink.write(z.flush())
            else:
                for piece in pieces:
                    sink.write(piece)
                    raw_size += len(piece)
        sha = h.hexdigest()
        os.replace(tmp, cache.sha_dir / sha)
        cache.made.add(sha)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Stored(sha, sink.size, raw_size)


class _Hashing:
    """A file-like sink that hashes and counts what passes to the file."""

    def __init__(self, fh: BinaryIO, h: hashlib._Hash) -> None:
        self._write = fh.write
        self._h = h
        self.size = 0

    def write(self, data: bytes) -> int:
        self._h.update(data)
        self._write(data)
        self.size += len(data)
        return len(data)


def document(ref: SbomRef, blob: bytes | mmap.mmap) -> bytes:
    """The CycloneDX document a verified SBOM blob holds: decompressed (and exactly ``raw_size`` bytes) when it is ``+zstd``."""
    return b"".join(document_pieces(ref, blob))


def kept(ref: SbomRef, blob: bytes | mmap.mmap) -> tuple[bool, Iterator[bytes]]:
    """What import keeps of a verified SBOM blob: ``(False, the document's pieces)``, or, for a compressed document
    over :data:`KEEP_PLAIN_MAX`, ``(True, the blob's own bytes)`` once it is found to decompress to exactly
    ``raw_size`` bytes (the same IntegrityError as a document kept decompressed; nothing written before that)."""
    if not ref.format.endswith("+zstd") or (ref.raw_size or 0) <= KEEP_PLAIN_MAX:
        return False, document_pieces(ref, blob)
    for _ in document_pieces(ref, blob):  # decompressed and counted, not kept
        pass
    return True, _mib_at_a_time(blob)


def document_pieces(ref: SbomRef, blob: bytes | mmap.mmap) -> Iterator[bytes]:
    """:func:`document` a MiB at a time (what import keeps at the destination: never the whole document at once).
    A document of another size than ``raw_size`` is an IntegrityError after its last piece."""
    if not ref.format.endswith("+zstd"):
        yield from _mib_at_a_time(blob)  # a mapped blob read a MiB at a time too
        return
    assert ref.raw_size is not None  # the parser requires it
    size = 0
    for piece in zstd_pieces_bounded(blob, ref.raw_size, f"sbom blob {ref.sha256}", IntegrityError):
        size += len(piece)
        yield piece
    if size != ref.raw_size:
        raise IntegrityError(f"sbom blob {ref.sha256}: expected {ref.raw_size} bytes once decompressed, found {size}")


def _mib_at_a_time(blob: bytes | mmap.mmap) -> Iterator[bytes]:
    for at in range(0, len(blob), 1 << 20):
        yield blob[at : at + (1 << 20)]
