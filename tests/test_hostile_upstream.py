"""A hostile or careless upstream, on the export side (issue 12, items 8-13; 21 is in test_redact.py).

Each test drives a real export (or the fetcher) against a channel on disk or on a scripted
HTTP server on 127.0.0.1: values that are not JSON, base_url and redirects that try to leave
http(s), credentials across redirects, a server that trickles, a repodata bomb. ``Scripted``
and ``config`` live in scripted.py (test_redact.py uses them too).
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import cli
from scripted import Route, Scripted, body, config, redirect

from airgap.core.repodata import parse_repodata
from airgap.errors import TransientError, UpstreamError
from airgap.testing.condapkg import PackageSpec, write_channel
from airgap.upstream.channels import MAX_REPODATA_BYTES, decode_repodata
from airgap.upstream.fetch import Fetcher
from airgap.upstream.urlpolicy import check_link, headers_for_hop, redirect_target


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path / "up" / "chan"
    rd = write_channel(root, [PackageSpec("p", str(v), subdir="linux-64") for v in (1, 2)], subdirs=("linux-64",), formats=("conda",))
    server = Scripted(tmp_path / "up")
    yield {"root": root, "server": server, "url": server.url + "/chan/", "repodata": rd, "tmp": tmp_path}
    server.close()


def rewrite_repodata(root: Path, subdir: str, text: str) -> None:
    """Replace a subdir's repodata.json and .zst with ``text`` as is (it need not be valid JSON)."""
    raw = text.encode("utf-8", "surrogatepass")
    (root / subdir / "repodata.json").write_bytes(raw)
    (root / subdir / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))


def strict_json(data: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


# --- 8, 9: values JSON cannot carry ------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e999999", "NaN", "-Infinity", '"\\ud800"', '{"k\\udfff": 1}'])
def test_a_record_that_is_not_json_is_skipped_and_never_published(upstream: dict[str, Any], value: str) -> None:
    root, rd = upstream["root"], upstream["repodata"]["linux-64"]
    bad, good = sorted(rd["packages.conda"])
    text = json.dumps(rd).replace(f'"{bad}": {{', f'"{bad}": {{"hostile": {value}, ', 1)
    assert "hostile" in text
    rewrite_repodata(root, "linux-64", text)
    tmp = upstream["tmp"]
    r = cli("export", "-f", config(tmp, upstream["url"]), "--unsigned", tmp / "m.tar")
    assert r.exit_code == 0, r.output
    assert f"skipping {bad}: its record holds a" in r.output and "which is not JSON" in r.output
    r = cli("import", tmp / "m.tar", "--into", tmp / "dest", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    doc = strict_json((tmp / "dest" / "chan" / "linux-64" / "repodata.json").read_bytes())
    assert set(doc["packages.conda"]) == {good}


def test_a_non_json_value_outside_the_records_refuses_the_document() -> None:
    with pytest.raises(UpstreamError, match="outside the records"):
        parse_repodata(b'{"info": {"subdir": "noarch", "x": NaN}, "packages": {}}', "noarch", "up")


def test_invalid_utf8_refuses_the_document() -> None:
    with pytest.raises(UpstreamError, match="expected repodata JSON"):
        parse_repodata(b'{"info": {"x": "\xed\xa0\x80"}}', "noarch", "up")  # an encoded surrogate


def test_a_lone_surrogate_in_the_destination_is_one_clear_error(upstream: dict[str, Any]) -> None:
    tmp = upstream["tmp"]
    assert cli("export", "-f", config(tmp, upstream["url"]), "--unsigned", tmp / "m.tar").exit_code == 0
    dest = tmp / "dest" / "chan" / "linux-64"
    dest.mkdir(parents=True)
    existing = {
        "info": {"subdir": "linux-64"},
        "packages": {},
        "packages.conda": {"old-1-0.conda": {"name": "old", "version": "1", "build": "0", "license": "\ud800"}},
    }
    before = json.dumps(existing).encode()  # ensure_ascii: the lone surrogate as \ud800
    (dest / "repodata.json").write_bytes(before)
    r = cli("import", tmp / "m.tar", "--into", tmp / "dest", "--allow-unsigned")
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit)  # an error line, no traceback
    assert "old-1-0.conda holds a lone surrogate" in r.output
    assert (dest / "repodata.json").read_bytes() == before
    assert sorted(p.name for p in dest.iterdir()) == ["repodata.json"]


# --- 10, 11: where upstream may point ---------------------------------------------------------


def test_base_url_of_a_remote_channel_may_not_point_to_local_files(upstream: dict[str, Any]) -> None:
    root, rd = upstream["root"], upstream["repodata"]["linux-64"]
    rd["info"]["base_url"] = (root / "linux-64").as_uri() + "/"  # where the very same files are, locally
    rewrite_repodata(root, "linux-64", json.dumps(rd))
    tmp = upstream["tmp"]
    r = cli("export", "-f", config(tmp, upstream["url"]), "--unsigned", tmp / "m.tar")
    assert r.exit_code == 1, r.output
    assert "info.base_url points to file://" in r.output and "a remote channel may point only to http" in r.output
    assert not (tmp / "m.tar").exists()


def test_link_rules() -> None:
    check_link("https://a/x/", "https://cdn/y/", "info.base_url")
    check_link("file:///srv/ch/", "https://cdn/y/", "info.base_url")
    check_link("file:///srv/ch/", "file:///srv/other/", "info.base_url")
    for source, target in (
        ("https://a/", "http://a/"),
        ("http://a/", "file:///etc/"),
        ("http://a/", "ftp://a/"),
        ("https://a/", "gopher://a/"),
    ):
        with pytest.raises(UpstreamError, match="refusing it"):
            check_link(source, target, "a redirect")
    assert redirect_target("http://a/x/y", "../z", 1) == "http://a/z"
    assert redirect_target("http://a/", "http://u:p@b/", 1) == "http://b/"  # credentials from a redirect: never used
    with pytest.raises(UpstreamError, match="at most 5 redirects"):
        redirect_target("http://a/", "/b", 6)
    headers = {"Authorization": "Basic x", "Range": "bytes=1-", "Cookie": "c"}
    assert headers_for_hop("http://a/1", "http://a:80/2", headers) == headers
    assert headers_for_hop("http://a/1", "http://b/2", headers) == {"Range": "bytes=1-"}
    assert headers_for_hop("http://a/1", "https://a/2", headers) == {"Range": "bytes=1-"}


def test_a_channel_behind_redirects_exports(upstream: dict[str, Any]) -> None:
    server, tmp = upstream["server"], upstream["tmp"]
    for name in ("repodata.json.zst", "repodata.json"):
        server.routes[f"/cdn/linux-64/{name}"] = redirect(f"/hop/linux-64/{name}", 301)
        server.routes[f"/hop/linux-64/{name}"] = redirect(f"{server.url}/chan/linux-64/{name}", 307)
        server.routes[f"/cdn/noarch/{name}"] = redirect(f"/chan/noarch/{name}")
    for fn in upstream["repodata"]["linux-64"]["packages.conda"]:
        server.routes[f"/cdn/linux-64/{fn}"] = redirect(f"/chan/linux-64/{fn}", 308)
    r = cli("export", "-f", config(tmp, server.url + "/cdn/"), "--unsigned", tmp / "m.tar", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["channels"] == {"cdn": {"linux-64": 2, "noarch": 0}}


@pytest.mark.parametrize(
    "target, message",
    [
        ("/loop", "at most 5 redirects"),
        ("file:///etc/passwd", "may point only to http"),
    ],
)
def test_hostile_redirects_are_refused(upstream: dict[str, Any], target: str, message: str) -> None:
    server = upstream["server"]
    server.routes["/loop"] = redirect("/loop")
    server.routes["/start"] = redirect(target)
    with Fetcher(retries=1, timeout=5) as f, pytest.raises(UpstreamError, match=message):
        f.get_bytes(server.url + "/start", 1 << 20)
    assert sum(1 for _, path, _ in server.seen if path == "/loop") <= 5


def test_credentials_stay_with_their_host_across_redirects(upstream: dict[str, Any]) -> None:
    server, tmp = upstream["server"], upstream["tmp"]
    server.auth = "alice:s3cret"
    elsewhere = f"http://localhost:{server.port}"  # another origin (same server, other host name)
    for fn in upstream["repodata"]["linux-64"]["packages.conda"]:
        server.routes[f"/chan/linux-64/{fn}"] = redirect(f"{elsewhere}/files/{fn}")
        server.routes[f"/files/{fn}"] = body((upstream["root"] / "linux-64" / fn).read_bytes())
    r = cli("export", "-f", config(tmp, f"http://alice:s3cret@127.0.0.1:{server.port}/chan/"), "--unsigned", tmp / "m.tar")
    assert r.exit_code == 0, r.output
    to_origin = [a for host, _, a in server.seen if host.startswith("127.0.0.1")]
    elsewhere_seen = [(p, a) for host, p, a in server.seen if host.startswith("localhost")]
    assert to_origin and all(a is not None for a in to_origin)  # the user's own host gets them
    assert len(elsewhere_seen) == 2 and all(a is None for _, a in elsewhere_seen)  # the other host never does


# --- 12: a server that trickles -----------------------------------------------------------------


def trickle(total: int, every: float) -> Route:
    def answer(h: SimpleHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(total))
        h.end_headers()
        try:
            for _ in range(total):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(every)
        except OSError:
            pass  # the client gave up

    return answer


def test_a_trickling_server_is_too_slow(upstream: dict[str, Any]) -> None:
    server = upstream["server"]
    server.routes["/slow"] = trickle(12, 0.5)  # never silent for a whole read timeout, 2 bytes/s
    with Fetcher(retries=1, timeout=2, min_rate=100) as f, pytest.raises(TransientError, match="too slow"):
        f.get_bytes(server.url + "/slow", 100)


def test_trickled_headers_meet_a_deadline(upstream: dict[str, Any]) -> None:
    server = upstream["server"]

    def headers_one_byte_at_a_time(h: SimpleHTTPRequestHandler) -> None:
        try:
            h.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(16):
                h.wfile.write(b"X-Slow: y\r\n")
                h.wfile.flush()
                time.sleep(0.5)
            h.wfile.write(b"Content-Length: 2\r\n\r\nok")
        except OSError:
            pass  # the client gave up

    server.routes["/slow-headers"] = headers_one_byte_at_a_time
    with Fetcher(retries=1, timeout=2) as f, pytest.raises(TransientError):
        f.get_bytes(server.url + "/slow-headers", 100)


def test_the_header_watchdog_runs_only_what_is_still_armed() -> None:
    from airgap.upstream.http_deadline import _Watchdog

    dog, fired, wrongly = _Watchdog(), threading.Event(), threading.Event()
    dog.disarm(dog.arm(0.05, wrongly.set))

    def fails() -> None:
        raise ZeroDivisionError

    dog.arm(0.06, fails)  # a failing callback does not stop the watchdog
    dog.arm(0.1, fired.set)
    assert fired.wait(10) and not wrongly.is_set()


def test_min_rate_zero_turns_the_check_off(upstream: dict[str, Any]) -> None:
    server = upstream["server"]
    server.routes["/slow"] = trickle(3, 0.4)
    with Fetcher(retries=1, timeout=1, min_rate=0) as f:
        assert f.get_bytes(server.url + "/slow", 100) == b"xxx"


# --- 13: a repodata bomb --------------------------------------------------------------------------


def test_a_repodata_bomb_stops_at_the_configured_bound(upstream: dict[str, Any]) -> None:
    root, tmp = upstream["root"], upstream["tmp"]
    bomb = zstandard.ZstdCompressor(level=19).compress(b" " * (20 << 20))
    (root / "linux-64" / "repodata.json.zst").write_bytes(bomb)
    r = cli("export", "-f", config(tmp, upstream["url"], max_repodata_size="1M"), "--unsigned", tmp / "m.tar")
    assert r.exit_code == 1, r.output
    assert "expected at most 1000000 bytes once decompressed, found more" in r.output
    tracemalloc.start()
    with pytest.raises(UpstreamError, match="found more"):
        decode_repodata(bomb, "http://up/linux-64/repodata.json.zst", "linux-64", 1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20  # the expansion was never held
    assert MAX_REPODATA_BYTES == 1 << 30  # the default: 4x conda-forge linux-64 (254 MB)
