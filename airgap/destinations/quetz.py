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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3

from ..errors import DestinationError, IntegrityError, UsageError
from ..faults import point
from ..manifest import is_safe_channel_name
from ..repodata import Repodata, record_hashes
from ..urlsafety import unsafe_component
from .base import Change, Destination, OnBytes, Put, empty_receipt, parse_index
from .capabilities import Capabilities

log = logging.getLogger(__name__)

PATCH_FIELDS = ("depends", "constrains", "license", "license_family", "track_features")


class QuetzDestination(Destination):
    kind = "quetz"
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
        # quetz indexes on its own, keeps no other files and no receipt, and serves one channel
        self.capabilities = Capabilities(keeps_repodata=False, holds_other_files=False, keeps_receipt=False, fixed_channel=channel)
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
        self._subdirs: set[str] = set()
        self._channel_checked = False
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

    def __str__(self) -> str:
        return f"quetz+{self.base_url}/{self.channel}"

    # -- plumbing ------------------------------------------------------------------------

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

    def rebuild_indexes(self) -> None:
        """Ask quetz to rebuild the channel's indexes from its database (a job it runs in the background)."""
        self._request(
            "PUT",
            f"/api/channels/{quote(self.channel)}/actions",
            "asking quetz to rebuild its indexes",
            body=json.dumps({"action": "generate_indexes"}),
            headers={"Content-Type": "application/json"},
        )

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


class QuetzChange(Change):
    def __init__(self, dest: QuetzDestination) -> None:
        self.dest = dest
        self.uploaded: list[tuple[str, str]] = []  # (subdir, filename) new on the server: named by a failed import (never deleted)
        self.patched = 0  # records whose quetz-built metadata differs from the archive's repodata
        self.records = 0

    def plan(
        self, packages: list[tuple[str, str, str]], indexes: list[tuple[str, str]], sha256: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """Before anything is uploaded: refuse a file quetz already lists under the same name.

        The import plans only files the destination does not hold with the archive's sha256 and
        size, and quetz never replaces a file (409): a planned name quetz lists with another sha256
        is a clash, found here rather than after every other file was uploaded. One it lists with
        the planned sha256 is a repair (``sync --reset``, after ``verify --into``: quetz stores it
        damaged), which :meth:`QuetzDestination.upload` replaces in place.
        """
        self.dest.ensure_channel()
        clashes = []
        for channel, subdir, filename in packages:
            self.dest._check_channel(channel)
            rd = self.dest.read_repodata(channel, subdir)
            rec = rd.get(filename) if rd is not None else None
            if rec is not None and (sha256 is None or record_hashes(rec)[0] != sha256.get((channel, subdir, filename))):
                clashes.append(f"{subdir}/{filename} (sha256 {record_hashes(rec)[0]})")
        if clashes:
            raise DestinationError(
                f"{self.dest}: expected to upload {len(packages)} file(s) quetz does not hold, found {len(clashes)} "
                f"it holds with other bytes under the same name (first: {clashes[0]}); quetz never replaces "
                "a file: remove it from quetz first. Nothing was uploaded"
            )

    def put_packages(self, batch: list[Put], on_bytes: OnBytes | None = None) -> None:
        if not batch:
            return

        def one(p: Put) -> None:
            if self.dest.upload(p):
                self.uploaded.append((p.subdir, p.filename))
            if on_bytes is not None:
                on_bytes(p.blob.size)

        one(batch[0])  # a refused key or role fails on one file, not on many at once
        with ThreadPoolExecutor(self.dest.workers) as pool:
            for future in [pool.submit(one, p) for p in batch[1:]]:
                future.result()

    def publish_index(self, channel: str, subdir: str, repodata: Repodata) -> None:
        self.dest._check_channel(channel)
        want = {fn: sha for fn, rec in repodata.records() if (sha := record_hashes(rec)[0]) is not None}
        served = self.dest.wait_for(subdir, want, set())
        for fn, rec in repodata.records():
            got = served.get(fn) if served is not None else None
            self.records += 1
            if got is not None and any(_norm(rec.get(k)) != _norm(got.get(k)) for k in PATCH_FIELDS):
                self.patched += 1

    def write_receipt(self, receipt: dict[str, Any]) -> None:
        pass  # quetz's repodata is the inventory

    def commit(self) -> None:
        if self.patched:  # only when it matters: 0 differing records is nothing to warn about
            log.warning(
                "%s: quetz rebuilds repodata from the packages, so upstream repodata patches do not reach it: "
                "%d of %d records differ from the archive's repodata (%s)",
                self.dest,
                self.patched,
                self.records,
                "/".join(PATCH_FIELDS),
            )
        elif self.records:
            log.info("%s: quetz rebuilt the repodata of %d records; none differs from the archive's", self.dest, self.records)
        self.uploaded.clear()

    def rollback(self) -> None:
        """Delete nothing: quetz lists each file the moment it is uploaded, and another import may have seen it since.

        quetz has no lock airgap could hold, so a concurrent import that needed the same file found
        it present and reported it published; deleting it here would break that channel. What this
        change uploaded stays: complete, verified by quetz against its sha256, and listed.
        """
        if self.uploaded:
            log.error(
                "%s: the import failed after uploading %d file(s) (%s); they stay published (quetz lists each file as "
                "it arrives, and another import may rely on it): import again to finish, or clean to remove them",
                self.dest,
                len(self.uploaded),
                ", ".join(f"{s}/{f}" for s, f in self.uploaded[:5]),
            )
        self.uploaded.clear()


def _norm(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value or None


def _detail(resp: urllib3.BaseHTTPResponse) -> str:
    try:
        doc = json.loads(resp.data)
        detail = doc.get("detail") if isinstance(doc, dict) else None
    except ValueError:
        detail = None
    return str(detail if detail is not None else resp.data[:200].decode("utf-8", "replace")).replace("\n", " ")
