"""Store keys ↔ OCI repositories and tags: the conda-oci-mirror 0.3.0 layout (docs/destinations.md).

A key of the engine (``<channel>/<subdir>/<file>``, ``.airgap/<state>``) names one layer of one
manifest:

* a package ``<ch>/<sub>/<name>-<version>-<build>.conda`` (or ``.tar.bz2``): repository
  ``PREFIX/<ch>/<sub>/<name>`` (``zzz`` before a name starting with ``_``), tag
  ``<version>-<build>`` with ``+`` → ``__p__``, ``!`` → ``__e__``, ``=`` → ``__eq__``; one layer
  per archive format (``application/vnd.conda.package.v2`` / ``.v1``), its digest the package's sha256;
* the index files ``repodata.json``, ``repodata.json.zst``, ``repodata_shards.msgpack.zst``:
  layers of ``PREFIX/<ch>/<sub>/repodata.json:latest``;
* a CEP-16 shard ``<ch>/<sub>/shards/<sha256>.msgpack.zst``: ``PREFIX/<ch>/<sub>/repodata.json/shards:<sha256>``;
* airgap's state ``.airgap/<path>``: repository ``PREFIX/zzz.airgap`` (a repository component may
  not start with ``.``), the tag the path with ``_`` → ``__``, ``/`` → ``_s`` and other characters
  ``_xHH``. Each such manifest is annotated with its key, so two keys never share a digest
  (a registry deletes a manifest by digest, with every tag of that repository pointing at it).

Every layer carries its file name as ``org.opencontainers.image.title``: listing reads the name
from there, never by reversing the escapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import DestinationError

TITLE = "org.opencontainers.image.title"
KEY_ANNOTATION = "io.airgap.key"
DELETED_ANNOTATION = "io.airgap.deleted"
STATE_KEY = ".airgap"
STATE_REPO = "zzz.airgap"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
CONFIG = b"{}"
PACKAGE_TYPES = {".conda": "application/vnd.conda.package.v2", ".tar.bz2": "application/vnd.conda.package.v1"}
INDEX_TYPES = {
    "repodata.json": "application/vnd.conda.repodata.v1+json",
    "repodata.json.zst": "application/vnd.conda.repodata.v1+json+zst",
    "repodata_shards.msgpack.zst": "application/vnd.conda.repodata.shards.v1+msgpack+zst",
}
SHARD_TYPE = "application/vnd.conda.repodata.shard.v1+msgpack+zst"
STATE_TYPE = "application/vnd.airgap.state.v1"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_SHARD = re.compile(r"([0-9a-f]{64})\.msgpack\.zst\Z")
_TAG_OK = re.compile(r"[A-Za-z0-9.-]")


@dataclass(frozen=True)
class Target:
    """Where a key lives: ``kind`` package, index, shard or state; the layer's media type and title."""

    kind: str
    repo: str
    tag: str
    media_type: str
    title: str


def escape_tag(version_build: str) -> str:
    """``<version>-<build>`` as a tag, the way rattler and conda-oci-mirror spell it."""
    return version_build.replace("+", "__p__").replace("!", "__e__").replace("=", "__eq__")


def encode_state(path: str) -> str:
    """A state path as a tag (reversible; at most 128 characters)."""
    out = []
    for i, ch in enumerate(path):
        if ch == "_":
            out.append("__")
        elif ch == "/":
            out.append("_s")
        elif _TAG_OK.match(ch) and not (i == 0 and ch in ".-"):
            out.append(ch)
        else:
            out.append("".join(f"_x{b:02x}" for b in ch.encode()))
    tag = "".join(out)
    if len(tag) > 128:
        raise DestinationError(f"oci: expected a state key that fits a tag (128 characters), found {path!r}")
    return tag


def decode_state(tag: str) -> str:
    out = bytearray()
    i = 0
    while i < len(tag):
        if tag[i] != "_":
            out += tag[i].encode()
            i += 1
        elif tag[i + 1 : i + 2] == "_":
            out += b"_"
            i += 2
        elif tag[i + 1 : i + 2] == "s":
            out += b"/"
            i += 2
        else:  # _xHH
            out.append(int(tag[i + 2 : i + 4], 16))
            i += 4
    return out.decode()


def component(name: str, what: str) -> str:
    if not _COMPONENT.match(name):
        raise DestinationError(
            f"oci: expected a {what} an OCI repository name allows (lowercase letters, digits, '.', '_', '-'), found {name!r}"
        )
    return name


class Layout:
    """The mapping for one ``PREFIX`` (``a/b``; may be empty)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = "/".join(component(p, "prefix component") for p in prefix.strip("/").split("/") if p)

    def repo(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def state_repo(self) -> str:
        return self.repo(STATE_REPO)

    def target(self, key: str) -> Target | None:
        """Where ``key`` lives; None for a key this layout does not hold (``current_repodata.json``, pages)."""
        parts = key.split("/")
        if parts[0] == STATE_KEY:
            rest = key[len(STATE_KEY) + 1 :]
            return Target("state", self.state_repo, encode_state(rest), STATE_TYPE, rest.rsplit("/", 1)[-1])
        if parts[0] == STATE_REPO:
            raise DestinationError(f"oci: the channel name {STATE_REPO!r} is airgap's own state repository; choose another")
        if len(parts) == 4 and parts[2] == "shards" and (m := _SHARD.match(parts[3])):
            return Target(
                "shard",
                self.repo(*(component(p, "channel or subdir") for p in parts[:2]), "repodata.json", "shards"),
                m.group(1),
                SHARD_TYPE,
                parts[3],
            )
        if len(parts) != 3:
            return None
        ch, sub, name = parts
        base = [component(ch, "channel name"), component(sub, "subdir")]
        if name in INDEX_TYPES:
            return Target("index", self.repo(*base, "repodata.json"), "latest", INDEX_TYPES[name], name)
        for ext, media in PACKAGE_TYPES.items():
            if name.endswith(ext):
                pieces = name[: -len(ext)].rsplit("-", 2)
                if len(pieces) != 3 or not all(pieces):
                    raise DestinationError(f"oci: expected a package file name-version-build{ext}, found {name!r}")
                pkg = ("zzz" + pieces[0]) if pieces[0].startswith("_") else pieces[0]
                if pkg == "repodata.json":
                    raise DestinationError(f"oci: a package named {pkg!r} would take the index's repository; refused")
                return Target(
                    "package", self.repo(*base, component(pkg, "package name")), escape_tag(f"{pieces[1]}-{pieces[2]}"), media, name
                )
        return None

    def key_base(self, repo: str) -> str | None:
        """The key prefix of every key a repository holds (``ch/sub/``, ``ch/sub/shards/``, ``.airgap/``); None: not ours."""
        rel = repo[len(self.prefix) + 1 :] if self.prefix else repo
        if self.prefix and not repo.startswith(self.prefix + "/"):
            return None
        parts = rel.split("/")
        if parts == [STATE_REPO]:
            return STATE_KEY + "/"
        if len(parts) == 3:
            return f"{parts[0]}/{parts[1]}/"
        if len(parts) == 4 and parts[2:] == ["repodata.json", "shards"]:
            return f"{parts[0]}/{parts[1]}/shards/"
        return None


def descriptor(media_type: str, digest: str, size: int, title: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if title is not None:
        d["annotations"] = {TITLE: title}
    return d


def manifest_bytes(layers: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> bytes:
    import hashlib

    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(CONFIG_TYPE, "sha256:" + hashlib.sha256(CONFIG).hexdigest(), len(CONFIG)),
        "layers": layers,
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def layers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The titled layers of a manifest (none if it is a tombstone or not ours)."""
    if (doc.get("annotations") or {}).get(DELETED_ANNOTATION):
        return []
    return [lay for lay in doc.get("layers") or [] if isinstance(lay, dict) and (lay.get("annotations") or {}).get(TITLE)]


def title(layer: dict[str, Any]) -> str:
    return str(layer["annotations"][TITLE])
