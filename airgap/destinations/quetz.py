"""A quetz package server: ``quetz+http(s)://HOST[:PORT][/BASE]/CHANNEL``.

Every channel of an archive goes into the one quetz channel the URL names (created when
missing, if the API key may). Packages are uploaded with their sha256
(``POST /api/channels/CHANNEL/upload/FILE?sha256=…``), so quetz checks every byte again; a file
quetz already holds (409) is verified against quetz's own repodata and skipped. Removals (a
delta's, clean's) use quetz's delete endpoint.

quetz builds ``repodata.json`` itself from each package's ``info/index.json``: what it serves
is not the archive's repodata, so upstream repodata patches (changed ``depends``,
``constrains``, removed records) are lost there — airgap counts the records that differ and
warns once per import when any does. "Publishing an index" means waiting until quetz's repodata lists every
uploaded file with the right sha256 (``index_timeout`` seconds). quetz keeps its own inventory:
the receipt is rebuilt from its repodata, and it has no lock (uploads are idempotent). So a failed
import deletes nothing it uploaded: quetz listed each file as it arrived, and a concurrent import
may have found it and reported it published. Name clashes are refused before any upload.

The API key comes from the site's ``api_key``, the variable its ``api_key_env`` names, or
``QUETZ_API_KEY``; it is sent as ``X-API-Key`` and never logged.

The requests themselves are :mod:`~airgap.destinations.quetzapi`; one import or clean is a
:class:`~airgap.destinations.quetzchange.QuetzChange`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3

from ..core.manifest import is_safe_channel_name
from ..core.repodata import Repodata, record_hashes
from ..errors import DestinationError, IntegrityError, UsageError
from ..upstream.urlsafety import unsafe_component
from .base import Destination, OnBytes, Put, empty_receipt, parse_index
from .capabilities import Capabilities
from .quetzapi import QuetzAPI, _detail
from .quetzchange import QuetzChange
from .registry import check_site

log = logging.getLogger(__name__)


class QuetzDestination(QuetzAPI, Destination):
    kind = "quetz"

    def __init__(self, base_url: str, channel: str, api_key: str | None, **settings: Any) -> None:
        """``settings``: the server's, as :class:`QuetzAPI` takes them (workers, index_timeout, create_channel, private, ca_bundle)."""
        super().__init__(base_url, channel, api_key, **settings)
        # quetz indexes on its own, keeps no other files and no receipt, and serves one channel
        self.capabilities = Capabilities(keeps_repodata=False, holds_other_files=False, keeps_receipt=False, fixed_channel=channel)
        self._subdirs: set[str] = set()
        # each subdir's index as last read: receipt, files and sha256 lookups share one GET;
        # an upload or delete drops it, and waiting for quetz always reads afresh
        self._index: dict[str, Repodata | None] = {}

    @classmethod
    def from_url(cls, url: str, site: dict[str, Any]) -> QuetzDestination:
        parts = urlsplit(url[len("quetz+") :])
        path = [p for p in parts.path.split("/") if p]
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not path
            or parts.query
            or parts.fragment
            or "?" in url
            or "#" in url
            or any(unsafe_component(p) for p in path[:-1])
        ):
            raise UsageError(f"--into: expected quetz+http(s)://HOST:PORT/CHANNEL, found {url!r}")
        if len(path) >= 2 and path[-2] == "get":  # the channel URL clients use: .../get/CHANNEL
            path = path[:-2] + path[-1:]
        base = f"{parts.scheme}://{parts.netloc}" + "".join(f"/{p}" for p in path[:-1])
        env = str(site.get("api_key_env", "QUETZ_API_KEY"))
        key = site.get("api_key") or os.environ.get(env) or None
        settings = {k: v for k, v in site.items() if k not in ("url", "api_key", "api_key_env")}  # checked: SITE_KEYS
        dest = cls(base, path[-1], str(key) if key else None, **settings)
        dest.api_key_env = env
        return dest

    # -- reading -------------------------------------------------------------------------

    def exists(self) -> bool:
        return (
            self._request(
                "GET", f"/api/channels/{quote(self.channel)}", f"looking up channel {self.channel}", auth=bool(self.api_key), ok=(200, 404)
            ).status
            == 200
        )

    def channel_url(self, channel: str) -> str:
        return f"{self.base_url}/get/{quote(channel)}"

    def read_repodata(self, channel: str, subdir: str) -> Repodata | None:
        self._check_channel(channel)
        if subdir not in self._index:
            self._index[subdir] = parse_index(self._repodata_bytes(subdir), subdir, f"{self}/{subdir}/repodata.json")
        return self._index[subdir]

    def inventory(self) -> dict[str, list[str]]:
        resp = self._request(
            "GET", f"/api/channels/{quote(self.channel)}/packages", "listing packages", auth=bool(self.api_key), ok=(200, 404)
        )
        if resp.status == 404:
            return {}
        try:
            platforms = {str(p) for pkg in json.loads(resp.data) for p in pkg.get("platforms") or ()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise DestinationError(f"{self}: listing packages: expected a JSON list, found something else ({exc})") from None
        subdirs = {p for p in platforms | self._subdirs | {"noarch"} if is_safe_channel_name(p)}
        return {self.channel: sorted(s for s in subdirs if self.read_repodata(self.channel, s) is not None)}

    def files(self, channel: str, subdir: str) -> dict[str, int]:
        rd = self.read_repodata(channel, subdir) if subdir else None
        if rd is None:
            return {}
        return {fn: size for fn, rec in rd.records() if (size := record_hashes(rec)[2]) is not None}

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """quetz's own sha256 of the file (it hashes every upload itself)."""
        rd = self.read_repodata(channel, subdir)
        rec = rd.get(filename) if rd is not None else None
        return record_hashes(rec)[0] if rec is not None else None

    def stored_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """Download the file as a client would (``/get/CHANNEL/SUBDIR/FILE``) and hash it: quetz's index says
        what it hashed at upload, not what its package store holds now."""
        self._check_channel(channel)
        path = f"/get/{quote(self.channel)}/{quote(subdir)}/{quote(filename)}"
        h = {"X-API-Key": self.api_key} if self.api_key else {}
        try:
            resp = self.http.request(
                "GET", self.base_url + path, headers=h, preload_content=False, timeout=urllib3.Timeout(connect=10, read=300), redirect=True
            )
        except urllib3.exceptions.HTTPError as exc:
            raise DestinationError(
                f"{self}: reading {subdir}/{filename}: cannot reach the server ({exc.__class__.__name__}: {exc})"
            ) from None
        try:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise DestinationError(f"{self}: reading {subdir}/{filename}: expected HTTP 200, found {resp.status}")
            digest = hashlib.sha256()
            for chunk in resp.stream(1 << 20):
                digest.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            return digest.hexdigest()
        finally:
            resp.release_conn()

    def read_receipt(self) -> dict[str, Any]:
        """quetz is its own inventory: the receipt is what its repodata lists, by hash."""
        receipt = empty_receipt()
        receipt["fixed_channel"] = self.channel  # every archive channel goes to this one (no history is kept here)
        for subdir in self.inventory().get(self.channel, []):
            rd = self.read_repodata(self.channel, subdir)
            if rd is None:
                continue
            slot = receipt["channels"].setdefault(self.channel, {}).setdefault(subdir, {})
            for fn, rec in rd.records():
                sha, _md5, size = record_hashes(rec)
                if sha is not None:
                    slot[fn] = {"sha256": sha, "size": size}
        return receipt

    def write_receipt(self, receipt: dict[str, Any]) -> str:
        raise UsageError(f"{self}: a quetz server keeps no receipt file (its repodata is the inventory); use -o FILE")

    # -- changing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 60.0) -> Iterator[None]:
        self.check_key()  # a bad key fails here, before anything is read for real or uploaded
        yield

    def begin(self, label: str) -> QuetzChange:
        return QuetzChange(self)

    def upload(self, p: Put) -> bool:
        """Upload one file; False if quetz already held a file of that name (verified later, or replaced)."""
        self._check_channel(p.channel)
        path = f"/api/channels/{quote(self.channel)}/upload/{quote(p.filename)}?sha256={p.blob.sha256}"
        with p.blob.open() as fh:
            resp = self._request(
                "POST",
                path,
                f"uploading {p.subdir}/{p.filename}",
                body=fh,
                ok=(201, 409, 406),
                headers={"Content-Length": str(p.blob.size), "Content-Type": "application/octet-stream"},
            )
        replaced = resp.status == 409 and self._listed_sha256(p.subdir, p.filename) == p.blob.sha256
        if replaced:
            # listed with these very bytes, yet the import puts it: what quetz stores was found damaged
            # (verify --into, sync --reset); force=true replaces the stored file in place
            log.warning("%s: replacing %s/%s, which quetz lists with the right sha256 but stores damaged", self, p.subdir, p.filename)
            with p.blob.open() as fh:
                resp = self._request(
                    "POST",
                    path + "&force=true",
                    f"replacing {p.subdir}/{p.filename}",
                    body=fh,
                    ok=(201, 406),
                    headers={"Content-Length": str(p.blob.size), "Content-Type": "application/octet-stream"},
                )
        if resp.status == 406:
            raise IntegrityError(f"{self}: uploading {p.filename}: the server found another sha256 than {p.blob.sha256} ({_detail(resp)})")
        self._subdirs.add(p.subdir)
        self._index.pop(p.subdir, None)
        return resp.status == 201 and not replaced  # a replaced file was there before: a rollback keeps it

    def _listed_sha256(self, subdir: str, filename: str) -> str | None:
        self._index.pop(subdir, None)
        rd = self.read_repodata(self.channel, subdir)
        rec = rd.get(filename) if rd is not None else None
        return record_hashes(rec)[0] if rec is not None else None

    def delete(self, subdir: str, filename: str, name: str) -> bool:
        """Delete one file; False if quetz did not rebuild its index afterwards (see :meth:`rebuild_indexes`)."""
        path = f"/api/channels/{quote(self.channel)}/packages/{quote(name)}/versions/{quote(subdir)}/{quote(filename)}"
        resp = self._request("DELETE", path, f"removing {subdir}/{filename}", ok=(200, 404, 500))
        self._index.pop(subdir, None)
        if resp.status != 200:
            # quetz drops the version from its database, then fails (500) on a file its store has lost, before it
            # rebuilds its index; retried, it answers 404. Its index then lists the file until rebuilt.
            log.info("%s: removing %s/%s: quetz answered %d; its index must be rebuilt", self, subdir, filename, resp.status)
        return resp.status == 200

    def remove_packages(self, files: list[tuple[str, str, str]]) -> None:
        """Delete files, then wait until quetz's repodata no longer lists them."""
        by_subdir: dict[str, set[str]] = {}
        for channel, subdir, filename in files:
            self._check_channel(channel)
            by_subdir.setdefault(subdir, set()).add(filename)
        for subdir, names in sorted(by_subdir.items()):
            rd = self.read_repodata(self.channel, subdir)
            stale = False
            for filename in sorted(names):
                rec = rd.get(filename) if rd is not None else None
                if rec is not None:
                    stale |= not self.delete(subdir, filename, str(rec.get("name")))
            if stale:
                self.rebuild_indexes()
            self.wait_for(subdir, {}, names)

    def wait_for(self, subdir: str, present: dict[str, str], absent: set[str]) -> Repodata | None:
        """Poll quetz's repodata until it lists ``present`` (filename → sha256) and none of ``absent``."""
        deadline = time.monotonic() + self.index_timeout
        delay = 0.1
        behind = len(present) + len(absent) + 1
        while True:
            self._index.pop(subdir, None)
            rd = self.read_repodata(self.channel, subdir)
            listed = {fn: record_hashes(rec)[0] for fn, rec in rd.records()} if rd is not None else {}
            for fn, sha in present.items():
                if fn in listed and listed[fn] != sha:
                    raise DestinationError(
                        f"{self}: {subdir}/{fn}: the server holds other bytes under this name (sha256 "
                        f"{listed[fn]}, the archive has {sha}); remove it from quetz first"
                    )
            missing = [fn for fn in present if fn not in listed]
            lingering = [fn for fn in absent if fn in listed]
            if not missing and not lingering:
                return rd
            if len(missing) + len(lingering) < behind:  # quetz is catching up: the timeout counts from its last progress
                behind = len(missing) + len(lingering)
                deadline = time.monotonic() + self.index_timeout
            if time.monotonic() >= deadline:
                what = (
                    f"{len(missing)} uploaded file(s) (first: {missing[0]})"
                    if missing
                    else f"{len(lingering)} removed file(s) still listed (first: {lingering[0]})"
                )
                raise DestinationError(
                    f"{self}: waited {self.index_timeout:.0f}s without progress for the server's {subdir}/repodata.json "
                    f"to show {what}; is quetz's indexing stuck? (index_timeout)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


SITE_KEYS = {"url", "api_key", "api_key_env", "workers", "index_timeout", "create_channel", "private", "ca_bundle"}


def open_quetz(spec: str, site: Mapping[str, Any]) -> QuetzDestination:
    """``quetz+http(s)://HOST[:PORT][/BASE]/CHANNEL`` as a destination (the registry's opener; ``site`` checked here)."""
    check_site("quetz", site, SITE_KEYS)
    return QuetzDestination.from_url(spec, dict(site))
