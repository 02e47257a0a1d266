"""Before an export downloads anything: can the archive be written where asked, and will it fit?

An export to a read-only or full medium used to download every package first and then fail
naming a ``.tmp`` file. :func:`check_output` runs after the plan and before any download:
it creates (and removes) a probe file beside the archive and compares the planned size with
the free space there. :func:`archive_write_error` names the archive, not its temp file, when
writing fails anyway (the medium filled up meanwhile).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Mapping
from operator import attrgetter
from pathlib import Path
from typing import Any

from ..core.receipt import Held, Receipt
from ..errors import AirgapError

# per archive member: a 512-byte header, and padding to 512 bytes on average half a block
_MEMBER_OVERHEAD = 512 + 256
_REPODATA_ALLOWANCE = 1 << 20  # each subdir's repodata blob, zstd-compressed (a guess; real ones are smaller)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def free_space(directory: Path) -> int:
    """Bytes an unprivileged writer may still use in ``directory``'s file system."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def planned_archive_bytes(wants: list[Any], subdirs: int, base: Receipt | None) -> int:
    """An upper estimate of the archive's size: every package the base does not hold by sha256,
    each with its tar header, plus an allowance per subdir for its repodata."""
    shipped: dict[str, int | None] = {}  # sha256 (or URL) -> size
    if base is None and all(map(attrgetter("sha256"), wants)):  # a full export: every file ships (at C speed: 300,000)
        shipped = dict(zip(map(attrgetter("sha256"), wants), map(attrgetter("size"), wants), strict=True))
    else:
        _not_held(wants, base, shipped)
    return sum(filter(None, shipped.values())) + _MEMBER_OVERHEAD * (len(shipped) + 2) + _REPODATA_ALLOWANCE * subdirs + 1024


def _not_held(wants: list[Any], base: Receipt | None, shipped: dict[str, int | None]) -> None:
    """Into ``shipped``: each of ``wants`` the base does not hold by sha256."""
    holdings: dict[tuple[str, str], list[Mapping[str, Held]]] = {}  # looked up once per subdir, not per file
    for w in wants:  # one pass, no call per file (a conda-forge subdir selects 300,000)
        if base is not None and w.sha256:
            places = holdings.get((w.channel, w.subdir))
            if places is None:  # where the receipt says the channel went
                targets = base.targets_of(w.channel) or [w.channel]
                places = holdings[(w.channel, w.subdir)] = [base.holdings(t, w.subdir) for t in targets]
            held = False
            for files in places:
                h = files.get(w.filename)
                if h is not None and h.sha256 == w.sha256:
                    held = True
                    break
            if held:
                continue  # the base holds it
        shipped[w.sha256 or w.url] = w.size


def check_output(archive: Path, planned: int, free: Callable[[Path], int] | None = None) -> None:
    """Raise unless ``archive``'s directory takes a new file and has ``planned`` bytes free."""
    directory = archive.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".probe", dir=directory)
    except OSError as exc:
        raise AirgapError(
            f"{archive}: expected a writable place for the archive, found {directory} refuses new files "
            f"({exc.strerror}); nothing was downloaded; choose another ARCHIVE path or remount the medium read-write"
        ) from None
    os.close(fd)
    os.unlink(probe)
    available = (free or free_space)(directory)
    if planned > available:
        raise AirgapError(
            f"{archive}: the archive needs about {human(planned)}, found {human(available)} free on {directory}; "
            f"nothing was downloaded; free some space, write to a bigger medium, or split it with --volume-size"
        )


def archive_write_error(target: Path, exc: OSError) -> AirgapError | None:
    """The error to show when writing ``target`` failed with ``exc`` (None: not the archive's fault)."""
    if exc.filename is not None and Path(exc.filename).parent != target.parent:
        return None  # a cache file could not be read: its own name says more
    if exc.errno == errno.EFBIG:  # FAT32 media stop at 4 GiB, whatever room is left
        what = (
            "File too large: the file system takes no file this large; split the archive with "
            "--volume-size (e.g. 4000M for FAT32) or use another file system"
        )
    elif exc.errno in _NO_ROOM:
        what = "the medium is full"
    else:
        what = exc.strerror or str(exc)
    return AirgapError(f"{target}: could not write the archive ({what}); no partial archive was left there")
