"""S3-compatible object storage as a destination: ``s3://BUCKET/PREFIX`` (the registry's opener).

Layout: ``PREFIX/<channel>/<subdir>/{repodata.json, repodata.json.zst, <files>}``, so that
``http(s)://ENDPOINT/BUCKET/PREFIX/<channel>`` is a conda channel for any client that can
read the bucket; airgap's own state lives under ``PREFIX/.airgap/`` (``receipt.json``, the
lock, ``sbom/``, and a change's journal and backups while it runs).

The destination is the transaction engine (:class:`~airgap.destinations.engine.StoreDestination`)
over an :class:`~airgap.destinations.s3store.S3Store`: the engine journals, locks, fences and
recovers; the store moves bytes. Credentials and endpoint come from boto3's usual places
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``) or a site's ``endpoint_url`` / ``region`` / ``profile``.

A journal an older airgap left (``airgap-s3-journal/1``: bucket keys, not store keys) is read
once by the recovery of the next run (:func:`adopt_legacy_journals`), then rolled back as any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core.manifest import is_safe_channel_name
from ..errors import DestinationError
from . import formats
from .engine import StoreDestination
from .journal import AREA_PREFIX, JOURNAL, JOURNAL_FORMAT
from .lease import DEFAULT_STALE_AFTER
from .registry import check_site
from .s3store import S3Store

LEGACY_JOURNAL_FORMAT = "airgap-s3-journal/1"
SITE_KEYS = {
    "url",
    "endpoint_url",
    "region",
    "profile",
    "public_url",
    "workers",
    "multipart_threshold",
    "lock_stale_after",
    "index_formats",
}


class S3Destination(StoreDestination):
    """The engine over an :class:`S3Store`."""

    kind = "s3"
    store: S3Store

    def inventory(self) -> dict[str, list[str]]:
        """As the engine's, from two levels of folders (a bucket may hold 100,000s of package objects)."""
        out: dict[str, list[str]] = {}
        for channel in self.store.folders(""):
            if channel.startswith(".") or not is_safe_channel_name(channel):
                continue
            subdirs = [s for s in self.store.folders(channel + "/") if s and self.store.has(self.key(channel, s, "repodata.json"))]
            if subdirs:
                out[channel] = sorted(subdirs)
        return out

    def recover(self) -> list[str]:
        return adopt_legacy_journals(self.store) + super().recover()


def open_s3(spec: str, site: Mapping[str, Any]) -> S3Destination:
    """``s3://BUCKET[/PREFIX]`` as a destination; ``site``: its settings from the config (checked here)."""
    check_site("s3", site, SITE_KEYS)
    bucket, _, prefix = spec[len("s3://") :].partition("/")
    settings = {k: v for k, v in site.items() if k not in ("url", "lock_stale_after", "index_formats")}
    store = S3Store(bucket, prefix, **settings)
    return S3Destination(
        store,
        index_formats=tuple(f.name for f in formats.from_site(site)),
        lock_stale_after=float(site.get("lock_stale_after", DEFAULT_STALE_AFTER)),
        workers=int(site.get("workers", 8)),
    )


def adopt_legacy_journals(store: S3Store) -> list[str]:
    """Under the lock: rewrite each ``airgap-s3-journal/1`` a killed older airgap left as the engine's journal (store keys)."""
    done: list[str] = []
    base = f"{store.prefix}/" if store.prefix else ""
    for key, _size in list(store.list_prefix(AREA_PREFIX)):
        area = key[: -len(JOURNAL)]
        if not key.endswith("/" + JOURNAL) or "/" in area[len(AREA_PREFIX) : -1]:
            continue
        data = store.get(key)
        try:
            doc = json.loads(data or b"")
        except (ValueError, RecursionError):
            continue  # not ours to judge: the engine's recovery says what is wrong with it
        if not isinstance(doc, dict) or doc.get("format") != LEGACY_JOURNAL_FORMAT:
            continue
        entries = []
        try:
            for bucket_key, backup in doc["entries"]:
                if not (isinstance(bucket_key, str) and bucket_key.startswith(base)):
                    raise ValueError(f"key {bucket_key!r} outside {base or '/'}")
                if backup is not None and not (isinstance(backup, str) and backup.startswith(base + area + "backup/")):
                    raise ValueError(f"backup {backup!r} outside {base}{area}backup/")
                entries.append([bucket_key[len(base) :], backup and backup[len(base) :]])
        except (ValueError, TypeError, KeyError) as exc:
            raise DestinationError(
                f"{store}/{key}: expected a journal of an older airgap ({LEGACY_JOURNAL_FORMAT}), found a malformed one "
                f"({str(exc)[:100]}); finish the interrupted change with the airgap version that began it, then retry"
            ) from None
        store.put(key, json.dumps({"format": JOURNAL_FORMAT, "entries": entries}, separators=(",", ":")).encode("utf-8"))
        done.append(f"read the journal of an older airgap in {area}")
    return done
