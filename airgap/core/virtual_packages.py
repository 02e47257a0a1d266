"""The virtual packages (``__glibc``, ``__cuda``, ...) a solve assumes the target host offers.

Defaults are typical values per platform family; the config key ``virtual_packages`` sets or
adds entries per platform (``{linux-64: [__glibc=2.28, __cuda=12.4]}``): an entry replaces the
default of the same name and the other defaults stay. Parsing is pure; :func:`for_platform`
builds py-rattler's ``GenericVirtualPackage`` values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

# What a typical target host offers; a solve that needs more fails honestly.
DEFAULTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "linux": (("__unix", "0"), ("__linux", "5.10"), ("__glibc", "2.28"), ("__archspec", "1")),
    "osx": (("__unix", "0"), ("__osx", "13.0"), ("__archspec", "1")),
    "win": (("__win", "0"), ("__archspec", "1")),
}
_ARCHSPEC = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x", "32": "x86"}
_ENTRY = re.compile(r"__[a-z0-9_-]+=[^=\s]+(=[^=\s]+)?")


def parse_entry(path: str, text: str) -> tuple[str, str, str | None]:
    """``__glibc=2.28`` or ``__archspec=1=x86_64`` → (name, version, build or None)."""
    text = text.strip()
    if not _ENTRY.fullmatch(text):
        raise ConfigError(f"{path}: expected a virtual package such as __glibc=2.28 or __cuda=12.4, found {text!r}")
    name, version, *build = text.split("=")
    from rattler import Version

    try:
        Version(version)
    except Exception:
        raise ConfigError(f"{path}: expected a version after '=', found {text!r}") from None
    return name, version, build[0] if build else None


def check_config(path: str, value: Any) -> dict[str, tuple[str, ...]]:
    """The ``virtual_packages`` config value: ``{platform: [entry, ...]}``, each entry checked."""
    from ..config import KNOWN_SUBDIRS

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping of platforms to lists such as {{linux-64: [__glibc=2.28]}}, found {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for platform, entries in value.items():
        platform = str(platform)
        if platform not in KNOWN_SUBDIRS or platform == "noarch":
            raise ConfigError(f"{path}.{platform}: expected a conda platform such as linux-64, found {platform!r}")
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list):
            raise ConfigError(f"{path}.{platform}: expected a list such as [__glibc=2.28, __cuda=12.4], found {entries!r}")
        for i, entry in enumerate(entries):
            parse_entry(f"{path}.{platform}[{i}]", str(entry))
        out[platform] = tuple(str(e).strip() for e in entries)
    return out


def entries_for(platform: str, overrides: Mapping[str, tuple[str, ...]] | None = None) -> list[tuple[str, str, str]]:
    """(name, version, build) for ``platform``: the defaults, then the configured entries by name."""
    family, _, machine = platform.partition("-")
    arch = _ARCHSPEC.get(machine, machine or "0")
    out: dict[str, tuple[str, str, str]] = {}
    for name, version in DEFAULTS.get(family, ()):
        out[name] = (name, version, arch if name == "__archspec" else "0")
    for i, text in enumerate((overrides or {}).get(platform, ())):
        name, version, build = parse_entry(f"virtual_packages.{platform}[{i}]", text)
        out[name] = (name, version, build or (arch if name == "__archspec" else "0"))
    return list(out.values())


def for_platform(platform: str, overrides: Mapping[str, tuple[str, ...]] | None = None) -> list[Any]:
    """py-rattler ``GenericVirtualPackage`` values for a solve on ``platform``."""
    import rattler

    return [
        rattler.GenericVirtualPackage(rattler.PackageName(n), rattler.Version(v), rattler.BuildString(b))
        for n, v, b in entries_for(platform, overrides)
    ]
