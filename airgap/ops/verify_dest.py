"""Verify a destination (``airgap verify --into DEST``, the job of cas-mirror's cas-verify).

Every file a published ``repodata.json`` lists is read back as a client would get it and hashed,
on every backend (a directory, S3, quetz: quetz's files are downloaded, since its index says only
what it hashed at upload); installers (``DEST/<dir>/<file>``, subdir ``""``), which no index lists,
against the receipt. What it reports, one :class:`Problem` each:

* ``missing``  — the index lists a file the storage does not hold;
* ``damaged``  — the file is there, but its size or sha256 is not the index's;
* ``unlisted`` — a package file (``.conda``, ``.tar.bz2``) no index lists: what a run killed
  between its commit and its removals leaves, or a stray copy. Reported, not damage
  (``airgap clean`` removes it);
* ``index``    — ``repodata.json`` and ``repodata.json.zst`` say different things, or the CEP-16
  shards do (a shard missing, not hashing to its name, or holding other records:
  :mod:`airgap.ops.shards_check`; clients never check shard hashes themselves).

Reads run ``workers`` files at a time, each streamed 1 MiB at a time, one subdir after
another: memory is bounded whatever the size of the mirror. Nothing is locked while hashing (a
verify of a large mirror must not block the weekly import for hours).

:func:`record` then takes the lock briefly, checks each damage found once more (a concurrent or
interrupted import may have caused it: those are dropped), and makes the destination stop counting
a missing or damaged file as held, so that the next import of an archive carrying it puts it back:
it leaves the receipt (directory, S3; ``export --since`` then ships it too), or, on a server that is
its own inventory (quetz), it is deleted there. ``airgap receipt`` shares the check
(:func:`check_destination`) and records only files that passed it.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import zstandard

from ..core import published
from ..core.receipt import Receipt
from ..core.repodata import Repodata, record_hashes
from ..destinations import open_destination
from ..destinations.base import Destination, load_receipt, parse_index
from ..errors import AirgapError, DestinationError
from ..progress import Progress, null_progress
from .options import VerifyDestinationOptions
from .shards_check import check_destination_subdir

DAMAGE = ("missing", "damaged", "index")
PACKAGE_SUFFIXES = (".conda", ".tar.bz2")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, damaged, unlisted, index
    channel: str
    subdir: str
    filename: str
    detail: str

    @property
    def place(self) -> tuple[str, str, str]:
        return (self.channel, self.subdir, self.filename)

    def line(self) -> str:
        return f"{self.kind}: {'/'.join(p for p in self.place if p)}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class DestinationCheck:
    destination: str
    subdirs: int = 0
    files: int = 0  # listed files read and hashed
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: files that passed, by subdir: ``{channel: {subdir: {filename: {"sha256", "size"}}}}`` (the receipt's shape)
    good: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    recorded: list[str] = field(default_factory=list)  # one line per thing :func:`record` changed
    cleared: int = 0  # problems gone when checked again under the lock
    not_recorded: str | None = None  # why :func:`record` could not record (the findings stand)

    @property
    def damaged(self) -> bool:
        return any(p.kind in DAMAGE for p in self.problems)

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for p in self.problems if p.kind == kind) for kind in (*DAMAGE, "unlisted")}

    def summary(self) -> str:
        c = self.counts()
        found = ", ".join(f"{n} {kind}" for kind, n in c.items() if n) or "no problem"
        return f"{self.destination}: {self.files} files in {self.subdirs} subdirs checked; {found}"

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "ok": not self.damaged,
            "subdirs": self.subdirs,
            "files": self.files,
            "bytes": self.bytes,
            "counts": self.counts(),
            "problems": [p.to_json() for p in self.problems],
            "recorded": self.recorded,
            "cleared": self.cleared,
            "not_recorded": self.not_recorded,
        }


def run_verify_destination(
    into: Path | str | Destination,
    options: VerifyDestinationOptions | None = None,
    *,
    progress: Progress = null_progress,
) -> DestinationCheck:
    options = options or VerifyDestinationOptions()
    dest = into if isinstance(into, Destination) else open_destination(str(into))
    workers = options.workers or _workers(dest)
    if not dest.exists():
        raise DestinationError(f"{dest}: expected a destination holding channels, found none")
    check = check_destination(dest, workers=workers, progress=progress)
    if options.record_findings and check.damaged:
        try:
            with dest.locked(options.lock_timeout):
                record(dest, check, workers=workers)
        except AirgapError as exc:
            check.not_recorded = str(exc)
    return check


def check_destination(
    dest: Destination, *, workers: int | None = None, progress: Progress = null_progress, installers: bool = True
) -> DestinationCheck:
    """Check every subdir of every channel ``dest`` publishes, and the installers its receipt records
    (see the module docstring); change nothing."""
    workers = workers or _workers(dest)
    check = DestinationCheck(str(dest))
    for channel, subdirs in dest.inventory().items():
        for subdir in subdirs:
            raw = dest.read_index_file(channel, subdir, "repodata.json")  # read once: compared, then parsed
            check.problems.extend(_compare_indexes(dest, channel, subdir, raw))
            check.problems.extend(_shard_problems(dest, channel, subdir, raw))
            where = f"{dest}/{channel}/{subdir}/repodata.json"
            rd = parse_index(raw, subdir, where) if raw is not None else dest.read_repodata(channel, subdir)
            del raw
            if rd is None:
                continue
            check.subdirs += 1
            _check_subdir(dest, channel, subdir, _expected(rd), check, workers, progress)
    if installers:
        for folder, expected in _installers(dest).items():
            _check_subdir(dest, folder, "", expected, check, workers, progress, unlisted=False)
    return check


def _installers(dest: Destination) -> dict[str, dict[str, tuple[str | None, int | None]]]:
    """Installer files (``DEST/<dir>/<file>``) as the receipt records them: no index lists them."""
    if not (dest.capabilities.keeps_receipt and dest.capabilities.holds_other_files):
        return {}
    try:
        held = dest.read_receipt().get("installers") or {}
    except AirgapError:
        return {}  # an unreadable receipt: recording says so
    out: dict[str, dict[str, tuple[str | None, int | None]]] = {}
    for folder, files in held.items() if isinstance(held, dict) else ():
        for filename, rec in files.items() if isinstance(files, dict) else ():
            if isinstance(rec, dict):
                out.setdefault(str(folder), {})[str(filename)] = (rec.get("sha256"), rec.get("size"))
    return out


def record(dest: Destination, check: DestinationCheck, *, workers: int = 8) -> None:
    """Under the lock: keep the damage that is still there, then stop counting those files as held."""
    found = [p for p in check.problems if p.kind in DAMAGE]
    confirmed: list[Problem] = []
    subdirs = sorted({(p.channel, p.subdir) for p in found})
    indexes = {key: dest.read_repodata(*key) if key[1] else None for key in subdirs}
    for channel, subdir in subdirs:
        if any(p.kind == "index" for p in found if (p.channel, p.subdir) == (channel, subdir)):
            confirmed.extend(_compare_indexes(dest, channel, subdir))
            confirmed.extend(_shard_problems(dest, channel, subdir))
    again = DestinationCheck(check.destination)
    installers = _installers(dest) if any(p.subdir == "" for p in found) else {}
    for (channel, subdir), rd in indexes.items():
        names = {p.filename for p in found if (p.channel, p.subdir) == (channel, subdir) and p.kind != "index"}
        expected = installers.get(channel, {}) if subdir == "" else _expected(rd) if rd is not None else {}
        expected = {f: e for f, e in expected.items() if f in names}
        if expected:
            _check_subdir(dest, channel, subdir, expected, again, workers, null_progress, unlisted=False)
    confirmed.extend(again.problems)
    check.cleared = len(found) - len(confirmed)
    check.problems = [p for p in check.problems if p.kind not in DAMAGE] + confirmed
    files = [p for p in confirmed if p.kind != "index"]
    stale = sorted({(p.channel, p.subdir) for p in confirmed if p.kind == "index"})
    if not files and not stale:
        return
    if dest.capabilities.keeps_receipt:
        receipt = load_receipt(dest)
        check.recorded.extend(forget(receipt, [p.place for p in files], stale))
        dest.write_receipt(receipt.to_json(encodable=True))
    elif files:  # the server's index is its inventory: a file it must not count as held leaves it
        dest.remove_packages([p.place for p in files])
        check.recorded.extend(
            f"removed {c}/{s}/{f} from {dest} (the next import uploads it again)" for c, s, f in sorted(p.place for p in files)
        )


def forget(receipt: Receipt, files: Iterable[tuple[str, str, str]], stale_indexes: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The one place a receipt learns of damage: files leave the held set (import and ``export --since``
    then treat them as absent), and a subdir whose indexes disagree loses its upstream source hash (the
    next ``export --since`` carries its repodata, whose import rewrites both)."""
    done = []
    for channel, subdir, filename in files:
        if subdir == "":
            gone = receipt.installers.get(channel, {}).pop(filename, None) is not None
        else:
            gone = receipt.held(channel, subdir, filename) is not None
            receipt.forget(channel, subdir, filename)
        if subdir != "":  # the index lists a damaged file: the next import vets the whole subdir again
            published.forget(receipt, channel, subdir)
        if gone:
            where = "/".join(p for p in (channel, subdir, filename) if p)
            done.append(f"{where} is no longer counted as held (the next import carrying it puts it back)")
    for channel, subdir in stale_indexes:
        published.forget(receipt, channel, subdir)  # vetted, and every shard rendered and read back, by the next import
        # upstream state is kept per archive channel: every one published into this channel
        if any([receipt.sources.get(src, {}).pop(subdir, None) is not None for src in sorted(receipt.sources_of(channel) | {channel})]):
            done.append(f"{channel}/{subdir}: the next export --since carries its repodata again")
    return done


# -- the checks ------------------------------------------------------------------------------


def _expected(rd: Repodata) -> dict[str, tuple[str | None, int | None]]:
    out = {}
    for filename, record_ in rd.records():
        sha, _md5, size = record_hashes(record_)
        out[filename] = (sha, size)
    return out


def _check_subdir(
    dest: Destination,
    channel: str,
    subdir: str,
    expected: dict[str, tuple[str | None, int | None]],
    check: DestinationCheck,
    workers: int,
    progress: Progress,
    unlisted: bool = True,
) -> None:
    """Check files against what an index (or, for installers, subdir "", the receipt) says: ``{filename: (sha256, size)}``."""
    held = dest.files(channel, subdir)
    lists = "the receipt lists it" if subdir == "" else "the index lists it"
    todo: list[tuple[str, str | None, int]] = []
    for filename, (sha, size) in expected.items():
        have = held.get(filename)
        if have is None:
            check.problems.append(Problem("missing", channel, subdir, filename, f"{lists}, the storage does not hold it"))
        elif size is not None and have != size:
            check.problems.append(Problem("damaged", channel, subdir, filename, f"expected size {size}, found {have}"))
        else:
            todo.append((filename, sha, size if size is not None else have))
    if unlisted:
        for filename in sorted(set(held) - set(expected)):
            if filename.endswith(PACKAGE_SUFFIXES):
                check.problems.append(Problem("unlisted", channel, subdir, filename, "no index lists it (airgap clean removes it)"))
    bar = progress(f"verify {channel}/{subdir}", sum(size for *_, size in todo), files=len(todo))
    guard = threading.Lock()

    def on_bytes(n: int) -> None:
        with guard:
            bar.update(n)

    def one(item: tuple[str, str | None, int]) -> tuple[str | None, int]:
        counted = [0]

        def count(n: int) -> None:
            counted[0] += n
            on_bytes(n)

        return dest.stored_sha256(channel, subdir, item[0], count), counted[0]

    slot = check.good.setdefault(channel, {}).setdefault(subdir, {}) if subdir else {}  # installers: not the receipt's channels
    for (filename, want, size), (got, nbytes) in _bounded_map(one, todo, workers):
        bar.file_done()
        check.files += 1
        check.bytes += nbytes
        if got is None:
            check.problems.append(Problem("missing", channel, subdir, filename, f"{lists}, the storage does not hold it"))
        elif nbytes != size:
            check.problems.append(Problem("damaged", channel, subdir, filename, f"expected size {size}, read {nbytes} bytes"))
        elif want is not None and got != want:
            check.problems.append(Problem("damaged", channel, subdir, filename, f"expected sha256 {want}, found {got}"))
        else:
            slot[filename] = {"sha256": got, "size": nbytes}
    bar.close()


def _compare_indexes(dest: Destination, channel: str, subdir: str, raw: bytes | None = None) -> list[Problem]:
    """``repodata.json`` against ``repodata.json.zst``: the same bytes once decompressed (streamed, bounded)."""
    if raw is None:
        raw = dest.read_index_file(channel, subdir, "repodata.json")
    packed = dest.read_index_file(channel, subdir, "repodata.json.zst")
    if raw is None or packed is None:
        return []  # a backend that publishes one of them only (quetz), or a channel another tool wrote
    digest = hashlib.sha256()
    size = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed), read_across_frames=True)
        while size <= len(raw):
            chunk = reader.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    except zstandard.ZstdError as exc:
        return [
            Problem("index", channel, subdir, "repodata.json.zst", f"expected zstd-compressed repodata, found something unreadable ({exc})")
        ]
    if size != len(raw) or digest.hexdigest() != hashlib.sha256(raw).hexdigest():
        return [
            Problem(
                "index",
                channel,
                subdir,
                "repodata.json.zst",
                "expected the same index as repodata.json, found another (clients that read .zst see a different channel)",
            )
        ]
    return []


def _shard_problems(dest: Destination, channel: str, subdir: str, raw: bytes | None = None) -> list[Problem]:
    """CEP-16 shards that do not hash to their names, or disagree with repodata.json (:mod:`airgap.ops.shards_check`)."""
    return [Problem("index", channel, subdir, name, what) for name, what in check_destination_subdir(dest, channel, subdir, raw)]


def _workers(dest: Destination) -> int:
    """As many parallel reads as the backend is set up for (its connection pool), else 8."""
    n = getattr(dest, "workers", None)
    return n if isinstance(n, int) and n > 0 else 8


def _bounded_map(fn: Callable[[_T], _R], items: list[_T], workers: int) -> Iterator[tuple[_T, _R]]:
    """``(item, fn(item))`` in order, at most ``4 * workers`` submitted ahead (bounded memory, however many items)."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield item, fn(item)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[_T, Future[_R]]] = deque()
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 4 * workers:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
