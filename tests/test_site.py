"""What a site administrator meets: the served channel, .condarc, and the browsable pages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.core.repodata import Repodata
from airgap.site.html import channel_page, name_pages, subdir_page
from airgap.site.serve import make_server

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("site")
    cfg = d / "export.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(d / "cache")}))
    r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(d / "m.tar")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["import", str(d / "m.tar"), "--into", str(d / "dest"), "--allow-unsigned"])
    assert r.exit_code == 0, r.output
    return d / "dest"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(v for k, v in attrs if k == "href" and v)

    def handle_data(self, data: str) -> None:
        self.cells.append(data)


def test_pages_escape_hostile_metadata() -> None:
    rd = Repodata(subdir="linux-64")
    rd.put(
        "evil-1-0.conda", {"name": "<script>alert(1)</script>", "version": '1"><img>', "build": "0", "license": "<b>GPL</b>", "size": 10}
    )
    items = list(rd.records())
    for page in (subdir_page("ch", rd), name_pages("ch", "linux-64", "<script>alert(1)</script>", items)[0][1]):
        assert "<script>" not in page and "<img>" not in page and "<b>GPL" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in channel_page("ch", {"linux-64": rd, "<script>": None})


def test_serve_hides_state_and_answers_conda(imported: Path) -> None:
    server = make_server(imported, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/channel/noarch/repodata.json") as resp:
            assert json.loads(resp.read())["info"]["subdir"] == "noarch"
        with urllib.request.urlopen(f"{base}/channel/linux-64/") as resp:  # its index.html, not a listing
            assert b"airgap-hello" in resp.read()
        with urllib.request.urlopen(f"{base}/") as resp:  # the front page lists the channels
            assert b'href="channel/index.html"' in resp.read()
        for hidden in ("/.airgap/receipt.json", "/%2eairgap/receipt.json", "/channel/.hidden"):
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(base + hidden)
            assert exc.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_condarc(imported: Path) -> None:
    r = CliRunner().invoke(main, ["condarc", "http://mirror:8080/", "--into", str(imported)])
    assert r.exit_code == 0, r.output
    assert "channels:\n  - http://mirror:8080/channel\n" in r.output
    assert "channel_alias: http://mirror:8080\n" in r.output
    r = CliRunner().invoke(main, ["condarc", "mirror:8080"])
    assert r.exit_code == 2 and "expected http://HOST:PORT" in r.output


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return path


def _headless(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_channel_pages_in_a_browser(imported: Path, tmp_path: Path, http_server: Any) -> None:
    channel = imported / "channel"
    assert (channel / "index.html").is_file()
    assert (channel / "linux-64" / "index.html").is_file() and (channel / "noarch" / "index.html").is_file()
    base = http_server(imported)
    # no broken links: every href on every page answers 200
    name_pages = sorted((channel / "linux-64" / "names").iterdir())
    assert name_pages
    for page in (channel / "index.html", channel / "linux-64" / "index.html", channel / "noarch" / "index.html", *name_pages):
        parser = _Links()
        parser.feed(page.read_text())
        assert parser.links
        page_url = f"{base}/{page.relative_to(imported).as_posix()}"
        for href in parser.links:
            with urllib.request.urlopen(urllib.parse.urljoin(page_url, href)) as resp:
                assert resp.status == 200, href
    chromium = _chromium()
    dom = _headless(chromium, tmp_path, "--dump-dom", f"{base}/channel/index.html").stdout
    assert 'href="linux-64/index.html"' in dom and "<table>" in dom
    dom = _headless(chromium, tmp_path, "--dump-dom", f"{base}/channel/linux-64/index.html").stdout
    assert "airgap-hello" in dom and "0.2.0" in dom and 'id="q"' in dom  # the latest version, and the filter box
    dom = _headless(chromium, tmp_path, "--dump-dom", f"{base}/channel/linux-64/names/airgap-hello.html").stdout
    assert "0.1.0" in dom and "0.2.0" in dom and "<table>" in dom
    shot = tmp_path / "channel.png"
    _headless(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,700", f"{base}/channel/linux-64/index.html")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("AIRGAP_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["AIRGAP_KEEP_SCREENSHOT"])


def _run_on_a_terminal(args: list[str]) -> str:
    """Run ``python -m airgap ARGS`` with stderr on a pseudo-terminal; return what it drew."""
    import fcntl
    import pty
    import struct
    import sys
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    proc = subprocess.Popen([sys.executable, "-m", "airgap", *args], stdout=subprocess.DEVNULL, stderr=child_fd)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main_fd)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_only(tmp_path: Path) -> None:
    cfg = tmp_path / "e.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "c")}))
    assert CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")]).exit_code == 0
    drawn = _run_on_a_terminal(["verify", str(tmp_path / "m.tar"), "--allow-unsigned"])
    assert "verify:" in drawn and "files" in drawn and "%|" in drawn
    assert "%|" not in _run_on_a_terminal(["verify", "-q", str(tmp_path / "m.tar"), "--allow-unsigned"])
    piped = subprocess.run(
        [sys.executable, "-m", "airgap", "verify", str(tmp_path / "m.tar"), "--allow-unsigned"], capture_output=True, text=True, check=True
    )
    assert "%|" not in piped.stderr and piped.stdout.startswith("OK ")
