"""The connected host in a company network: proxies, TLS trust, client certificates, a bandwidth cap.

Settings use conda's key names and environment variables:

* ``proxy_servers: {http: URL, https: URL}`` (config) wins over ``HTTP_PROXY`` / ``HTTPS_PROXY``
  (and their lowercase forms); ``NO_PROXY`` / ``no_proxy`` lists hosts reached directly
  (``host``, ``.domain`` or ``domain`` for the domain and its subdomains, ``host:port``, a CIDR
  range such as ``10.0.0.0/8``, or ``*``). https goes through the proxy with CONNECT; the
  proxy URL's ``user:password@`` is sent to the proxy only (``Proxy-Authorization``).
* ``ssl_verify: true | false | PATH``: a PATH is the CA bundle to trust (a company's TLS
  inspection CA); with ``true``, ``REQUESTS_CA_BUNDLE`` then ``SSL_CERT_FILE`` name the bundle,
  else the system's. ``false`` turns verification off and warns on every run.
* ``client_cert`` / ``client_cert_key``: a PEM client certificate (and its key, when separate).
* ``max_bandwidth``: bytes/s for all downloads together (:class:`Bandwidth`).

:class:`Transport` hands :class:`airgap.upstream.fetch.Fetcher` the urllib3 pool manager for each URL;
:func:`explain` turns a urllib3 failure into one line naming the cause (proxy refused, proxy
authentication needed, TLS verification failed) and :func:`status_problem` does the same for
HTTP 401/403/407. Every message is redacted (:func:`airgap.redact.redact`).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, quoted
from ..redact import redact
from .auth import CredentialStore, load_credentials

if TYPE_CHECKING:  # urllib3 (~0.1 s to import) only when a request is made: a file:// export never needs it
    import urllib3

    from ..config import Config

log = logging.getLogger(__name__)

PROXY_SCHEMES = ("http", "https")


# --- configuration checkers (used by airgap.config) -------------------------------------------


def check_proxy_servers(path: str, v: Any) -> dict[str, str]:
    if v is None or v == "None":
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{path}: expected a mapping {{http: URL, https: URL}}, found {quoted(v)}")
    out = {}
    for scheme, raw in v.items():
        url = os.path.expandvars(raw) if isinstance(raw, str) else raw  # ${PROXY_PASSWORD}: the secret stays out of the file
        if scheme not in PROXY_SCHEMES:
            raise ConfigError(f"{path}: expected the keys http and https, found {quoted(scheme)}")
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in PROXY_SCHEMES:
            raise ConfigError(f"{path}.{scheme}: expected a proxy URL such as http://proxy.example:3128, found {quoted(redact(str(url)))}")
        out[str(scheme)] = url
    return out


def check_ssl_verify(path: str, v: Any) -> bool | str:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    if isinstance(v, str) and v.strip():
        return v
    raise ConfigError(f"{path}: expected true, false or the path of a CA bundle (PEM), found {quoted(v)}")


# --- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """Everything about how the connected host reaches upstream. Build with :func:`network_from`."""

    proxies: Mapping[str, str] = field(default_factory=dict)
    no_proxy: tuple[str, ...] = ()
    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_cert_key: str | None = None
    credentials: CredentialStore = field(default_factory=CredentialStore)
    max_bandwidth: int | None = None

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL ``url`` goes through, or None to connect directly."""
        parts = urllib.parse.urlsplit(url)
        proxy = self.proxies.get(parts.scheme.lower())
        if not proxy or bypass_proxy(parts.hostname or "", parts.port, self.no_proxy):
            return None
        return proxy


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name.lower()) or environ.get(name.upper()) or None


def network_from(config: Config, environ: Mapping[str, str] | None = None) -> Network:
    """The network settings of ``config``, completed from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...)."""
    env = os.environ if environ is None else environ
    proxies = {s: p for s in PROXY_SCHEMES if (p := _env(env, f"{s}_proxy"))}
    proxies.update(config.proxy_servers)
    for scheme, proxy in proxies.items():
        if urllib.parse.urlsplit(proxy).scheme not in PROXY_SCHEMES:
            raise ConfigError(f"{scheme}_proxy: expected a proxy URL such as http://proxy.example:3128, found {quoted(redact(proxy))}")
    no_proxy = tuple(h.strip() for h in (_env(env, "no_proxy") or "").split(",") if h.strip())
    for scheme, proxy in sorted(proxies.items()):
        log.info("%s:// through the proxy %s%s", scheme, redact(proxy), f" (not for {', '.join(no_proxy)})" if no_proxy else "")
    verify, ca_bundle, ca_from = True, None, "ssl_verify"
    if config.ssl_verify is False:
        verify = False
        log.warning(
            "ssl_verify is false: TLS certificates are NOT verified; anyone on the path can change the repodata "
            "(and with it the sha256 each package is checked against). Set ssl_verify to your company's CA bundle instead."
        )
    elif isinstance(config.ssl_verify, str):
        ca_bundle = config.ssl_verify
    else:
        for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            if env.get(name):
                ca_bundle, ca_from = env[name], name
                break
    for what, path in ((ca_from, ca_bundle), ("client_cert", config.client_cert), ("client_cert_key", config.client_cert_key)):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{what}: expected a PEM file, found nothing at {path}")
    return Network(
        proxies=proxies,
        no_proxy=no_proxy,
        verify=verify,
        ca_bundle=ca_bundle,
        client_cert=config.client_cert,
        client_cert_key=config.client_cert_key,
        credentials=load_credentials(env),
        max_bandwidth=config.max_bandwidth,
    )


def bypass_proxy(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """Whether NO_PROXY's entries send ``host`` (``port``) directly."""
    host = host.lower().strip("[]")
    for entry in no_proxy:
        entry = entry.lower()
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or port is None or int(entry_port) != port):
            continue
        name = name.strip("[]")
        if "/" in name:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.lstrip("*").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


# --- transport -----------------------------------------------------------------------------


class Transport:
    """The pool manager for each URL: direct, or one :class:`urllib3.ProxyManager` per proxy."""

    def __init__(self, network: Network, header_deadline: float, **pool_kwargs: Any) -> None:
        self.network = network
        self._deadline = header_deadline
        import urllib3

        self._kwargs = {**pool_kwargs, **_tls_kwargs(network)}
        self._direct = self._bounded(urllib3.PoolManager(**self._kwargs))
        self._proxied: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _bounded(self, manager: urllib3.PoolManager) -> urllib3.PoolManager:
        from .http_deadline import bound_header_wait

        bound_header_wait(manager, self._deadline)  # headers trickled a byte at a time: the same deadline
        return manager

    def manager_for(self, url: str) -> urllib3.PoolManager:
        proxy = self.network.proxy_for(url)
        if proxy is None:
            return self._direct
        with self._lock:
            manager = self._proxied.get(proxy)
            if manager is None:
                import urllib3

                manager = urllib3.ProxyManager(_strip_userinfo(proxy), proxy_headers=_proxy_headers(proxy), **self._kwargs)
                self._proxied[proxy] = self._bounded(manager)
            return manager

    def clear(self) -> None:
        self._direct.clear()
        for manager in self._proxied.values():
            manager.clear()


def _tls_kwargs(network: Network) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    import ssl

    if not network.verify:
        import urllib3

        kw["cert_reqs"] = ssl.CERT_NONE
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # warned once per run instead
    else:
        kw["cert_reqs"] = ssl.CERT_REQUIRED
        if network.ca_bundle:
            kw["ca_certs"] = network.ca_bundle
    if network.client_cert:
        kw["cert_file"] = network.client_cert
        if network.client_cert_key:
            kw["key_file"] = network.client_cert_key
    return kw


def _strip_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _proxy_headers(proxy: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(proxy)
    if "@" not in parts.netloc:
        return {}
    user, _, password = parts.netloc.rpartition("@")[0].partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(token).decode("ascii")}


# --- one-line causes -------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 10:
        out.append(seen)
        nxt = seen.__cause__ or seen.__context__
        if nxt is None and seen.args and isinstance(seen.args[-1], BaseException):
            nxt = seen.args[-1]
        seen = nxt
    return out


def explain(exc: BaseException, url: str, proxy: str | None) -> tuple[str, bool]:
    """One line naming why a request to ``url`` failed, and whether retrying may help."""
    import ssl

    import urllib3

    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    where = redact(url)
    via = f" (proxy {redact(proxy)})" if proxy else ""
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        reason = next((getattr(e, "verify_message", "") for e in chain if isinstance(e, ssl.SSLCertVerificationError)), "")
        return (
            f"{where}: TLS verification failed{via}: {reason or 'certificate not trusted'}; set ssl_verify to the CA bundle "
            f"that signed it (a company CA: ssl_verify: /path/ca.pem, or REQUESTS_CA_BUNDLE / SSL_CERT_FILE)"
        ), False
    if proxy and re.search(r"Tunnel connection failed: 407\b", text):  # not just "407": a port may contain it
        return (
            f"{where}: proxy authentication needed (HTTP 407 from proxy {redact(proxy)}); put user:password in the "
            f"proxy URL (HTTPS_PROXY / HTTP_PROXY or proxy_servers)"
        ), False
    if proxy and isinstance(exc, urllib3.exceptions.ProxyError):
        if "Tunnel connection failed" in text:
            cause = text.split("Tunnel connection failed:", 1)[1].split("'")[0].strip()
            return f"{where}: the proxy {redact(proxy)} refused the connection (CONNECT answered {cause})", False
        return f"{where}: cannot reach the proxy {redact(proxy)}: connection refused or unreachable", True
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"{where}: TLS failed{via}: {redact(str(chain[-1]))[:200]} (see ssl_verify, client_cert, client_cert_key)", False
    return f"{where}{via}: {type(exc).__name__}: {redact(str(exc))}", True


def status_problem(url: str, status: int, proxy: str | None, sent_credentials: bool) -> str | None:
    """One line for a response that means "not allowed" (401, 403, 407); None for other statuses."""
    where = redact(url)
    if status == 407:
        return (
            f"{where}: proxy authentication needed (HTTP 407 from proxy {redact(proxy or '?')}); put user:password in the "
            f"proxy URL (HTTP_PROXY / HTTPS_PROXY or proxy_servers)"
        )
    if status not in (401, 403):
        return None
    if sent_credentials:
        return (
            f"{where}: HTTP {status}: the channel refused the credentials airgap sent (from the channel URL, "
            f"RATTLER_AUTH_FILE or ~/.netrc); check or renew them"
        )
    return (
        f"{where}: HTTP {status}: the channel needs credentials; give a token (the channel URL's path segment t/TOKEN), "
        f"user:password in the channel URL, a ~/.netrc entry or a RATTLER_AUTH_FILE entry for its host"
    )


# --- bandwidth ----------------------------------------------------------------------------------


class Bandwidth:
    """A cap on the bytes per second of all downloads together (one budget shared by every worker).

    Each chunk reserves ``n / rate`` seconds on one shared timeline; a worker whose reservation
    starts more than ``burst`` seconds ahead of now sleeps until then.
    """

    def __init__(
        self, rate: int, burst: float = 0.25, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rate, self.burst, self._clock, self._sleep = rate, burst, clock, sleep
        self._next = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> float:
        """Account for ``n`` bytes; sleeps as needed and returns the seconds slept."""
        with self._lock:
            now = self._clock()
            start = max(self._next, now - self.burst)
            self._next = start + n / self.rate
            wait = start - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0
