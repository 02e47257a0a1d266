"""Destinations: where imported channels are published. See :mod:`airgap.destinations.base`.

``open_destination`` picks the backend from what ``--into`` (or a site's ``url``) says:

every scheme is one line of :mod:`airgap.destinations.registry`: a path or ``file://`` URL
  (:class:`~airgap.destinations.directory.DirectoryDestination`), ``memory://NAME`` (the
  transaction engine over an in-memory store), ``s3://BUCKET[/PREFIX]`` (S3-compatible object
  storage: the engine over :class:`~airgap.destinations.s3store.S3Store`; boto3);
  ``oci://HOST[:PORT]/PREFIX`` (an OCI registry), ``quetz+http(s)://HOST[:PORT][/BASE]/CHANNEL`` (a quetz
  package server, which keeps its own destination: decision 0002).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .base import Destination
from .registry import open_registered


def open_destination(spec: str, site: Mapping[str, Any] | None = None) -> Destination:
    """The destination ``spec`` names; ``site``: its settings from the config's ``sites`` (url included)."""
    site = dict(site or {})
    if (registered := open_registered(spec, site)) is not None:  # every scheme is in airgap.destinations.registry
        return registered
    raise UsageError(
        f"--into: expected a directory, s3://BUCKET/PREFIX, oci://HOST/PREFIX or quetz+http(s)://HOST:PORT/CHANNEL, found {spec!r}"
    )
