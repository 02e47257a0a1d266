"""Destinations: where imported channels are published. See :mod:`airgap.destinations.base`.

``open_destination`` picks the backend from what ``--into`` (or a site's ``url``) says:

* a path or ``file://`` URL — :class:`~airgap.destinations.directory.DirectoryDestination`;
* ``s3://BUCKET[/PREFIX]`` — S3-compatible object storage (boto3; AWS S3, MinIO, SeaweedFS);
* ``quetz+http(s)://HOST[:PORT][/BASE]/CHANNEL`` — a quetz package server;
* a scheme of :mod:`airgap.destinations.registry` (``memory://NAME``: the transaction engine over an in-memory store).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from .base import Destination
from .registry import open_registered

SITE_KEYS = {
    "quetz": {"url", "api_key", "api_key_env", "workers", "index_timeout", "create_channel", "private", "ca_bundle"},
    "directory": {"url"},
}


def open_destination(spec: str, site: Mapping[str, Any] | None = None) -> Destination:
    """The destination ``spec`` names; ``site``: its settings from the config's ``sites`` (url included)."""
    site = dict(site or {})
    if (registered := open_registered(spec, site)) is not None:  # memory:// and the schemes of airgap.destinations.registry
        return registered
    if spec.startswith(("quetz+http://", "quetz+https://")):
        kind = "quetz"
    elif "://" in spec and not spec.startswith("file://"):
        raise UsageError(f"--into: expected a directory, s3://BUCKET/PREFIX or quetz+http(s)://HOST:PORT/CHANNEL, found {spec!r}")
    else:
        kind = "directory"
    unknown = sorted(set(site) - SITE_KEYS[kind])
    if unknown:
        raise UsageError(f"sites: expected only {', '.join(sorted(SITE_KEYS[kind]))} for a {kind} site, found {', '.join(unknown)}")
    if kind == "quetz":
        from .quetz import QuetzDestination

        return QuetzDestination.from_url(spec, site)
    from .directory import DirectoryDestination

    if spec.startswith("file://") and ("?" in spec or "#" in spec):
        raise UsageError(f"--into: expected a file:// URL without '?' or '#' (a client cuts the path there), found {spec!r}")
    path = unquote(urlsplit(spec).path) if spec.startswith("file://") else spec
    return DirectoryDestination(Path(path))
