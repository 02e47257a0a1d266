"""Upstream faults: 5xx retried with backoff, 404 and hash mismatch reported per file, no archive."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.errors import HashMismatch, NotFound, TransientError
from airgap.testing.condapkg import PackageSpec, write_channel
from airgap.upstream.cache import BlobCache, Expected
from airgap.upstream.fetch import Fetcher


class FaultServer:
    """Serves a directory on 127.0.0.1; ``faults[path]`` is a list of statuses to answer first."""

    def __init__(self, root: Path) -> None:
        self.faults: dict[str, list[int]] = {}
        self.requests: list[str] = []
        self.ranges: list[tuple[str, str | None]] = []
        self.ranges_ok = True
        self.sent = 0
        self.release = threading.Event()  # lets a "very slow" answer (fault 1) go
        self.slow_answered = 0
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.ranges.append((self.path, self.headers.get("Range")))
                queue = server.faults.get(self.path)
                if queue:
                    status = queue.pop(0)
                    if status == 1:  # a very slow server: no answer until the test releases it (or 30 s)
                        server.release.wait(30)
                        server.slow_answered += 1
                        self.send_error(503)
                        return
                    if status == 0:  # announce the whole file, send half of it, hang up
                        data = (root / self.path.lstrip("/")).read_bytes()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        server.sent += len(data) // 2  # counted before sending: the client may finish first
                        self.wfile.write(data[: len(data) // 2])
                        return
                    self.send_error(status)
                    return
                rng = self.headers.get("Range")
                target = root / self.path.lstrip("/")
                if server.ranges_ok and rng and rng.startswith("bytes=") and target.is_file():
                    data = target.read_bytes()
                    first = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - first))
                    self.end_headers()
                    server.sent += len(data) - first
                    self.wfile.write(data[first:])
                    return
                if target.is_file():
                    server.sent += target.stat().st_size
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path / "up" / "chan"
    rd = write_channel(root, [PackageSpec("p", str(v), subdir="linux-64") for v in range(1, 4)], subdirs=("linux-64",))
    server = FaultServer(tmp_path / "up")
    yield {"root": root, "server": server, "url": server.url + "/chan/", "repodata": rd}
    server.close()


def fast_fetcher() -> Fetcher:
    return Fetcher(workers=2, retries=4, timeout=5, backoff=0.01)


def test_5xx_and_broken_bodies_are_retried(channel: dict[str, Any], tmp_path: Path) -> None:
    fn = next(iter(channel["repodata"]["linux-64"]["packages.conda"]))
    path = f"/chan/linux-64/{fn}"
    channel["server"].faults[path] = [503, 500, 0]
    rec = channel["repodata"]["linux-64"]["packages.conda"][fn]
    cache = BlobCache(tmp_path / "cache")
    with fast_fetcher() as f:
        sha = cache.download(f, channel["url"] + "linux-64/" + fn, Expected(rec["sha256"], None, rec["size"]))
    assert sha == rec["sha256"] and cache.path(sha).read_bytes() == (channel["root"] / "linux-64" / fn).read_bytes()
    assert channel["server"].requests.count(path) == 4
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_retries_give_up_with_a_clear_message(channel: dict[str, Any], tmp_path: Path) -> None:
    channel["server"].faults["/chan/linux-64/repodata.json.zst"] = [502] * 10
    with fast_fetcher() as f, pytest.raises(TransientError, match=r"HTTP 502 \(gave up after 4 attempts\)"):
        f.get_bytes(channel["url"] + "linux-64/repodata.json.zst", 1 << 20)


def test_404_is_not_retried(channel: dict[str, Any]) -> None:
    with fast_fetcher() as f, pytest.raises(NotFound):
        f.get_bytes(channel["url"] + "linux-64/nope.conda", 100)
    assert channel["server"].requests.count("/chan/linux-64/nope.conda") == 1


def test_md5_only_records_are_verified(channel: dict[str, Any], tmp_path: Path) -> None:
    fn, rec = next(iter(channel["repodata"]["linux-64"]["packages"].items()))
    cache = BlobCache(tmp_path / "cache")
    with fast_fetcher() as f:
        sha = cache.download(f, channel["url"] + "linux-64/" + fn, Expected(None, rec["md5"], rec["size"]))
        assert sha == rec["sha256"]
        assert cache.lookup(Expected(None, rec["md5"], rec["size"])) == sha
        with pytest.raises(HashMismatch, match="expected md5"):
            cache.download(f, channel["url"] + "linux-64/" + fn, Expected(None, "0" * 32, rec["size"]))


def test_export_reports_every_bad_file_and_writes_no_archive(channel: dict[str, Any], tmp_path: Path) -> None:
    files = sorted(channel["repodata"]["linux-64"]["packages.conda"])
    (channel["root"] / "linux-64" / files[0]).unlink()  # 404
    victim = channel["root"] / "linux-64" / files[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1  # same size, other bytes
    victim.write_bytes(bytes(data))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps({"channels": [channel["url"]], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "retries": 2})
    )
    r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")])
    assert r.exit_code == 1
    assert "2 of 6 downloads failed; no archive was written" in r.output
    assert f"{files[0]}: HTTP 404 not found" in r.output
    assert f"{files[1]}: expected sha256" in r.output
    assert not list(tmp_path.glob("*.tar*")) and not list(tmp_path.glob(".m.tar*"))
    # the good files stay cached: a rerun after upstream is fixed downloads only the two
    assert len(list((tmp_path / "cache" / "blobs" / "sha256").iterdir())) == 4


def test_missing_channel_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(tmp_path / "nothing")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")])
    assert r.exit_code == 1
    assert "expected a conda channel (repodata.json in any of linux-64, noarch), found none" in r.output


def _big_channel(tmp_path: Path) -> tuple[Path, FaultServer, dict[str, Any]]:
    root = tmp_path / "up" / "chan"
    rd = write_channel(root, [PackageSpec("big", "1", subdir="linux-64", padding=400_000)], subdirs=("linux-64",), formats=("conda",))
    return root, FaultServer(tmp_path / "up"), rd


@pytest.mark.parametrize("ranges_ok", [True, False])
def test_broken_transfer_resumes_with_range(tmp_path: Path, ranges_ok: bool) -> None:
    root, server, rd = _big_channel(tmp_path)
    try:
        fn, rec = next(iter(rd["linux-64"]["packages.conda"].items()))
        path = f"/chan/linux-64/{fn}"
        server.faults[path] = [0]
        server.ranges_ok = ranges_ok
        cache = BlobCache(tmp_path / "cache")
        with fast_fetcher() as f:
            sha = cache.download(f, server.url + path, Expected(rec["sha256"], None, rec["size"]))
        assert sha == rec["sha256"] and cache.path(sha).read_bytes() == (root / "linux-64" / fn).read_bytes()
        asked = [r for p, r in server.ranges if p == path]
        assert asked == [None, f"bytes={rec['size'] // 2}-"]
        # with Range support only the missing half travels again; without, the whole file does
        assert server.sent == (rec["size"] if ranges_ok else rec["size"] // 2 + rec["size"])
        assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    finally:
        server.close()


def test_a_killed_export_resumes_without_downloading_again(tmp_path: Path) -> None:
    root, server, rd = _big_channel(tmp_path)
    try:
        fn, rec = next(iter(rd["linux-64"]["packages.conda"].items()))
        path = f"/chan/linux-64/{fn}"
        server.faults[path] = [0, 0]  # every attempt of the first run breaks half way
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            json.dumps(
                {"channels": [server.url + "/chan/"], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "retries": 2}
            )
        )
        r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")])
        assert r.exit_code == 1 and "connection broke" in r.output, r.output
        partial = tmp_path / "cache" / "tmp" / f"{rec['sha256']}.partial"
        assert partial.stat().st_size == rec["size"] // 2  # kept, and never in blobs/
        assert not (tmp_path / "cache" / "blobs" / "sha256" / rec["sha256"]).exists()
        sent_before = server.sent
        r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar")])
        assert r.exit_code == 0, r.output
        package_bytes = server.sent - sent_before - sum((root / s / "repodata.json.zst").stat().st_size for s in ("linux-64", "noarch"))
        assert package_bytes == rec["size"] - rec["size"] // 2
        assert not partial.exists()
    finally:
        server.close()


def test_a_very_slow_server_times_out_and_is_retried(channel: dict[str, Any], tmp_path: Path) -> None:
    fn, rec = next(iter(channel["repodata"]["linux-64"]["packages.conda"].items()))
    path = f"/chan/linux-64/{fn}"
    channel["server"].faults[path] = [1]  # the first attempt hangs past the timeout
    cache = BlobCache(tmp_path / "cache")
    with Fetcher(workers=2, retries=3, timeout=0.5, backoff=0.01) as f:
        sha = cache.download(f, channel["url"] + "linux-64/" + fn, Expected(rec["sha256"], None, rec["size"]))
        # done while the slow answer is still held back: the client gave up on it and asked again
        assert channel["server"].slow_answered == 0
        channel["server"].release.set()
    assert sha == rec["sha256"] and channel["server"].requests.count(path) == 2


def test_a_vanished_subdir_is_reported_and_the_rest_exported(channel: dict[str, Any], tmp_path: Path) -> None:
    for name in ("repodata.json", "repodata.json.zst"):
        (channel["root"] / "linux-64" / name).unlink()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [channel["url"]], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    r = CliRunner().invoke(main, ["export", "-f", str(cfg), "--unsigned", str(tmp_path / "m.tar"), "--json"])
    assert r.exit_code == 0, r.output
    assert "has no linux-64/repodata.json; treating linux-64 as empty" in r.output
    assert json.loads(r.stdout)["channels"] == {"chan": {"noarch": 0}}


def test_a_local_file_is_read_in_one_chunk_and_no_more_than_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """get_bytes of a file:// URL: one read of the file's size and one byte more (a file larger than the limit
    is refused having read the limit and one byte, never all of it); a download still goes a chunk at a time."""
    from airgap.errors import UpstreamError
    from airgap.upstream import fetch

    body = bytes(range(256)) * 40  # 10,240 bytes
    path = tmp_path / "repodata.json"
    path.write_bytes(body)
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, fh: Any) -> None:
            self._fh = fh

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()

        def read(self, n: int) -> bytes:
            reads.append(n)
            data: bytes = self._fh.read(n)
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self._fh, name)

    monkeypatch.setattr(fetch, "open", lambda p, mode: Counting(real_open(p, mode)), raising=False)
    monkeypatch.setattr(fetch, "CHUNK", 1000)
    f = Fetcher()
    assert f.get_bytes(path.as_uri(), len(body)) == body and reads == [len(body) + 1, len(body) + 1]  # the second: the end
    reads.clear()
    with pytest.raises(UpstreamError, match="expected at most 10000 bytes"):
        f.get_bytes(path.as_uri(), 10_000)
    assert reads == [10_001]
    reads.clear()
    with f.open(path.as_uri()) as (chunks, length):
        assert b"".join(chunks) == body and length == len(body)
    assert reads == [1000] * 12  # ten whole chunks, the last 240 bytes, then the end
