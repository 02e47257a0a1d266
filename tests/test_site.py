"""What a site administrator meets: the served channel, .condarc, and the browsable pages."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.html import channel_page, subdir_page
from airgap.repodata import Repodata
from airgap.serve import make_server

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
    rd.put("evil-1-0.conda", {"name": "<script>alert(1)</script>", "version": "1\"><img>", "build": "0",
                              "license": "<b>GPL</b>", "size": 10})
    for page in (subdir_page("ch", rd), channel_page("ch", {"linux-64": rd})):
        assert "<script>" not in page and "<img>" not in page and "<b>GPL" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_serve_hides_state_and_answers_conda(imported: Path) -> None:
    server = make_server(imported, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/channel/noarch/repodata.json") as resp:
            assert json.loads(resp.read())["info"]["subdir"] == "noarch"
        for hidden in ("/.airgap/receipt.json", "/channel/linux-64/", "/%2eairgap/receipt.json"):
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
