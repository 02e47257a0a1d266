"""Serve a destination's channels over HTTP inside the air gap (a static file server).

Read-only, GET and HEAD only. Serves the files under the root and the generated index.html
pages; ``/`` answers with a page listing the channels; other directory listings are off.
Never served: airgap's own state (``.airgap/``, but for the SBOMs in ``.airgap/sbom/`` that the
channel pages link to), any other dot-file, and anything a symbolic
link points to outside the served root. A path that cannot name a file (``%00``, control
characters, bytes that are not UTF-8, ``..``) is a ``400``. Binds 127.0.0.1 unless told
otherwise. Connections are bounded and time out (see :mod:`airgap.site._httpserver`).

Each answered request is one access-log line (common log format) for the ``access_log``
callable: the CLI writes it to ``--access-log FILE`` or logs it at INFO.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .._safepath import open_beneath
from ..errors import AirgapError, UsageError
from ._httpserver import BoundedHTTPServer, TimedRequestHandler
from .html import site_page

log = logging.getLogger(__name__)
access_log = logging.getLogger(__name__ + ".access")

#: what each file a conda channel holds is, so clients and browsers treat it right (never a
#: Content-Encoding: a client must receive the compressed bytes the repodata hashes)
CONTENT_TYPES = (
    (".tar.bz2", "application/x-bzip2"),
    (".conda", "application/octet-stream"),
    (".json", "application/json"),
    (".zst", "application/zstd"),
    (".html", "text/html; charset=utf-8"),
    (".bz2", "application/x-bzip2"),
    (".sh", "text/x-shellscript"),
    (".ps1", "text/plain; charset=utf-8"),
    (".toml", "text/plain; charset=utf-8"),
    ("/condarc", "text/plain; charset=utf-8"),
)
_BAD_CHARS = {chr(c) for c in range(32)} | {"\x7f", "\\"}
#: the one place under a dot-directory that is served: the SBOMs the channel pages link to
_SBOM = re.compile(r"\.airgap/sbom/[A-Za-z0-9_-]{1,64}\.cdx\.json(\.zst)?\Z")  # a large one kept compressed


def content_type(name: str) -> str:
    for suffix, ctype in CONTENT_TYPES:
        if name.endswith(suffix):
            return ctype
    return "application/octet-stream"


class _BadPath(Exception):
    def __init__(self, status: HTTPStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


class _Handler(TimedRequestHandler):
    server: ChannelServer
    server_version = "airgap"
    sys_version = ""

    # -- logging: the access log gets one line per response, the rest goes to DEBUG ----------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")  # common log format, as web servers write it
        line = (
            f'{self.address_string()} - - [{when}] "{_printable(self.requestline)}" '
            f"{status} {size if size != '-' else getattr(self, '_length', '-')}"
        )
        self.server.access_log(line)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: %s", self.address_string(), _printable(format % args))

    # -- answers -----------------------------------------------------------------------

    def do_GET(self) -> None:
        body = self._head()
        if body is None:
            return
        try:
            if isinstance(body, bytes):
                self.wfile.write(body)
            else:
                while chunk := body.read(1 << 16):
                    self.wfile.write(chunk)
        finally:
            if not isinstance(body, bytes):
                body.close()

    def do_HEAD(self) -> None:
        body = self._head()
        if body is not None and not isinstance(body, bytes):
            body.close()

    def _head(self) -> BinaryIO | bytes | None:
        """Send the status and headers; return what the body is (or None: nothing more to send)."""
        self._length: int | str = "-"
        try:
            url_path, parts = _parse_path(self.path)
        except _BadPath as exc:
            self.send_error(exc.status, str(exc))
            return None
        root = self.server.root
        real = os.path.realpath(os.path.join(root, *parts))
        if not _inside(real, root):
            log.debug("%s: %s leads outside %s; not served", self.address_string(), url_path, root)
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        if os.path.isdir(real):
            if not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", urllib.parse.quote(url_path) + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if real == root:
                return self._send_bytes(self.server.front_page(), "text/html; charset=utf-8")
            real = os.path.realpath(os.path.join(real, "index.html"))  # the generated page, never a listing
            if not _inside(real, root):
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
        elif url_path.endswith("/"):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        try:
            fh = open(open_beneath(root, real[len(root.rstrip("/")) + 1 :].split("/")), "rb")  # no link followed on the way
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        try:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):  # a fifo or device under the root is not a file to serve
                fh.close()
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
            if self._not_modified(st.st_mtime):
                fh.close()
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.end_headers()
                return None
            self._length = st.st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(real))
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            return fh
        except BaseException:
            fh.close()
            raise

    def _send_bytes(self, data: bytes, ctype: str) -> bytes:
        self._length = len(data)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        return data

    def _not_modified(self, mtime: float) -> bool:
        since = self.headers.get("If-Modified-Since")
        if since is None or "If-None-Match" in self.headers:
            return False
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, IndexError, OverflowError, ValueError):
            return False
        return when.tzinfo is not None and int(mtime) <= when.timestamp()


def _printable(text: str) -> str:
    """A request line as it may appear in a log: control characters escaped, length bounded."""
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:2000])
    return out if len(text) <= 2000 else out + "..."


def _parse_path(target: str) -> tuple[str, list[str]]:
    """The decoded URL path of a request target and its parts; :class:`_BadPath` if it names no file."""
    raw = urllib.parse.urlsplit(target).path or "/"
    if not raw.startswith("/"):
        raise _BadPath(HTTPStatus.BAD_REQUEST, "expected a path starting with /")
    try:
        path = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _BadPath(HTTPStatus.BAD_REQUEST, "expected a UTF-8 path") from None
    if any(c in _BAD_CHARS for c in path):
        raise _BadPath(HTTPStatus.BAD_REQUEST, "expected a path without control characters or backslashes")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise _BadPath(HTTPStatus.BAD_REQUEST, "expected a path without . or .. segments")
    if any(p.startswith(".") for p in parts) and not _SBOM.match("/".join(parts)):  # .airgap/, temporary files, other dot-files
        raise _BadPath(HTTPStatus.NOT_FOUND, "Not Found")
    return path, parts


def _inside(real: str, root: str) -> bool:
    """``real`` (a resolved path) is the root or beneath it, and no part of it below the root is hidden."""
    if real == root:
        return True
    if not real.startswith(root.rstrip("/") + "/"):
        return False
    rel = real[len(root.rstrip("/")) + 1 :]
    return bool(_SBOM.match(rel)) or not any(p.startswith(".") for p in rel.split("/"))


class ChannelServer(BoundedHTTPServer):
    """Serves one destination directory (resolved once: the root may itself be a link)."""

    def __init__(self, address: tuple[str, int], root: Path, access_log: Callable[[str], None], **limits: Any) -> None:
        self.root = os.path.realpath(root)
        self.access_log = access_log
        super().__init__(address, _Handler, **limits)

    def channels(self) -> dict[str, list[str]]:
        """``{channel: [subdir, ...]}`` of the channels served (a linked channel that leads outside is not)."""
        from ..destinations.directory import DirectoryDestination

        return {
            ch: subs
            for ch, subs in DirectoryDestination(Path(self.root)).inventory().items()
            if _inside(os.path.realpath(os.path.join(self.root, ch)), self.root)
        }

    def front_page(self) -> bytes:
        from ..destinations.directory import DirectoryDestination

        dest = DirectoryDestination(Path(self.root))
        channels = self.channels()
        files: list[str] = []
        try:
            installers = dest.read_receipt().get("installers")
        except AirgapError:
            installers = None
        if isinstance(installers, dict):
            files = [f"{d}/{name}" for d, names in installers.items() if isinstance(names, dict) for name in names]
        if os.path.isfile(os.path.join(self.root, "downloads", "index.html")):  # airgap.site.bootstrap's page
            files.append("downloads/index.html")
        return site_page(channels, files).encode("utf-8")


class AccessLog:
    """Where the access-log lines go: appended to a file (one write per line), or logged at INFO."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        if path is not None:
            try:
                self._fh = open(path, "a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"--access-log {path}: expected a file to append to, cannot open it: {exc.strerror}") from None

    def __call__(self, line: str) -> None:
        if self._fh is None:
            access_log.info("%s", line)
            return
        with self._lock:
            self._fh.write(line + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def make_server(
    root: Path, host: str = "127.0.0.1", port: int = 8080, access_log: Callable[[str], None] | None = None, **limits: Any
) -> ChannelServer:
    """A ready-to-run server for ``root`` (call ``serve_forever``).

    ``limits``: ``workers``, ``backlog``, ``idle_timeout``, ``header_timeout``
    (see :class:`airgap.site._httpserver.BoundedHTTPServer`).
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: expected a destination directory to serve, found none")
    try:
        return ChannelServer((host, port), root, access_log or (lambda line: None), **limits)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def condarc(base_url: str, channels: list[str], redirects: list[str] | None = None) -> str:
    """A ``.condarc`` that points conda (and mamba, pixi via its config) at these channels only."""
    base = base_url.rstrip("/")
    lines = [
        "# ~/.condarc for one user, or $CONDA_PREFIX/.condarc / /etc/conda/.condarc for everyone",
        "# generated by airgap: use only the mirror inside the air gap",
        f"channel_alias: {base}",
        "channels:",
        *[f"  - {base}/{c}" for c in channels],
        "default_channels:",
        *[f"  - {base}/{c}" for c in channels],
        *(redirects or ["custom_channels: {}"]),
        "channel_priority: strict",
        "report_errors: false",
    ]
    return "\n".join(lines) + "\n"
