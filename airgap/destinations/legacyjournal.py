"""The journal of airgap's directory destination before the transaction engine (``airgap-journal/1``), read once.

A destination killed mid-import by that version holds ``.airgap/staging-*/journal.json`` in the
old format: paths relative to the root, backups named ``N.bak`` in ``backup/``, the folders the
change created. Recovery (:meth:`~airgap.destinations.directory.DirectoryDestination.recover`)
rewrites it, in place, as the engine's journal of the same undo (the backups stay where they
are; the folders go when the undo empties them), and the engine rolls it back as any other.
A malformed one, or one that leads through a link, stops recovery with what to do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._safepath import check_beneath
from ..errors import DestinationError
from .journal import AREA_PREFIX, JOURNAL, JOURNAL_FORMAT
from .localstore import LocalStore

FORMAT = "airgap-journal/1"
_BACKUP = re.compile(r"[0-9]{1,9}\.bak\Z")


def load(store: LocalStore, area: str) -> list[list[str | None]]:
    """The entries ``[key, backup key or None]`` of the old journal of ``area``; a DestinationError if it is malformed."""
    staging = store.path(area.rstrip("/"))
    path = f"{staging}/{JOURNAL}"
    root = store.text
    try:
        doc = json.loads(store.get(area + JOURNAL) or b"null")
    except (ValueError, RecursionError) as exc:
        raise DestinationError(
            f"{path}: expected an airgap journal, found something unreadable ({exc}); check the destination, then remove {staging}"
        ) from None
    checked: set[tuple[str, ...]] = set()

    def safe(rel: Any) -> str:
        parts = rel.split("/") if isinstance(rel, str) else []
        if not parts or any(p in ("", ".", "..") or "\0" in p or "\\" in p for p in parts):
            raise DestinationError(f"{path}: expected paths inside {root}, found {rel!r}; check the destination, then remove {staging}")
        if tuple(parts[:-1]) not in checked:  # an undo must not write through a link either
            check_beneath(root, "/".join([root.rstrip("/"), *parts[:-1]]))
            checked.add(tuple(parts[:-1]))
        if rel.startswith(AREA_PREFIX) or rel == ".airgap/lock":
            raise DestinationError(f"{path}: expected paths outside airgap's lock and staging, found {rel!r}; then remove {staging}")
        return str(rel)

    try:
        if doc.get("format") != FORMAT:
            raise DestinationError(
                f"{path}: expected format {FORMAT}, found {doc.get('format')!r}; check the destination, then remove {staging}"
            )
        entries: list[list[str | None]] = []
        for rel, backup in doc["entries"]:
            if backup is not None and not (isinstance(backup, str) and _BACKUP.match(backup)):
                raise DestinationError(
                    f"{path}: expected a backup name like 1.bak, found {backup!r}; check the destination, then remove {staging}"
                )
            entries.append([safe(rel), f"{area}backup/{backup}" if backup else None])
        for rel in doc["dirs"]:
            safe(rel)  # the undo removes them once it empties them
    except (AttributeError, KeyError, TypeError, ValueError):
        raise DestinationError(
            f"{path}: expected an airgap journal, found a malformed one; check the destination, then remove {staging}"
        ) from None
    return entries


def upgrade(store: LocalStore) -> list[str]:
    """Under the lock, before the engine's recovery: rewrite every old journal as the engine's; one line per journal."""
    done = []
    for key, _size in sorted(store.list_prefix(AREA_PREFIX)):
        area, _, name = key.rpartition("/")
        if name != JOURNAL or area.count("/") != 1:
            continue
        head = store.get(key) or b""
        if f'"{FORMAT}"'.encode() not in head:
            continue
        entries = load(store, area + "/")
        store.put(key, json.dumps({"format": JOURNAL_FORMAT, "entries": entries}, separators=(",", ":")).encode("utf-8"))
        done.append(f"read the journal of {area.rsplit('/', 1)[-1]} left by an older airgap")
    return done
