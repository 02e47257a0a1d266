"""Configuration: cas-mirror compatible YAML, parsed once into a frozen object.

This module reads and validates; it does not fetch, print or exit. Every key cas-mirror
documents is accepted so existing files keep working; keys that mean nothing to airgap are
accepted and reported as such by ``--show-config``. Unknown keys are an error naming the key
and the closest known one; wrong types name the key's path; broken YAML names file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import channel_map as _channel_map
from .errors import ConfigError, quoted
from .limits import MAX_CONFIG_BYTES, read_small_file
from .network import check_proxy_servers, check_ssl_verify
from .redact import redact_doc, redact_settings
from .yaml_bounded import load_yaml_bounded

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


def user_config_paths() -> list[Path]:
    """Where ``-f`` defaults to: airgap's own files, then cas-mirror's ``~/.cas-mirror`` and ``/etc/cas-mirror``."""
    paths = []
    env = os.environ.get("AIRGAP_CONFIG")
    if env:
        paths.append(Path(env))
    paths.append(Path(os.path.expanduser("~/.airgap.yaml")))
    paths.append(Path("/etc/airgap/airgap.yaml"))
    paths.append(Path(os.path.expanduser("~/.cas-mirror")))
    paths.append(Path("/etc/cas-mirror"))
    return paths


def _default_mirror_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return str(Path(base) / "airgap")


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


def _positive_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{path}: expected a whole number of at least 1, found {_q(v)}")
    return v


def _non_negative_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{path}: expected a whole number of at least 0, found {_q(v)}")
    return v


def _upstream_shards(path: str, v: Any) -> str:
    if v not in ("auto", "never"):
        raise ConfigError(f"{path}: expected auto or never, found {_q(v)}")
    return str(v)


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
    from .lockfiles import check_config

    return check_config(path, v)


def _virtual_packages(path: str, v: Any) -> dict[str, tuple[str, ...]]:
    from .virtual_packages import check_config

    return check_config(path, v)


def _anything(path: str, v: Any) -> Any:
    return None if v == "None" else v


@dataclass(frozen=True)
class _Key:
    name: str
    check: Checker
    default: Any
    help: str
    # "yes": airgap implements it; "later": accepted, a non-default value is refused by the
    # commands that would need it; "no": kept only so cas-mirror files load.
    status: str = "yes"
    note: str = ""  # shown by --show-config beside the value: where airgap's meaning differs from cas-mirror's


_KEYS: tuple[_Key, ...] = (
    # cas-mirror's keys, in the order its --config listing prints them
    _Key("remote_url", _str, "https://repo.anaconda.com/", "base URL for the default channels"),
    _Key(
        "mirror_dir",
        _str,
        None,
        "download cache (content-addressed); default ~/.cache/airgap",
        note="export's download cache, not the mirror: cas-mirror wrote its output tree here; airgap writes ARCHIVE, and import writes to --into / dest_site",
    ),
    _Key("platforms", _platforms, DEFAULT_PLATFORMS, "subdirs to mirror; noarch is always added"),
    _Key("fetch_installers", _bool, False, "carry installers from <remote_url><dir_name>/ (see installer_patterns)"),
    _Key("repodata_source", _anything, False, "no meaning in airgap: repodata always comes from the channel", "no"),
    _Key("dir_names", _str_list, (), "installer directories under remote_url, restored as DEST/<dir_name>/"),
    _Key("server_log_dir", _anything, None, "not read: airgap serve logs to stderr", "no"),
    _Key("server_port", _anything, None, "not read: airgap serve takes --port and --bind", "no"),
    _Key("dest_site", _opt_str, None, "import destination: a name under 'sites'"),
    _Key("dest_channel", _opt_str, None, "merge every channel into this one channel at the destination"),
    _Key("channel_map", _channel_map.parse, {}, "source channel (URL or name) -> its own destination channel; the rest go to dest_channel"),
    _Key("verify_checksum", _bool, True, "airgap always verifies sha256/md5 and size; false is ignored"),
    _Key("delta", _bool, False, "export a delta against the receipt in delta_dir (same as --since DELTA_DIR/receipt.json)"),
    _Key("delta_dir", _opt_str, None, "where the carried-back receipt.json of the destination is"),
    _Key("log_dir", _opt_str, None, "also write a log file here"),
    _Key("log_level", _log_level, 20, "CRITICAL, ERROR, WARNING, INFO, DEBUG or 10..50"),
    _Key("python_versions", _str_list, (), "keep only records built for these pythons (and python-independent ones)"),
    _Key("pkg_list", _str_list, (), "limit the mirror to these package names"),
    _Key("license_blacklist", _str_list, (), "license families to drop (GPL drops GPL, GPL2, GPL3)"),
    _Key("blacklist", _str_list, (), "names or match specs to drop"),
    _Key("whitelist", _str_list, (), "names or match specs kept despite license_blacklist and blacklist"),
    _Key("channels", _str_list, None, "upstream channels: http(s):// or file:// URLs, or paths"),
    # airgap's own keys
    _Key("signing_key", _opt_str, None, "Ed25519 private key (PEM) that signs exported archives"),
    _Key("trusted_keys", _str_list, (), "public keys (PEM) whose signatures import/verify accept"),
    _Key("into", _opt_str, None, "import destination directory (same as --into)"),
    _Key("sites", _sites, {}, "named destinations: {NAME: {url: PATH | s3://BUCKET/PREFIX | quetz+http://HOST:PORT/CHANNEL, ...}}"),
    _Key("workers", _positive_int, 32, "parallel downloads (32: measured over a 50 ms link, docs/performance.md)"),
    _Key("retries", _positive_int, 5, "attempts per download on 5xx, resets and timeouts"),
    _Key("timeout", _positive_int, 60, "seconds without data before a request is retried"),
    _Key(
        "min_rate",
        lambda path, v: parse_size(v, path),
        1024,
        "bytes/s: a download slower than this over `timeout` seconds is retried (1K, 10K, 0 = no minimum)",
    ),
    _Key(
        "max_repodata_size",
        lambda path, v: _positive_size(path, v),
        1 << 30,
        "largest repodata.json accepted from upstream, decompressed (1G; conda-forge linux-64 is 254M)",
    ),
    _Key(
        "shard_grace_days",
        lambda path, v: _non_negative_int(path, v),
        7,
        "days a CEP-16 shard no index names any more is kept before clean removes it (CEP-16 asks about a week)",
    ),
    _Key(
        "upstream_shards",
        lambda path, v: _upstream_shards(path, v),
        "auto",
        "auto: when the filters name packages and upstream serves CEP-16 shards, fetch only their shards; never: repodata.json",
    ),
    # the company network (conda's key names): airgap.network
    _Key("proxy_servers", check_proxy_servers, {}, "{http: URL, https: URL}; default HTTP_PROXY / HTTPS_PROXY (NO_PROXY applies)"),
    _Key(
        "ssl_verify",
        check_ssl_verify,
        True,
        "true, false (warns on every run) or a CA bundle (PEM) to trust; with true, REQUESTS_CA_BUNDLE / SSL_CERT_FILE",
    ),
    _Key("client_cert", _opt_str, None, "client certificate (PEM) for TLS; may hold the key too"),
    _Key("client_cert_key", _opt_str, None, "the client certificate's private key (PEM), if separate"),
    _Key(
        "max_bandwidth",
        lambda path, v: None if v in (None, "None", 0) else _positive_size(path, v),
        None,
        "bytes/s for all downloads together (10M, 500K; default no cap), to leave room on a shared line",
    ),
    _Key("include", _str_list, (), "match specs that, like pkg_list, limit the selection"),
    _Key("exclude", _str_list, (), "match specs to drop, whatever else matches"),
    _Key("latest", _opt_int, None, "keep the newest N versions of each name per subdir"),
    _Key("snapshot_date", _opt_str, None, "the channel as it was at this date (record timestamps)"),
    _Key("with_dependencies", _bool, False, "add every record the selection depends on"),
    _Key("installable", _str_list, (), "specs that must solve against the selection, per platform x python"),
    _Key("installers", _installers, (), "installer URLs (or {url, sha256, dir}) to carry, restored as DEST/<dir>/"),
    _Key("installer_patterns", _str_list, (), "file-name globs choosing installers from dir_names listings"),
    _Key(
        "public_url",
        _opt_str,
        None,
        "the URL clients reach the mirror at; import writes DEST/downloads/ (pre-configured installers) for it",
    ),
    _Key(
        "environments",
        lambda path, v: _environments(path, v),
        (),
        "environment.yml, pixi.lock ({file, environments: [NAME]}), conda-lock.yml or @EXPLICIT files: mirror the union of what they need",
    ),
    _Key(
        "virtual_packages",
        lambda path, v: _virtual_packages(path, v),
        {},
        "per platform, what target hosts offer to solves, e.g. {linux-64: [__glibc=2.28, __cuda=12.4]}; defaults stay for the rest",
    ),
    _Key(
        "volume_size",
        lambda path, v: None if v in (None, "None") else parse_size(v, path),
        None,
        "split archives into volumes of at most this size (4.7G, 700M, bytes)",
    ),
)
KEYS: Mapping[str, _Key] = {k.name: k for k in _KEYS}
PATH_KEYS = ("mirror_dir", "signing_key", "into", "log_dir", "delta_dir", "client_cert", "client_cert_key")


@dataclass(frozen=True)
class Config:
    """The running configuration. Build with :func:`load_config` or :func:`from_mapping`."""

    path: str | None = None
    remote_url: str = "https://repo.anaconda.com/"
    mirror_dir: str = field(default_factory=_default_mirror_dir)
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    fetch_installers: bool = False
    repodata_source: Any = False
    dir_names: tuple[str, ...] = ()
    server_log_dir: Any = None
    server_port: Any = None
    dest_site: str | None = None
    dest_channel: str | None = None
    verify_checksum: bool = True
    delta: bool = False
    delta_dir: str | None = None
    log_dir: str | None = None
    log_level: int = 20
    python_versions: tuple[str, ...] = ()
    pkg_list: tuple[str, ...] = ()
    license_blacklist: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()
    whitelist: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    signing_key: str | None = None
    trusted_keys: tuple[str, ...] = ()
    into: str | None = None
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    workers: int = 32
    retries: int = 5
    timeout: int = 60
    min_rate: int = 1024
    max_repodata_size: int = 1 << 30
    shard_grace_days: int = 7
    upstream_shards: str = "auto"
    proxy_servers: Mapping[str, str] = field(default_factory=dict)
    ssl_verify: bool | str = True
    client_cert: str | None = None
    client_cert_key: str | None = None
    max_bandwidth: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    latest: int | None = None
    snapshot_date: str | None = None
    with_dependencies: bool = False
    installable: tuple[str, ...] = ()
    installers: tuple[dict[str, Any], ...] = ()
    installer_patterns: tuple[str, ...] = ()
    volume_size: int | None = None
    public_url: str | None = None
    channel_map: Mapping[str, str] = field(default_factory=dict)
    environments: tuple[dict[str, Any], ...] = ()
    virtual_packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    given: frozenset[str] = frozenset()  # the keys the file set (the rest are defaults)
    # how ``path`` was chosen when no -f was given (shown by --show-config)
    found_by: str | None = field(default=None, compare=False)

    def unsupported_in_use(self) -> list[str]:
        """Keys set to a non-default value that this airgap version does not implement yet."""
        out = []
        for key in _KEYS:
            if key.status == "later" and getattr(self, key.name) != getattr(_DEFAULTS, key.name):
                out.append(key.name)
        return out

    def destination(self) -> str | None:
        """The import destination named by ``into`` or ``dest_site``/``sites``."""
        if self.into:
            return self.into
        site = self.site()
        return _resolve_path(str(site["url"]), self.path) if site is not None else None

    def site(self) -> Mapping[str, Any] | None:
        """The settings of the site ``dest_site`` names (``url``, and an API key, endpoint, ... by kind)."""
        if not self.dest_site:
            return None
        site = self.sites.get(self.dest_site)
        if site is None:
            known = ", ".join(sorted(self.sites)) or "none"
            raise ConfigError(
                f"dest_site: expected a name defined under 'sites' (known: {known}), found {self.dest_site!r}; "
                f"define it in the config, e.g.\n  sites:\n    {self.dest_site}: {{url: /srv/conda}}\n"
                f"or name the destination with --into DIR|s3://BUCKET/PREFIX|quetz+https://HOST/CHANNEL"
            )
        return site

    def show(self) -> str:
        """The running configuration as YAML, defaults filled in, like ``cas-mirror --config``."""
        lines = [f"path: {self.path}" + (f"  # {self.found_by}" if self.found_by else "")]
        for key in _KEYS:
            value = getattr(self, key.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {
                    k: redact_settings(v) if isinstance(v, Mapping) else redact_doc(v)  # a site's api_key is never shown
                    for k, v in value.items()
                }
            note = ""
            if key.status == "no":
                note = "  # accepted for cas-mirror compatibility; no effect in airgap"
            elif key.status == "later":
                note = "  # not implemented in this version; a non-default value is refused"
            elif key.note:
                note = f"  # {key.note}"
            lines.append(f"{key.name}: {_yaml_inline(value)}{note}")
        return "\n".join(lines) + "\n"


_DEFAULTS = Config()


def _yaml_inline(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def _resolve_path(value: str, config_path: str | None) -> str:
    """Expand ``~`` and ``$VARS``; relative paths are relative to the config file's folder."""
    if "://" in value:
        return value
    expanded = os.path.expanduser(os.path.expandvars(value))
    if config_path and not os.path.isabs(expanded):
        expanded = os.path.join(os.path.dirname(os.path.abspath(config_path)), expanded)
    return os.path.normpath(expanded)


def _resolve_channel(value: str, config_path: str | None) -> str:
    value = os.path.expandvars(value)
    if "://" in value:
        return value
    return _resolve_path(value, config_path)


def from_mapping(data: Mapping[str, Any], path: str | None = None) -> Config:
    """Validate a parsed YAML mapping and build the frozen :class:`Config`."""
    if not isinstance(data, Mapping):
        where = path or "config"
        raise ConfigError(f"{where}: expected a mapping of keys to values at the top level, found {_type_name(data)}")
    values: dict[str, Any] = {}
    for raw_key, raw_value in data.items():
        key = str(raw_key)
        spec = KEYS.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}unknown key {_q(key)}{hint}")
        values[key] = spec.check(key, raw_value)
    for key in PATH_KEYS:
        if values.get(key):
            values[key] = _resolve_path(values[key], path)
    if "environments" in values:  # the label is the path as written; the file is found relative to the config
        values["environments"] = tuple({**e, "label": e["file"], "file": _resolve_path(e["file"], path)} for e in values["environments"])
    if isinstance(values.get("ssl_verify"), str):
        values["ssl_verify"] = _resolve_path(values["ssl_verify"], path)
    if "trusted_keys" in values:
        values["trusted_keys"] = tuple(_resolve_path(k, path) for k in values["trusted_keys"])
    if values.get("channels") is not None:
        values["channels"] = tuple(_resolve_channel(c, path) for c in values["channels"])
    else:
        remote = values.get("remote_url", "https://repo.anaconda.com/")
        values["channels"] = (remote.rstrip("/") + "/pkgs/main/",)
    if values.get("channel_map"):
        values["channel_map"] = _channel_map.normalize(values["channel_map"], lambda v: _resolve_channel(v, path))
    values["given"] = frozenset(str(k) for k in data)
    if values.get("mirror_dir") is None:
        values.pop("mirror_dir", None)
    if "sites" in values:
        values["sites"] = {name: {**site, "url": _resolve_path(str(site["url"]), path)} for name, site in values["sites"].items()}
    return Config(path=path, **values)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Load ``path``, or the first existing default file, or pure defaults."""
    found_by = None
    if path is None:
        candidates = user_config_paths()
        searched = ", ".join(str(c) for c in candidates)
        for candidate in candidates:
            if candidate.is_file():
                path = candidate
                found_by = f"no -f given: the first that exists of {searched}"
                break
        else:
            return dataclasses.replace(from_mapping({}, None), found_by=f"no -f given and none of {searched} exists: defaults")
    p = Path(path)
    try:
        text = read_small_file(p, MAX_CONFIG_BYTES, "a configuration file", ConfigError).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: expected a configuration file, found nothing at that path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read the configuration file: {exc}") from None
    try:
        data = load_yaml_bounded(text, str(p))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: invalid YAML: {str(exc.problem or exc)[:200]}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid YAML: nested too deeply") from None
    if data is None:
        data = {}
    config = from_mapping(data, str(p))
    return dataclasses.replace(config, found_by=found_by) if found_by else config


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
