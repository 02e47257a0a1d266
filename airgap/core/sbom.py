"""Software bills of materials of an archive: CycloneDX 1.6 and SPDX 2.3 JSON. Pure.

One component (SPDX: package) per package file the archive carries — for a delta, the files
it adds; the files its base already holds are in the base's SBOM. Each has its purl
(``pkg:conda/NAME@VERSION?build=…&channel=…&subdir=…&type=conda|tar.bz2``), its sha256 (and
md5 where the record has one), its licence as an SPDX expression when the record's text parses
as one (:mod:`airgap.core.licenses`) and as a name otherwise, and its channel as supplier. A
dependency becomes a reference to the newest file of the archive that satisfies it (same
channel; see :func:`dependencies`). The document names the archive id,
its creation time, the tool, the signer's key id and every upstream repodata with its sha256.

The output is a function of the manifest, the records and the signer only, so the SBOM that
``export`` puts into the archive and the one ``inspect --sbom`` derives later are the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import jsonbytes
from .licenses import to_spdx
from .manifest import Manifest
from .repodata import Repodata
from .sbom_deps import dependencies as dependencies  # re-exported: sbom.dependencies

CYCLONEDX_FORMAT = "CycloneDX-1.6"
_MD5 = re.compile(r"[0-9a-f]{32}\Z")
_SPDX_REF = re.compile(r"[^A-Za-z0-9.-]+")


class Component:
    """One package file of the archive and its record. A plain class with slots: an SBOM of
    300,000 files reads each one's name and purl several times, and a property per read showed."""

    __slots__ = ("channel", "channel_url", "subdir", "filename", "sha256", "size", "record", "name", "version", "build", "_purl")

    def __init__(
        self, channel: str, channel_url: str, subdir: str, filename: str, sha256: str, size: int, record: Mapping[str, Any]
    ) -> None:
        self.channel, self.channel_url, self.subdir, self.filename = channel, channel_url, subdir, filename
        self.sha256, self.size, self.record = sha256, size, record
        get = record.get
        self.name = str(get("name") or filename.rsplit("-", 2)[0])
        self.version = str(get("version") or filename.rsplit("-", 2)[-2])
        self.build = str(get("build") or "")
        self._purl: str | None = None

    @property
    def purl(self) -> str:
        if self._purl is None:
            self._purl = purl(self.name, self.version, self.build, self.channel, self.subdir, self.filename)
        return self._purl


@dataclass(frozen=True)
class DocumentInfo:
    archive_id: str
    created: str
    tool: str
    signer: str | None
    base: str | None
    sources: list[dict[str, Any]] = field(default_factory=list)  # channel, url, subdir, source{url, sha256, fetched}


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z")  # what quote(safe="") leaves as it is


@functools.lru_cache(maxsize=65536)  # channels, subdirs, builds and names repeat across 300,000 files
def _q(text: str) -> str:
    return text if _PLAIN.match(text) else urllib.parse.quote(text, safe="")


def purl(name: str, version: str, build: str, channel: str, subdir: str, filename: str) -> str:
    """The package URL of a conda file; qualifiers in the sorted order purl's canonical form wants."""
    q = _q
    tail = _qualifiers(channel, subdir, "conda" if filename.endswith(".conda") else "tar.bz2")
    return f"pkg:conda/{q(name.lower())}@{q(version)}?" + (f"build={q(build)}&{tail}" if build else tail)


def purls(comps: list[Component]) -> list[str]:
    """``[c.purl for c in comps]``, in a third less time for 300,000 files: each name lower-cased and quoted once,
    each channel, subdir and type's qualifiers looked up once, no call per file (tests/test_sbom_bytes.py)."""
    q = _q
    names: dict[str, str] = {}
    tails: dict[tuple[str, str, bool], str] = {}
    out: list[str] = []
    for c in comps:
        name, filename, build = c.name, c.filename, c.build
        qn = names.get(name)
        if qn is None:
            qn = names[name] = q(name.lower())
        key = (c.channel, c.subdir, filename.endswith(".conda"))
        tail = tails.get(key)
        if tail is None:
            tail = tails[key] = _qualifiers(c.channel, c.subdir, "conda" if key[2] else "tar.bz2")
        out.append(f"pkg:conda/{qn}@{q(c.version)}?build={q(build)}&{tail}" if build else f"pkg:conda/{qn}@{q(c.version)}?{tail}")
    return out


@functools.lru_cache(maxsize=1024)
def _qualifiers(channel: str, subdir: str, kind: str) -> str:
    """The qualifiers after ``build`` (never empty: ``type`` always is there), made once per channel, subdir and type."""
    return "&".join([f"{k}={_q(v)}" for k, v in (("channel", channel), ("subdir", subdir), ("type", kind)) if v])


_TOKEN_PATH = re.compile(r"/t/[^/]+/")


def public_url(url: Any) -> str:
    """``url`` without what may be a secret: user:password@ and a conda token path (``/t/<token>/``)."""
    text = str(url or "")
    parts = urllib.parse.urlsplit(text)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        text = urllib.parse.urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))
    return _TOKEN_PATH.sub("/t/<token>/", text)


def document_info(manifest: Manifest, signer: str | None) -> DocumentInfo:
    sources = [
        {
            "channel": ch.name,
            "url": public_url(ch.url),
            "subdir": s.subdir,
            "source": {**s.source, "url": public_url(s.source.get("url", ch.url))},
        }
        for ch in manifest.channels
        for s in ch.subdirs
    ]
    return DocumentInfo(manifest.archive_id, manifest.created, manifest.tool, signer, manifest.base, sources)


def components(manifest: Manifest, repodata: Mapping[tuple[str, str], Repodata]) -> list[Component]:
    """The package files the archive carries, with their records (``repodata[(channel, subdir)]``)."""
    groups: dict[tuple[str, str], list[Component]] = {}
    for ch in manifest.channels:
        url = public_url(ch.url)
        for sub in ch.subdirs:
            rd = repodata.get((ch.name, sub.subdir))
            groups.setdefault((ch.name, sub.subdir), []).extend(
                Component(ch.name, url, sub.subdir, p.filename, p.sha256, p.size, (rd.get(p.filename) if rd is not None else None) or {})
                for p in sub.packages
            )
    out: list[Component] = []
    for key in sorted(groups):  # by channel and subdir, then by name and file name within each
        group = groups[key]
        if any("\0" in c.name for c in group):  # an odd record's name: the pair itself
            group.sort(key=lambda c: (c.name, c.filename))
        else:  # one string per file, compared at C speed: "name\0file" sorts as (name, file) when no name holds a NUL
            group.sort(key=lambda c: f"{c.name}\0{c.filename}")
        out += group
    return out


def _serial(archive_id: str) -> str:
    try:
        return uuid.UUID(hex=archive_id).urn
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, "airgap:" + archive_id).urn


def _tool(tool: str) -> tuple[str, str]:
    name, _, version = tool.partition(" ")
    return name or "airgap", version or "unknown"


def _web(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _source_lines(info: DocumentInfo) -> list[str]:
    lines = []
    for s in info.sources:
        src = s["source"]
        lines.append(f"{s['channel']}/{s['subdir']}: {src.get('url', s['url'])} sha256 {src.get('sha256')} fetched {src.get('fetched')}")
    return lines


def cyclonedx(info: DocumentInfo, comps: list[Component]) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM (as a JSON-ready dict): the specification of what
    :func:`airgap.core.sbom_stream.cyclonedx_pieces` writes, byte for byte, without the dicts."""
    components_json = []
    suppliers: dict[tuple[str, str], dict[str, Any]] = {}  # one per channel, shared (the encoder writes it each time)
    md5_ok = _MD5.match
    for c in comps:
        record = c.record
        hashes = [{"alg": "SHA-256", "content": c.sha256}]
        md5 = record.get("md5")
        if isinstance(md5, str) and md5_ok(md5):
            hashes.append({"alg": "MD5", "content": md5})
        web = _web(c.channel_url)
        supplier = suppliers.get((c.channel, c.channel_url))
        if supplier is None:
            supplier = suppliers[(c.channel, c.channel_url)] = {"name": c.channel, **({"url": [c.channel_url]} if web else {})}
        purl_ = c.purl
        item: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl_,
            "supplier": supplier,
            "name": c.name,
            "version": c.version,
            "hashes": hashes,
        }
        text = record.get("license")
        if isinstance(text, str) and text.strip():
            expr = to_spdx(text)
            item["licenses"] = [{"expression": expr}] if expr else [{"license": {"name": text.strip()}}]
        item["purl"] = purl_
        if web:
            item["externalReferences"] = [{"type": "distribution", "url": f"{c.channel_url.rstrip('/')}/{c.subdir}/{c.filename}"}]
        item["properties"] = [{"name": "airgap:filename", "value": c.filename}, {"name": "airgap:size", "value": str(c.size)}]
        components_json.append(item)
    deps = [{"ref": comps[i].purl, "dependsOn": [comps[j].purl for j in js]} for i, js in enumerate(dependencies(comps))]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": _serial(info.archive_id),
        "version": 1,
        "metadata": metadata(info),
        "components": components_json,
        "dependencies": deps,
    }


def metadata(info: DocumentInfo) -> dict[str, Any]:
    """The CycloneDX document's ``metadata``: the archive, the tool, the signer, the sources."""
    name, version = _tool(info.tool)
    props = [{"name": "airgap:archive_id", "value": info.archive_id}, {"name": "airgap:signer", "value": info.signer or "unsigned"}]
    if info.base:
        props.append({"name": "airgap:base", "value": info.base})
    props += [{"name": "airgap:source", "value": line} for line in _source_lines(info)]
    return {
        "timestamp": info.created,
        "tools": {"components": [{"type": "application", "name": name, "version": version}]},
        "component": {
            "type": "file",
            "bom-ref": f"airgap-archive-{info.archive_id}",
            "name": f"airgap archive {info.archive_id}",
            "version": info.created,
        },
        "properties": props,
    }


def _download_location(c: Component) -> str:
    """The upstream URL of the file where SPDX tools accept it: a host name with a domain (not an IP address,
    not ``localhost``, not a ``file:`` URL); else NOASSERTION (the package comment still names the file)."""
    host = urllib.parse.urlsplit(c.channel_url).hostname or ""
    if _web(c.channel_url) and re.fullmatch(r"([a-z0-9-]+\.)+[a-z]{2,}", host):
        return f"{c.channel_url.rstrip('/')}/{c.subdir}/{urllib.parse.quote(c.filename)}"
    return "NOASSERTION"


def _license_ref(text: str) -> str:
    slug = _SPDX_REF.sub("-", text.strip()).strip("-.")[:40] or "unnamed"
    return f"LicenseRef-{slug}-{hashlib.sha256(text.strip().encode()).hexdigest()[:8]}"


def spdx(info: DocumentInfo, comps: list[Component]) -> dict[str, Any]:
    """An SPDX 2.3 document (as a JSON-ready dict)."""
    name, version = _tool(info.tool)
    extracted: dict[str, dict[str, str]] = {}
    packages = []
    relationships = []
    for i, c in enumerate(comps):
        spdx_id = f"SPDXRef-Package-{i + 1}"
        checksums = [{"algorithm": "SHA256", "checksumValue": c.sha256}]
        md5 = c.record.get("md5")
        if isinstance(md5, str) and _MD5.match(md5):
            checksums.append({"algorithm": "MD5", "checksumValue": md5})
        text = c.record.get("license")
        declared = "NOASSERTION"
        if isinstance(text, str) and text.strip():
            declared = to_spdx(text) or _license_ref(text)
            if declared.startswith("LicenseRef-") and declared not in extracted:
                extracted[declared] = {"licenseId": declared, "extractedText": text.strip(), "name": text.strip()[:200]}
        packages.append(
            {
                "SPDXID": spdx_id,
                "name": c.name,
                "versionInfo": c.version,
                "packageFileName": c.filename,
                "supplier": f"Organization: {c.channel}",
                "downloadLocation": _download_location(c),
                "filesAnalyzed": False,
                "checksums": checksums,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": declared,
                "copyrightText": "NOASSERTION",
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": c.purl}],
                "comment": f"{c.channel}/{c.subdir}/{c.filename}, {c.size} bytes, from {c.channel_url}",
            }
        )
        relationships.append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": spdx_id})
    for i, js in enumerate(dependencies(comps)):
        for j in js:
            relationships.append(
                {
                    "spdxElementId": f"SPDXRef-Package-{i + 1}",
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": f"SPDXRef-Package-{j + 1}",
                }
            )
    about = [f"airgap archive {info.archive_id}", f"signer key id: {info.signer or 'unsigned'}"]
    if info.base:
        about.append(f"delta on base {info.base}")
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"airgap-archive-{info.archive_id}",
        "documentNamespace": f"https://spdx.org/spdxdocs/airgap-archive-{info.archive_id}",
        "creationInfo": {"created": info.created, "creators": [f"Tool: {name}-{version}"], "comment": "; ".join(about)},
        "comment": "upstream repodata: " + " | ".join(_source_lines(info)),
        "packages": packages,
        "relationships": relationships,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = list(extracted.values())
    return doc


def to_bytes(doc: Mapping[str, Any]) -> bytes:
    """The document as written to files and stdout: compact JSON (an SBOM of 300,000 files is large), UTF-8, one line.

    msgspec writes the same bytes as ``json.dumps(doc, ensure_ascii=False, separators=(",", ":"))``
    for what the documents hold (strings, integers, booleans, lists, dicts: every value is built
    here, never a float; tests/test_sbom_bytes.py compares them), at a tenth of the cost."""
    return jsonbytes.encode(doc) + b"\n"


def render(kind: str, manifest: Manifest, repodata: Mapping[tuple[str, str], Repodata], signer: str | None) -> bytes:
    """``kind`` "cyclonedx" or "spdx": the archive's SBOM as bytes."""
    return b"".join(pieces(kind, manifest, repodata, signer))


def pieces(kind: str, manifest: Manifest, repodata: Mapping[tuple[str, str], Repodata], signer: str | None) -> Iterator[bytes]:
    """:func:`render` in pieces: a CycloneDX document of 300,000 files is never held whole as objects."""
    from .sbom_stream import cyclonedx_pieces  # it builds on this module

    info = document_info(manifest, signer)
    comps = components(manifest, repodata)
    if kind == "cyclonedx":
        yield from cyclonedx_pieces(info, comps)
    else:
        yield to_bytes(spdx(info, comps))
