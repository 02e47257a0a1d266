"""S3-compatible object storage (AWS S3, MinIO, SeaweedFS, Ceph RGW): ``s3://BUCKET/PREFIX``.

Layout: ``PREFIX/<channel>/<subdir>/{repodata.json, repodata.json.zst, <files>}``, so that
``http(s)://ENDPOINT/BUCKET/PREFIX/<channel>`` is a conda channel for any client that can
read the bucket; airgap's own state lives under ``PREFIX/.airgap/`` (``receipt.json``, the
lock, and a change's journal and backups while it runs).

Credentials and endpoint come from boto3's usual places: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, or a
site's ``endpoint_url`` / ``region`` / ``profile``.

Every object write is atomic in S3, so the directory destination's guarantees carry over:
package objects first (parallel, multipart above ``multipart_threshold``), then each subdir's
index, then the receipt. Before an existing object is overwritten or removed, a server-side
copy goes to the change's backup area and the journal (``PREFIX/.airgap/staging-*/journal.json``)
names it, so a failed change is undone at once and a killed one by the next run that takes
the lock. The lock is an object created with ``If-None-Match: *`` (a conditional write, which
AWS S3, MinIO and SeaweedFS honour); a lock older than ``lock_stale_after`` seconds is taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ..errors import DestinationError, UsageError
from ..faults import attach_boto
from ..manifest import is_safe_channel_name
from ..receipt import REBUILD
from ..repodata import Repodata
from ..signals import deferred_signals
from ..urlsafety import check_prefix
from .base import Change, Destination, OnBytes, Put, empty_receipt, index_files, iter_batches, parse_index
from .lease import DEFAULT_STALE_AFTER, Lease, LeaseHolder, held
from .s3lease import S3LeaseStore

log = logging.getLogger(__name__)

STATE = ".airgap"
JOURNAL_FORMAT = "airgap-s3-journal/1"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_T = TypeVar("_T")
_INDEX_NAMES = ("repodata.json.zst", "repodata.json", "current_repodata.json")
_CONTENT_TYPES = {".json": "application/json", ".zst": "application/zstd", ".html": "text/html; charset=utf-8"}


def _content_type(name: str) -> str:
    return _CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")


class S3Destination(LeaseHolder, Destination):
    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        public_url: str | None = None,
        workers: int = 8,
        multipart_threshold: int = 16 << 20,
        lock_stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        if not _BUCKET.match(bucket):
            raise UsageError(f"s3: expected a bucket name of 3-63 lower-case letters, digits, '.' and '-', found {bucket!r}")
        parts = check_prefix(prefix, "s3")
        if any(p.startswith(".airgap") for p in parts):
            raise UsageError(f"s3: expected a prefix of plain path components, found {prefix!r}")
        self.bucket = bucket
        self.prefix = "/".join(parts)
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self.public_url = public_url.rstrip("/") if public_url else None
        self.workers = max(1, int(workers))
        self.multipart_threshold = max(5 << 20, int(multipart_threshold))  # S3's smallest part is 5 MiB
        self.lock_stale_after = float(lock_stale_after)
        self._client: Any = None
        self._lease: Lease | None = None

    @classmethod
    def from_url(cls, url: str, site: dict[str, Any]) -> S3Destination:
        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        settings = {k: v for k, v in site.items() if k != "url"}  # open_destination checked the keys (SITE_KEYS)
        return cls(bucket, prefix, **settings)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- plumbing ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise UsageError("s3 destinations need boto3: pip install 'airgap[s3]' (or boto3)") from None
            session = boto3.session.Session(profile_name=self.profile) if self.profile else boto3.session.Session()
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            config = Config(
                s3={"addressing_style": "path" if endpoint else "auto"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=self.workers + 4,
                connect_timeout=10,
                read_timeout=60,
            )
            self._client = session.client(
                "s3", endpoint_url=endpoint, region_name=self.region or session.region_name or "us-east-1", config=config
            )
            attach_boto(self._client)  # a test hook; off unless AIRGAP_FAULT is set
        return self._client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _call(self, what: str, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: BaseException) -> BaseException:
        """One line for a botocore failure: what was expected, what the storage said, what to check."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = err.get("Code", "?")
            msg = err.get("Message") or ""
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "SignatureDoesNotMatch":
                hint = "the storage refused the secret key; check AWS_SECRET_ACCESS_KEY"
            elif code in ("InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"):
                hint = "the storage does not know this access key; check AWS_ACCESS_KEY_ID"
            elif code in ("AccessDenied", "Forbidden") or status == 403:
                hint = "access denied; the credentials need read, list and write on the bucket"
            elif code == "NoSuchBucket" or (status == 404 and what.startswith("checking")):
                hint = f"expected bucket {self.bucket!r}, found none; create it first (airgap does not create buckets)"
            else:
                hint = f"the storage answered {code}{f' ({msg})' if msg else ''}"
            return DestinationError(f"{self}: {what}: {hint}")
        if isinstance(exc, NoCredentialsError):
            return DestinationError(
                f"{self}: {what}: expected AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), found none"
            )
        if isinstance(exc, EndpointConnectionError):
            return DestinationError(f"{self}: {what}: cannot reach the storage endpoint ({exc}); check AWS_ENDPOINT_URL")
        if isinstance(exc, BotoCoreError):
            return DestinationError(f"{self}: {what}: {exc}")
        return exc

    @staticmethod
    def _missing(exc: BaseException) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = exc.response.get("Error", {}).get("Code")
        return code in ("NoSuchKey", "404", "NotFound") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404

    def _get(self, key: str) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
            return data
        except Exception as exc:
            if self._missing(exc):
                return None
            raise self._error(f"reading {key}", exc) from None

    def _put(self, key: str, data: bytes, **extra: Any) -> None:
        self._call(
            f"writing {key}", self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=_content_type(key), **extra
        )

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if self._missing(exc):
                return False
            raise self._error(f"looking for {key}", exc) from None

    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[tuple[str, int | None]]:
        """``(key, size)`` under ``prefix``; with a delimiter also ``(common prefix, None)``."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for obj in page.get("Contents", ()):
                    yield obj["Key"], int(obj["Size"])
                for cp in page.get("CommonPrefixes", ()):
                    yield cp["Prefix"], None
        except Exception as exc:
            raise self._error(f"listing {prefix or '/'}", exc) from None

    def _delete(self, keys: list[str]) -> None:
        for batch in iter_batches(keys, 1000):
            out = self._call(
                "removing objects",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [e for e in out.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if errors:
                e = errors[0]
                raise DestinationError(
                    f"{self}: removing {e.get('Key')}: the storage answered {e.get('Code')} ({e.get('Message')}); "
                    f"{len(errors)} object(s) not removed"
                )

    def _copy(self, src: str, dst: str) -> None:
        self._call(f"copying {src}", self.client.copy_object, Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src})

    # -- reading -------------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if self._missing(exc):
                return False
            raise self._error("checking the bucket", exc) from None
        return True

    def channel_url(self, channel: str) -> str:
        if self.public_url:
            return f"{self.public_url}/{channel}"
        endpoint = str(self.client.meta.endpoint_url).rstrip("/")
        return "/".join(p for p in (endpoint, self.bucket, self.prefix, channel) if p)

    def read_receipt(self) -> dict[str, Any]:
        key = self._key(STATE, "receipt.json")
        data = self._get(key)
        if data is None:
            return empty_receipt()
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DestinationError(
                f"{self}/{STATE}/receipt.json: expected an airgap receipt, found something unreadable ({str(exc)[:100]}); {REBUILD}"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != empty_receipt()["format"]:
            raise DestinationError(
                f"{self}/{STATE}/receipt.json: expected format {empty_receipt()['format']}, found {str(doc.get('format') if isinstance(doc, dict) else type(doc).__name__)[:40]!r}; {REBUILD}"
            )
        doc.setdefault("archives", [])
        doc.setdefault("channels", {})
        return doc

    def write_receipt(self, receipt: dict[str, Any]) -> str:
        self._put(self._key(STATE, "receipt.json"), _receipt_bytes(receipt))
        return f"{self}/{STATE}/receipt.json"

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        key = self._key(channel, subdir, "repodata.json")
        return parse_index(self._get(key), subdir, f"s3://{self.bucket}/{key}")

    def read_index_file(self, channel: str, subdir: str, name: str) -> bytes | None:
        return self._get(self._key(channel, subdir, name))

    def inventory(self) -> dict[str, list[str]]:
        base = self._key() + "/" if self.prefix else ""
        out: dict[str, list[str]] = {}
        for cp, size in self._list(base, "/"):
            name = cp[len(base) :].rstrip("/")
            if size is not None or name.startswith(".") or not is_safe_channel_name(name):
                continue
            subs = []
            for sp, ssize in self._list(cp, "/"):
                sub = sp[len(cp) :].rstrip("/")
                if ssize is None and sub and self._exists(f"{sp}repodata.json"):
                    subs.append(sub)
            if subs:
                out[name] = sorted(subs)
        return out

    def files(self, channel: str, subdir: str) -> dict[str, int]:
        base = self._key(channel, subdir) + "/"
        return {key[len(base) :]: size for key, size in self._list(base, "/") if size is not None}

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        key = self._key(channel, subdir, filename)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if self._missing(exc):
                return None
            raise self._error(f"reading {key}", exc) from None
        h = hashlib.sha256()
        with contextlib.closing(body):
            for chunk in iter(lambda: body.read(1 << 20), b""):
                h.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        return h.hexdigest()

    # -- changing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        """The lease of :mod:`.lease` on ``PREFIX/.airgap/lock``, renewed while the body runs."""
        # a read first: it names a wrong key, secret or bucket precisely (and some stores create a missing bucket on write)
        self._call("checking the bucket", self.client.list_objects_v2, Bucket=self.bucket, Prefix=self._key(STATE) + "/", MaxKeys=1)
        with held(S3LeaseStore(self), f"{self}/{STATE}/lock", timeout, self.lock_stale_after) as lease:
            self._lease = lease
            try:
                for line in self.recover():
                    log.warning("%s: %s", self, line)
                yield
            finally:
                self._lease = None

    def recover(self) -> list[str]:
        """Under the lock: roll back changes killed runs left (their saved journals), remove their leftovers."""
        done: list[str] = []
        base = self._key(STATE, "staging-")
        areas: dict[str, list[str]] = {}
        for key, _size in self._list(base):
            area = key[: key.index("/", len(base)) + 1] if "/" in key[len(base) :] else key
            areas.setdefault(area, []).append(key)
        for area, keys in sorted(areas.items()):
            journal_key = area + "journal.json"
            if journal_key in keys:
                journal = _S3Journal.load(self, area)
                with deferred_signals():
                    ok = journal.rollback()
                if not ok:
                    raise DestinationError(
                        f"{self}: expected to roll back the interrupted change in {area}, could not restore every "
                        "object (see the errors above); fix that, then retry"
                    )
                done.append(f"rolled back the interrupted change of {area.rstrip('/').rsplit('/', 1)[-1]}")
            self._delete(keys)
            done.append(f"removed {area.rstrip('/').rsplit('/', 1)[-1]}")
        return done

    def begin(self, label: str) -> S3Change:
        self.fence()
        area = self._key(STATE, f"staging-{label}-{socket.gethostname()}-{os.getpid()}") + "/"
        return S3Change(self, _S3Journal(self, area))

    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        self.fence()  # a new owner may have listed one of these names again
        self._delete([self._key(c, s, f) for c, s, f in files])

    def put_page(self, channel: str, subdir: str | None, data: bytes, name: str = "index.html") -> None:
        self._put(self._key(channel, subdir or "", name), data)

    def upload(self, puts: list[tuple[str, Put]], on_bytes: OnBytes | None) -> None:
        """Upload blobs in parallel (multipart above the threshold); return when every one is stored."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        class Progress(BaseSubscriber):  # type: ignore[misc]
            def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
                if on_bytes is not None:
                    on_bytes(bytes_transferred)

        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
            max_concurrency=self.workers,
            use_threads=True,
        )
        subscribers = [Progress()] if on_bytes is not None else []
        with create_transfer_manager(self.client, config) as manager:
            for window in iter_batches(puts, 4 * self.workers):  # bounded open files whatever the count
                if self._lease is not None and self._lease.lost is not None:
                    self.fence()  # raises: the heartbeat found the lock taken over
                pending = []
                try:
                    for key, p in window:
                        fh = p.blob.open()
                        pending.append(
                            (
                                key,
                                fh,
                                manager.upload(
                                    fh,
                                    self.bucket,
                                    key,
                                    subscribers=subscribers,
                                    extra_args={"ContentType": _content_type(key), "Metadata": {"sha256": p.blob.sha256}},
                                ),
                            )
                        )
                    for key, _fh, future in pending:
                        try:
                            future.result()
                        except Exception as exc:
                            raise self._error(f"uploading {key}", exc) from None
                finally:
                    for _key, fh, _future in pending:
                        fh.close()


class S3Change(Change):
    def __init__(self, dest: S3Destination, journal: _S3Journal) -> None:
        self.dest = dest
        self.journal = journal
        self._listed: dict[str, set[str]] = {}

    def _exists(self, key: str) -> bool:
        folder, _, name = key.rpartition("/")
        if folder not in self._listed:
            self._listed[folder] = {k.rpartition("/")[2] for k, size in self.dest._list(folder + "/", "/") if size is not None}
        return name in self._listed[folder]

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        d = self.dest
        for channel, subdir, filename in packages:
            key = d._key(channel, subdir, filename)
            self.journal.prepare(key, self._exists(key))
        for channel, subdir in indexes:
            for name in _INDEX_NAMES:
                key = d._key(channel, subdir, name)
                self.journal.prepare(key, self._exists(key))
        key = d._key(STATE, "receipt.json")
        self.journal.prepare(key, self._exists(key))
        self.journal.save()

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        self.dest.fence()
        puts = []
        for p in batch:
            key = self.dest._key(p.channel, p.subdir, p.filename)
            self.journal.prepare(key, self._exists(key))
            puts.append((key, p))
        self.dest.upload(puts, on_bytes)

    def publish_index(self, channel: str, subdir: str, repodata: Repodata) -> None:
        d = self.dest
        d.fence()
        raw = repodata.to_bytes()
        for name, data in index_files(raw):
            key = d._key(channel, subdir, name)
            self.journal.prepare(key, self._exists(key))
            d._put(key, data)
        stale = d._key(channel, subdir, "current_repodata.json")
        if self._exists(stale):  # never leave a current_repodata.json that disagrees with repodata.json
            self.journal.prepare(stale, True)
            d._delete([stale])

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        key = self.dest._key(STATE, "receipt.json")
        self.dest.fence()
        self.journal.prepare(key, self._exists(key))
        self.dest._put(key, _receipt_bytes(receipt))

    def put_document(self, name: str, data: bytes) -> str | None:
        key = self.dest._key(STATE, *name.split("/"))
        self.journal.prepare(key, self._exists(key))
        self.dest._put(key, data)
        return f"{STATE}/{name}"

    def commit(self) -> None:
        self.dest.fence()
        with deferred_signals():  # the journal goes whole or not at all
            self.journal.commit()

    def rollback(self) -> None:
        if not self.dest.holds_lock():  # another process took the lock over: it owns the journal now; touch nothing
            log.error(
                "%s: not rolling back: this process no longer holds the lock; the next run rolls back from %s", self.dest, self.journal.area
            )
            return
        with deferred_signals():  # a second Ctrl-C must not cut a rollback short
            ok = self.journal.rollback()
        if not ok:
            log.error(
                "%s: the change could not be undone completely; the next import or clean retries from %s", self.dest, self.journal.area
            )

    def close(self) -> None:
        if not self.journal.saved:
            with contextlib.suppress(Exception):
                self.dest._delete([k for k, _ in self.dest._list(self.journal.area)])


class _S3Journal:
    """The directory journal's twin: before an object changes, a server-side copy of what was there."""

    def __init__(self, dest: S3Destination, area: str) -> None:
        self.dest = dest
        self.area = area  # ends with "/"
        self.entries: dict[str, str | None] = {}
        self.saved = False
        self._n = 0

    def prepare(self, key: str, exists: bool) -> None:
        if key in self.entries:
            return
        if exists:
            self._n += 1
            backup = f"{self.area}backup/{self._n}"
            self.dest._copy(key, backup)
            self.entries[key] = backup
        else:
            self.entries[key] = None
        if self.saved:
            self.save()

    def save(self) -> None:
        doc = {"format": JOURNAL_FORMAT, "entries": [[k, b] for k, b in self.entries.items()]}
        self.dest._put(self.area + "journal.json", json.dumps(doc, separators=(",", ":")).encode())
        self.saved = True

    def commit(self) -> None:
        self.dest._delete([self.area + "journal.json"])
        self.saved = False
        self.entries.clear()
        self.dest._delete([k for k, _ in self.dest._list(self.area)])

    @classmethod
    def load(cls, dest: S3Destination, area: str) -> _S3Journal:
        where = f"s3://{dest.bucket}/{area}journal.json"
        data = dest._get(area + "journal.json")
        journal = cls(dest, area)
        try:
            doc = json.loads(data or b"")
            if doc.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            base = dest._key() + "/" if dest.prefix else ""
            for key, backup in doc["entries"]:
                if not (isinstance(key, str) and key.startswith(base) and ".." not in key.split("/")):
                    raise ValueError(f"key {key!r} outside {base or '/'}")
                if backup is not None and not (isinstance(backup, str) and backup.startswith(area + "backup/")):
                    raise ValueError(f"backup {backup!r}")
                journal.entries[key] = backup
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DestinationError(
                f"{where}: expected an airgap journal, found a malformed one ({exc}); check the bucket, then delete {area}"
            ) from None
        journal.saved = True
        return journal

    def rollback(self) -> bool:
        ok = True
        for key, backup in reversed(list(self.entries.items())):
            try:
                if backup is None:
                    self.dest._delete([key])
                else:
                    self.dest._copy(backup, key)
            except Exception as exc:
                log.error("rollback: could not restore s3://%s/%s: %s", self.dest.bucket, key, exc)
                ok = False
        if ok:
            with contextlib.suppress(Exception):
                self.dest._delete([k for k, _ in self.dest._list(self.area)])
            self.saved = False
        self.entries.clear()
        return ok


def _receipt_bytes(receipt: dict[str, Any]) -> bytes:
    return json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode("utf-8")
