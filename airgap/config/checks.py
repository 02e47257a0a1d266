"""Configuration values: one checker per kind of value, each saying which key is off and how.

A checker takes the key's path (``sites.lab.url``) and the value YAML gave, and returns the
value airgap keeps, or raises :class:`~airgap.errors.ConfigError` naming the path, what was
expected and what was found. Sizes (``700M``, ``4.7G``) are read here too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, quoted

DEFAULT_PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")
KNOWN_SUBDIRS = frozenset(
    {
        "noarch",
        "linux-32",
        "linux-64",
        "linux-aarch64",
        "linux-armv6l",
        "linux-armv7l",
        "linux-ppc64",
        "linux-ppc64le",
        "linux-riscv64",
        "linux-s390x",
        "osx-32",
        "osx-64",
        "osx-arm64",
        "win-32",
        "win-64",
        "win-arm64",
        "zos-z",
        "emscripten-wasm32",
        "wasi-wasm32",
        "freebsd-64",
    }
)
LOG_LEVELS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10}

_q = quoted  # a value quoted in an error message: cut to a short prefix, whatever its size


# --- value checkers ------------------------------------------------------------------

Checker = Callable[[str, Any], Any]


def _type_name(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _str(path: str, v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        raise ConfigError(f"{path}: expected a string, found {_type_name(v)} ({_q(v)})")
    return v


def _opt_str(path: str, v: Any) -> str | None:
    # cas-mirror's --config listing prints Python's None; files copied from it say so
    return None if v is None or v == "None" else _str(path, v)


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: expected true or false, found {_type_name(v)} ({_q(v)})")
    return v


def _opt_int(path: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{path}: expected an integer, found {_type_name(v)} ({_q(v)})")
    return v


def _non_negative_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{path}: expected a whole number of at least 0, found {_q(v)}")
    return v


def _upstream_shards(path: str, v: Any) -> str:
    if v not in ("auto", "never"):
        raise ConfigError(f"{path}: expected auto or never, found {_q(v)}")
    return str(v)


def _positive_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{path}: expected a whole number of at least 1, found {_q(v)}")
    return v


def _str_list(path: str, v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list of strings, found {_type_name(v)} ({_q(v)})")
    return tuple(_str(f"{path}[{i}]", item) for i, item in enumerate(v))


def _platforms(path: str, v: Any) -> tuple[str, ...]:
    items = _str_list(path, v)
    for i, p in enumerate(items):
        if p not in KNOWN_SUBDIRS:
            close = difflib.get_close_matches(p, sorted(KNOWN_SUBDIRS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}[{i}]: expected a conda platform such as linux-64, found {_q(p)}{hint}")
    return tuple(dict.fromkeys(p for p in items if p != "noarch"))


def _log_level(path: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v in LOG_LEVELS.values():
        return v
    if isinstance(v, str) and v.upper() in LOG_LEVELS:
        return LOG_LEVELS[v.upper()]
    raise ConfigError(f"{path}: expected one of {', '.join(LOG_LEVELS)} (or 10..50), found {_q(v)}")


def _sites(path: str, v: Any) -> dict[str, dict[str, Any]]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{path}: expected a mapping of site names to {{url: ...}}, found {_type_name(v)}")
    out: dict[str, dict[str, Any]] = {}
    for name, site in v.items():
        if not isinstance(site, dict) or "url" not in site:
            raise ConfigError(f"{path}.{name}: expected a mapping with at least 'url', found {_q(site)}")
        out[str(name)] = {str(k): val for k, val in site.items()}
        _str(f"{path}.{name}.url", site["url"])
    return out


def _installers(path: str, v: Any) -> tuple[dict[str, Any], ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list of URLs or {{url, sha256, dir}} mappings, found {_type_name(v)}")
    out = []
    for i, item in enumerate(v):
        p = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or "url" not in item:
            raise ConfigError(f"{p}: expected a URL or a mapping with 'url', found {_q(item)}")
        unknown = set(item) - {"url", "sha256", "dir"}
        if unknown:
            raise ConfigError(f"{p}: unknown key {sorted(unknown)[0]!r}; expected url, sha256, dir")
        sha = _opt_str(p + ".sha256", item.get("sha256"))
        if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise ConfigError(f"{p}.sha256: expected 64 hex digits, found {_q(sha)}")
        out.append(
            {"url": _str(p + ".url", item["url"]), "sha256": sha.lower() if sha else None, "dir": _opt_str(p + ".dir", item.get("dir"))}
        )
    return tuple(out)


def _environments(path: str, v: Any) -> tuple[dict[str, Any], ...]:
    from ..core.lockfiles import check_config

    return check_config(path, v)


def _virtual_packages(path: str, v: Any) -> dict[str, tuple[str, ...]]:
    from ..core.virtual_packages import check_config

    return check_config(path, v)


def _anything(path: str, v: Any) -> Any:
    return None if v == "None" else v


def _positive_size(path: str, v: Any) -> int:
    n = parse_size(v, path)
    if n < 1:
        raise ConfigError(f"{path}: expected a size of at least 1 byte, found {_q(v)}")
    return n


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes from ``123``, ``700M``, ``4.7G`` (decimal units, as media are sold) or ``2GiB``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _SIZE_UNITS:
        raise ConfigError(f"{what}: expected a size such as 4.7G, 700M or 25000000000, found {_q(text)}")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])
