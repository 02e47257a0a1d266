"""The destination interface: what import, sync, clean and receipt need from a place that serves channels.

A destination holds channels as ``<channel>/<subdir>/{repodata.json, <package files>}`` — a
directory, an S3 prefix, a quetz server. The operations (``airgap.ops``) decide the order of
every change, once for all backends (DESIGN §3): inside a :class:`Change`, package files first
(:meth:`Change.put_packages`), then each subdir's index (:meth:`Change.publish_index`), then the
receipt, then :meth:`Change.commit`; only after the commit do files leave
(:meth:`Destination.remove_packages`). A backend only provides these primitives, makes each one
atomic where its storage allows, and undoes an uncommitted change in :meth:`Change.rollback`.

A package file travels as a :class:`BlobRef`: bytes already verified by hash, found in a local
file at an offset (a blob inside the archive, a file in the export cache, or a staged copy).
"""

from __future__ import annotations

import io
import mmap
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .._safepath import release_views
from ..compress import INDEX_LEVEL, zstd_compress
from ..core.receipt import REBUILD, Receipt, ReceiptError, load_receipt_json, parse_receipt
from ..core.receipt_fast import parse_receipt_fast
from ..core.repodata import Repodata, parse_repodata
from ..errors import DestinationError, IntegrityError
from .capabilities import STORE, Capabilities

RECEIPT_FORMAT = "airgap-receipt/1"
OnBytes = Callable[[int], None]


def empty_receipt() -> dict[str, Any]:
    return {"format": RECEIPT_FORMAT, "archives": [], "channels": {}}


def parse_receipt_bytes(data: bytes | None, where: str) -> dict[str, Any]:
    """A stored receipt as a dict (none: an empty one); unreadable or of another format is a DestinationError."""
    if data is None:
        return empty_receipt()
    try:
        doc = load_receipt_json(data)
    except (ValueError, RecursionError) as exc:
        raise DestinationError(f"{where}: expected an airgap receipt, found something unreadable ({str(exc)[:100]}); {REBUILD}") from None
    if not isinstance(doc, dict) or doc.get("format") != RECEIPT_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DestinationError(f"{where}: expected format {RECEIPT_FORMAT}, found {str(found)[:40]!r}; {REBUILD}")
    doc.setdefault("archives", [])
    doc.setdefault("channels", {})
    return doc


def load_receipt(dest: Destination) -> Receipt:
    """The destination's receipt, validated (a malformed one is a :class:`~airgap.core.receipt.ReceiptError` saying how to rebuild it).

    A receipt stored as a file is read from its bytes by the typed reader (a 300,000-file receipt:
    0.83 s and 183 MB as a dict first, 0.64 s and 139 MB this way); anything it refuses is read as
    ever, which says what is wrong."""
    where = f"{dest}: receipt"
    data = dest.stored_receipt()
    if data is not None:
        try:
            return parse_receipt_fast(data, where)  # a subdir's held files stay the mapped bytes (decision 0015)
        except ReceiptError:
            pass
        finally:
            release_views(data)  # read and hashed: its pages leave the resident set until a lookup needs one again
    return parse_receipt(dest.read_receipt(), where)


@dataclass(frozen=True)
class IndexChange:
    """A subdir's next index against the current one, which is the one airgap published last (:mod:`airgap.core.published`)."""

    names: frozenset[str]  # package names whose records (or removed entries) differ
    recorded: Mapping[str, str]  # index file name -> sha256 airgap recorded when it published the current index
    files: frozenset[str] | None = None  # every file name whose record may differ (None: not known; look at all)


def parse_index(data: bytes | None, subdir: str, where: str) -> Repodata | None:
    """A destination's published ``repodata.json`` (None: there is none); unreadable is a DestinationError."""
    if data is None:
        return None
    try:
        # a destination's records are never dropped: unreadable ones are kept verbatim, non-JSON ones refused
        return parse_repodata(data, subdir, where, keep_unreadable=True, strict=True)
    except Exception as exc:
        raise DestinationError(f"{where}: expected repodata JSON, found something unreadable ({exc})") from None


def file_identity(path: str | Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True)  # an import holds one per staged file (300,000): no __dict__ each
class BlobRef:
    """Verified bytes: ``size`` bytes at ``offset`` in the local file ``path``.

    ``identity`` is the file's (device, inode, size, mtime) when the bytes were hashed; a
    reader refuses the file if it has changed since (:meth:`open`).
    """

    path: str | Path
    offset: int
    size: int
    sha256: str
    identity: tuple[int, int, int, int] | None = None

    def open(self) -> SliceReader:
        return SliceReader(self)


class SliceReader(io.RawIOBase):
    """A read-only, seekable file object over one :class:`BlobRef` (``pread``: threads may share nothing)."""

    def __init__(self, blob: BlobRef) -> None:
        super().__init__()
        self._blob = blob
        self._pos = 0
        self._fd = -1  # owned only once checked: a refused reader is finalized later and must close nothing
        fd = os.open(blob.path, os.O_RDONLY)
        st = os.fstat(fd)
        if blob.identity is not None and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != blob.identity:
            os.close(fd)
            raise IntegrityError(f"{blob.path}: expected the file verified a moment ago, found it changed; import again")
        self._fd = fd

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blob.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._blob.size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._blob.offset + self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._blob.size - self._pos
        size = min(size, self._blob.size - self._pos)
        if size <= 0:
            return b""
        data = os.pread(self._fd, size, self._blob.offset + self._pos)
        self._pos += len(data)
        return data

    def __len__(self) -> int:
        return self._blob.size

    def close(self) -> None:
        fd, self._fd = self._fd, -1  # once: the number may be someone else's after this
        if fd >= 0:
            os.close(fd)
        super().close()


@dataclass(frozen=True, slots=True)  # one per package file placed
class Put:
    """Place ``blob`` as ``<channel>/<subdir>/<filename>``; ``keep``: the blob serves another place after this one."""

    channel: str
    subdir: str
    filename: str
    blob: BlobRef
    keep: bool = False


class Change(ABC):
    """One import or clean, begun under the destination's lock. Undone by :meth:`rollback` until committed."""

    #: a local directory the blobs must be copied into before :meth:`put_packages` (the
    #: directory destination places them by rename); None: blobs are read where they lie.
    staging: Path | None = None

    @abstractmethod
    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """Before the first change: note everything the change will touch (so a killed run can be undone)."""

    later = False  # staging_later was called, staged_written not yet: nothing staged is durable before that syncfs

    def staging_later(self) -> None:
        """The staged files are still being written (by another process, :mod:`airgap.ops.import_body`): :meth:`plan`
        need not make them durable; :meth:`staged_written` does, before any is placed."""
        self.later = True

    def put_ahead(self, channel: str, subdir: str, files: list[tuple[str, bytes]]) -> bool:
        """Write ``files`` (names relative to the subdir) into the staged folder of a new subdir not placed yet, placed
        with it (pages written while another process stages its packages); False, writing nothing: it is not staged."""
        return False

    def staged_written(self) -> None:
        """Every staged file is written: make them durable before any is placed (after :meth:`staging_later`)."""
        return None

    @abstractmethod
    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        """Place package files (in parallel where the backend can); when it returns, they are durable."""

    def new_folder(self, channel: str, subdir: str) -> Path | None:
        """Where to stage the package files of ``channel/subdir`` under their own names when that subdir is not there
        yet, so that :meth:`put_folder` places them all by one rename; None (the default): placed one by one."""
        return None

    def put_folder(self, channel: str, subdir: str) -> None:
        """Place the folder :meth:`new_folder` gave, with every file staged in it (each named to :meth:`plan`)."""
        raise NotImplementedError(f"{type(self).__name__} stages no folders")

    @abstractmethod
    def publish_index(self, channel: str, subdir: str, repodata: Repodata, changed: IndexChange | None = None) -> None:
        """Make ``repodata`` the subdir's index. Every file it lists is already in place. ``changed``: what differs
        from the index airgap published last (formats that can then write only what changed do so)."""

    def published_files(self, channel: str, subdir: str) -> dict[str, str]:
        """``{index file name: sha256}`` of what the last :meth:`publish_index` of this subdir wrote; empty: not kept."""
        return {}

    def publish_index_file(self, channel: str, subdir: str, name: str, data: bytes) -> bool:
        """Write another index-side file beside ``repodata.json`` (``run_exports.json``) in this change, before
        :meth:`publish_index`; False: this destination keeps no such files (the default)."""
        return False

    @abstractmethod
    def write_receipt(self, receipt: dict[str, Any]) -> None: ...

    def stage_receipt(self, receipt: dict[str, Any]) -> None:
        """The receipt :meth:`write_receipt` will be given, known early (before :meth:`staged_written`): a store of local
        files writes it now, made durable with the staged files, and only moves it into place then. Nothing by default."""
        return None

    def put_document(self, name: str, data: bytes | Iterable[bytes]) -> str | None:
        """Keep a document of airgap's own (``sbom/<id>.cdx.json``) in the state folder, undone with the change;
        ``data``: its bytes, or its pieces (written as they come: a 300 MB SBOM is never held whole).

        Returns where it went, relative to the destination root (``.airgap/<name>``), or None when
        the destination keeps no such files (the default; quetz).
        """
        return None

    @abstractmethod
    def commit(self) -> None:
        """The change is complete and must no longer be undone."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo everything since :meth:`plan` (as far as possible)."""

    def close(self) -> None:
        """Remove what the change kept for itself (staging, backups). After commit or rollback."""
        return None


class Destination(ABC):
    """Where channels are published. See the module docstring for the contract."""

    kind: ClassVar[str]
    #: what the operations may ask of it (the default: a store's; quetz declares less)
    capabilities: Capabilities = STORE

    @abstractmethod
    def __str__(self) -> str: ...

    @abstractmethod
    def locked(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        """Exclusive access for one import or clean; rolls back what a killed run left."""

    @abstractmethod
    def exists(self) -> bool:
        """The destination is there (a directory, a bucket, a server channel) — for clean and receipt."""

    @abstractmethod
    def read_receipt(self) -> dict[str, Any]: ...

    def stored_receipt(self) -> bytes | mmap.mmap | None:
        """The receipt's stored bytes, where it is kept as one file (None: none stored, or built another way); from a
        directory, mapped when big (decoded, then let go)."""
        return None

    def view_document(self, name: str) -> bytes | mmap.mmap | None:
        """A document :meth:`Change.put_document` kept (``.airgap/<name>``), mapped from a directory when big; None: not
        there, or a destination that keeps none."""
        return None

    @abstractmethod
    def write_receipt(self, receipt: dict[str, Any]) -> str:
        """Replace the receipt, atomically, outside any change (``airgap receipt``); say where it went."""

    @abstractmethod
    def read_repodata(self, channel: str, subdir: str) -> Repodata | None: ...

    @abstractmethod
    def inventory(self) -> dict[str, list[str]]:
        """``{channel: [subdir, ...]}`` for every subdir with a published index."""

    @abstractmethod
    def files(self, channel: str, subdir: str) -> dict[str, int]:
        """``{filename: size}`` of the files held in a subdir (``subdir`` "" for installer dirs)."""

    @abstractmethod
    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """The sha256 of a held file, or None if it is not there."""

    def stored_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """The sha256 of the bytes a client would download (None: not there); reads them even where
        :meth:`file_sha256` answers from the server's own index (``airgap verify --into``)."""
        return self.file_sha256(channel, subdir, filename, on_bytes)

    def sizes_of(self, channel: str, subdir: str, names: list[str]) -> dict[str, int] | None:
        """``{filename: size}`` of those of ``names`` held, without listing the subdir; None: this destination
        can only list (:meth:`files`). Lets an import look at the files an archive names only."""
        return None

    def read_index_file(self, channel: str, subdir: str, name: str) -> bytes | None:
        """The raw bytes of a published index file (``repodata.json``, ``repodata.json.zst``), or None:
        not there, or a backend that does not publish it."""
        return None

    def view_index_file(self, channel: str, subdir: str, name: str) -> bytes | mmap.mmap | None:
        """:meth:`read_index_file`; from a directory, mapped read-only when big (a 124 MiB repodata.json: no copy)."""
        return self.read_index_file(channel, subdir, name)

    @abstractmethod
    def begin(self, label: str) -> Change:
        """Start a change (under :meth:`locked`)."""

    @abstractmethod
    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        """Delete files no published index lists any more (after the change that unlisted them committed)."""

    @abstractmethod
    def channel_url(self, channel: str) -> str:
        """The URL a conda client uses for ``channel``."""

    def put_page(self, channel: str, subdir: str | None, data: bytes, name: str = "index.html") -> None:
        """Write a browsable ``index.html`` (or ``name``, e.g. ``names/numpy.html``: cosmetic, outside any change); default: not kept."""
        return None

    def put_pages(self, channel: str, subdir: str, pages: list[tuple[str, bytes]]) -> None:
        """:meth:`put_page` of many pages of a subdir (``(name, bytes)``), in no durable order among them."""
        for name, data in pages:
            self.put_page(channel, subdir, data, name)

    def has_page(self, channel: str, subdir: str, name: str) -> bool:
        """Whether a page written by :meth:`put_page` is there (False when unknown: pages are then all rewritten)."""
        return False


def index_files(raw: bytes) -> list[tuple[str, bytes]]:
    """A subdir's index files in the order they are written, both made before either is written.

    ``repodata.json.zst`` goes last: conda >= 23.3, mamba and rattler/pixi read it first, so most
    clients switch from the old index to the new one in a single replace, right before the
    receipt; a run killed between the two writes (rolled back by the next run that takes the
    lock) has changed only the ``.json`` that older clients read. Either index lists only files
    already in place, so a reader of either is served; ``airgap verify --into`` reports the two
    disagreeing.
    """
    return [("repodata.json", raw), ("repodata.json.zst", zstd_compress(raw, INDEX_LEVEL))]


def iter_batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
