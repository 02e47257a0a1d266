"""Destinations: where imported channels are published. See :mod:`airgap.destinations.base`.

``open_destination`` picks the backend from what ``--into`` (or a site's ``url``) says:

* a scheme of :mod:`airgap.destinations.registry`: a path or ``file://`` URL
  (:class:`~airgap.destinations.directory.DirectoryDestination`), ``memory://NAME`` (the
  transaction engine over an in-memory store);
* ``s3://BUCKET[/PREFIX]`` — S3-compatible object storage (boto3; AWS S3, MinIO, SeaweedFS);
* ``quetz+http(s)://HOST[:PORT][/BASE]/CHANNEL`` — a quetz package server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .base import Destination
from .registry import open_registered

SITE_KEYS = {
    "s3": {"url", "endpoint_url", "region", "profile", "public_url", "workers", "multipart_threshold", "lock_stale_after"},
    "quetz": {"url", "api_key", "api_key_env", "workers", "index_timeout", "create_channel", "private", "ca_bundle"},
}


def open_destination(spec: str, site: Mapping[str, Any] | None = None) -> Destination:
    """The destination ``spec`` names; ``site``: its settings from the config's ``sites`` (url included)."""
    site = dict(site or {})
    if (registered := open_registered(spec, site)) is not None:  # a path, file://, memory:// (airgap.destinations.registry)
        return registered
    if spec.startswith("s3://"):
        kind = "s3"
    elif spec.startswith(("quetz+http://", "quetz+https://")):
        kind = "quetz"
    else:
        raise UsageError(f"--into: expected a directory, s3://BUCKET/PREFIX or quetz+http(s)://HOST:PORT/CHANNEL, found {spec!r}")
    unknown = sorted(set(site) - SITE_KEYS[kind])
    if unknown:
        raise UsageError(f"sites: expected only {', '.join(sorted(SITE_KEYS[kind]))} for a {kind} site, found {', '.join(unknown)}")
    if kind == "s3":
        from .s3 import S3Destination

        return S3Destination.from_url(spec, site)
    from .quetz import QuetzDestination

    return QuetzDestination.from_url(spec, site)
