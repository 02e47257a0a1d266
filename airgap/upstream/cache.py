"""The export's content-addressed download cache under ``mirror_dir``.

Files of a ``file://`` upstream are not copied in: :meth:`BlobCache.download` reads each one
and checks its size and sha256 against its record (so a bad file is named at once, as for a
download) and remembers where it is; :meth:`BlobCache.file` then names it, and the archive
writer reads it where it lies and checks it again as it streams it into the archive (such blobs
are never in :meth:`BlobCache.hashed_here`: the file may change between the two reads). An
export skips the first read (:meth:`BlobCache.in_place_unread`): the writer's check is the one.

Layout: ``blobs/sha256/<hex>`` holds each verified file once; ``blobs/md5/<hex>`` is a hard
link to the same file for upstream records that only carry an md5; ``tmp/`` holds downloads
in flight. A file enters ``blobs/`` only after its size and hash matched the record while the
bytes streamed in, so everything in the cache was verified once. The archive writer hashes
again as it copies, which catches a cache damaged later (disk fault, a hand edit).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .._fs import atomic_write_bytes, named
from ..errors import AirgapError, HashMismatch, NotFound, UpstreamError
from .channels import URL_SAFE, package_url
from .fetch import CHUNK, Fetcher, url_to_path

log = logging.getLogger(__name__)


class Expected(NamedTuple):
    """The hashes and size a file must have (a tuple: a plan holds one per selected record)."""

    sha256: str | None
    md5: str | None
    size: int | None


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sha_dir = self.root / "blobs" / "sha256"
        self.md5_dir = self.root / "blobs" / "md5"
        self.tmp_dir = self.root / "tmp"
        self._sha_prefix = os.path.join(self.sha_dir, "")
        self._external: dict[str, str] = {}  # sha256 -> a file:// upstream's file, read where it lies
        self.unread: list[tuple[str, str, str, int]] = []  # (folder URL, name, sha256, size): such files not read yet
        self._unplaced: dict[str, tuple[str, str, str, int]] = {}  # sha256 -> its entry of unread, its path not found yet
        self._folders: dict[str, str] = {}  # a file:// folder URL -> its path
        self.made: set[str] = set()  # blobs this process wrote into the cache, hashed as it wrote them
        try:
            for d in (self.sha_dir, self.md5_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AirgapError(f"mirror_dir {self.root}: expected a writable directory, found: {exc.strerror}") from None

    def path(self, sha256: str) -> Path:
        return Path(self.file(sha256))

    def file(self, sha256: str) -> str:
        """:meth:`path` as a string: no Path object per file where there are 100,000 of them."""
        got = self._external.get(sha256)
        if got is None:
            where = self._unplaced.get(sha256)
            if where is None:
                return self._sha_prefix + sha256
            got = self._external[sha256] = in_place_path(where[0], where[1], self._folders)
        return got

    def size(self, sha256: str) -> int:
        return os.stat(self.file(sha256)).st_size

    def hashed_here(self, sha256: str) -> tuple[str, ...]:
        """``(sha256,)`` if this process hashed the blob's bytes as they entered the cache, else ``()``:
        a ``file://`` upstream's file, read where it lies, is hashed as it goes into the archive."""
        return () if sha256 in self._external or sha256 in self._unplaced else (sha256,)

    def lookup(self, want: Expected) -> str | None:
        """The sha256 of a cached file matching ``want``, or None."""
        if want.sha256:
            p = self._sha_prefix + want.sha256
        elif want.md5:
            p = os.path.join(self.md5_dir, want.md5)
        else:
            return None
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        if want.size is not None and st.st_size != want.size:
            return None
        if want.sha256:
            return want.sha256
        # md5 entry: find its sha256 twin by hashing once (md5-only channels are old and small)
        sha = _sha256_file(Path(p))
        return sha if (self.sha_dir / sha).exists() else None

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.sha_dir / sha
        if not target.exists():  # one there already is not known good: the archive writer hashes it again
            atomic_write_bytes(target, data, durable=False)
            self.made.add(sha)
        return sha

    def download(self, fetcher: Fetcher, url: str, want: Expected, on_bytes: Callable[[int], None] | None = None) -> str:
        """Download ``url`` into the cache, verifying ``want`` while streaming; return sha256.

        Bytes in flight live in ``tmp/<hash>.partial``. A transfer that breaks (or an export
        that is killed) leaves it there, and the next attempt asks only for the rest with an
        HTTP Range request; a server that ignores the range sends everything and the partial
        file starts over. A file enters ``blobs/`` only once its size and hash matched.
        """
        if url.startswith("file:") and want.sha256:
            return self._in_place(url, want, on_bytes)
        key = want.sha256 or want.md5
        with self._partial(key) as (fh, resumable, path):

            def attempt() -> str:
                return self._attempt(fetcher, url, want, fh, resumable, path, on_bytes)

            return fetcher.with_retries(url, attempt)

    def in_place_unread(self, files: list[tuple[str, str, str, int]]) -> None:
        """Each ``file://`` upstream's file ``(base, filename, sha256, size)`` (``base``: the folder's URL,
        ending in "/"), taken as its record says, not read now: the archive writer reads it once, where it
        lies, and checks its size and sha256 as it streams it into the archive (an export that finds a bad
        file there removes the archive and names every bad file: :func:`airgap.ops.local_files.check_unread`).
        Sync, which writes no archive, reads at once (:meth:`download`). Each file's path is found when
        :meth:`file` is first asked for it (each folder's path once: :func:`in_place_path`): an export whose
        package members a child process writes never asks, and 300,000 paths cost 0.5 s."""
        self._unplaced.update(zip(map(itemgetter(2), files), files, strict=True))  # the last one wins, as it would in _external
        self.unread.extend(files)

    def check_in_place(self, url: str, want: Expected) -> str:
        """Read and check a ``file://`` upstream's file now (:meth:`download` does for such a file)."""
        return self._in_place(url, want, None)

    def _in_place(self, url: str, want: Expected, on_bytes: Callable[[int], None] | None) -> str:
        """A ``file://`` upstream's file: read and checked (size, sha256) now, not copied; the
        archive writer reads it again where it lies and checks it again (it may change meanwhile).

        A small file costs four system calls (open, fstat, one read, close): a file whose size is
        not the record's is refused before it is read, and the one read takes the whole file."""
        assert want.sha256 is not None
        path = _local_path(url)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"{url}: not found") from None
        except OSError as exc:
            raise UpstreamError(f"{url}: cannot read: {exc.strerror}") from None
        sha = hashlib.sha256()
        size = 0
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UpstreamError(f"{url}: expected a regular file, found something else")
            if want.size is not None and st.st_size != want.size:
                raise HashMismatch(f"{url}: expected {want.size} bytes (repodata), found {st.st_size}")
            while chunk := os.read(fd, CHUNK if want.size is None else max(min(CHUNK, want.size - size), 1)):
                size += len(chunk)
                if want.size is not None and size > want.size:
                    break
                sha.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                if size == want.size:
                    break  # fstat said so: the archive writer finds out if it grew since (it reads one byte more)
        finally:
            os.close(fd)
        if want.size is not None and size != want.size:
            raise HashMismatch(f"{url}: expected {want.size} bytes (repodata), found {size if size < want.size else 'more'}")
        if sha.hexdigest() != want.sha256:
            raise HashMismatch(f"{url}: expected sha256 {want.sha256}, found {sha.hexdigest()}")
        self._external[want.sha256] = path
        return want.sha256

    @contextlib.contextmanager
    def _partial(self, key: str | None) -> Iterator[tuple[BinaryIO, bool, Path]]:
        """The partial file for ``key``, locked; a private temp file if another process has it."""
        path = self.tmp_dir / f"{key}.partial" if key else None
        fh: BinaryIO | None = None
        if path is not None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fh = os.fdopen(fd, "r+b")
            except OSError:
                os.close(fd)
                path = None
        resumable = fh is not None
        if fh is None:
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir)
            fh = os.fdopen(fd, "r+b")
            path = Path(tmp)
        assert path is not None
        try:
            yield fh, resumable, path
        except HashMismatch:
            fh.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        except BaseException:
            fh.close()  # keep the bytes that arrived: the next run resumes
            if not resumable:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise
        else:
            fh.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _attempt(
        self, fetcher: Fetcher, url: str, want: Expected, fh: BinaryIO, resumable: bool, path: Path, on_bytes: Callable[[int], None] | None
    ) -> str:
        have = os.fstat(fh.fileno()).st_size if resumable else 0
        if want.size is not None and have >= want.size:
            have = 0  # nothing left to ask for: re-fetch and re-verify the whole file
        sha = hashlib.sha256()
        md5 = hashlib.md5() if (want.md5 and not want.sha256) else None
        if have:
            fh.seek(0)
            remaining = have
            while remaining:
                chunk = fh.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
            have -= remaining
        with fetcher.open_from(url, have) as (chunks, length, start):
            if start != have:  # the server sent the whole file: start over
                sha = hashlib.sha256()
                md5 = hashlib.md5() if md5 is not None else None
                have = 0
            elif have:
                log.info("%s: resuming after %d bytes", url, have)
            fh.seek(have)
            fh.truncate()
            size = have
            if on_bytes is not None and have:
                on_bytes(have)
            if want.size is not None and length is not None and have + length != want.size:
                raise HashMismatch(f"{url}: expected {want.size} bytes (repodata), the server announces {have + length}")
            for chunk in chunks:
                size += len(chunk)
                if want.size is not None and size > want.size:
                    raise HashMismatch(f"{url}: expected {want.size} bytes (repodata), the server sent more")
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                try:
                    fh.write(chunk)
                except OSError as exc:  # ENOSPC and the like name no file: name the cache's
                    raise named(exc, path) from None
                if on_bytes is not None:
                    on_bytes(len(chunk))
        try:
            fh.flush()
        except OSError as exc:
            raise named(exc, path) from None
        if want.size is not None and size != want.size:
            raise HashMismatch(f"{url}: expected {want.size} bytes (repodata), found {size}")
        digest = sha.hexdigest()
        if want.sha256 and digest != want.sha256:
            raise HashMismatch(f"{url}: expected sha256 {want.sha256}, found {digest}")
        if md5 is not None and md5.hexdigest() != want.md5:
            raise HashMismatch(f"{url}: expected md5 {want.md5}, found {md5.hexdigest()}")
        target = self.sha_dir / digest
        os.chmod(path, 0o644)
        os.replace(path, target)  # verified: it enters the cache under its hash (the lock goes with the fd)
        if want.md5 and not want.sha256:
            with contextlib.suppress(FileExistsError):
                os.link(target, self.md5_dir / want.md5)
        return digest


def in_place_path(base: str, filename: str, folders: dict[str, str]) -> str:
    """Where the ``file://`` upstream's file ``filename`` in the folder ``base`` (a URL ending in "/") lies;
    ``folders`` remembers each folder's path (a subdir's 300,000 files: the URL is parsed once)."""
    folder = folders.get(base)
    if folder is None:
        folder = folders[base] = os.path.join(_local_dir(base), "")  # ends with the separator
    if URL_SAFE.match(filename):
        return folder + filename if not filename.startswith("/") else os.path.join(folder, filename)  # as os.path.join
    return _local_path(package_url(base, filename))


@functools.lru_cache(maxsize=64)
def _local_dir(url_dir: str) -> str:
    return url_to_path(url_dir)


def _local_path(url: str) -> str:
    """:func:`url_to_path`, parsing each directory's URL once (a subdir has 300,000 files)."""
    head, _, name = url.rpartition("/")
    if not head or not name or "%" in name or "?" in url or "#" in url:
        return url_to_path(url)
    return os.path.join(_local_dir(head + "/"), name)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
