"""The lock object of an S3 destination, ``PREFIX/.airgap/lock``: a :class:`~.lease.LeaseStore`.

Created with ``If-None-Match: *``, replaced with ``If-Match: <ETag>``, deleted with ``If-Match``:
conditional requests that AWS S3, MinIO and SeaweedFS honour (409/412 when the condition
fails). Every record carries a new generation, so two versions never share an ETag.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import StoreUnavailable

if TYPE_CHECKING:
    from .s3 import S3Destination


def _error(dest: S3Destination, what: str, exc: BaseException) -> BaseException:
    """The destination's one-line error; a server error or a lost connection is :class:`StoreUnavailable` (asked again)."""
    from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError

    err = dest._error(what, exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(exc, ClientError) else None
    if (isinstance(status, int) and status >= 500) or isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return StoreUnavailable(str(err))
    return err


def _refused(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)


class S3LeaseStore:
    def __init__(self, dest: S3Destination) -> None:
        self.dest = dest
        self.key = dest._key(".airgap", "lock")

    def lease_create(self, data: bytes) -> str | None:
        d = self.dest
        try:
            out = d.client.put_object(Bucket=d.bucket, Key=self.key, Body=data, IfNoneMatch="*", ContentType="application/json")
        except Exception as exc:
            if _refused(exc):
                return None
            raise _error(d, "taking the lock", exc) from None
        return str(out["ETag"])

    def lease_read(self) -> tuple[bytes, str] | None:
        d = self.dest
        try:
            out = d.client.get_object(Bucket=d.bucket, Key=self.key)
            with contextlib.closing(out["Body"]) as body:
                data: bytes = body.read()
        except Exception as exc:
            if d._missing(exc):
                return None
            raise _error(d, "reading the lock", exc) from None
        return data, str(out["ETag"])

    def lease_replace(self, data: bytes, version: str) -> str | None:
        d = self.dest
        try:
            out = d.client.put_object(Bucket=d.bucket, Key=self.key, Body=data, IfMatch=version, ContentType="application/json")
        except Exception as exc:
            if _refused(exc) or d._missing(exc):
                return None
            raise _error(d, "renewing the lock", exc) from None
        return str(out["ETag"])

    def lease_delete(self, version: str) -> bool:
        d = self.dest
        try:
            d.client.delete_object(Bucket=d.bucket, Key=self.key, IfMatch=version)
        except Exception as exc:
            if _refused(exc):
                return False
            if d._missing(exc):
                return True
            raise _error(d, "releasing the lock", exc) from None
        return True
