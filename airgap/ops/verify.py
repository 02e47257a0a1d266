"""Verify an archive completely (signature, format, every member and hash) and describe it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.reader import ArchiveStream
from ..core.manifest import Manifest, parse_manifest
from ..progress import Progress, null_progress
from ..redact import redact, redact_doc
from ..signing import TrustedKeys
from ._archive import load_repodata_blob, open_set, stream_blobs


@dataclass
class VerifyResult:
    archive: str
    archive_id: str
    signer: str | None
    blobs: int
    bytes: int
    packages: int  # package blobs checked (a file shared by two channels counts once)
    volumes: list[int] | None = None
    of_volumes: int = 1

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_verify(
    archive: Path | list[Path], trusted: TrustedKeys, *, allow_unsigned: bool = False, progress: Progress = null_progress
) -> VerifyResult:
    """Verify an archive, or any volumes of one: each volume verifies alone (its own blobs)."""
    paths = [Path(p) for p in archive] if isinstance(archive, list) else [Path(archive)]
    opened = open_set(paths, trusted, allow_unsigned, complete=False)
    manifest = opened.manifest
    with opened.stream:
        repodata = stream_blobs(opened, progress, "verify")
    for ch in manifest.channels:
        for sub in ch.subdirs:
            if sub.repodata.sha256 in repodata:  # a volume without it is checked where it is
                load_repodata_blob(repodata[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
    here = [b for b in manifest.blobs if (b.volume or 1) in opened.volumes]
    packages = sum(1 for b in here if b.kind == "package")
    return VerifyResult(
        ", ".join(str(p) for p in paths),
        manifest.archive_id,
        opened.signer,
        len(here),
        sum(b.size for b in here),
        packages,
        list(opened.volumes),
        manifest.volumes,
    )


@dataclass(frozen=True)
class SubdirSummary:
    """One subdir of an archive as ``inspect`` shows it (its source's URL without credentials)."""

    subdir: str
    packages: int
    bytes: int
    source: dict[str, Any]
    present: int
    removals: tuple[str, ...]
    shadowed: tuple[str, ...]
    names: tuple[str, ...] | None = None  # a delta (airgap/2): the package names whose records it carries
    gone: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.__dict__, source=dict(self.source), removals=list(self.removals), shadowed=list(self.shadowed))
        if self.names is None:
            del doc["names"], doc["gone"]
        else:
            doc.update(names=list(self.names), gone=list(self.gone))
        return doc


@dataclass(frozen=True)
class ChannelSummary:
    name: str
    url: str  # without credentials
    subdirs: tuple[SubdirSummary, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "subdirs": [s.to_json() for s in self.subdirs]}


@dataclass
class Inspection:
    manifest: Manifest
    signature_keyid: str | None
    signature_checked: bool
    manifest_bytes: int
    archive_bytes: int
    channels: list[ChannelSummary] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        doc: dict[str, Any] = redact_doc(
            {  # an archive written before redaction existed may carry a channel's credentials
                "format": m.format,
                "archive_id": m.archive_id,
                "created": m.created,
                "tool": m.tool,
                "base": m.base,
                "bases": {c: b.to_json() for c, b in m.bases.items()},
                "filters": dict(m.filters),
                "signer": self.signature_keyid,
                "signature_checked": self.signature_checked,
                "archive_bytes": self.archive_bytes,
                "manifest_bytes": self.manifest_bytes,
                "totals": m.totals(),
                "channels": [c.to_json() for c in self.channels],
                "installers": [i.to_json() for i in m.installers],
                "sbom": m.sbom.to_json() if m.sbom is not None else None,
            }
        )
        return doc


def run_inspect(archive: Path, trusted: TrustedKeys | None = None) -> Inspection:
    """Describe an archive from its manifest; checks the signature only if keys are given."""
    import json

    archive = Path(archive)
    with ArchiveStream(archive) as stream:
        manifest_bytes, sig = stream.read_header()
    keyid: str | None = None
    checked = False
    if sig is not None:
        if trusted is not None and trusted.keys:
            keyid = trusted.verify(manifest_bytes, sig)
            checked = True
        else:
            try:
                keyid = json.loads(sig)["keyid"]
            except (ValueError, KeyError, TypeError):
                keyid = None
    manifest = parse_manifest(manifest_bytes)
    channels = [
        ChannelSummary(
            ch.name,
            redact(ch.url),  # an archive written before redaction existed may carry a channel's credentials
            tuple(
                SubdirSummary(
                    s.subdir,
                    len(s.packages),
                    sum(p.size for p in s.packages),
                    redact_doc(dict(s.source)),
                    len(s.present),
                    tuple(s.removals),
                    tuple(s.shadowed),
                    s.names,
                    s.gone,
                )
                for s in ch.subdirs
            ),
        )
        for ch in manifest.channels
    ]
    return Inspection(manifest, keyid, checked, len(manifest_bytes), archive.stat().st_size, channels)
