"""Credentials for private channels, from where conda and pixi users already keep them.

Looked up per request URL, in this order (the first that has something for the URL wins):

1. the URL itself: ``https://user:password@host/…`` (Basic auth, :mod:`airgap.upstream.urlpolicy`)
   or a token path segment ``…/t/TOKEN/…`` (sent as part of the path, like conda does);
2. rattler's auth file (``RATTLER_AUTH_FILE``, the JSON file pixi and rattler-build read):
   ``{"HOST" | "*.DOMAIN": {"BearerToken": T} | {"BasicHTTP": {"username": U, "password": P}}
   | {"CondaToken": T}}``;
3. ``~/.netrc`` (or ``$NETRC``): ``machine HOST login U password P`` becomes Basic auth.

A credential is attached to the URL the user configured; :func:`airgap.upstream.urlpolicy.headers_for_hop`
drops it when a redirect leads to another origin, and a ``CondaToken`` lives in the first URL's
path, which a redirect replaces. Nothing here logs a secret.
"""

from __future__ import annotations

import base64
import json
import netrc
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..limits import MAX_CONFIG_BYTES, read_small_file

AUTH_FILE_ENV = "RATTLER_AUTH_FILE"


@dataclass(frozen=True)
class Credential:
    """One host's credential: how it is sent (``bearer``, ``basic``, ``conda_token``) and its secret parts."""

    kind: str
    secret: str
    user: str = ""

    def apply(self, url: str) -> tuple[str, dict[str, str]]:
        """``url`` (with a conda token put in its path) and the headers this credential adds."""
        if self.kind == "bearer":
            return url, {"Authorization": f"Bearer {self.secret}"}
        if self.kind == "basic":
            return url, {"Authorization": _basic(self.user, self.secret)}
        parts = urllib.parse.urlsplit(url)
        if parts.path.startswith("/t/"):
            return url, {}
        token = urllib.parse.quote(self.secret, safe="")
        return urllib.parse.urlunsplit(parts._replace(path=f"/t/{token}{parts.path or '/'}")), {}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass(frozen=True)
class CredentialStore:
    """Per-host credentials from the rattler auth file and ``~/.netrc``; empty when neither exists."""

    hosts: Mapping[str, Credential] = field(default_factory=dict)

    def lookup(self, host: str) -> Credential | None:
        """The credential for ``host``: an exact entry, else the most specific ``*.domain`` wildcard."""
        host = host.lower()
        if host in self.hosts:
            return self.hosts[host]
        labels = host.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in self.hosts:
                return self.hosts[wildcard]
        return None

    def apply(self, url: str) -> tuple[str, dict[str, str]]:
        """``url`` with its host's stored credential applied; unchanged when the URL carries its own."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.path.startswith("/t/"):
            return url, {}
        cred = self.lookup(parts.hostname or "")
        return cred.apply(url) if cred is not None else (url, {})


def load_credentials(environ: Mapping[str, str] | None = None) -> CredentialStore:
    """Read ``$RATTLER_AUTH_FILE`` and ``$NETRC`` / ``~/.netrc``; the auth file wins for a host in both."""
    env = os.environ if environ is None else environ
    hosts: dict[str, Credential] = {}
    netrc_path = Path(env.get("NETRC") or Path(env.get("HOME") or os.path.expanduser("~")) / ".netrc")
    hosts.update(_from_netrc(netrc_path))
    auth_file = env.get(AUTH_FILE_ENV)
    if auth_file:
        hosts.update(_from_auth_file(Path(auth_file)))
    return CredentialStore(hosts)


def _from_netrc(path: Path) -> dict[str, Credential]:
    if not path.is_file():
        return {}
    try:
        parsed = netrc.netrc(str(path))
    except (netrc.NetrcParseError, OSError) as exc:
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: expected a netrc file (machine HOST login USER password PASSWORD), cannot parse it") from None
    out = {}
    for host, (login, _account, password) in parsed.hosts.items():
        if login or password:
            out[host.lower()] = Credential("basic", password or "", login or "")
    return out


def _from_auth_file(path: Path) -> dict[str, Credential]:
    what = "rattler's auth file (JSON)"
    try:
        data = json.loads(read_small_file(path, MAX_CONFIG_BYTES, what, ConfigError))
    except FileNotFoundError:
        raise ConfigError(f"{AUTH_FILE_ENV}={path}: expected {what}, found nothing at that path") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{AUTH_FILE_ENV}={path}: expected {what}, found invalid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{AUTH_FILE_ENV}={path}: expected a JSON object of host names, found {type(data).__name__}")
    out = {}
    for host, entry in data.items():
        out[str(host).lower()] = _entry(path, str(host), entry)
    return out


def _entry(path: Path, host: str, entry: object) -> Credential:
    expected = f'{path}: {host}: expected {{"BearerToken": T}}, {{"BasicHTTP": {{"username": U, "password": P}}}} or {{"CondaToken": T}}'
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(expected + "; found something else")
    ((kind, value),) = entry.items()
    if kind == "BearerToken" and isinstance(value, str):
        return Credential("bearer", value)
    if kind == "CondaToken" and isinstance(value, str):
        return Credential("conda_token", value)
    if kind in ("BasicHTTP", "BasicHttp") and isinstance(value, dict):
        user, password = value.get("username"), value.get("password")
        if isinstance(user, str) and isinstance(password, str):
            return Credential("basic", password, user)
    raise ConfigError(expected + f"; found {str(kind)[:40]!r}")
