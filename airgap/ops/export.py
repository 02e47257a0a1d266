"""Export: upstream repodata → filter → download into the cache → signed archive.

Wires the pieces; owns no format knowledge. The manifest is complete (every blob downloaded
and verified) before the archive file is opened; any failed download fails the export with a
per-file summary and no archive is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import logging
import os
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, environments, installable
from ..archive.writer import write_archive
from ..cache import BlobCache, Expected
from ..channel_map import distinct_names, export_names, match
from ..compress import zstd_compress
from ..config import Config
from ..delta import DeltaBase
from ..errors import ConfigError, DownloadError, UnsolvableError, UpstreamError, UsageError
from ..fetch import Fetcher
from ..filters import Filters, Selection, select_channel
from ..installable import SolveOutcome
from ..limits import MAX_RECEIPT_BYTES, read_small_file
from ..manifest import (
    BlobEntry,
    ChannelEntry,
    InstallerEntry,
    Manifest,
    PackageEntry,
    RepodataBlob,
    SubdirEntry,
    is_safe_channel_name,
    is_safe_installer_filename,
)
from ..merging import shadowing
from ..network import network_from
from ..placement import installer_problem
from ..progress import Progress, null_progress
from ..receipt import Receipt, ReceiptError, parse_receipt_bytes
from ..redact import redact
from ..repodata import record_hashes
from ..signing import Signer
from ..upstream import Channel, FetchedRepodata, channel_from_string, fetch_channel, list_directory
from .output_check import archive_write_error, check_output, planned_archive_bytes

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Want:
    channel: str
    subdir: str
    filename: str
    url: str
    expected: Expected


def filters_from_config(config: Config) -> Filters:
    unsupported = config.unsupported_in_use()
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)}: expected the default value, found a setting this airgap version "
            f"does not implement yet; remove it rather than get a mirror that silently ignores it"
        )
    if not config.channels:
        raise ConfigError("channels: expected at least one upstream channel, found none")
    filters = Filters(
        platforms=config.platforms,
        pkg_list=config.pkg_list,
        license_blacklist=tuple(f.upper() for f in config.license_blacklist),
        blacklist=config.blacklist,
        whitelist=config.whitelist,
        python_versions=config.python_versions,
        include=config.include,
        exclude=config.exclude,
        latest=config.latest,
        snapshot_date=config.snapshot_date,
        with_dependencies=config.with_dependencies,
    )
    filters.validate()
    return filters


def resolve_channels(config: Config) -> list[Channel]:
    channels = distinct_names(export_names(config.channel_map, [channel_from_string(c) for c in config.channels]))
    names: dict[str, str] = {}
    for ch in channels:
        if ch.name in names:
            raise UsageError(
                f"channels: expected channels with distinct names, found two named {ch.name!r} ({names[ch.name]} and {ch.url}); "
                "list each channel once, or name them with channel_map (source URL: destination channel)"
            )
        names[ch.name] = ch.url
    return channels


@dataclass(frozen=True)
class _InstallerWant:
    dir: str
    filename: str
    url: str
    sha256: str | None


def installer_wants(config: Config, fetcher: Fetcher) -> list[_InstallerWant]:
    """The installers to carry: listed by URL (``installers``) or chosen by pattern from
    ``<remote_url><dir_name>/`` listings (``fetch_installers``, ``dir_names``, ``installer_patterns``)."""
    out: list[_InstallerWant] = []
    default_dir = config.dir_names[0] if config.dir_names else "installers"
    for entry in config.installers:
        url = str(entry["url"])
        if "://" not in url:
            url = Path(os.path.abspath(url)).as_uri()
        name = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
        out.append(_InstallerWant(entry.get("dir") or default_dir, name, url, entry.get("sha256")))
    if config.fetch_installers:
        if not config.dir_names:
            raise ConfigError(
                "fetch_installers: expected dir_names too (e.g. ['archive']): the folders under remote_url to take installers from"
            )
        if not config.installer_patterns:
            raise ConfigError(
                "fetch_installers: expected installer_patterns (e.g. ['Miniforge3-*-Linux-x86_64.sh']); "
                "refusing to carry a whole installer folder"
            )
        for d in config.dir_names:
            base = config.remote_url.rstrip("/") + "/" + d + "/"
            names = [n for n in list_directory(fetcher, base) if any(fnmatch.fnmatchcase(n, pat) for pat in config.installer_patterns)]
            if not names:
                log.warning("%s: no installer matches %s", base, ", ".join(config.installer_patterns))
            out.extend(_InstallerWant(d, n, base + urllib.parse.quote(n), None) for n in names)
    seen: set[tuple[str, str]] = set()
    channel_names = [c.name for c in resolve_channels(config)] + ([config.dest_channel] if config.dest_channel else [])
    for w in out:
        problem = installer_problem(w.dir, w.filename, channel_names)
        if problem:
            raise ConfigError(f"installers: {problem}")
        if not is_safe_channel_name(w.dir) or not is_safe_installer_filename(w.filename):
            raise ConfigError(f"installers: expected a folder and a file name of letters, digits, . _ + - ~ =, found {w.dir}/{w.filename}")
        if (w.dir, w.filename) in seen:
            raise ConfigError(f"installers: expected each installer once, found {w.dir}/{w.filename} twice")
        seen.add((w.dir, w.filename))
    return out


@dataclass
class Plan:
    """What an export would carry: the selection, before any package is downloaded."""

    channels: list[Channel]
    fetched: dict[str, dict[str, FetchedRepodata]]
    selections: dict[str, dict[str, Selection]]  # channel -> subdir -> selection
    wants: list[_Want]
    installers: list[_InstallerWant] = field(default_factory=list)
    installability: list[SolveOutcome] = field(default_factory=list)
    pulled_by: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)  # file -> environments that need it

    @property
    def total_bytes(self) -> int:
        return sum(w.expected.size or 0 for w in self.wants)

    def to_json(self) -> dict[str, Any]:
        packages: list[dict[str, Any]] = [
            {"channel": w.channel, "subdir": w.subdir, "filename": w.filename, "size": w.expected.size, "sha256": w.expected.sha256}
            for w in self.wants
        ]
        if self.pulled_by:
            for p, w in zip(packages, self.wants, strict=True):
                p["environments"] = self.pulled_by.get((w.channel, w.subdir, w.filename), [])
        excluded = [
            {"channel": c, "subdir": s, "filename": fn, "reason": reason}
            for c, subs in self.selections.items()
            for s, sel in subs.items()
            for fn, reason in sorted(sel.excluded.items())
        ]
        doc: dict[str, Any] = {"packages": packages, "excluded": excluded, "total_bytes": self.total_bytes}
        if self.installers:
            doc["installers"] = [{"dir": i.dir, "filename": i.filename, "url": redact(i.url), "sha256": i.sha256} for i in self.installers]
        if self.installability:
            doc["installable"] = [o.to_json() for o in self.installability]
        return doc

    def summary(self) -> dict[str, Any]:
        """Counts and bytes per channel/subdir, and exclusions counted by rule."""
        per: dict[str, dict[str, dict[str, int]]] = {}
        for w in self.wants:
            slot = per.setdefault(w.channel, {}).setdefault(w.subdir, {"packages": 0, "bytes": 0})
            slot["packages"] += 1
            slot["bytes"] += w.expected.size or 0
        rules: dict[str, int] = {}
        for subs in self.selections.values():
            for sel in subs.values():
                for reason in sel.excluded.values():
                    rule = reason.split(":", 1)[0]
                    rules[rule] = rules.get(rule, 0) + 1
        doc: dict[str, Any] = {
            "channels": per,
            "excluded_by_rule": dict(sorted(rules.items(), key=lambda kv: -kv[1])),
            "packages": len(self.wants),
            "total_bytes": self.total_bytes,
        }
        if self.pulled_by:
            doc["environments"] = {
                f"{w.channel}/{w.subdir}/{w.filename}": self.pulled_by.get((w.channel, w.subdir, w.filename), []) for w in self.wants
            }
        return doc


def make_plan(config: Config, filters: Filters, fetcher: Fetcher, progress: Progress = null_progress) -> Plan:
    """Fetch every channel's repodata and decide what crosses; no package is downloaded."""
    channels = resolve_channels(config)
    installers = installer_wants(config, fetcher)  # before any repodata: a config mistake fails fast
    envs = environments.load_all(environments.sources(config)) if config.environments else []
    subdirs = filters.subdirs()
    fetched: dict[str, dict[str, FetchedRepodata]] = {}
    selections: dict[str, dict[str, Selection]] = {}
    bar = progress("repodata", len(channels) * len(subdirs), unit="subdir")
    for ch in channels:
        fetched[ch.name] = fetch_channel(fetcher, ch, subdirs, config.max_repodata_size)
        bar.update(len(subdirs))
        if not envs:
            selections[ch.name] = select_channel({s: fr.repodata for s, fr in fetched[ch.name].items()}, filters)
    bar.close()
    pulled: dict[tuple[str, str, str], list[str]] = {}
    if envs:  # the union of what the environments need (and pkg_list), each file with who pulled it
        selections, pulled = environments.select(config, filters, channels, envs, fetched)
    wants: list[_Want] = []
    for cname, subs in selections.items():
        for subdir, sel in subs.items():
            fr = fetched[cname][subdir]
            for filename in sel.selected:
                record = fr.repodata.get(filename)
                assert record is not None
                sha, md5, size = record_hashes(record)
                if sha is None and md5 is None:
                    raise UpstreamError(f"{fr.url}: {filename}: expected a sha256 or md5 in its record, found neither; cannot verify it")
                wants.append(_Want(cname, subdir, filename, fr.package_url(filename), Expected(sha, md5, size)))
    return Plan(channels, fetched, selections, wants, installers, pulled_by=pulled)


def check_installable(
    plan: Plan,
    filters: Filters,
    specs: list[str],
    allow_unsolvable: bool = False,
    virtual_packages: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """Solve ``specs`` against the plan's records, per platform × python; raise if one fails."""
    if not specs:
        return
    selected = {
        c: {s: plan.fetched[c][s].repodata.subset(set(sel.selected)) for s, sel in subs.items()} for c, subs in plan.selections.items()
    }
    plan.installability = installable.check(selected, specs, list(filters.platforms), list(filters.python_versions), virtual_packages)
    failed = [o for o in plan.installability if not o.ok]
    for o in failed:  # the solver's explanation is a tree: keep its lines
        explanation = "\n".join("    " + line for line in o.message.splitlines() if line.strip())
        log.error("not installable on %s%s; the solver says:\n%s", o.platform, f" with python {o.python}" if o.python else "", explanation)
    if failed and not allow_unsolvable:
        first = failed[0]
        where = f"{first.platform}" + (f" with python {first.python}" if first.python else "")
        raise UnsolvableError(
            f"{', '.join(specs)}: expected to be installable from the selection, but {len(failed)} of "
            f"{len(plan.installability)} solves failed (first: {where}, explained above); widen the filters, "
            f"set with_dependencies, or pass --allow-unsolvable"
        )


def run_plan(
    config: Config,
    *,
    installable_specs: list[str] | None = None,
    allow_unsolvable: bool = False,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
) -> Plan:
    filters = filters_from_config(config)
    with _fetcher(config, fetcher) as f:
        plan = make_plan(config, filters, f, progress)
    check_installable(plan, filters, list(installable_specs or config.installable), allow_unsolvable, config.virtual_packages)
    return plan


@contextlib.contextmanager
def _fetcher(config: Config, given: Fetcher | None) -> Iterator[Fetcher]:
    if given is not None:
        yield given
        return
    with Fetcher(
        workers=config.workers, retries=config.retries, timeout=config.timeout, min_rate=config.min_rate, network=network_from(config)
    ) as f:
        yield f


def run_export(
    config: Config,
    archive: Path,
    signer: Signer | None,
    *,
    installable_specs: list[str] | None = None,
    allow_unsolvable: bool = False,
    volume_size: int | None = None,
    since: Path | None = None,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
    clock: Any = time.time,
    sbom: bool = True,
) -> ExportResult:
    filters = filters_from_config(config)
    archive = Path(archive)
    if not archive.parent.is_dir():
        raise UsageError(f"{archive}: expected an existing directory to write the archive in, found none")
    with _fetcher(config, fetcher) as f:
        plan = make_plan(config, filters, f, progress)
        check_installable(plan, filters, list(installable_specs or config.installable), allow_unsolvable, config.virtual_packages)
        base = load_receipt(since) if since is not None else None
        subdirs = sum(len(subs) for subs in plan.selections.values())
        check_output(archive, planned_archive_bytes(plan.wants, subdirs, base))  # before any download
        return _export(config, filters, plan, archive, signer, f, progress, clock, volume_size, base, sbom)


@dataclass
class Collected:
    """Everything an archive would hold, downloaded and verified in the cache, and its manifest."""

    manifest: Manifest
    cache: BlobCache
    downloaded: int
    downloaded_bytes: int
    cached: int
    excluded: int
    channels: dict[str, dict[str, int]]
    fresh: frozenset[str] = frozenset()  # downloaded (and verified as they arrived) by this process


def _export(
    config: Config,
    filters: Filters,
    plan: Plan,
    archive: Path,
    signer: Signer | None,
    fetcher: Fetcher,
    progress: Progress,
    clock: Any,
    volume_size: int | None = None,
    base: Receipt | None = None,
    sbom: bool = True,
) -> ExportResult:
    got = collect(config, filters, plan, fetcher, progress, clock, base)
    manifest, cache = got.manifest, got.cache
    if sbom:  # a signed SBOM blob the manifest names (airgap/ops/review.py)
        from .review import attach_sbom

        records = {(c, s): fr.repodata for c, subs in plan.fetched.items() for s, fr in subs.items()}
        manifest = attach_sbom(manifest, cache, records, signer.keyid if signer is not None else None)
    signature_size = len(signer.sign(b"")) if signer is not None else None
    targets = [archive]
    if volume_size is not None:
        manifest = split_into_volumes(manifest, volume_size, signature_size)
        targets = [archive.with_name(f"{archive.name}.{n:03d}") for n in range(1, manifest.volumes + 1)]
    manifest_bytes = manifest.to_bytes()
    signature = signer.sign(manifest_bytes) if signer is not None else None
    bar = progress("archive", sum(b.size for b in manifest.blobs), files=len(manifest.blobs))
    written: list[Path] = []
    try:
        for number, target in enumerate(targets, start=1):
            blobs = [b for b in manifest.blobs if (b.volume or 1) == number]
            write_archive(
                target,
                manifest_bytes,
                signature,
                ((b.sha256, b.size, cache.file(b.sha256)) for b in blobs),
                int(clock()),
                bar.update,
                bar.file_done,
                fresh=got.fresh,
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
    totals = manifest.totals()
    return ExportResult(
        archive=archive,
        archive_id=manifest.archive_id,
        signer=signer.keyid if signer else None,
        packages=totals["packages"],
        package_bytes=totals["package_bytes"],
        archive_bytes=sum(t.stat().st_size for t in written),
        downloaded=got.downloaded,
        downloaded_bytes=got.downloaded_bytes,
        cached=got.cached,
        excluded=got.excluded,
        channels=got.channels,
        volumes=[str(t) for t in written] if volume_size is not None else [],
    )


def load_receipt(path: Path) -> Receipt:
    try:
        data = read_small_file(path, MAX_RECEIPT_BYTES, "a receipt (DEST/.airgap/receipt.json)")
    except FileNotFoundError:
        raise UsageError(f"--since {path}: expected a receipt (DEST/.airgap/receipt.json), found nothing at that path") from None
    except OSError as exc:
        raise UsageError(f"--since {path}: expected a receipt (DEST/.airgap/receipt.json), cannot read it: {exc.strerror}") from None
    try:
        return parse_receipt_bytes(data, f"--since {path}")
    except ReceiptError as exc:
        raise UsageError(f"{exc} (expected an airgap receipt)") from None


_BLOCK, _RECORD = 512, 10240  # tar block and record sizes (tarfile's defaults)


def _tar_member(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


def split_into_volumes(manifest: Manifest, volume_size: int, signature_size: int | None) -> Manifest:
    """Assign each blob to a volume so that every volume file (header + its blobs) fits ``volume_size``.

    Every volume repeats the whole signed manifest; the assignment is part of it, so its size is
    estimated generously before the numbers are known (``"volume":NNNN`` on every blob).
    """
    estimate = len(manifest.to_bytes()) + len(manifest.blobs) * len(',"volume":9999')
    header = _tar_member(estimate) + (_tar_member(signature_size) if signature_size is not None else 0)
    end = 2 * _BLOCK  # end-of-archive marker

    def file_size(content: int) -> int:
        return -(-(header + content + end) // _RECORD) * _RECORD

    if file_size(0) > volume_size:
        raise UsageError(f"--volume-size: expected at least {file_size(0)} bytes (every volume carries the manifest), found {volume_size}")
    numbers: dict[str, int] = {}
    current, used = 1, 0
    for b in manifest.blobs:
        need = _tar_member(b.size)
        if file_size(need) > volume_size:
            raise UsageError(
                f"--volume-size: expected room for the largest file ({b.size} bytes, blob {b.sha256[:16]}), found {volume_size} bytes per volume"
            )
        if used and file_size(used + need) > volume_size:
            current, used = current + 1, 0
        numbers[b.sha256] = current
        used += need
    if current > 9999:
        raise UsageError(f"--volume-size: expected at most 9999 volumes, found {current}; use bigger volumes")
    blobs = tuple(dataclasses.replace(b, volume=numbers[b.sha256]) for b in manifest.blobs)
    return dataclasses.replace(manifest, blobs=blobs)


def collect(
    config: Config,
    filters: Filters,
    plan: Plan,
    fetcher: Fetcher,
    progress: Progress,
    clock: Any,
    base: Receipt | None = None,
    unwritten: str = "no archive was written",
) -> Collected:
    """Download what the plan selects into the cache (verified) and build the manifest.

    With ``base`` (a destination's receipt) the manifest is a delta (see airgap.delta): files the
    base holds are listed as ``present`` (no blob, and not downloaded when their record has a
    sha256), files it holds that the selection dropped become ``removals``, and subdirs with
    nothing new, nothing removed and the same upstream repodata (in every channel published
    into the same destination channel) are left out. ``unwritten`` says, when a download
    fails, what the caller did not write (an archive; for sync, the destination).
    """
    cache = BlobCache(Path(config.mirror_dir))
    channels, fetched, wants = plan.channels, plan.fetched, plan.wants
    delta = DeltaBase.from_receipt(base, [c.name for c in channels], config.dest_channel, "receipt") if base is not None else None

    def held_sha(channel: str, subdir: str, filename: str) -> str | None:
        rec = delta.held(channel, subdir, filename) if delta is not None else None
        return rec.sha256 if rec is not None else None

    if delta is not None:  # the base has it, by sha256: no need to fetch it at all
        wants = [w for w in wants if not (w.expected.sha256 and held_sha(w.channel, w.subdir, w.filename) == w.expected.sha256)]
    selected = {(c, s): sel.selected for c, subs in plan.selections.items() for s, sel in subs.items()}
    excluded = sum(len(sel.excluded) for subs in plan.selections.values() for sel in subs.values())

    # 3. downloads (parallel), results keyed by (channel, subdir, filename)
    actual: dict[tuple[str, str, str], str] = {}
    todo: list[_Want] = []
    for w in wants:
        hit = cache.lookup(w.expected)
        if hit is not None:
            actual[(w.channel, w.subdir, w.filename)] = hit
        else:
            todo.append(w)
    cached = len(wants) - len(todo)
    failures: list[str] = []
    fresh: set[str] = set()
    todo_bytes = sum(w.expected.size or 0 for w in todo)
    if todo:
        log.info("downloading %d packages (%d bytes); %d already in the cache", len(todo), todo_bytes, cached)
        bar = progress("download", todo_bytes or None, files=len(todo))
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            futures = {pool.submit(cache.download, fetcher, w.url, w.expected, bar.update): w for w in todo}
            try:
                for fut in as_completed(futures):
                    w = futures[fut]
                    try:
                        actual[(w.channel, w.subdir, w.filename)] = downloaded = fut.result()
                        fresh.update(cache.hashed_here(downloaded))  # file:// files: hashed as the archive takes them
                    except UpstreamError as exc:
                        failures.append(str(exc))
                        log.info("%s", exc)  # the error names every failure, once, at the end
                    bar.file_done()
            except BaseException:  # interrupted or terminated: start no other download
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        bar.close()
    installer_entries: list[InstallerEntry] = []
    for iw in plan.installers:  # few and large: one at a time, each verified against its sha256 if given
        try:
            sha = cache.lookup(Expected(iw.sha256, None, None)) if iw.sha256 else None
            if sha is None:
                bar = progress(iw.filename, None)
                sha = cache.download(fetcher, iw.url, Expected(iw.sha256, None, None), bar.update)
                bar.close()
            installer_entries.append(InstallerEntry(iw.dir, iw.filename, sha, cache.path(sha).stat().st_size, redact(iw.url)))
        except UpstreamError as exc:
            failures.append(str(exc))
            log.info("%s", exc)
    if failures:
        failures.sort()
        raise DownloadError(
            f"{len(failures)} of {len(todo) + len(plan.installers)} downloads failed; {unwritten} (first: {failures[0]})",
            failures,
        )

    # 4. repodata blobs and the manifest
    blobs: dict[str, BlobEntry] = {}
    entries: dict[tuple[str, str], SubdirEntry] = {}
    changed: set[tuple[str, str]] = set()  # (destination channel, subdir) with something new for any channel
    for ch in channels:
        for subdir, fr in sorted(fetched[ch.name].items()):
            names = selected[(ch.name, subdir)]
            pkgs: list[PackageEntry] = []
            present: list[PackageEntry] = []
            for filename in names:
                sha = actual.get((ch.name, subdir, filename))
                held = delta.held(ch.name, subdir, filename) if delta is not None else None
                if held is not None and (sha is None or sha == held.sha256):
                    present.append(PackageEntry(filename, held.sha256, held.size or 0))
                    continue
                assert sha is not None
                size = cache.size(sha)
                pkgs.append(PackageEntry(filename, sha, size))
                blobs.setdefault(sha, BlobEntry(sha, size, "package"))
            removals = delta.removals(ch.name, subdir, selected) if delta is not None else []
            if delta is None or pkgs or removals or not delta.upstream_unchanged(ch.name, subdir, fr.sha256):
                changed.add((delta.targets[ch.name] if delta is not None else ch.name, subdir))
            raw = fr.repodata.subset(set(names)).to_bytes(keep_base_url=False)
            packed = zstd_compress(raw)
            rd_sha = cache.put_bytes(packed)
            source = {"url": redact(fr.url), "sha256": fr.sha256, "size": fr.size, "fetched": fr.fetched}
            entries[(ch.name, subdir)] = SubdirEntry(
                subdir, RepodataBlob(rd_sha, len(packed), len(raw)), tuple(pkgs), source, tuple(present), tuple(removals)
            )
    channel_entries: list[ChannelEntry] = []
    counts: dict[str, dict[str, int]] = {}
    for ch in channels:
        target = delta.targets[ch.name] if delta is not None else ch.name
        subs = []
        for (cname, subdir), entry in entries.items():
            if cname != ch.name or (target, subdir) not in changed:
                continue  # nothing changed here since the base (for any channel published into the same place)
            blobs.setdefault(entry.repodata.sha256, BlobEntry(entry.repodata.sha256, entry.repodata.size, "repodata"))
            subs.append(entry)
            counts.setdefault(ch.name, {})[subdir] = len(entry.packages) + len(entry.present)
        channel_entries.append(ChannelEntry(ch.name, redact(ch.url), tuple(subs)))  # the manifest never holds a secret
    mapped = match(config.channel_map, [(c.name, c.url) for c in channels])  # channels several map to keep their names
    merged_into = (
        delta.targets if delta is not None else {c.name: t or config.dest_channel or c.name for c, t in zip(channels, mapped, strict=True)}
    )
    shadowed, collisions = shadowing(channel_entries, merged_into.__getitem__)
    if len(set(merged_into.values())) < len(merged_into):  # the export knows which channels merge: record the choice
        for collision in collisions:
            log.warning("%s", collision.message())
        channel_entries = [
            dataclasses.replace(
                c, subdirs=tuple(dataclasses.replace(s, shadowed=tuple(sorted(shadowed.get((c.name, s.subdir), ())))) for s in c.subdirs)
            )
            for c in channel_entries
        ]
    for ie in installer_entries:
        if blobs.setdefault(ie.sha256, BlobEntry(ie.sha256, ie.size, "installer")).kind != "installer":
            raise UsageError(f"installers: {ie.filename} has the same bytes as a package; carry it once")
    ordered = sorted(blobs.values(), key=lambda b: ({"repodata": 0, "installer": 1}.get(b.kind, 2), b.sha256))
    now = clock()
    manifest = Manifest(
        archive_id=uuid.uuid4().hex,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        tool=f"airgap {__version__}",
        channels=tuple(channel_entries),
        blobs=tuple(ordered),
        filters=environments.manifest_filters(filters, plan.pulled_by),
        installers=tuple(installer_entries),
        base=base.state_id() if base is not None else None,
        bases=delta.bases() if delta is not None else {},
    )
    return Collected(manifest, cache, len(todo), todo_bytes, cached, excluded, counts, frozenset(fresh))
