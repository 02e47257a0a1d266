"""Find, read and validate a configuration file into a :class:`~airgap.config.model.Config`.

Unknown keys are an error naming the key and the closest known one; wrong types name the key's
path (:mod:`airgap.config.checks`); broken YAML names file and line. Paths are resolved
relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..core import channel_map as _channel_map
from ..errors import ConfigError
from ..limits import MAX_CONFIG_BYTES, read_small_file
from ..yaml_bounded import load_yaml_bounded
from .checks import _q, _type_name
from .keys import KEYS, PATH_KEYS
from .model import Config, _resolve_path


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
