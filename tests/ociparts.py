"""A real OCI registry for the tests (a helper module, not a test module).

Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1:443 with TLS from a CA made here
(rattler's OCI client speaks only ``https://HOST/v2/...`` on port 443), in three flavours:
anonymous, ``htpasswd`` basic auth, and ``auth: token`` with a tiny loopback token server that
signs ES256 JWTs the way a registry's token service does. Only one registry can listen on 443,
so :func:`start_registry` stops the one before (the fixtures start each flavour when needed).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY = "docker-registry"
USER, PASSWORD = "pusher", "pusher-secret-1234"


def registry_binary() -> str | None:
    return shutil.which(REGISTRY) or (f"/usr/bin/{REGISTRY}" if Path(f"/usr/bin/{REGISTRY}").exists() else None)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_tls(d: Path) -> dict[str, Path]:
    """A CA, and a leaf for 127.0.0.1/localhost signed by it (not a CA itself: rustls refuses that)."""
    import ipaddress

    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("airgap test CA"))
        .issuer_name(_name("airgap test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital_signature, key_cert_sign, crl_sign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False)
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": d / "ca.pem", "cert": d / "cert.pem", "key": d / "key.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(_pem_key(key))
    return out


# -- a token service (the registry's `auth: token`) --------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues ES256 JWTs for ``USER``/``PASSWORD`` (every scope asked) and anonymous pull tokens."""

    workdir: Path
    service: str = "airgap-test-registry"
    issuer: str = "airgap-test-tokens"
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("token signer"))
            .issuer_name(_name("token signer"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = self.workdir / "token-signer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def token(self, scopes: list[str], user: str | None) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = actions.split(",") if user == USER else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if (name, password) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = name
                server.requests.append(f"{user or 'anonymous'} {' '.join(query.get('scope', []))}")
                token = server.token(query.get("scope", []), user)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the registry --------------------------------------------------------------------------------


@dataclass
class Registry:
    host: str
    ca: Path
    proc: subprocess.Popen[bytes]
    root: Path
    auth: str = "none"
    tokens: TokenServer | None = None
    log: Path | None = None


def start_registry(workdir: Path, tls: dict[str, Path], auth: str = "none", delete: bool = True) -> Registry:
    """Start ``docker-registry`` on 127.0.0.1:443 with fresh storage; ``auth``: none, basic or token."""
    from servers import stop

    exe = registry_binary()
    if exe is None:
        raise RuntimeError(f"expected the OCI registry binary {REGISTRY!r} (apt-get install -y docker-registry), found none")
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = None
    auth_cfg = ""
    if auth == "basic":
        (workdir / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
        auth_cfg = f"auth:\n  htpasswd:\n    realm: airgap-test\n    path: {workdir / 'htpasswd'}\n"
    elif auth == "token":
        tokens = TokenServer(workdir)
        tokens.start()
        auth_cfg = (
            f"auth:\n  token:\n    realm: {tokens.url}\n    service: {tokens.service}\n    issuer: {tokens.issuer}\n"
            f"    rootcertbundle: {tokens.bundle}\n"
        )
    config = (
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: {'true' if delete else 'false'}\n"
        f"http:\n  addr: 127.0.0.1:443\n  secret: {uuid.uuid4().hex}\n  tls:\n    certificate: {tls['cert']}\n    key: {tls['key']}\n"
        + auth_cfg
    )
    (workdir / "reg.yml").write_text(config)
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "serve", str(workdir / "reg.yml")], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ctx = ssl.create_default_context(cafile=str(tls["ca"]))
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{REGISTRY} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen("https://127.0.0.1/v2/", context=ctx, timeout=2).read()
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for credentials
                break
        except Exception:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"{REGISTRY} did not answer on https://127.0.0.1/v2/ within 30s: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return Registry("127.0.0.1", tls["ca"], proc, workdir / "data", auth, tokens, log)


def stop_registry(reg: Registry) -> None:
    from servers import stop

    stop(reg.proc)
    if reg.tokens is not None:
        reg.tokens.stop()


def _bcrypt(password: str) -> str:
    """A bcrypt hash for htpasswd (the registry reads no other kind), from the C library's crypt()."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))  # cost 4: the registry checks it on every request


def blob_files(reg: Registry) -> dict[str, int]:
    """Every blob the registry holds (digest -> size), read from its storage directory."""
    out = {}
    base = reg.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for data in base.glob("*/*/data") if base.exists() else ():
        out[data.parent.name] = data.stat().st_size
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- fixtures (a pytest plugin: conftest.py lists this module in pytest_plugins) -----------------


class RegistryHandle:
    """The one registry on 127.0.0.1:443 of this test session, restarted in another flavour on demand."""

    def __init__(self, workdir: Path) -> None:
        if os.geteuid() != 0 and not _can_bind_443():
            raise RuntimeError(
                "expected to listen on 127.0.0.1:443 for the OCI registry tests (rattler drops ports), found no permission; run as root"
            )
        self.workdir = workdir
        self.tls = make_tls(workdir / "tls")
        self.current: Registry | None = None
        self.flavour: tuple[str, bool] | None = None

    def use(self, auth: str = "none", delete: bool = True) -> Registry:
        if self.current is not None and self.flavour == (auth, delete):
            return self.current
        if self.current is not None:
            stop_registry(self.current)
            self.current = None
        self.current = start_registry(self.workdir / "registry", self.tls, auth=auth, delete=delete)
        self.flavour = (auth, delete)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            stop_registry(self.current)


def _can_bind_443() -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 443))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def oci_registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryHandle]:
    """The registry for the whole session. Where it cannot run at all (no ``docker-registry``; not root, so no
    port 443, the only port rattler's OCI client speaks to) the tests are skipped with the reason, as the
    browser tests are without Chromium: .ci/run installs it and runs as root, and fails before the tests if it
    cannot. Port 443 held by something else is a failure, not a skip."""
    if registry_binary() is None:
        pytest.skip(f"{REGISTRY} is not installed (apt-get install -y docker-registry); CI runs these tests")
    if os.geteuid() != 0 and not _can_bind_443():
        pytest.skip("the OCI tests listen on 127.0.0.1:443 (rattler's OCI client speaks only https on 443): run them as root; CI does")
    handle = RegistryHandle(tmp_path_factory.mktemp("oci"))
    yield handle
    handle.close()


def _env(monkeypatch: pytest.MonkeyPatch, reg: Registry) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca))
    for name in ("AIRGAP_OCI_USERNAME", "AIRGAP_OCI_PASSWORD", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def oci_registry(oci_registries: RegistryHandle, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The anonymous registry (deletes enabled); ``SSL_CERT_FILE`` trusts its CA."""
    reg = oci_registries.use()
    _env(monkeypatch, reg)
    return reg


@pytest.fixture
def oci_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
