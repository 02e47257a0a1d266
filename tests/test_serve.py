"""``airgap serve`` as a hostile or careless client meets it: raw sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airgap.site.serve import AccessLog, ChannelServer, make_server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small served tree: one channel with the files a conda channel holds, and airgap's state."""
    r = tmp_path / "srv"
    sub = r / "main" / "linux-64"
    sub.mkdir(parents=True)
    (sub / "repodata.json").write_text(json.dumps({"info": {"subdir": "linux-64"}, "packages": {}}))
    (sub / "repodata.json.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 10)
    (sub / "a-1-0.conda").write_bytes(b"PK" + b"\0" * 100)
    (sub / "a-1-0.tar.bz2").write_bytes(b"BZh9" + b"\0" * 100)
    (sub / "big-1-0.conda").write_bytes(os.urandom(1 << 20) * 8)
    (sub / "index.html").write_text("<html>linux-64</html>")
    (r / "main" / "index.html").write_text("<html>main</html>")
    (r / ".airgap").mkdir()
    (r / ".airgap" / "receipt.json").write_text("{}")
    return r


@pytest.fixture
def serving(root: Path) -> Iterator[Any]:
    servers: list[ChannelServer] = []

    def start(**limits: Any) -> tuple[ChannelServer, int]:
        server = make_server(root, "127.0.0.1", 0, **limits)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, int(server.server_address[1])

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` as it is; return the whole answer (the server closes: HTTP/1.0)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert m, answer[:200]
    return int(m.group(1))


def test_paths_that_name_no_file_are_400(serving: Any) -> None:
    _, port = serving()
    for target in (
        b"/main/linux-64/%00",
        b"/main/%00/x",
        b"/%ff%fe",
        b"/main/../.airgap/receipt.json",
        b"/main/linux-64/..%2f..%2f.airgap",
        b"/main/%01x",
        b"/main%5clinux-64",
    ):
        assert _status(_raw(port, b"GET " + target + b" HTTP/1.0\r\n\r\n")) == 400, target
    assert _status(_raw(port, b"GET /main/linux-64/repodata.json HTTP/1.0\r\n\r\n")) == 200  # and it still answers


def test_disconnecting_clients_print_no_traceback(serving: Any, capfd: pytest.CaptureFixture[str]) -> None:
    _, port = serving()
    for _ in range(5):  # ask for 8 MiB, read a little, reset the connection
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"GET /main/linux-64/big-1-0.conda HTTP/1.0\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.0 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert _status(_raw(port, b"GET /main/linux-64/repodata.json HTTP/1.0\r\n\r\n")) == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err


def _closed_by_server(s: socket.socket) -> bool:
    """True once the server closed ``s`` (reads EOF or a reset); waits at most 20 s per read."""
    s.settimeout(20)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_connections_are_bounded_and_time_out(serving: Any) -> None:
    _, port = serving(workers=2, backlog=3, idle_timeout=2.0, header_timeout=4.0)
    threads = threading.active_count()
    half = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(12)]
    for s in half:
        s.sendall(b"GET /main/linux-64/repodata.json HTTP/1.0\r\nHost: x\r\n")  # never finished
    # no thread per connection: the pool is what it was
    assert threading.active_count() <= threads  # (earlier tests' servers may still be ending theirs)
    # what neither a worker nor the queue can take is answered 503 at once
    answers = []
    for s in half:
        s.settimeout(20)
        try:
            answers.append(s.recv(100))
        except TimeoutError:
            answers.append(b"")
    busy = sum(a.startswith(b"HTTP/1.1 503") for a in answers)
    assert busy >= 1 and all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in answers), answers
    # the idle ones are closed by the server, and a complete request is answered again
    assert all(_closed_by_server(s) for s in half)
    for s in half:
        s.close()
    assert _status(_raw(port, b"GET /main/linux-64/repodata.json HTTP/1.0\r\n\r\n")) == 200


def test_a_client_sending_a_byte_at_a_time_is_cut_off(serving: Any) -> None:
    _, port = serving(workers=1, backlog=1, idle_timeout=5.0, header_timeout=1.0)
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    request = b"GET /main/linux-64/repodata.json HTTP/1.0\r\n" + b"X-Slow: " + b"a" * 200
    closed = False
    for i in range(len(request)):  # at most ~200 bytes at 0.1 s each: the 1 s deadline comes first
        try:
            s.sendall(request[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        s.settimeout(0.1)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
            break
    s.close()
    assert closed
    assert _status(_raw(port, b"GET /main/linux-64/repodata.json HTTP/1.0\r\n\r\n")) == 200


def test_links_out_of_the_root_are_not_followed(root: Path, tmp_path: Path, serving: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"secret": 1}')
    (outside / "linux-64").mkdir()
    (outside / "linux-64" / "repodata.json").write_text("{}")
    (root / "main" / "linux-64" / "leak.json").symlink_to(outside / "secret.json")
    (root / "other").symlink_to(outside)
    (root / "main" / "noarch").symlink_to(root / "main" / "linux-64")  # a link that stays inside is fine
    (root / "main" / "state.json").symlink_to(root / ".airgap" / "receipt.json")  # ... unless to hidden state
    _, port = serving()
    for target in (b"/main/linux-64/leak.json", b"/other/linux-64/repodata.json", b"/other/", b"/main/state.json"):
        assert _status(_raw(port, b"GET " + target + b" HTTP/1.0\r\n\r\n")) == 404, target
    assert _status(_raw(port, b"GET /main/noarch/repodata.json HTTP/1.0\r\n\r\n")) == 200
    page = _raw(port, b"GET / HTTP/1.0\r\n\r\n")
    assert b'href="main/index.html"' in page and b"other" not in page.split(b"\r\n\r\n", 1)[1]


def test_front_page_lists_the_channels_and_types_are_right(root: Path, serving: Any) -> None:
    lines: list[str] = []
    server, port = serving()
    server.access_log = lines.append
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base + "/") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/html; charset=utf-8"
        page = resp.read().decode()
    assert '<a href="main/index.html">main</a>' in page and "linux-64" in page
    expected = {
        "repodata.json": "application/json",
        "repodata.json.zst": "application/zstd",
        "a-1-0.conda": "application/octet-stream",
        "a-1-0.tar.bz2": "application/x-bzip2",
        "index.html": "text/html; charset=utf-8",
    }
    for name, ctype in expected.items():
        with urllib.request.urlopen(f"{base}/main/linux-64/{name}") as resp:
            assert resp.headers["Content-Type"] == ctype, name
            assert resp.headers.get("Content-Encoding") is None  # the client gets the bytes the repodata hashes
            assert resp.read() == (root / "main" / "linux-64" / name).read_bytes()
    assert len(lines) == 1 + len(expected)
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /main/linux-64/a-1-0\.conda HTTP/1\.1" 200 102', lines[3]), lines[3]


def test_access_log_file_from_the_command_line(root: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airgap", "serve", str(root), "--port", "0", "--access-log", str(log_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/", first)
        assert m, first
        with urllib.request.urlopen(m.group(1) + "/main/linux-64/repodata.json") as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(m.group(1) + "/.airgap/receipt.json")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    logged = log_file.read_text().splitlines()
    size = (root / "main" / "linux-64" / "repodata.json").stat().st_size
    assert [line.split('"')[1] + line.split('"')[2] for line in logged] == [
        f"GET /main/linux-64/repodata.json HTTP/1.1 200 {size}",
        "GET /.airgap/receipt.json HTTP/1.1 404 -",
    ]


def test_access_log_that_cannot_be_opened(tmp_path: Path) -> None:
    from airgap.errors import UsageError

    with pytest.raises(UsageError, match="--access-log"):
        AccessLog(tmp_path / "missing" / "access.log")


def test_head_and_not_modified(root: Path, serving: Any) -> None:
    _, port = serving()
    answer = _raw(port, b"HEAD /main/linux-64/a-1-0.conda HTTP/1.0\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert _status(answer) == 200 and b"Content-Length: 102" in head and body == b""
    when = re.search(rb"Last-Modified: ([^\r]+)", head)
    assert when
    again = _raw(port, b"GET /main/linux-64/a-1-0.conda HTTP/1.0\r\nIf-Modified-Since: " + when.group(1) + b"\r\n\r\n")
    assert _status(again) == 304 and again.split(b"\r\n\r\n", 1)[1] == b""
    assert _status(_raw(port, b"POST /main/linux-64/a-1-0.conda HTTP/1.0\r\nContent-Length: 0\r\n\r\n")) == 501
    assert _status(_raw(port, b"GET /main HTTP/1.0\r\n\r\n")) == 301
