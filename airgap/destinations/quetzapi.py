"""The HTTP side of a quetz server: one pooled client, its API key, and the requests airgap makes.

Every request goes through :meth:`QuetzAPI._request`: the key is sent as ``X-API-Key`` (never
logged), redirects are not followed, each call is a fault point (``airgap.faults``), and a
refused key (401), a missing role (403) or any other answer becomes one line that says what
was expected and what was found. What those requests mean for a destination (inventory,
receipt, waiting for quetz to index) is :class:`~airgap.destinations.quetz.QuetzDestination`.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import urllib3

from ..core.manifest import is_safe_channel_name
from ..errors import DestinationError, UsageError
from ..faults import point

log = logging.getLogger(__name__)


class QuetzAPI:
    """A quetz server's channel, as its HTTP API serves it."""

    api_key_env = "QUETZ_API_KEY"  # the variable the key was looked up in: errors name it

    def __init__(
        self,
        base_url: str,
        channel: str,
        api_key: str | None,
        *,
        workers: int = 4,
        index_timeout: float = 120.0,
        create_channel: bool = True,
        private: bool = False,
        ca_bundle: str | None = None,
    ) -> None:
        if not is_safe_channel_name(channel):
            raise UsageError(f"quetz: expected a channel name of letters, digits, . _ + -, found {channel!r}")
        self.base_url = base_url.rstrip("/")
        self.channel = channel
        self.api_key = api_key
        self.workers = max(1, int(workers))
        self.index_timeout = float(index_timeout)
        self.create_channel = bool(create_channel)
        self.private = bool(private)
        tls: dict[str, Any] = {"ca_certs": ca_bundle} if ca_bundle else {}
        self.http = urllib3.PoolManager(
            maxsize=self.workers + 2,
            **tls,
            retries=urllib3.Retry(
                total=4,
                connect=4,
                read=2,
                status=3,
                backoff_factor=0.3,
                status_forcelist=(502, 503, 504),
                allowed_methods=None,
                raise_on_status=False,
            ),
        )
        self._channel_checked = False

    def __str__(self) -> str:
        return f"quetz+{self.base_url}/{self.channel}"

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200,),
    ) -> urllib3.BaseHTTPResponse:
        h = dict(headers or {})
        if auth:
            if not self.api_key:
                raise UsageError(f"{self}: expected an API key (${self.api_key_env}, or api_key in the site config), found none")
            h["X-API-Key"] = self.api_key
        point(f"quetz {method} {path.split('?')[0]}")
        try:
            resp = self.http.request(
                method,
                self.base_url + path,
                body=body,
                headers=h,
                preload_content=True,
                timeout=urllib3.Timeout(connect=10, read=300),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise DestinationError(f"{self}: {what}: cannot reach the server ({exc.__class__.__name__}: {exc})") from None
        if resp.status in ok:
            return resp
        detail = _detail(resp)
        if resp.status == 401:
            raise DestinationError(f"{self}: {what}: the server refused the API key (401 {detail}); check ${self.api_key_env}")
        if resp.status == 403:
            raise DestinationError(
                f"{self}: {what}: the API key may not do this (403 {detail}); it needs the owner or maintainer role on {self.channel}"
            )
        raise DestinationError(f"{self}: {what}: expected HTTP {' or '.join(map(str, ok))}, found {resp.status} ({detail})")

    def _repodata_bytes(self, subdir: str) -> bytes | None:
        path = f"/get/{quote(self.channel)}/{quote(subdir)}/repodata.json"
        resp = self._request("GET", path, f"reading {subdir}/repodata.json", auth=bool(self.api_key), ok=(200, 404))
        return None if resp.status == 404 else resp.data

    def check_key(self) -> None:
        """Fail early, before anything is uploaded, on a missing or refused API key."""
        self._request("GET", "/api/api-keys", "checking the API key")

    def ensure_channel(self) -> None:
        if self._channel_checked:
            return
        resp = self._request("GET", f"/api/channels/{quote(self.channel)}", f"looking up channel {self.channel}", ok=(200, 404))
        if resp.status == 404:
            if not self.create_channel:
                raise DestinationError(f"{self}: expected channel {self.channel!r} on the server, found none (create_channel is off)")
            self._request(
                "POST",
                "/api/channels",
                f"creating channel {self.channel}",
                ok=(201, 409),
                body=json.dumps({"name": self.channel, "private": self.private}),
                headers={"Content-Type": "application/json"},
            )
            log.info("%s: created channel %s", self, self.channel)
        self._channel_checked = True

    def _check_channel(self, channel: str) -> None:
        if channel != self.channel:
            raise DestinationError(f"{self}: expected channel {self.channel!r}, found {channel!r} (internal error)")

    def rebuild_indexes(self) -> None:
        """Ask quetz to rebuild the channel's indexes from its database (a job it runs in the background)."""
        self._request(
            "PUT",
            f"/api/channels/{quote(self.channel)}/actions",
            "asking quetz to rebuild its indexes",
            body=json.dumps({"action": "generate_indexes"}),
            headers={"Content-Type": "application/json"},
        )


def _detail(resp: urllib3.BaseHTTPResponse) -> str:
    try:
        doc = json.loads(resp.data)
        detail = doc.get("detail") if isinstance(doc, dict) else None
    except ValueError:
        detail = None
    return str(detail if detail is not None else resp.data[:200].decode("utf-8", "replace")).replace("\n", " ")
