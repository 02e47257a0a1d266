"""An OCI registry as an :class:`~airgap.destinations.store.ObjectStore`: ``oci://HOST[:PORT]/PREFIX``.

Keys map to layers of manifests in the conda-oci-mirror layout (:mod:`.ocilayout`), so the engine
(journal, recovery, order, receipt) runs unchanged and rattler, pixi and mamba read the result.
Every object is one blob plus a manifest that names it: ``put`` uploads the blob (after a HEAD:
a blob the registry holds is never sent again) and PUTs the manifest; a package's two archive
formats share one manifest, and so do a subdir's index files (each index file replaces its layer
in ``repodata.json:latest``, so ``repodata.json.zst`` written last switches what most clients read).
``backup`` copies a layer into the state repository (a cross-repository blob mount: no bytes
move), ``restore`` mounts it back.

The lock: a registry has no conditional write. ``create`` and ``replace_if`` check, write, wait
``lock_settle`` seconds and read back; whoever's manifest is at the tag then holds it. Two importers
that both checked before either wrote, and both wrote within ``lock_settle`` of each other's
check, can both believe they hold it (docs/destinations.md: run one importer per registry prefix).

Deletes: where the registry refuses them (distribution ``storage.delete.enabled: false``), a key
is removed by pointing its tag at an empty manifest annotated ``io.airgap.deleted`` (the bytes stay
until deletes are enabled and the registry's garbage collection runs); one warning says so.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import DestinationError, UsageError
from . import ocilayout as L
from .base import BlobRef, OnBytes
from .engine import StoreDestination
from .formats import DEFAULT
from .lease import DEFAULT_STALE_AFTER
from .ociclient import DeleteRefused, OciClient, credentials
from .registry import check_site
from .store import check_key

log = logging.getLogger(__name__)
_CONFIG_DIGEST = "sha256:" + hashlib.sha256(L.CONFIG).hexdigest()


class OciStore:
    """The objects of one registry prefix (see the module docstring)."""

    def __init__(self, client: OciClient, prefix: str, *, workers: int = 4, lock_settle: float = 0.5) -> None:
        self.client = client
        self.layout = L.Layout(prefix)
        self.workers = max(1, workers)
        self.lock_settle = lock_settle
        self._configured: set[str] = set()  # repositories known to hold the config blob
        self._config_source: str | None = None  # one of them (threads read it; assigning is atomic)
        self._delete_refused = False
        self._mutex = threading.Lock()
        self._manifest_locks: dict[tuple[str, str], threading.Lock] = {}
        self._config_locks: dict[str, threading.Lock] = {}  # the same blob uploaded twice at once: the registry lost one

    def __str__(self) -> str:
        return f"oci://{self.client.host}/{self.layout.prefix}".rstrip("/")

    def exists(self) -> bool:
        return any(self.layout.key_base(r) is not None for r in self.client.catalog())

    # -- one layer per key --------------------------------------------------------------------

    def _target(self, key: str) -> L.Target | None:
        return self.layout.target(check_key(key))

    def _layer(self, t: L.Target) -> tuple[dict[str, Any], str, dict[str, Any]] | None:
        """``(manifest, its digest, the key's layer)`` or None."""
        found = self.client.manifest(t.repo, t.tag)
        if found is None:
            return None
        doc, digest = found
        for layer in L.layers_of(doc):
            if L.title(layer) == t.title:
                return doc, digest, layer
        return None

    def _ensure_config(self, repo: str) -> None:
        if repo in self._configured:
            return
        with self._config_lock(repo):  # two threads on one new repository (a package's two formats) upload it once
            if repo in self._configured:  # a package's two formats: the other thread did it meanwhile
                return
            source = self._config_source  # one mount request instead of HEAD, POST and PUT
            if source is not None and self.client.mount(repo, _CONFIG_DIGEST, source):
                self._configured.add(repo)
                return
            if self.client.blob_size(repo, _CONFIG_DIGEST) is None:
                self.client.upload(repo, _CONFIG_DIGEST, len(L.CONFIG), L.CONFIG)
            self._configured.add(repo)
            self._config_source = repo

    def _link(self, key: str, t: L.Target, layer: dict[str, Any]) -> str:
        """Make ``layer`` (its blob already in ``t.repo``) the object at ``key``: PUT the manifest; its digest."""
        self._ensure_config(t.repo)
        layer = L.descriptor(t.media_type, layer["digest"], int(layer["size"]), t.title)
        if t.kind in ("package", "index"):
            with self._manifest_lock(t):  # read, merge, write: a package's two formats are put by two threads at once
                return self._merge(t, layer)
        return self.client.put_manifest(t.repo, t.tag, L.manifest_bytes([layer], {L.KEY_ANNOTATION: key}))

    def _config_lock(self, repo: str) -> threading.Lock:
        with self._mutex:
            return self._config_locks.setdefault(repo, threading.Lock())

    def _manifest_lock(self, t: L.Target) -> threading.Lock:
        with self._mutex:
            return self._manifest_locks.setdefault((t.repo, t.tag), threading.Lock())

    def _merge(self, t: L.Target, layer: dict[str, Any]) -> str:
        current = self.client.manifest(t.repo, t.tag)
        others = [lay for lay in L.layers_of(current[0]) if L.title(lay) != t.title] if current else []
        data = L.manifest_bytes(sorted([*others, layer], key=L.title))
        digest = self.client.put_manifest(t.repo, t.tag, data)
        if t.title == "repodata.json.zst":  # the last index file: the subdir's index is complete, keep it by time too
            self.client.put_manifest(t.repo, time.strftime("%Y.%m.%d.%H%M%S", time.gmtime()), data)
        return digest

    def _upload(self, t: L.Target, digest: str, size: int, data: bytes | BlobRef) -> None:
        if self.client.blob_size(t.repo, digest) is not None:
            return  # the registry has it: never uploaded twice
        if isinstance(data, bytes):
            self.client.upload(t.repo, digest, size, data)
            return
        with data.open() as fh:
            self.client.upload(t.repo, digest, size, fh)  # type: ignore[arg-type]

    def _writable(self, key: str) -> L.Target:
        t = self._target(key)
        if t is None:
            raise DestinationError(f"{self}: expected a package file, an index file or airgap state, found the key {key!r}")
        return t

    # -- objects ------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        t = self._target(key)
        found = self._layer(t) if t is not None else None
        return None if found is None or t is None else self.client.blob(t.repo, found[2]["digest"])

    def chunks(self, key: str) -> Iterator[bytes] | None:
        t = self._target(key)
        found = self._layer(t) if t is not None else None
        return None if found is None or t is None else self.client.blob_chunks(t.repo, found[2]["digest"])

    def digest(self, key: str) -> str | None:
        """The sha256 the registry holds the key's bytes under (it checked them at upload)."""
        t = self._target(key)
        found = self._layer(t) if t is not None else None
        return str(found[2]["digest"]).removeprefix("sha256:") if found else None

    def put(self, key: str, data: bytes) -> None:
        self._put(key, data)

    def _put(self, key: str, data: bytes) -> str:
        t = self._writable(key)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._upload(t, digest, len(data), data)
        return self._link(key, t, {"digest": digest, "size": len(data)})

    def put_blob(self, key: str, blob: BlobRef, on_bytes: OnBytes | None = None) -> None:
        t = self._writable(key)
        digest = "sha256:" + blob.sha256
        self._upload(t, digest, blob.size, blob)
        self._link(key, t, {"digest": digest, "size": blob.size})
        if on_bytes is not None:
            on_bytes(blob.size)

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        repos = []
        for repo in self.client.catalog():
            base = self.layout.key_base(repo)
            if base is not None and (base.startswith(prefix) or prefix.startswith(base)):
                repos.append((repo, base))

        state = L.STATE_KEY + "/"

        def one(item: tuple[str, str]) -> list[tuple[str, int]]:
            """A repository's keys: its tags, then each tag's manifest (the layers' titles and sizes)."""
            repo, base = item
            tags = self.client.tags(repo)
            if base == state:  # the tag spells the key: fetch only the manifests asked for
                tags = [t for t in tags if (base + L.decode_state(t)).startswith(prefix)]
            elif repo.endswith("/repodata.json"):
                tags = [t for t in tags if t == "latest"]  # the timestamp tags are history, not objects
            out = []
            for tag in tags:
                found = self.client.manifest(repo, tag)
                for layer in L.layers_of(found[0]) if found else []:
                    out.append((base + (L.decode_state(tag) if base == state else L.title(layer)), int(layer["size"])))
            return out

        with ThreadPoolExecutor(self.workers * 2) as pool:  # requests, not bytes: the round trips overlap
            found = [kv for batch in pool.map(one, repos) for kv in batch]
        return iter([(k, size) for k, size in found if k.startswith(prefix)])

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            t = self._target(key)
            if t is not None:
                with self._manifest_lock(t):
                    self._remove(key, t)

    def _remove(self, key: str, t: L.Target) -> None:
        current = self.client.manifest(t.repo, t.tag)
        if current is None:
            return
        doc, digest = current
        rest = [lay for lay in L.layers_of(doc) if L.title(lay) != t.title] if t.kind in ("package", "index") else []
        if rest:
            self.client.put_manifest(t.repo, t.tag, L.manifest_bytes(rest))
        elif L.layers_of(doc):
            self._drop(key, t, digest)

    def _drop(self, key: str, t: L.Target, digest: str) -> None:
        if not self._delete_refused:
            try:
                self.client.delete_manifest(t.repo, digest)
                return
            except DeleteRefused as exc:
                self._delete_refused = True
                log.warning("%s (%s); airgap leaves empty manifests at the tags it removes instead", exc, self)
        self._ensure_config(t.repo)
        self.client.put_manifest(t.repo, t.tag, L.manifest_bytes([], {L.KEY_ANNOTATION: key, L.DELETED_ANNOTATION: "true"}))

    def url(self, key: str) -> str:
        return f"{self}/{key}"

    # -- the journal's copies -------------------------------------------------------------------

    def _copy(self, source: L.Target, key: str, target: L.Target) -> bool:
        found = self._layer(source)
        if found is None:
            return False
        layer = found[2]
        if target.repo != source.repo and self.client.blob_size(target.repo, layer["digest"]) is None:
            if not self.client.mount(target.repo, layer["digest"], source.repo):
                data = self.client.blob(source.repo, layer["digest"])  # a registry that does not mount: copy through
                if data is None:
                    return False
                self.client.upload(target.repo, layer["digest"], len(data), data)
        self._link(key, target, layer)
        return True

    def backup(self, key: str, backup_key: str) -> bool:
        source = self._target(key)
        return source is not None and self._copy(source, backup_key, self._writable(backup_key))

    def restore(self, backup_key: str, key: str) -> None:
        if not self._copy(self._writable(backup_key), key, self._writable(key)):
            raise DestinationError(f"{self}: expected the backup {backup_key} to restore {key} from, found none")

    # -- the lock (check, write, settle, read back: see the module docstring) --------------------

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        t = self._writable(key)
        found = self._layer(t)
        if found is None:
            return None
        data = self.client.blob(t.repo, found[2]["digest"])
        return None if data is None else (data, found[1])

    def _settled(self, t: L.Target, digest: str) -> str | None:
        time.sleep(self.lock_settle)
        return digest if self.client.manifest_digest(t.repo, t.tag) == digest else None

    def create(self, key: str, data: bytes) -> str | None:
        if self.read_versioned(key) is not None:
            return None
        return self._settled(self._writable(key), self._put(key, data))

    def replace_if(self, key: str, data: bytes, version: str) -> str | None:
        t = self._writable(key)
        if self.client.manifest_digest(t.repo, t.tag) != version:
            return None
        return self._settled(t, self._put(key, data))

    def delete_if(self, key: str, version: str) -> bool:
        t = self._writable(key)
        if self.client.manifest_digest(t.repo, t.tag) != version:
            return False
        self._drop(key, t, version)
        return True


class OciDestination(StoreDestination):
    """The engine over an :class:`OciStore`: conda packages only (no installers, no pages)."""

    kind = "oci"
    holds_other_files = False
    store: OciStore

    def inventory(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for repo in self.store.client.catalog():
            base = self.store.layout.key_base(repo)
            if base is None or base.count("/") != 2 or not repo.endswith("/repodata.json") or base.startswith("."):
                continue
            channel, subdir, _ = base.split("/")
            if self.store.get(f"{channel}/{subdir}/repodata.json") is not None:
                out.setdefault(channel, []).append(subdir)
        return {ch: sorted(subs) for ch, subs in sorted(out.items())}

    def file_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        """The layer's digest: the registry refuses an upload whose bytes do not hash to it."""
        return self.store.digest(self.key(channel, subdir, filename))

    def stored_sha256(self, channel: str, subdir: str, filename: str, on_bytes: OnBytes | None = None) -> str | None:
        return StoreDestination.file_sha256(self, channel, subdir, filename, on_bytes)  # the bytes themselves

    def read_index_file(self, channel: str, subdir: str, name: str) -> bytes | None:
        return self.store.get(self.key(channel, subdir, name))


SITE_KEYS = {"url", "index_formats", "lock_stale_after", "workers", "ca_file", "username", "password_env", "lock_settle"}


def open_oci(spec: str, site: Mapping[str, Any]) -> OciDestination:
    """``oci://HOST[:PORT]/PREFIX`` (the registry's opener); ``site``: ca_file, username/password_env, workers..."""
    check_site("oci", site, SITE_KEYS)
    rest = spec[len("oci://") :]
    host, _, prefix = rest.partition("/")
    if not host or "?" in rest or "#" in rest or "@" in host:
        raise UsageError(f"--into: expected oci://HOST[:PORT]/PREFIX (credentials from the environment, not the URL), found {spec!r}")
    formats = site.get("index_formats", DEFAULT)
    if isinstance(formats, str) or not isinstance(formats, (list, tuple)):
        raise UsageError(f"sites: expected index_formats to be a list of format names, found {formats!r}")
    workers = int(site.get("workers", 4))
    ca = site.get("ca_file")
    client = OciClient(host, creds=credentials(host, site), ca_file=str(ca) if ca else None, workers=workers)
    try:
        store = OciStore(client, prefix, workers=workers, lock_settle=float(site.get("lock_settle", 0.5)))
    except DestinationError as exc:  # a prefix no registry accepts: a usage error, before any request
        raise UsageError(f"--into: {exc}") from None
    return OciDestination(
        store, index_formats=tuple(formats), lock_stale_after=float(site.get("lock_stale_after", DEFAULT_STALE_AFTER)), workers=workers
    )
