"""A plain directory channel: ``ROOT/<channel>/<subdir>/{repodata.json,repodata.json.zst,<files>}``.

The transaction engine (:class:`~airgap.destinations.engine.StoreDestination`) over a
:class:`~airgap.destinations.localstore.LocalStore`: the journal, the lease, recovery and the
publish order are the engine's; the store moves files. What is a directory's own: the root is
created by the first import (and goes again if that import fails), the lock is an ``flock`` on
the root and then the engine's lease, recovery first reads the journal an older airgap left
(:mod:`~airgap.destinations.legacyjournal`) and ends with the store's own leftovers, and the
inventory is found by looking at ``ROOT/*/*/repodata.json`` rather than by listing every file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .._fs import makedirs_tracked
from ..errors import DestinationError, UsageError
from . import legacyjournal
from .engine import StoreDestination
from .localstore import LocalStore
from .registry import check_site


class DirectoryDestination(StoreDestination):
    kind = "directory"
    store: LocalStore

    def __init__(self, root: Path) -> None:
        super().__init__(LocalStore(root), workers=1)  # a rename is no faster from four threads
        self.root = self.store.root

    def inventory(self) -> dict[str, list[str]]:
        """``{channel: [subdir, ...]}`` for every ``<channel>/<subdir>/repodata.json`` present."""
        out: dict[str, list[str]] = {}
        if not self.root.is_dir():
            return out
        for ch in sorted(self.root.iterdir()):
            if ch.name.startswith(".") or not ch.is_dir():
                continue
            subs = sorted(d.name for d in ch.iterdir() if d.is_dir() and (d / "repodata.json").is_file())
            if subs:
                out[ch.name] = subs
        return out

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The root (created), its ``flock``, then the engine's lease and recovery; on an error, a root this run created goes."""
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root}: expected a directory, found a file")
        created: list[Path] = []
        try:
            makedirs_tracked(self.root, created)
        except OSError as exc:
            raise DestinationError(f"{self.root}: cannot create the destination directory: {exc.strerror}") from None
        try:
            with self.store.exclusive(timeout) as left, super().locked(left):
                yield
        except BaseException:
            for d in reversed(created):  # under no lock any more, but empty: nothing of anyone's is lost
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise

    def recover(self) -> list[str]:
        """Under the lock: an older airgap's journal read, every killed run undone, then the store's own leftovers."""
        done = legacyjournal.upgrade(self.store)
        done += super().recover()
        return done + self.store.remove_leftovers(everywhere=bool(done))


def open_directory(spec: str, site: Mapping[str, Any]) -> DirectoryDestination:
    """A path or ``file://`` URL as a destination (the registry's opener)."""
    check_site("directory", site, {"url"})
    if spec.startswith("file://") and ("?" in spec or "#" in spec):
        raise UsageError(f"--into: expected a file:// URL without '?' or '#' (a client cuts the path there), found {spec!r}")
    path = unquote(urlsplit(spec).path) if spec.startswith("file://") else spec
    return DirectoryDestination(Path(path))
