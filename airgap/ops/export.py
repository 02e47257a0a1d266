"""Export: upstream repodata → filter → download into the cache → signed archive.

Wires the pieces; owns no format knowledge. The plan (:mod:`.plan`) decides what crosses,
:mod:`.collect` downloads and verifies it and builds the manifest, :mod:`.volumes` splits it
if asked; only then is the archive file opened. Any failed download fails the export with a
per-file summary and no archive is written.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import leftovers
from ..archive.writer import BadBlob, write_archive
from ..clock import Clock
from ..config import Config
from ..core.manifest import Manifest
from ..core.receipt import Receipt, ReceiptError
from ..core.receipt_fast import parse_receipt_fast
from ..errors import UsageError
from ..limits import MAX_RECEIPT_BYTES, read_small_file
from ..progress import Progress, null_progress
from ..signing import Signer
from ..upstream.fetch import Fetcher
from . import export_body as body
from .collect import Collected, collect
from .local_files import check_unread
from .options import ExportOptions
from .output_check import archive_write_error, check_output, planned_archive_bytes
from .plan import Plan, check_installable, make_plan
from .sources import fetcher_for, filters_from_config, resolve_channels
from .volumes import split_into_volumes

__all__ = ["ExportResult", "filters_from_config", "load_receipt", "resolve_channels", "run_export"]


@dataclass
class ExportResult:
    archive: Path
    archive_id: str
    signer: str | None
    packages: int
    package_bytes: int
    archive_bytes: int
    downloaded: int
    downloaded_bytes: int
    cached: int
    excluded: int
    channels: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> subdir -> packages
    volumes: list[str] = field(default_factory=list)  # the volume files, when split

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, archive=str(self.archive))


def run_export(
    config: Config,
    options: ExportOptions,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> ExportResult:
    with _no_cycle_collection():
        return _run_export(config, options, fetcher, progress, clock)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """No cyclic garbage collection while the export runs (reference counting still frees nearly everything).

    An export holds every selected record (a 300,000-record subdir is millions of objects) and
    builds the manifest and the SBOM, a few objects per file, on top: the collector's full passes
    walked all of it again and again, 2.8 s of a 30,000-file export (docs/performance.md). What an
    export leaves in cycles is small; the collector is back on when it returns or fails.

    Everything the export made is then in the young generation, which the first allocation after
    enabling walks (0.4 s at 300,000 files). When the program ends right after the command
    (:mod:`airgap.leftovers`), it is frozen out of collections first: no walk at all."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            leftovers.collect_again()


def _run_export(config: Config, options: ExportOptions, fetcher: Fetcher | None, progress: Progress, clock: Clock) -> ExportResult:
    filters = filters_from_config(config)
    archive = Path(options.archive)
    if not archive.parent.is_dir():
        raise UsageError(f"{archive}: expected an existing directory to write the archive in, found none")
    with contextlib.ExitStack() as stack:
        with fetcher_for(config, fetcher) as f:
            plan = make_plan(config, filters, f, progress)
            check_installable(
                plan, filters, list(options.installable or config.installable), options.allow_unsolvable, config.virtual_packages
            )
            base = load_receipt(options.since) if options.since is not None else None
            subdirs = sum(len(subs) for subs in plan.selections.values())
            check_output(archive, planned_archive_bytes(plan.wants, subdirs, base))  # before any download
            # the package members begin now, in a child, where that is sure to pay (airgap/ops/export_body.py)
            early = body.start_early(plan, config, options, archive, clock, stack) if base is None else None
            got = collect(config, filters, plan, f, progress, clock, base, read_local=False)  # file:// files: read once, by the writer
        try:
            manifest, written = _write(got, plan, options, archive, progress, clock, early, stack)
        except BadBlob as exc:  # a file:// file not what its record says? name every such file, as collect would
            bad = check_unread(got.cache, "no archive was written") if got.cache.unread else None
            if bad is None:
                raise
            raise bad from exc
    totals = manifest.totals()
    leftovers.keep(plan, got, manifest)  # millions of objects: the process's end frees them at once (airgap/leftovers.py)
    return ExportResult(
        archive=archive,
        archive_id=manifest.archive_id,
        signer=options.signer.keyid if options.signer else None,
        packages=totals["packages"],
        package_bytes=totals["package_bytes"],
        archive_bytes=sum(t.stat().st_size for t in written),
        downloaded=got.downloaded,
        downloaded_bytes=got.downloaded_bytes,
        cached=got.cached,
        excluded=got.excluded,
        channels=got.channels,
        volumes=[str(t) for t in written] if options.volume_size is not None else [],
    )


def _write(
    got: Collected,
    plan: Plan,
    options: ExportOptions,
    archive: Path,
    progress: Progress,
    clock: Clock,
    early: body.Child | None,
    stack: contextlib.ExitStack,
) -> tuple[Manifest, list[Path]]:
    """The archive (or its volumes); the package members by a child process where that pays (:mod:`.export_body`):
    the SBOM renders (in :func:`_final_manifest`) while it writes."""
    child = body.matching(early, got) if early is not None else None
    if child is None and options.sbom and options.volume_size is None:
        child = body.start_late(got, archive, clock, stack)
    manifest = _final_manifest(got, plan, options)
    split = options.volume_size is not None
    return manifest, _write_volumes(manifest, got, archive, options.signer, progress, clock, split=split, child=child)


def _final_manifest(got: Collected, plan: Plan, options: ExportOptions) -> Manifest:
    """The collected manifest with its SBOM attached (unless asked not to) and split into volumes (if asked)."""
    manifest, signer = got.manifest, options.signer
    if options.sbom:  # a signed SBOM blob the manifest names (airgap/ops/review.py)
        from .review import attach_sbom

        records = {(c, s): fr.repodata for c, subs in plan.fetched.items() for s, fr in subs.items()}
        manifest = attach_sbom(manifest, got.cache, records, signer.keyid if signer is not None else None)
    if options.volume_size is not None:
        signature_size = len(signer.sign(b"")) if signer is not None else None
        manifest = split_into_volumes(manifest, options.volume_size, signature_size)
    return manifest


def _write_volumes(
    manifest: Manifest,
    got: Collected,
    archive: Path,
    signer: Signer | None,
    progress: Progress,
    clock: Clock,
    *,
    split: bool,
    child: body.Child | None = None,
) -> list[Path]:
    """Sign the manifest and write the archive (``split``: each volume, ARCHIVE.001 ...); all volumes or none are left behind.
    ``child``: its package members (the manifest's last blobs) are appended to the one archive file (:mod:`.export_body`)."""
    targets = [archive.with_name(f"{archive.name}.{n:03d}") for n in range(1, manifest.volumes + 1)] if split else [archive]
    manifest_bytes = manifest.to_bytes()
    signature = signer.sign(manifest_bytes) if signer is not None else None
    bar = progress("archive", sum(b.size for b in manifest.blobs), files=len(manifest.blobs))
    update, done = (child.tally.update, child.tally.file_done) if child is not None else (bar.update, bar.file_done)
    if child is not None:
        child.tally.attach(bar)  # what the child reported so far, and from now on
    written: list[Path] = []
    try:
        for number, target in enumerate(targets, start=1):
            blobs = [b for b in manifest.blobs if (b.volume or 1) == number]
            if child is not None:  # the head only: the SBOM joins the repodata blobs, before the packages
                blobs = blobs[: len(blobs) - child.count]
                assert all(b.kind in ("repodata", "sbom") for b in blobs)
            write_archive(
                target,
                manifest_bytes,
                signature,
                ((b.sha256, b.size, got.cache.file(b.sha256)) for b in blobs),
                child.mtime if child is not None else int(clock()),
                update,
                done,
                fresh=got.fresh | got.cache.made,  # the repodata and SBOM blobs: hashed as they were written
                body=child.process.result if child is not None else None,
            )
            written.append(target)
    except BaseException as exc:
        for target in written:  # all volumes or none
            target.unlink(missing_ok=True)
        named = archive_write_error(targets[len(written)], exc) if isinstance(exc, OSError) else None
        if named is not None:
            raise named from exc
        raise
    bar.close()
    return written


def load_receipt(path: Path) -> Receipt:
    try:
        data = read_small_file(path, MAX_RECEIPT_BYTES, "a receipt (DEST/.airgap/receipt.json)")
    except FileNotFoundError:
        raise UsageError(f"--since {path}: expected a receipt (DEST/.airgap/receipt.json), found nothing at that path") from None
    except OSError as exc:
        raise UsageError(f"--since {path}: expected a receipt (DEST/.airgap/receipt.json), cannot read it: {exc.strerror}") from None
    try:
        return parse_receipt_fast(data, f"--since {path}")  # the same receipt as parse_receipt_bytes, sooner
    except ReceiptError as exc:
        raise UsageError(f"{exc} (expected an airgap receipt)") from None
