"""Real parts for the company-network tests (issue 17), all on 127.0.0.1: a CA made here with
``cryptography``, HTTPS upstreams with certificates from it, and Debian's ``tinyproxy``."""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
TOKEN = "TOK-a1b2c3d4"
BASIC = ("bob", "BPW-e5f6a7")
BEARER = "BEARER-0d9c8b"
PROXY_AUTH = ("pu", "PPW-4e3f2a")
SECRETS = (TOKEN, BASIC[1], BEARER, PROXY_AUTH[1])


# --- certificates -----------------------------------------------------------------------------


def make_pki(d: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("airgap test CA"))
        .issuer_name(name("airgap test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(f"airgap test {role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if role == "server":
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        out[role] = d / f"{role}.pem"
        out[role].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{role}_key"] = d / f"{role}.key"
        out[f"{role}_key"].write_bytes(pem_key(key))
    return out


# --- servers -------------------------------------------------------------------------------------


class Upstream:
    """The channel over HTTPS; refuses requests without ``/t/TOKEN/``, Basic ``bob:…`` or the bearer token."""

    def __init__(self, root: Path, pki: dict[str, Path], want_client_cert: bool = False) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # (Host, path, Authorization)
        self.redirects: dict[str, str] = {}
        up = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                authz = self.headers.get("Authorization")
                up.seen.append((self.headers.get("Host", ""), self.path, authz))
                if self.path in up.redirects:
                    self.send_response(302)
                    self.send_header("Location", up.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                basic = "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
                if self.path.startswith("/t/"):
                    token, _, rest = self.path[3:].partition("/")
                    if token != TOKEN:
                        self.send_error(403)
                        return
                    self.path = "/" + rest
                elif authz not in (basic, f"Bearer {BEARER}") and not want_client_cert:
                    self.send_error(401)
                    return
                super().do_GET()

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki["server"], pki["server_key"])
        if want_client_cert:
            ctx.load_verify_locations(pki["ca"])
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Proxy:
    """Debian's tinyproxy on 127.0.0.1, asking for Basic proxy credentials, CONNECT allowed to ``ports``."""

    def __init__(self, d: Path, ports: list[int]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = d / "tinyproxy.log"
        conf = d / "tp.conf"
        conf.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 50\n"
            + "".join(f"ConnectPort {p}\n" for p in ports)
            + f'LogFile "{self.log}"\nLogLevel Connect\nPidFile "{d / "tp.pid"}"\n'
            + f"BasicAuth {PROXY_AUTH[0]} {PROXY_AUTH[1]}\n"
        )
        self.proc = subprocess.Popen(
            [TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError("tinyproxy did not start")

    def url(self, with_auth: bool = True) -> str:
        auth = f"{PROXY_AUTH[0]}:{PROXY_AUTH[1]}@" if with_auth else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def connects(self) -> list[str]:
        """The CONNECT requests tinyproxy logged, as ``HOST:PORT``."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.split(": CONNECT ", 1)[1].split()[0] for line in lines if ": CONNECT " in line]

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
