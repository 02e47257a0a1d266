"""A subdir's ``repodata.json`` and ``repodata.json.zst``, and the receipt, written as files, never held whole.

The engine (:mod:`airgap.destinations.engine`) publishes them as files it hands the store
(:meth:`~airgap.destinations.store.ObjectStore.put_blob`; a directory moves them into place from
its change's area, one rename each). Each piece of JSON (:func:`~airgap.core.repodata_stream.json_pieces`,
:func:`~airgap.core.held_bytes.receipt_pieces`) is written and hashed as it comes, then the ``.zst`` is
compressed from the written file, so a delta import into a 300,000-record subdir holds a piece (~2 MB),
not the 124 MiB index, its 17 MiB twin and the 41 MB receipt (docs/decisions/0017-streamed-index.md).
Every few MiB the pages of the old index, mapped where the new one copies its unchanged records from,
are given back (:func:`~airgap._safepath.release_views`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import zstandard

from .._fs import start_writeback
from .._heap import give_back
from .._safepath import release_views
from ..compress import INDEX_LEVEL
from ..errors import IntegrityError
from .base import BlobRef

if TYPE_CHECKING:
    from .store import LocalFiles, ObjectStore

#: bytes of JSON written between two releases of the mapped old index's pages
RELEASE_EVERY = 16 << 20
CHUNK = 1 << 20  # read back to compress


class _Sink:
    """A file being written and hashed (what the zstd stream writes its frames to)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh = open(path, "xb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.fh.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def close(self, durable: bool | None) -> BlobRef:
        """Flushed, and (``durable``) on disk: a store's put must be durable when it returns, so a file moved into place
        is synced first; one only uploaded from is not; None: synced later, its writeback started. The file as a blob."""
        self.fh.flush()
        if durable:
            os.fsync(self.fh.fileno())
        elif durable is None:
            start_writeback(self.fh.fileno())  # the disk writes it while the import goes on; the final syncfs finds less
        self.fh.close()
        return BlobRef(self.path, 0, self.size, self.sha256.hexdigest())


def write_index(pieces: Iterable[bytes | memoryview], folder: Path | str, durable: bool | None = True) -> list[tuple[str, BlobRef]]:
    """``[("repodata.json", blob), ("repodata.json.zst", blob)]``: the pieces written to two new files in ``folder``
    (``.zst`` at the index level, zstd's worker threads on), in the order they are published. A failure removes both."""
    plain, packed = write_file(pieces, folder, "repodata.json", compressed=True, durable=durable)
    return [("repodata.json", plain), ("repodata.json.zst", packed)]


def write_file(
    pieces: Iterable[bytes | memoryview], folder: Path | str, name: str, compressed: bool = False, durable: bool | None = True
) -> list[BlobRef]:
    """The pieces written to a new file in ``folder`` (named after ``name``), and, ``compressed``, its zstd twin made
    from it: the files as blobs, on disk when ``durable``; None: made durable later, by the change's one ``syncfs``
    (:meth:`Change.staged_written`), their writeback started now. A failure (a piece that cannot be made) removes them.

    The twin is compressed from the written file, its size known: the frame header then carries the content size
    (a client that decompresses in one call needs it), and the bytes are those of a one-call compression of the
    whole (:func:`~airgap.destinations.base.index_files`, which other backends write)."""
    stem = os.path.join(os.fspath(folder), f"{uuid.uuid4().hex[:12]}-{name}")
    sinks: list[_Sink] = []
    try:
        plain = _Sink(stem)
        sinks.append(plain)
        since = 0
        for piece in pieces:
            plain.write(piece)
            since += len(piece)
            if since >= RELEASE_EVERY:
                release_views()
                give_back()  # and the heap the pieces freed: their copies' holes were ~40 MB resident by the end
                since = 0
        release_views()
        plain.fh.flush()
        if compressed:
            packed = _Sink(stem + ".zst")
            sinks.append(packed)
            compressor = zstandard.ZstdCompressor(level=INDEX_LEVEL, threads=-1)
            with open(plain.path, "rb") as src, compressor.stream_writer(packed, size=plain.size, closefd=False) as zst:  # type: ignore[arg-type]
                shutil.copyfileobj(src, zst, CHUNK)
        return [sink.close(durable) for sink in sinks]
    except BaseException:
        for sink in sinks:
            with contextlib.suppress(OSError):
                sink.fh.close()
            with contextlib.suppress(OSError):
                os.unlink(sink.path)
        raise


def put_in_order(store: ObjectStore, local: LocalFiles | None, writes: Sequence[tuple[str, bytes | BlobRef]], batched: set[str]) -> None:
    """Store ``writes`` in order. The run of ``batched`` keys (new content-addressed files: nothing lists them yet) goes
    in one call of a local store's ``put_many`` (one flush for all, not two fsyncs each); a file written for the change
    (a :class:`BlobRef`) is moved into place from the change's area (``local``), or uploaded."""
    i = 0
    while i < len(writes):
        j = i
        while local is not None and j < len(writes) and writes[j][0] in batched and isinstance(writes[j][1], bytes):
            j += 1
        if j - i > 1:
            assert local is not None
            local.put_many([(key, data) for key, data in writes[i:j] if isinstance(data, bytes)])
            i = j
            continue
        key, data = writes[i]
        if isinstance(data, bytes):
            store.put(key, data)
        elif local is not None:
            local.take(key, data)
        else:
            store.put_blob(key, data)
        i += 1


def read_back(store: ObjectStore, written: Sequence[tuple[str, bytes | BlobRef]], where: str) -> None:
    """Each of ``written`` (content-addressed files: CEP-16 shards and their index) read back from ``store``: clients never
    check a shard's hash, so what they fetch must be what was rendered. Raises :class:`IntegrityError` on the first that differs."""
    for key, data in written:
        if isinstance(data, bytes) and (got := store.get(key)) != data:
            found = "nothing" if got is None else f"sha256 {hashlib.sha256(got).hexdigest()}"
            raise IntegrityError(
                f"{where}/{key}: expected to read back what was just written (sha256 {hashlib.sha256(data).hexdigest()}), "
                f"found {found}; nothing was published (check the storage)"
            )


def put_pieces(
    store: ObjectStore,
    local: LocalFiles | None,
    staging: Path | None,
    key: str,
    pieces: Iterable[bytes | memoryview],
    deferred: bool = False,
) -> None:
    """Store the pieces under ``key`` as one file written for the change: in its area (``staging``) and moved into
    place, or in a scratch folder and uploaded (a receipt, a kept SBOM: never held whole). ``deferred``: the change
    makes its area durable later, by one ``syncfs`` before anything is placed (:meth:`Change.staged_written`): the file is
    not fsynced here (a kept SBOM of 300,000 files is 330 MB), its writeback only started."""
    with folder_for(staging) as folder:
        # uploaded from a scratch folder: not synced; moved into place: synced now, or (deferred) by the change's syncfs
        durable = False if staging is None else (None if deferred else True)
        (blob,) = write_file(pieces, folder, key.rpartition("/")[2], durable=durable)
        put_in_order(store, local, [(key, blob)], set())


@contextlib.contextmanager
def folder_for(staging: Path | None) -> Iterator[Path | str]:
    """Where a change writes the files it publishes: its area in a local store (``staging``: they are moved into place
    from there), else a scratch folder (uploaded from, then removed)."""
    if staging is not None:
        yield staging
        return
    with scratch_folder() as folder:
        yield folder


SCRATCH = "airgap-upload-"  # + the pid of the process that made it + "-" + mkdtemp's suffix


@contextlib.contextmanager
def scratch_folder() -> Iterator[str]:
    """A folder on this host for the files a remote store uploads (removed after). Folders that processes no
    longer running left (killed while uploading: nothing else removes them) are removed first."""
    sweep_scratch()
    folder = tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_scratch(root: str | None = None) -> list[str]:
    """Remove this user's scratch folders (not links) whose process is gone; the paths removed."""
    root = root or tempfile.gettempdir()
    gone: list[str] = []
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            pid = entry.name[len(SCRATCH) :].partition("-")[0]
            if not (entry.name.startswith(SCRATCH) and pid.isdigit() and entry.is_dir(follow_symlinks=False)):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _running(int(pid)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            gone.append(entry.path)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: running
        return True
    return True
