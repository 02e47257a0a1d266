"""An S3 bucket and prefix as an :class:`~airgap.destinations.store.ObjectStore` (AWS S3, MinIO, SeaweedFS, Ceph RGW).

Keys are relative to ``PREFIX``: the store's key ``main/noarch/repodata.json`` is the object
``PREFIX/main/noarch/repodata.json``. Every object write of S3 is atomic, so :meth:`S3Store.put`
is a ``PutObject``; :meth:`S3Store.put_blob` streams verified bytes from a local file (one
``PutObject`` below ``multipart_threshold``, a multipart upload through boto3's transfer
manager above it, ``workers`` parts at a time for the whole store). The journal's copies
are server-side ``CopyObject`` calls. The four lock primitives are conditional requests
(``If-None-Match: *`` to create, ``If-Match: <ETag>`` to replace or delete) that AWS S3, MinIO
and SeaweedFS honour, answering 409/412 when the condition fails.

A failure becomes one :class:`~airgap.errors.DestinationError` line that says what was being
done and what to check (credentials, a missing bucket, the endpoint); a server error or a lost
connection on a lock call is :class:`~airgap.destinations.lease.StoreUnavailable` (asked again).
Credentials come from boto3's usual places and never reach a message.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import DestinationError, StoreUnavailable, UsageError
from ..faults import attach_boto
from ..upstream.urlsafety import check_prefix
from .base import BlobRef, OnBytes, iter_batches
from .store import check_key

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_T = TypeVar("_T")
_CONTENT_TYPES = {".json": "application/json", ".zst": "application/zstd", ".html": "text/html; charset=utf-8"}
CHUNK = 1 << 20


def _content_type(name: str) -> str:
    return _CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")


def _missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


def _refused(exc: BaseException) -> bool:
    """A conditional request whose condition failed (409 Conflict, 412 Precondition Failed)."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)


class S3Store:
    """The objects under ``s3://BUCKET/PREFIX`` (see the module docstring)."""

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
        self._client: Any = None
        self._manager: Any = None
        self._mutex = threading.Lock()
        self._checked = False

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- plumbing ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._mutex:  # the engine stores package files from several threads
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

    def _key(self, key: str) -> str:
        """The bucket key of a store key."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

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

    def _lock_error(self, what: str, exc: BaseException) -> BaseException:
        """:meth:`_error`, but a server error or a lost connection is :class:`StoreUnavailable`: the lease asks again."""
        from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError

        err = self._error(what, exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(exc, ClientError) else None
        if (isinstance(status, int) and status >= 500) or isinstance(exc, (EndpointConnectionError, ConnectionError)):
            return StoreUnavailable(str(err))
        return err

    def _body(self, key: str, what: str) -> Any:
        """The streaming body of ``key``, or None if there is no such object."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            if _missing(exc):
                return None
            raise self._error(f"{what} {self._key(key)}", exc) from None

    # -- objects -------------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if _missing(exc):
                return False
            raise self._error("checking the bucket", exc) from None
        return True

    def get(self, key: str) -> bytes | None:
        body = self._body(key, "reading")
        if body is None:
            return None
        with contextlib.closing(body):
            data: bytes = self._call(f"reading {self._key(key)}", body.read)
        return data

    def chunks(self, key: str) -> Iterator[bytes] | None:
        body = self._body(key, "reading")
        if body is None:
            return None

        def read() -> Iterator[bytes]:
            with contextlib.closing(body):
                while chunk := self._call(f"reading {self._key(key)}", body.read, amt=CHUNK):
                    yield chunk

        return read()

    def put(self, key: str, data: bytes) -> None:
        k = self._key(key)
        self._call(f"writing {k}", self.client.put_object, Bucket=self.bucket, Key=k, Body=data, ContentType=_content_type(k))

    def put_blob(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        """One ``PutObject`` from the file; above ``multipart_threshold``, a multipart upload (the store's transfer manager)."""
        k = self._key(key)
        extra = {"ContentType": _content_type(k), "Metadata": {"sha256": blob.sha256}}
        with blob.open() as fh:
            if blob.size < self.multipart_threshold:  # the caller's thread: the engine stores `workers` files at a time
                self._call(f"uploading {k}", self.client.put_object, Bucket=self.bucket, Key=k, Body=fh, **extra)
                if on_bytes is not None:
                    on_bytes(blob.size)
                return
            subscribers = [_progress(on_bytes)] if on_bytes is not None else []
            future = self._transfers().upload(fh, self.bucket, k, subscribers=subscribers, extra_args=extra)
            try:
                self._call(f"uploading {k}", future.result)
            except BaseException:  # a Ctrl-C: abort the multipart upload, and let it stop reading the file before it closes
                future.cancel()
                with contextlib.suppress(BaseException):
                    future.result()
                raise

    def _transfers(self) -> Any:
        """One transfer manager per store: at most ``workers`` parts in flight whatever the number of large files."""
        client = self.client
        with self._mutex:
            if self._manager is None:
                from boto3.s3.transfer import TransferConfig, create_transfer_manager

                config = TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=self.multipart_threshold,
                    max_concurrency=self.workers,
                    use_threads=True,
                )
                self._manager = create_transfer_manager(client, config)
            return self._manager

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = f"{self.prefix}/" if self.prefix else ""
        full = base + prefix
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(base) :], int(obj["Size"])
        except Exception as exc:
            raise self._error(f"listing {full or '/'}", exc) from None

    def folders(self, prefix: str) -> list[str]:
        """The names of the folders right under ``prefix`` (a delimiter listing: their objects are not listed)."""
        base = (f"{self.prefix}/" if self.prefix else "") + prefix
        out: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                out.extend(cp["Prefix"][len(base) :].rstrip("/") for cp in page.get("CommonPrefixes", ()))
        except Exception as exc:
            raise self._error(f"listing {base or '/'}", exc) from None
        return out

    def has(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _missing(exc):
                return False
            raise self._error(f"looking for {self._key(key)}", exc) from None
        return True

    sizes_limit = 256  # HEADs of one folder before a listing (1,000 keys per request) is the cheaper question

    def sizes(self, keys: list[str]) -> dict[str, int]:
        """A HEAD per key (:class:`~airgap.destinations.store.KeySizes`): a delta into a big subdir airgap indexed asks
        about the archive's files, not the 1,000-key pages of every object the subdir holds."""
        found: dict[str, int] = {}
        for key in keys:
            try:
                found[key] = int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
            except Exception as exc:
                if not _missing(exc):
                    raise self._error(f"looking for {self._key(key)}", exc) from None
        return found

    def delete(self, keys: list[str]) -> None:
        for batch in iter_batches([self._key(k) for k in keys], 1000):
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

    def url(self, key: str) -> str:
        if self.public_url:
            return f"{self.public_url}/{key}"
        endpoint = str(self.client.meta.endpoint_url).rstrip("/")
        return "/".join(p for p in (endpoint, self.bucket, self.prefix, key) if p)

    # -- the journal's copies (server-side) ------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        s, d = self._key(src), self._key(dst)
        self.client.copy_object(Bucket=self.bucket, Key=d, CopySource={"Bucket": self.bucket, "Key": s})

    def backup(self, key: str, backup_key: str) -> bool:
        try:
            self._copy(key, backup_key)
        except Exception as exc:
            if _missing(exc):
                return False
            raise self._error(f"copying {self._key(key)}", exc) from None
        return True

    def restore(self, backup_key: str, key: str) -> None:
        self._call(f"copying {self._key(backup_key)}", self._copy, src=backup_key, dst=key)

    # -- the lock: conditional requests ----------------------------------------------------

    def create(self, key: str, data: bytes) -> str | None:
        if not self._checked:  # a read first: it names a wrong key, secret or bucket precisely (some stores create a bucket on write)
            self._call("checking the bucket", self.client.list_objects_v2, Bucket=self.bucket, Prefix=self._key(".airgap") + "/", MaxKeys=1)
            self._checked = True
        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", ContentType="application/json")
        except Exception as exc:
            if _refused(exc):
                return None
            raise self._lock_error("taking the lock", exc) from None
        return str(out["ETag"])

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            with contextlib.closing(out["Body"]) as body:
                data: bytes = body.read()
        except Exception as exc:
            if _missing(exc):
                return None
            raise self._lock_error("reading the lock", exc) from None
        return data, str(out["ETag"])

    def replace_if(self, key: str, data: bytes, version: str) -> str | None:
        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=version, ContentType="application/json")
        except Exception as exc:
            if _refused(exc) or _missing(exc):
                return None
            raise self._lock_error("renewing the lock", exc) from None
        return str(out["ETag"])

    def delete_if(self, key: str, version: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=version)
        except Exception as exc:
            if _refused(exc):
                return False
            if _missing(exc):
                return True
            raise self._lock_error("releasing the lock", exc) from None
        return True


def _progress(on_bytes: OnBytes) -> Any:
    from s3transfer.subscribers import BaseSubscriber

    class Progress(BaseSubscriber):  # type: ignore[misc]
        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            on_bytes(bytes_transferred)

    return Progress()
