"""Bounded reads of the files a user points airgap at: configuration files, keys, receipts.

``-f /dev/zero`` or ``--trusted-key /dev/zero`` must be one clear line, not an endless read:
:func:`read_small_file` accepts only a regular file (opened without blocking, so a FIFO
cannot hang it either) of at most ``limit`` bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import AirgapError, UsageError

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a cas-mirror config with a 20,000-name pkg_list is ~400 KB
MAX_KEY_BYTES = 64 << 10  # an Ed25519 PEM key is under 300 bytes; an encrypted one under 1 KiB
MAX_SIG_BYTES = 4096  # a detached signature (manifest.sig)
MAX_RECEIPT_BYTES = 1 << 30  # ~130 bytes a file: room for millions of files


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_small_file(path: str | os.PathLike[str], limit: int, what: str, error: type[AirgapError] = UsageError) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); anything else is ``error``, one line.

    Raises FileNotFoundError unchanged (callers word "not there" themselves).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise error(f"{p}: expected {what} (a regular file), found a directory") from None
        raise error(f"{p}: expected {what}, cannot read it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{p}: expected {what} (a regular file), found {_kind(st.st_mode)}")
        if st.st_size > limit:
            raise error(f"{p}: expected {what} of at most {limit} bytes, found {st.st_size}")
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew while we read
        raise error(f"{p}: expected {what} of at most {limit} bytes, found more")
    return data
