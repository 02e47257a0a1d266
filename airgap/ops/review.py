"""Review before crossing: the SBOM an export puts into its archive, ``inspect --sbom`` and the review pages.

Reads only the manifest, the signature, the repodata blobs and the SBOM blob of an archive
(each blob hashed against the signed manifest); package blobs are skipped unread. With trusted
keys the signature is checked before anything else is parsed, and a bad one stops everything.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import mmap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter, countOf
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.reader import ArchiveStream, copy_verified
from ..clock import Clock, timestamp
from ..core import licenses, sbom
from ..core.manifest import SBOM_ZSTD, BlobEntry, Manifest, SbomRef, parse_manifest
from ..core.repodata import Repodata, record_hashes
from ..core.review import Package, Review, render
from ..errors import UsageError
from ..signing import TrustedKeys
from . import sbom_blob
from ._archive import load_repodata_blob

if TYPE_CHECKING:
    from ..config import Config
    from ..upstream.cache import BlobCache  # the import side never fetches: urllib3 loads slowly
    from .plan import Plan

log = logging.getLogger(__name__)
SBOM_NAME = "sbom/{archive_id}.cdx.json"  # under the destination's state folder (.airgap/)


@dataclass
class ArchiveDocs:
    manifest: Manifest
    signer: str | None
    checked: bool
    repodata: dict[tuple[str, str], Repodata]
    sbom: bytes | None  # the archive's own SBOM blob (verified), if it carries one


def read_documents(path: Path, trusted: TrustedKeys | None) -> ArchiveDocs:
    """The manifest, the signer and every repodata (and SBOM) blob of an archive, verified."""
    path = Path(path)
    with ArchiveStream(path) as stream:
        manifest_bytes, sig = stream.read_header()
        signer: str | None = None
        checked = False
        if trusted is not None and trusted.keys:
            if sig is None:
                from ..errors import SignatureError

                raise SignatureError(f"{path}: expected a signed archive (manifest.sig) for the trusted keys given, found none")
            signer, checked = trusted.verify(manifest_bytes, sig), True
        elif sig is not None:
            try:
                signer = str(json.loads(sig)["keyid"])
            except (ValueError, KeyError, TypeError):
                signer = None
        manifest = parse_manifest(manifest_bytes)
        wanted = {b.sha256: b for b in manifest.blobs if b.kind in ("repodata", "sbom")}
        here = stream.peek_blob()
        volume = manifest.blob_index()[here].volume if here in manifest.blob_index() else None
        elsewhere = sorted({b.volume for b in wanted.values() if b.volume is not None and b.volume != (volume or 1)})
        if elsewhere:
            raise UsageError(
                f"{path}: expected the archive's first volume (it holds the repodata), found volume {volume}; give volume {elsewhere[0]:03d}"
            )
        got: dict[str, bytes] = {}
        for entry, fh in stream.blobs(manifest):
            if entry.sha256 in wanted:
                buf = io.BytesIO()
                copy_verified(fh, entry, buf, f"{path}: blobs/sha256/{entry.sha256}")
                got[entry.sha256] = buf.getvalue()
                if len(got) == len(wanted):
                    break  # package blobs are not needed: stop reading
        missing = [sha for sha in wanted if sha not in got]
        if missing:
            from ..errors import ArchiveFormatError

            raise ArchiveFormatError(f"{path}: expected blobs/sha256/{missing[0]} (listed in the manifest), found none")
    repodata = {}
    for ch in manifest.channels:
        for sub in ch.subdirs:
            repodata[(ch.name, sub.subdir)] = load_repodata_blob(got[sub.repodata.sha256], sub, ch.name, f"{ch.name}/{sub.subdir} repodata")
    return ArchiveDocs(manifest, signer, checked, repodata, got.get(manifest.sbom.sha256) if manifest.sbom else None)


def run_sbom(path: Path, kind: str, trusted: TrustedKeys | None) -> bytes:
    """``inspect --sbom``: the archive's SBOM in ``kind`` ("cyclonedx" or "spdx")."""
    docs = read_documents(path, trusted)
    return sbom.render(kind, docs.manifest, docs.repodata, docs.signer)


def attach_sbom(manifest: Manifest, cache: BlobCache, repodata: Mapping[tuple[str, str], Repodata], signer: str | None) -> Manifest:
    """Export: put the CycloneDX SBOM into the cache and name it in the manifest (after the repodata blobs).

    Written to the cache piece by piece as it is rendered (and hashed on the way): the SBOM of
    300,000 files is some 330 MB, never held whole."""
    stored = sbom_blob.store(cache, sbom.pieces("cyclonedx", manifest, repodata, signer))  # zstd (docs/decisions/0011)
    sha, size = stored.sha256, stored.size
    blobs = list(manifest.blobs)
    if sha in map(attrgetter("sha256"), blobs):  # cannot happen (a package is no JSON), but never list a blob twice
        raise UsageError("sbom: expected a blob of its own, found the same bytes as another blob")
    at = countOf(map(attrgetter("kind"), blobs), "repodata")  # at C speed: 300,000 blobs
    blobs.insert(at, BlobEntry(sha, size, "sbom"))
    ref = SbomRef(sha, size, SBOM_ZSTD, stored.raw_size) if sbom_blob.COMPRESS else SbomRef(sha, size, sbom.CYCLONEDX_FORMAT)
    return dataclasses.replace(manifest, blobs=tuple(blobs), sbom=ref)


def _package(channel: str, subdir: str, filename: str, record: Mapping[str, Any], size: int | None, sha256: str | None) -> Package:
    text = record.get("license")
    return Package(
        channel,
        subdir,
        filename,
        str(record.get("name") or filename),
        str(record.get("version") or ""),
        size,
        sha256,
        text if isinstance(text, str) and text.strip() else None,
        licenses.family(record),
    )


def _sources(manifest_channels: list[tuple[str, str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {
            "channel": c,
            "subdir": s,
            "url": sbom.public_url(src.get("url", url)),
            "sha256": src.get("sha256"),
            "size": src.get("size"),
            "fetched": src.get("fetched"),
        }
        for c, url, s, src in manifest_channels
    ]


def archive_review(docs: ArchiveDocs) -> Review:
    m = docs.manifest
    carried = []
    for ch in m.channels:
        for sub in ch.subdirs:
            rd = docs.repodata[(ch.name, sub.subdir)]
            for p in sub.packages:
                carried.append(_package(ch.name, sub.subdir, p.filename, rd.get(p.filename) or {}, p.size, p.sha256))
    note = (
        "verified against a trusted key"
        if docs.checked
        else "signature NOT checked: no trusted key given"
        if docs.signer
        else "no signature"
    )
    return Review(
        stage="archive",
        archive_id=m.archive_id,
        created=m.created,
        tool=m.tool,
        signer=docs.signer,
        signer_note=note,
        base=m.base,
        sources=_sources([(ch.name, ch.url, s.subdir, s.source) for ch in m.channels for s in ch.subdirs]),
        filters=m.filters,
        totals=m.totals(),
        carried=carried,
        present=sum(len(s.present) for ch in m.channels for s in ch.subdirs),
        removed=[(ch.name, s.subdir, fn) for ch in m.channels for s in ch.subdirs for fn in s.removals],
        installers=[{**i.to_json(), "url": sbom.public_url(i.url)} for i in m.installers],
        sbom=f"{m.sbom.format}, sha256 {m.sbom.sha256}" if m.sbom else None,
    )


def run_review_page(path: Path, trusted: TrustedKeys | None) -> str:
    """``inspect --html``: the review page of an archive."""
    return render(archive_review(read_documents(path, trusted)))


def plan_review(
    plan: Plan, filters: Mapping[str, Any], tool: str, created: str, signer: str | None, base: Mapping[str, Any] | None = None
) -> Review:
    """``export --plan --html``: the review page of what an export would carry, with what the filters exclude.

    With ``base`` (a destination's receipt, ``--since``) the page shows the delta: files the base
    holds with the same sha256 are not carried, files it holds that the selection drops are removed.
    """
    held: Mapping[str, Any] = base.get("channels", {}) if base is not None else {}
    carried, present, removed = [], 0, []
    sources = []
    for cname, subs in plan.selections.items():
        for subdir, sel in sorted(subs.items()):
            fr = plan.fetched[cname][subdir]
            sources.append(
                {
                    "channel": cname,
                    "subdir": subdir,
                    "url": sbom.public_url(fr.url),
                    "sha256": fr.sha256,
                    "size": fr.size,
                    "fetched": fr.fetched,
                }
            )
            have = held.get(cname, {}).get(subdir, {}) if base is not None else {}
            for filename in sel.selected:
                record = fr.repodata.get(filename) or {}
                sha, _md5, size = record_hashes(record)
                rec = have.get(filename)
                if isinstance(rec, dict) and sha is not None and rec.get("sha256") == sha:
                    present += 1
                    continue
                carried.append(_package(cname, subdir, filename, record, size, sha))
            if base is not None:
                removed += [(cname, subdir, fn) for fn in sorted(set(have) - set(sel.selected))]
    excluded = [(c, s, fn, reason) for c, subs in plan.selections.items() for s, sel in subs.items() for fn, reason in sel.excluded.items()]
    note = "the key the export will sign with" if signer else "no signing key given: the archive would be UNSIGNED"
    return Review(
        stage="plan",
        archive_id=None,
        created=created,
        tool=tool,
        signer=signer,
        signer_note=note,
        base="the receipt given with --since" if base is not None else None,
        sources=sources,
        filters=filters,
        totals={"packages": len(carried), "package_bytes": sum(p.size or 0 for p in carried)},
        carried=carried,
        present=present,
        removed=removed,
        excluded=excluded,
        installers=[{"dir": i.dir, "filename": i.filename, "url": sbom.public_url(i.url), "sha256": i.sha256} for i in plan.installers],
    )


def write_page(target: Path, page: str) -> None:
    """Write the page atomically (a reviewer never opens half a page)."""
    from .._fs import atomic_write_bytes

    target = Path(target)
    if not target.parent.is_dir():
        raise UsageError(f"--html {target}: expected an existing folder to write the page in, found none")
    atomic_write_bytes(target, page.encode("utf-8"), durable=False)


def keep_sbom(change: Any, manifest: Manifest, blobs: Mapping[str, bytes | mmap.mmap]) -> str | None:
    """Import: keep the archive's SBOM at the destination (``.airgap/sbom/<id>.cdx.json``, decompressed as it is
    written; a large one ``.cdx.json.zst``, as the archive holds it: :func:`.sbom_blob.kept`); None if it keeps none."""
    if manifest.sbom is None or manifest.sbom.sha256 not in blobs:
        return None
    compressed, kept = sbom_blob.kept(manifest.sbom, blobs[manifest.sbom.sha256])
    name = SBOM_NAME.format(archive_id=manifest.archive_id) + (".zst" if compressed else "")
    where: str | None = change.put_document(name, kept)
    if where is None:
        log.info("this destination keeps no SBOM; archive %s carries it (airgap inspect ARCHIVE --sbom cyclonedx)", manifest.archive_id)
    return where


def with_sboms(receipt: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last import's receipt entry, plus ``sboms``: every kept SBOM, newest first (for the channel pages)."""
    archives = [a for a in receipt.get("archives", []) if isinstance(a, dict)]
    if not archives:
        return None
    sboms = [
        {"archive_id": a.get("archive_id"), "created": a.get("created"), "path": a["sbom"]}
        for a in reversed(archives)
        if isinstance(a.get("sbom"), str)
    ]
    return {**archives[-1], "sboms": sboms}


def plan_page(plan: Plan, config: Config, target: Path, signer: str | None, since: Path | None, clock: Clock = time.time) -> None:
    """``export --plan --html``: write the review page of a plan (nothing downloaded)."""
    from .. import __version__
    from .export import load_receipt
    from .sources import filters_from_config

    base = load_receipt(since) if since is not None else None
    created = timestamp(clock())
    review = plan_review(
        plan, filters_from_config(config).to_json(), f"airgap {__version__}", created, signer, base.to_json() if base is not None else None
    )
    write_page(target, render(review))


def run_review(path: Path, trusted: TrustedKeys | None, *, sbom_format: str | None, html: Path | None) -> bytes | None:
    """``inspect --sbom/--html``: write the review page (``html``) and return the SBOM (``sbom_format``), if asked.
    With trusted keys nothing is written unless the signature verifies."""
    docs = read_documents(path, trusted)
    if html is not None:
        write_page(html, render(archive_review(docs)))
    if sbom_format:
        return sbom.render(sbom_format, docs.manifest, docs.repodata, docs.signer)
    return None
