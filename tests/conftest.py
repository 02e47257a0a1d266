"""Shared fixtures: static HTTP servers on 127.0.0.1 (one per served directory, per session)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airgap.signing import generate_keypair, load_signer

# the remote destinations' shared fixtures (bucket, archives, site): tests/remote.py
pytest_plugins = ("remote", "ociparts")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client the test cut off on purpose (a killed export, a refused download) is no test failure


def serve_directory(path: Path) -> tuple[str, Callable[[], None]]:
    """Serve ``path`` on 127.0.0.1 (a free port); return ``(base_url, stop)``."""
    httpd = _QuietServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()

    return f"http://127.0.0.1:{httpd.server_address[1]}", stop


@pytest.fixture(scope="session")
def http_server() -> Iterator[Callable[[Path], str]]:
    stops: list[Callable[[], None]] = []

    def serve(path: Path) -> str:
        url, stop = serve_directory(path)
        stops.append(stop)
        return url

    yield serve
    for stop in stops:
        stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's ~/.airgap.yaml, $AIRGAP_CONFIG or caches."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("AIRGAP_CONFIG", raising=False)
    monkeypatch.delenv("AIRGAP_KEY_PASSPHRASE", raising=False)
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "RATTLER_AUTH_FILE", "NETRC"):
        monkeypatch.delenv(name, raising=False)  # the developer's proxy or logins must not reach 127.0.0.1 tests


@pytest.fixture(scope="session")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two signing keys, ``good`` and ``other`` (signers, and their public key files as ``NAME.pub``)."""
    d = tmp_path_factory.mktemp("hostile-keys")
    out: dict[str, Any] = {}
    for name in ("good", "other"):
        generate_keypair(d / name)
        out[name] = load_signer(d / name)
        out[name + ".pub"] = d / f"{name}.pub"
    return out


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real SeaweedFS S3 endpoint on 127.0.0.1, one per test session (see tests/servers.py)."""
    from servers import start_seaweed, stop_seaweed

    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    stop_seaweed(server)


@pytest.fixture(scope="session", autouse=True)
def _quetz_installed(request: pytest.FixtureRequest) -> None:
    """quetz's own venv exists before the first test runs (``.ci/run`` makes it; else here, once),
    so that no test pays for an install. Only when a collected test uses quetz."""
    if any("quetz" in item.nodeid.lower() or "quetz" in getattr(item, "fixturenames", ()) for item in request.session.items):
        from quetz_install import quetz_executable

        quetz_executable()


@pytest.fixture(scope="session")
def quetz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real quetz server on 127.0.0.1 with an API key, one per test session (see tests/servers.py)."""
    from servers import start_quetz, stop

    server = start_quetz(tmp_path_factory.mktemp("quetz"))
    yield server
    stop(server.proc)
