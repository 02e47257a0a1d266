"""Configuration: cas-mirror compatible YAML, parsed once into a frozen object.

This module reads and validates; it does not fetch, print or exit. Every key cas-mirror
documents is accepted so existing files keep working; keys that mean nothing to airgap are
accepted and reported as such by ``--show-config``. Unknown keys are an error naming the key
and the closest known one; wrong types name the key's path; broken YAML names file and line.

The package, by the order a value travels: ``checks`` (one checker per kind of value, sizes),
``keys`` (every key: checker, default, help, status), ``model`` (the frozen ``Config``),
``load`` (find the file, read it bounded, validate every key, resolve paths).
"""

from __future__ import annotations

from .checks import DEFAULT_PLATFORMS, KNOWN_SUBDIRS, LOG_LEVELS, parse_size
from .keys import KEYS, PATH_KEYS
from .load import from_mapping, load_config, user_config_paths
from .model import Config

__all__ = [
    "DEFAULT_PLATFORMS",
    "KEYS",
    "KNOWN_SUBDIRS",
    "LOG_LEVELS",
    "PATH_KEYS",
    "Config",
    "from_mapping",
    "load_config",
    "parse_size",
    "user_config_paths",
]
