"""The running configuration: one frozen :class:`Config`, built by :mod:`airgap.config.load`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..redact import redact_doc, redact_settings
from .checks import DEFAULT_PLATFORMS
from .keys import KEYS


def _default_mirror_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return str(Path(base) / "airgap")


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
        for key in KEYS.values():
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
        for key in KEYS.values():
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
