"""A small OCI distribution client over urllib3 (docs/decisions/0005-oci-client.md).

What the OCI store needs and no more: blobs (HEAD, monolithic upload, cross-repository mount,
GET), manifests (GET, HEAD, PUT, DELETE), tag lists and the catalog (both paged). Auth is the
registry's own challenge: a ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``
is answered by asking the realm for a token (with basic credentials when there are any); a
``Basic`` challenge by sending the credentials. Credentials come from the site (``username`` and
``password_env``), the environment (``AIRGAP_OCI_USERNAME``/``AIRGAP_OCI_PASSWORD``) or
``~/.docker/config.json`` ``auths`` (``$DOCKER_CONFIG``). TLS is verified against the site's
``ca_file``, else ``$SSL_CERT_FILE``, else the system store.

Every failure is one :class:`~airgap.errors.DestinationError` line that says which step failed
(TLS, token, credentials, blob upload, manifest …); no header, token or password is ever in it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from ..errors import DestinationError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CHUNK = 1 << 20
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class DeleteRefused(DestinationError):
    """The registry does not allow deletes (distribution: ``storage.delete.enabled: false``)."""


def docker_config_credentials(host: str) -> tuple[str, str] | None:
    """``(user, password)`` for ``host`` from ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``) ``auths``."""
    folder = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    path = Path(folder) / "config.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DestinationError(f"{path}: expected a docker config (JSON), found something unreadable ({type(exc).__name__})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    for key, entry in (auths or {}).items():
        name = urlsplit(key if "://" in key else f"https://{key}").netloc
        if name != host or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                raise DestinationError(f"{path}: auths.{key}.auth: expected base64 of user:password, found something else") from None
            return user, password
    return None


def credentials(host: str, site: Mapping[str, Any]) -> tuple[str, str] | None:
    """Who the client is: the site's ``username`` + ``password_env``, else the environment, else docker's config."""
    if site.get("username"):
        env = str(site.get("password_env") or "AIRGAP_OCI_PASSWORD")
        if not os.environ.get(env):
            raise DestinationError(
                f"oci://{host}: credentials: the site names user {site['username']!r}; expected ${env} to hold the password, found it unset"
            )
        return str(site["username"]), os.environ[env]
    if os.environ.get("AIRGAP_OCI_USERNAME"):
        return os.environ["AIRGAP_OCI_USERNAME"], os.environ.get("AIRGAP_OCI_PASSWORD", "")
    return docker_config_credentials(host)


class OciClient:
    """One registry at ``https://HOST[:PORT]``; thread-safe (a pool, tokens cached per scope)."""

    def __init__(
        self, host: str, *, creds: tuple[str, str] | None = None, ca_file: str | None = None, workers: int = 4, timeout: float = 60.0
    ) -> None:
        self.host = host
        self.base = f"https://{host}"
        self.creds = creds
        ca = ca_file or os.environ.get("SSL_CERT_FILE") or None
        self.http = urllib3.PoolManager(
            maxsize=max(4, workers + 2),
            ca_certs=ca,
            timeout=urllib3.Timeout(connect=10, read=timeout),
            retries=urllib3.Retry(3, redirect=5, status=0, other=0),  # connection errors retried; TLS refusals are final
        )
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._lock = threading.Lock()
        self.requests: list[str] = []  # "METHOD path" of each request (tests count uploads)

    # -- requests and the auth challenge ---------------------------------------------------

    def _fail(self, step: str, detail: str) -> DestinationError:
        return DestinationError(f"oci://{self.host}: {step}: {detail}")

    def request(
        self,
        method: str,
        path: str,
        scope: str,
        step: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
        rewind: BinaryIO | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One request, answering an auth challenge once; a status outside ``ok`` (and not 404) is a one-line error."""
        url = path if "://" in path else self.base + path  # an upload Location may be absolute
        for attempt in (1, 2):
            hdrs = dict(headers or {})
            with self._lock:
                auth = self._auth.get(scope) or self._auth.get("basic")  # basic: the same header for every scope
                if auth:
                    hdrs["Authorization"] = auth
                self.requests.append(f"{method} {urlsplit(url).path}")
            try:
                resp = self.http.request(
                    method, url, body=body, headers=hdrs, preload_content=not stream, redirect=method in ("GET", "HEAD")
                )
            except urllib3.exceptions.HTTPError as exc:
                if not isinstance(exc, urllib3.exceptions.SSLError) and not isinstance(
                    getattr(exc, "reason", None), urllib3.exceptions.SSLError
                ):
                    raise self._fail(step, f"could not reach the registry ({_short(exc)})") from None
                raise self._fail(
                    step,
                    f"TLS: the server's certificate is not trusted ({_short(exc)}); set the site's ca_file or SSL_CERT_FILE to the registry's CA",
                ) from None
            if resp.status == 401 and attempt == 1:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.drain_conn()
                self._answer(challenge, scope, step)
                if rewind is not None:
                    rewind.seek(0)
                continue
            if resp.status in ok or resp.status == 404:
                return resp
            detail = _error_text(resp)
            if resp.status == 401:
                raise self._fail(
                    step,
                    f"{'credentials refused' if self.creds else 'anonymous access refused'} (401{detail}); "
                    f"{'check' if self.creds else 'set'} AIRGAP_OCI_USERNAME/AIRGAP_OCI_PASSWORD, the site's username/password_env or ~/.docker/config.json auths",
                )
            if resp.status == 403:
                raise self._fail(step, f"access denied (403{detail}): the credentials may not {scope.rsplit(':', 1)[-1]} here")
            if resp.status == 405 and method == "DELETE":
                raise DeleteRefused(
                    f"oci://{self.host}: {step}: the registry refuses deletes (405{detail}); enable them (distribution: storage.delete.enabled: true)"
                )
            raise self._fail(step, f"expected HTTP {'/'.join(map(str, ok))}, found {resp.status}{detail}")
        raise self._fail(step, "unreachable")  # pragma: no cover

    def _answer(self, challenge: str, scope: str, step: str) -> None:
        kind, _, params = challenge.partition(" ")
        fields = dict(_CHALLENGE.findall(params))
        if kind.lower() == "basic":
            if self.creds is None:
                raise self._fail(
                    step,
                    "the registry asks for credentials (basic); set AIRGAP_OCI_USERNAME/AIRGAP_OCI_PASSWORD, the site's username/password_env, or ~/.docker/config.json auths",
                )
            value = "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
        elif kind.lower() == "bearer" and fields.get("realm"):
            value = "Bearer " + self._token(fields, scope, step)
        else:
            raise self._fail(step, f"expected a Basic or Bearer challenge from the registry, found {kind or 'none'!r}")
        with self._lock:
            self._auth["basic" if kind.lower() == "basic" else scope] = value

    def _token(self, fields: dict[str, str], scope: str, step: str) -> str:
        query = {"service": fields.get("service", "")}
        wanted = fields.get("scope") or scope
        realm = (
            fields["realm"]
            + ("&" if "?" in fields["realm"] else "?")
            + urlencode(query)
            + "".join(f"&scope={s}" for s in wanted.split(" "))
        )
        headers = {}
        if self.creds is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
        where = urlsplit(fields["realm"]).netloc
        try:
            resp = self.http.request("GET", realm, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise self._fail(step, f"token: could not reach the token service at {where} ({_short(exc)})") from None
        if resp.status == 401:
            raise self._fail(
                step,
                f"token: the token service at {where} refused the credentials (401); check AIRGAP_OCI_USERNAME/AIRGAP_OCI_PASSWORD or ~/.docker/config.json",
            )
        if resp.status != 200:
            raise self._fail(step, f"token: expected a token from {where}, found HTTP {resp.status}")
        try:
            doc = json.loads(resp.data)
            return str(doc.get("token") or doc["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise self._fail(step, f"token: expected JSON with a token from {where}, found something else") from None

    # -- blobs ----------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str) -> int | None:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", "blob HEAD")
        return None if resp.status == 404 else int(resp.headers.get("Content-Length", "0"))

    def mount(self, repo: str, digest: str, source: str) -> bool:
        """Link a blob of ``source`` into ``repo`` without moving bytes; False if the registry would not."""
        q = urlencode({"mount": digest, "from": source})
        resp = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/?{q}", f"repository:{repo}:pull,push repository:{source}:pull", "blob mount", ok=(201, 202)
        )
        if resp.status == 202:  # not mounted: an upload session was opened instead; cancel it
            location = resp.headers.get("Location", "")
            if location:
                self.request("DELETE", urljoin(self.base + "/", location), f"repository:{repo}:pull,push", "blob mount", ok=(204,))
            return False
        return resp.status == 201

    def upload(self, repo: str, digest: str, size: int, data: bytes | BinaryIO) -> None:
        """A monolithic upload (POST a session, PUT the bytes with the digest); the registry checks the digest."""
        scope = f"repository:{repo}:pull,push"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope, "blob upload", ok=(202,))
        if resp.status == 404:
            raise self._fail("blob upload", f"expected an upload session for {repo}, found 404 (is the repository name allowed?)")
        location = urljoin(self.base + "/", resp.headers.get("Location", ""))
        url = location + ("&" if "?" in location else "?") + urlencode({"digest": digest})
        rewind = data if not isinstance(data, bytes) else None
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = self.request("PUT", url, scope, "blob upload", body=data, headers=headers, ok=(201,), rewind=rewind)
        if resp.status == 404:
            raise self._fail("blob upload", f"the upload session for {repo} vanished (404)")

    def blob(self, repo: str, digest: str) -> bytes | None:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", "blob GET")
        return None if resp.status == 404 else bytes(resp.data)

    def blob_chunks(self, repo: str, digest: str) -> Iterator[bytes] | None:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", "blob GET", stream=True)
        if resp.status == 404:
            resp.release_conn()
            return None

        def gen() -> Iterator[bytes]:
            try:
                yield from resp.stream(CHUNK)
            finally:
                resp.release_conn()

        return gen()

    # -- manifests, tags, catalog -----------------------------------------------------------

    def manifest(self, repo: str, ref: str) -> tuple[dict[str, Any], str] | None:
        """The manifest at a tag or digest, and its digest; None if there is none."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", f"repository:{repo}:pull", "manifest GET", headers={"Accept": MANIFEST})
        if resp.status == 404:
            return None
        try:
            doc = json.loads(resp.data)
        except ValueError:
            raise self._fail("manifest GET", f"{repo}:{ref}: expected a JSON manifest, found something else") from None
        digest = resp.headers.get("Docker-Content-Digest") or _digest(resp.data)
        return doc, digest

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", f"repository:{repo}:pull", "manifest HEAD", headers={"Accept": MANIFEST})
        return None if resp.status == 404 else resp.headers.get("Docker-Content-Digest")

    def put_manifest(self, repo: str, ref: str, data: bytes) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            f"repository:{repo}:pull,push",
            "manifest PUT",
            body=data,
            headers={"Content-Type": MANIFEST},
            ok=(201,),
        )
        if resp.status == 404:
            raise self._fail("manifest PUT", f"{repo}:{ref}: the registry lacks a blob the manifest names (404)")
        return resp.headers.get("Docker-Content-Digest") or _digest(data)

    def delete_manifest(self, repo: str, digest: str) -> None:
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", f"repository:{repo}:delete", "manifest DELETE", ok=(202, 200))

    def _paged(self, path: str, scope: str, step: str, field: str) -> list[str]:
        out: list[str] = []
        url = path
        while url:
            resp = self.request("GET", url, scope, step)
            if resp.status == 404:
                return out
            try:
                out.extend(json.loads(resp.data).get(field) or [])
            except (ValueError, AttributeError):
                raise self._fail(step, f"expected a JSON list of {field}, found something else") from None
            link = resp.headers.get("Link", "")
            url = link[link.index("<") + 1 : link.index(">")] if "<" in link and 'rel="next"' in link else ""
        return out

    def tags(self, repo: str) -> list[str]:
        return self._paged(f"/v2/{repo}/tags/list?n=1000", f"repository:{repo}:pull", "tag list", "tags")

    def catalog(self) -> list[str]:
        return self._paged("/v2/_catalog?n=1000", "registry:catalog:*", "catalog", "repositories")


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    return text.split("\n")[0][:160]


def _error_text(resp: urllib3.BaseHTTPResponse) -> str:
    """The registry's error code (``MANIFEST_UNKNOWN``...), never headers or bodies beyond it."""
    try:
        doc = json.loads(resp.data or b"{}")
        codes = ",".join(str(e.get("code")) for e in doc.get("errors", []) if isinstance(e, dict))
    except (ValueError, AttributeError):
        codes = ""
    return f" {codes}" if codes else ""
