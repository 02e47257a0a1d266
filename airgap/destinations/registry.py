"""Destinations found by URL scheme: adding a store is one module and one line in :data:`OPENERS`.

``open_destination`` (:mod:`airgap.destinations`) asks :func:`open_registered` first; a spec
with no scheme is a path (``file``). The schemes it knew before the registry that are not here
yet (``s3://``, ``quetz+http(s)://``) are still opened as they were, and move here as their
backends become stores (docs/decisions/0004-engine-migration.md).

An opener is named ``"module:function"`` (imported only when its scheme is used, so boto3 and
friends load only for the destinations that need them) and called as ``opener(spec, site)``,
``site`` being the site's settings from the config (``url`` included); it checks them itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .base import Destination

OPENERS: dict[str, str] = {
    "file": "airgap.destinations.directory:open_directory",
    "memory": "airgap.destinations.memory:open_memory",
}


def scheme_of(spec: str) -> str:
    """The URL scheme of ``spec``; ``file`` for a plain path."""
    scheme, sep, _ = spec.partition("://")
    return scheme if sep else "file"


def open_registered(spec: str, site: Mapping[str, Any] | None = None) -> Destination | None:
    """The destination ``spec`` names if its scheme is registered here; None otherwise."""
    scheme = scheme_of(spec)
    if scheme not in OPENERS:
        return None
    module, _, function = OPENERS[scheme].partition(":")
    opener = getattr(importlib.import_module(module), function)
    dest: Destination = opener(spec, dict(site or {}))
    return dest


def check_site(kind: str, site: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse settings a backend does not know (a typo silently ignored would change nothing the user sees)."""
    unknown = sorted(set(site) - allowed)
    if unknown:
        raise UsageError(f"sites: expected only {', '.join(sorted(allowed))} for a {kind} site, found {', '.join(unknown)}")
