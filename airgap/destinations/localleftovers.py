"""A directory store's own leftovers, removed under the lock (:meth:`~airgap.destinations.localstore.LocalStore.remove_leftovers`).

A killed run leaves the temporary files of its writes (in ``.airgap/tmp``, or beside their targets in
each channel's subdirs) and its change's area (staged blobs, a subdir staged whole); the journals are
done with by then, so whatever is left is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from .._fs import fsync_dir
from .journal import AREA_PREFIX, STATE

TMP = f"{STATE}/tmp"  # where put() writes before its rename
TEMP = re.compile(r"\..+\.(airgap-tmp|[a-z0-9_]{8}\.tmp)\Z")


def remove_leftovers(root: Path, state: str, tmpdir: str, everywhere: bool) -> list[str]:
    """Under the lock, after the journals are done: staging folders left empty, and (``everywhere``: a killed run was
    found) the temporary files of killed writes in ``state`` (the ``.airgap`` folder's path) and each channel's subdirs."""
    done: list[str] = []
    if not os.path.isdir(state):
        return done
    if os.path.isdir(tmpdir) and not os.path.islink(tmpdir):  # killed writes of put(): always cleared (one small folder)
        for entry in os.scandir(tmpdir):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                done.append(f"removed {TMP}/{entry.name}")
        with contextlib.suppress(OSError):
            os.rmdir(tmpdir)  # under the lock: no put() is running
    for entry in os.scandir(state):
        if entry.name.startswith(AREA_PREFIX[len(STATE) + 1 :]):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            done.append(f"removed {entry.name}")
    if not (done or everywhere):
        return done
    dirs = (
        [state]
        + [
            os.fspath(d)
            for pattern in ("*/*", "*/*/*")  # each channel's subdirs, and their folders (CEP-16 shards/)
            for d in root.glob(pattern)
            if d.is_dir()
            and not any(p.is_symlink() for p in (d, *d.parents[: len(d.relative_to(root).parts) - 1]))
            and not d.relative_to(root).parts[0].startswith(".")
        ]
    )
    for d in dirs:
        removed = 0
        for entry in os.scandir(d):
            if TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        if removed:
            done.append(f"removed {removed} temporary file(s) from {d}")
    fsync_dir(Path(state))
    return done
