"""Every configuration key: its checker, default, help line and whether airgap implements it.

The order is the order ``--show-config`` prints: cas-mirror's keys as its ``--config`` listing
prints them, then airgap's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import channel_map as _channel_map
from .checks import (
    DEFAULT_PLATFORMS,
    Checker,
    _anything,
    _bool,
    _environments,
    _installers,
    _log_level,
    _non_negative_int,
    _opt_int,
    _opt_str,
    _platforms,
    _positive_int,
    _positive_size,
    _sites,
    _str,
    _str_list,
    _upstream_shards,
    _virtual_packages,
    parse_size,
)


def check_proxy_servers(path: str, v: Any) -> dict[str, str]:
    """:func:`airgap.upstream.network.check_proxy_servers`, imported when a config names proxies (urllib3 loads slowly)."""
    from ..upstream.network import check_proxy_servers as check

    return check(path, v)


def check_ssl_verify(path: str, v: Any) -> bool | str:
    """:func:`airgap.upstream.network.check_ssl_verify`, imported when a config sets it."""
    from ..upstream.network import check_ssl_verify as check

    return check(path, v)


@dataclass(frozen=True)
class Key:
    name: str
    check: Checker
    default: Any
    help: str
    # "yes": airgap implements it; "later": accepted, a non-default value is refused by the
    # commands that would need it; "no": kept only so cas-mirror files load.
    status: str = "yes"
    note: str = ""  # shown by --show-config beside the value: where airgap's meaning differs from cas-mirror's


_KEYS: tuple[Key, ...] = (
    # cas-mirror's keys, in the order its --config listing prints them
    Key("remote_url", _str, "https://repo.anaconda.com/", "base URL for the default channels"),
    Key(
        "mirror_dir",
        _str,
        None,
        "download cache (content-addressed); default ~/.cache/airgap",
        note="export's download cache, not the mirror: cas-mirror wrote its output tree here; airgap writes ARCHIVE, and import writes to --into / dest_site",
    ),
    Key("platforms", _platforms, DEFAULT_PLATFORMS, "subdirs to mirror; noarch is always added"),
    Key("fetch_installers", _bool, False, "carry installers from <remote_url><dir_name>/ (see installer_patterns)"),
    Key("repodata_source", _anything, False, "no meaning in airgap: repodata always comes from the channel", "no"),
    Key("dir_names", _str_list, (), "installer directories under remote_url, restored as DEST/<dir_name>/"),
    Key("server_log_dir", _anything, None, "not read: airgap serve logs to stderr", "no"),
    Key("server_port", _anything, None, "not read: airgap serve takes --port and --bind", "no"),
    Key("dest_site", _opt_str, None, "import destination: a name under 'sites'"),
    Key("dest_channel", _opt_str, None, "merge every channel into this one channel at the destination"),
    Key("channel_map", _channel_map.parse, {}, "source channel (URL or name) -> its own destination channel; the rest go to dest_channel"),
    Key("verify_checksum", _bool, True, "airgap always verifies sha256/md5 and size; false is ignored"),
    Key("delta", _bool, False, "export a delta against the receipt in delta_dir (same as --since DELTA_DIR/receipt.json)"),
    Key("delta_dir", _opt_str, None, "where the carried-back receipt.json of the destination is"),
    Key("log_dir", _opt_str, None, "also write a log file here"),
    Key("log_level", _log_level, 20, "CRITICAL, ERROR, WARNING, INFO, DEBUG or 10..50"),
    Key("python_versions", _str_list, (), "keep only records built for these pythons (and python-independent ones)"),
    Key("pkg_list", _str_list, (), "limit the mirror to these package names"),
    Key("license_blacklist", _str_list, (), "license families to drop (GPL drops GPL, GPL2, GPL3)"),
    Key("blacklist", _str_list, (), "names or match specs to drop"),
    Key("whitelist", _str_list, (), "names or match specs kept despite license_blacklist and blacklist"),
    Key("channels", _str_list, None, "upstream channels: http(s):// or file:// URLs, or paths"),
    # airgap's own keys
    Key("signing_key", _opt_str, None, "Ed25519 private key (PEM) that signs exported archives"),
    Key("trusted_keys", _str_list, (), "public keys (PEM) whose signatures import/verify accept"),
    Key("into", _opt_str, None, "import destination directory (same as --into)"),
    Key("sites", _sites, {}, "named destinations: {NAME: {url: PATH | s3://BUCKET/PREFIX | quetz+http://HOST:PORT/CHANNEL, ...}}"),
    Key("workers", _positive_int, 32, "parallel downloads (32: measured over a 50 ms link, docs/performance.md)"),
    Key("retries", _positive_int, 5, "attempts per download on 5xx, resets and timeouts"),
    Key("timeout", _positive_int, 60, "seconds without data before a request is retried"),
    Key(
        "min_rate",
        lambda path, v: parse_size(v, path),
        1024,
        "bytes/s: a download slower than this over `timeout` seconds is retried (1K, 10K, 0 = no minimum)",
    ),
    Key(
        "max_repodata_size",
        lambda path, v: _positive_size(path, v),
        1 << 30,
        "largest repodata.json accepted from upstream, decompressed (1G; conda-forge linux-64 is 254M)",
    ),
    Key(
        "shard_grace_days",
        _non_negative_int,
        7,
        "days a CEP-16 shard no index names any more is kept before clean removes it (CEP-16 asks about a week)",
    ),
    Key(
        "upstream_shards",
        _upstream_shards,
        "auto",
        "auto: when the filters name packages and upstream serves CEP-16 shards, fetch only their shards; never: repodata.json",
    ),
    # the company network (conda's key names): airgap.upstream.network
    Key("proxy_servers", check_proxy_servers, {}, "{http: URL, https: URL}; default HTTP_PROXY / HTTPS_PROXY (NO_PROXY applies)"),
    Key(
        "ssl_verify",
        check_ssl_verify,
        True,
        "true, false (warns on every run) or a CA bundle (PEM) to trust; with true, REQUESTS_CA_BUNDLE / SSL_CERT_FILE",
    ),
    Key("client_cert", _opt_str, None, "client certificate (PEM) for TLS; may hold the key too"),
    Key("client_cert_key", _opt_str, None, "the client certificate's private key (PEM), if separate"),
    Key(
        "max_bandwidth",
        lambda path, v: None if v in (None, "None", 0) else _positive_size(path, v),
        None,
        "bytes/s for all downloads together (10M, 500K; default no cap), to leave room on a shared line",
    ),
    Key("include", _str_list, (), "match specs that, like pkg_list, limit the selection"),
    Key("exclude", _str_list, (), "match specs to drop, whatever else matches"),
    Key("latest", _opt_int, None, "keep the newest N versions of each name per subdir"),
    Key("snapshot_date", _opt_str, None, "the channel as it was at this date (record timestamps)"),
    Key("with_dependencies", _bool, False, "add every record the selection depends on"),
    Key("installable", _str_list, (), "specs that must solve against the selection, per platform x python"),
    Key("installers", _installers, (), "installer URLs (or {url, sha256, dir}) to carry, restored as DEST/<dir>/"),
    Key("installer_patterns", _str_list, (), "file-name globs choosing installers from dir_names listings"),
    Key(
        "public_url",
        _opt_str,
        None,
        "the URL clients reach the mirror at; import writes DEST/downloads/ (pre-configured installers) for it",
    ),
    Key(
        "environments",
        lambda path, v: _environments(path, v),
        (),
        "environment.yml, pixi.lock ({file, environments: [NAME]}), conda-lock.yml or @EXPLICIT files: mirror the union of what they need",
    ),
    Key(
        "virtual_packages",
        lambda path, v: _virtual_packages(path, v),
        {},
        "per platform, what target hosts offer to solves, e.g. {linux-64: [__glibc=2.28, __cuda=12.4]}; defaults stay for the rest",
    ),
    Key(
        "volume_size",
        lambda path, v: None if v in (None, "None") else parse_size(v, path),
        None,
        "split archives into volumes of at most this size (4.7G, 700M, bytes)",
    ),
)
KEYS: Mapping[str, Key] = {k.name: k for k in _KEYS}
PATH_KEYS = ("mirror_dir", "signing_key", "into", "log_dir", "delta_dir", "client_cert", "client_cert_key")
