"""``channel_map``: several source channels, each into its own destination channel (the guide's
``anaconda-server-sync-conda --mirror-config r.yaml --account=r-channel``, one config per account,
in one archive). Pure: names and URLs in, names out.

A key names a source channel by its URL (``https://conda.anaconda.org/r``,
``file://$MIRRORS_ARCHIVE/r/pkgs``, a path) or by its name (the last part of its URL, or the name
an archive gives it); the value is the destination channel. Where it acts:

- export and sync name a mapped channel after its destination channel in the archive when no
  other channel maps there too (so ``.../r/pkgs`` and ``.../wakari/pkgs``, both "pkgs", travel as
  ``r-channel`` and ``wakari``, and the archive alone says where each goes);
- import (and sync) publish each archive channel into its mapped channel, the rest into
  ``dest_channel`` if set, else under their own name; several channels mapped to one are merged
  as ``dest_channel`` merges them;
- clean, given a ``channel_map`` or ``dest_channel``, looks only at the channels the config
  publishes into: one account's config never removes another account's packages.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigError, UsageError
from ..redact import redact
from .manifest import is_safe_channel_name


def parse(path: str, value: Any) -> dict[str, str]:
    """The config checker: a mapping of source channel (URL, path or name) to destination channel."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping of source channel (URL or name) to destination channel, found {value!r}")
    out: dict[str, str] = {}
    for key, target in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{path}: expected source channels as URLs or names, found {key!r}")
        if not isinstance(target, str) or not is_safe_channel_name(target):
            raise ConfigError(f"{path}.{key}: expected a destination channel name (letters, digits, . _ + -), found {target!r}")
        out[key] = target
    return out


def is_name(key: str) -> bool:
    """A key without a scheme or a slash names a channel; anything else is a URL or a path."""
    return "://" not in key and "/" not in key and not key.startswith(("~", ".", "$"))


def normalize(mapping: Mapping[str, str], resolve: Callable[[str], str]) -> dict[str, str]:
    """Keys as the config's channels are stored: URLs and paths through ``resolve`` ($VARS, ~, relative paths)."""
    return {key if is_name(key) else resolve(key): target for key, target in mapping.items()}


def _url(value: str) -> str:
    from ..upstream.channels import channel_from_string

    return channel_from_string(value).url


def _own_name(url: str) -> str:
    parts = [p for p in urllib.parse.urlparse(url).path.split("/") if p]
    return parts[-1] if parts else ""


def match(mapping: Mapping[str, str], channels: Iterable[tuple[str, str]], *, strict: bool = True) -> list[str | None]:
    """The destination channel of each channel ``(name, url)``, in order (None: the map does not name it).

    A key matches a channel's name, the last part of its URL, or its URL. ``strict``: a key that
    matches none is a UsageError listing the channels there are (a typo must not go unnoticed).
    """
    channels = list(channels)
    out: list[str | None] = [None] * len(channels)
    for key, target in mapping.items():
        url = None if is_name(key) else redact(_url(key)).rstrip("/")  # an archive records URLs redacted
        if url is None:
            hits = [i for i, (n, u) in enumerate(channels) if key in (n, _own_name(u))]
        else:
            hits = [i for i, (_, u) in enumerate(channels) if redact(u).rstrip("/") == url]
        for i in hits:
            if out[i] not in (None, target):
                raise UsageError(
                    f"channel_map: expected one destination per channel, found {channels[i][1]} mapped to {out[i]!r} and {target!r}"
                )
            out[i] = target
        if not hits and strict:
            known = ", ".join(f"{n} ({u})" for n, u in channels) or "none"
            raise UsageError(
                f"channel_map: expected each key to name a channel by URL or name, found {key!r}, which names none of: {known}"
            )
    return out


def targets(mapping: Mapping[str, str], channels: Iterable[tuple[str, str]], *, strict: bool = True) -> dict[str, str]:
    """``{channel name: destination channel}`` for the channels (distinct names, as in an archive) the map names."""
    channels = list(channels)
    return {name: t for (name, _), t in zip(channels, match(mapping, channels, strict=strict), strict=True) if t is not None}


def export_names(mapping: Mapping[str, str], channels: list[Any]) -> list[Any]:
    """The channels an export or sync carries, each mapped one named after its destination channel
    when no other channel maps there (``channels``: :class:`airgap.upstream.channels.Channel` values)."""
    if not mapping:
        return channels
    mapped = match(mapping, [(c.name, c.url) for c in channels])
    shared = Counter(t for t in mapped if t is not None)
    return [type(c)(url=c.url, name=t) if t is not None and shared[t] == 1 else c for c, t in zip(channels, mapped, strict=True)]


def distinct_names(channels: list[Any]) -> list[Any]:
    """Channels that share a name (``.../r/pkgs`` and ``.../wakari/pkgs``, both "pkgs") named by more of
    their URL (``r-pkgs``, ``wakari-pkgs``): the archive needs distinct names; where each goes is the map's say."""
    count = Counter(c.name for c in channels)
    out = []
    for c in channels:
        if count[c.name] == 1:
            out.append(c)
            continue
        parts = _parts(c.url)
        others = [o for o in channels if o is not c and o.name == c.name]
        for k in range(2, len(parts) + 1):
            name = "-".join(parts[-k:])
            if all("-".join(_parts(o.url)[-k:]) != name for o in others) and is_safe_channel_name(name):
                out.append(type(c)(url=c.url, name=name))
                break
        else:
            out.append(c)  # the same URL twice: the caller says so
    return out


def _parts(url: str) -> list[str]:
    return [re.sub(r"[^A-Za-z0-9._+-]", "_", p) for p in urllib.parse.urlparse(url).path.split("/") if p]


def destination_channels(mapping: Mapping[str, str], dest_channel: str | None, channels: list[Any]) -> set[str] | None:
    """The destination channels a config publishes into, when it says (a map or a dest_channel); else None: all."""
    if not mapping and not dest_channel:
        return None
    mapped = match(mapping, [(c.name, c.url) for c in channels])
    return {t or dest_channel or c.name for c, t in zip(channels, mapped, strict=True)}
