"""A scripted HTTP upstream on 127.0.0.1 and a minimal export config, shared by the hostile-upstream
and redaction tests (a helper module: test modules do not import each other)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Route = Callable[[SimpleHTTPRequestHandler], None]


class Scripted:
    """Serves ``root`` on 127.0.0.1; ``routes[path]`` answers a path instead; every request is recorded."""

    def __init__(self, root: Path) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, str, str | None]] = []  # (Host header, path, Authorization)
        self.auth: str | None = None  # "user:password" required (Basic) when set
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                authz = self.headers.get("Authorization")
                server.seen.append((self.headers.get("Host", ""), self.path, authz))
                if (
                    server.auth
                    and self.headers.get("Host", "").startswith("127.0.0.1")
                    and authz != "Basic " + base64.b64encode(server.auth.encode()).decode()
                ):
                    self.send_error(401)
                    return
                route = server.routes.get(self.path)
                if route is not None:
                    route(self)
                    return
                super().do_GET()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that give up on a hostile route are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def redirect(location: str, status: int = 302) -> Route:
    def answer(h: SimpleHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return answer


def body(data: bytes) -> Route:
    def answer(h: SimpleHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return answer


def config(tmp_path: Path, channel: str, **extra: Any) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps({"channels": [channel], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "retries": 2, **extra})
    )
    return cfg
