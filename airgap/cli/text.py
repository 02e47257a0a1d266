"""The text renderer: what each command's result looks like to a person, read from its attributes.

One function per result type, found by the type's name (so that ``airgap --help`` imports no
operation); :func:`text` dispatches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..ops.output_check import human
from ..redact import redact, redact_doc

if TYPE_CHECKING:
    from ..ops.clean import CleanResult
    from ..ops.export import ExportResult
    from ..ops.import_ import ImportResult
    from ..ops.plan import PlanReport
    from ..ops.receipt import ReceiptResult
    from ..ops.sync import SyncResult
    from ..ops.verify import Inspection, VerifyResult
    from ..ops.verify_dest import DestinationCheck


def text(result: Any, **context: Any) -> None:
    """Print ``result`` for a person (``context``: what the command adds, e.g. the archive names)."""
    _RENDERERS[type(result).__name__](result, **context)


def _plan(report: PlanReport) -> None:
    summary, media = report.plan.summary(), report.media_size
    for channel, subdirs in sorted(summary.channels.items()):
        click.echo(f"channel {channel}")
        for subdir, n in sorted(subdirs.items()):
            click.echo(f"  {subdir:<16} {n.packages:>8} packages {human(n.bytes):>11}")
    click.echo(
        f"total    {summary.packages} packages, {human(summary.total_bytes)}"
        + (f" of {human(media)} ({100 * summary.total_bytes / media:.0f}%)" if media else "")
    )
    if summary.excluded_by_rule:
        click.echo("excluded " + ", ".join(f"{n} by {rule}" for rule, n in summary.excluded_by_rule.items()))
    for path, envs in sorted(summary.environments.items()):
        click.echo(f"file     {path}  <- {', '.join(envs)}")
    for o in summary.installability:
        where = o.platform + (f" python {o.python}" if o.python else "")
        click.echo(f"solve    {where:<22} {'ok, ' + str(o.packages) + ' packages' if o.ok else 'FAILED, the solver says:'}")
        for line in [] if o.ok else o.message.splitlines():
            click.echo(f"           {line}")


def _export(result: ExportResult) -> None:
    where = f"{len(result.volumes)} volumes {result.volumes[0]} … {result.volumes[-1]}" if result.volumes else str(result.archive)
    click.echo(
        f"wrote {where}: {result.packages} packages, {human(result.package_bytes)} "
        f"({result.downloaded} downloaded, {result.cached} from the cache, {result.excluded} excluded by filters), "
        f"archive {human(result.archive_bytes)}, id {result.archive_id}, "
        + (f"signed by {result.signer[:16]}" if result.signer else "UNSIGNED")
    )


def _import(result: ImportResult, archives: tuple[str, ...] = ()) -> None:
    names = ", ".join(archives)
    chans = ", ".join(f"{c} ({', '.join(sorted(set(s)))})" for c, s in sorted(result.channels.items()))
    if result.noop:
        click.echo(f"{names} verified; it is already imported into {result.destination}: nothing to do")
    elif result.downgrade:
        click.echo(
            f"imported the new files of older archive {names} into {result.destination}: "
            f"{result.packages_added} package files added, nothing removed or replaced; channels: {chans}"
        )
    else:
        click.echo(
            f"imported {names} into {result.destination}: {result.packages_added} package files added "
            f"({human(result.bytes_written)}), {result.packages_present} already present, "
            f"{result.packages_removed} removed; channels: {chans}"
        )
    _downloads(result)


def _downloads(result: ImportResult) -> None:
    if result.downloads is not None and result.public_url:
        click.echo(f"wrote {result.destination}/downloads/ for {result.public_url.rstrip('/')}: {', '.join(result.downloads)}")


def _sync(result: SyncResult, verb: str = "synced into") -> None:
    imp = result.imported
    if imp.noop:
        click.echo(
            f"{verb} {imp.destination}: nothing to do ({imp.packages_present} package files already there, "
            f"{result.downloaded} downloaded, {result.excluded} excluded by filters)"
        )
    else:
        click.echo(
            f"{verb} {imp.destination}: {imp.packages_added} package files written ({human(imp.bytes_written)}), "
            f"{imp.packages_present} already present; {result.downloaded} downloaded, {result.cached} from the cache, "
            f"{result.excluded} excluded by filters"
        )
    _downloads(imp)


def _clean(result: CleanResult) -> None:
    verb = "would remove" if result.dry_run else "removed"
    for r in result.remove:
        click.echo(f"{verb} {r.channel}/{r.subdir}/{r.filename} ({human(r.size or 0)}): {r.reason}")
    for b in result.broken:
        click.echo(f"warning: {b.channel}/{b.subdir}/{b.filename} would lose its dependency {b.dependency!r}")
    for shard in result.shards.removed:
        click.echo(f"{verb} {shard}: no shard index has named it for the grace period (shard_grace_days)")
    click.echo(
        f"{verb} {len(result.remove)} packages ({human(result.bytes)}); {result.keep} kept"
        + ("; nothing was changed (--dry-run)" if result.dry_run else "")
    )


def _verify(result: VerifyResult) -> None:
    signer = f"signed by trusted key {result.signer[:16]}" if result.signer else "UNSIGNED (allowed by --allow-unsigned)"
    part = f" (volumes {', '.join(map(str, result.volumes or []))} of {result.of_volumes})" if result.of_volumes > 1 else ""
    click.echo(f"OK {result.archive}{part}: {result.packages} packages, {result.blobs} blobs, {human(result.bytes)} verified; {signer}")


def _check(check: DestinationCheck) -> None:
    for p in check.problems:
        click.echo(p.line())
    for line in check.recorded:
        click.echo(f"recorded: {line}")
    if check.cleared:
        click.echo(f"{check.cleared} problem(s) were gone when checked again under the lock (an import ran or was rolled back)")
    if check.not_recorded:
        click.echo(f"warning: the damage found was not recorded: {check.not_recorded}", err=True)
    click.echo(("DAMAGED " if check.damaged else "OK ") + check.summary())


def _inspect(info: Inspection, archive: str = "") -> None:
    m = info.manifest
    t = m.totals()
    sig = (
        "unsigned"
        if not info.signature_keyid
        else f"{info.signature_keyid[:16]} ({'verified' if info.signature_checked else 'not checked: no trusted key given'})"
    )
    click.echo(f"archive    {archive} ({human(info.archive_bytes)})")
    click.echo(f"format     {m.format}   id {m.archive_id}")
    click.echo(f"created    {redact(m.created)} by {redact(m.tool)}")
    for name, b in sorted(m.bases.items()):
        click.echo(f"delta      {redact(name)} -> {redact(b.channel)}, built on archive {redact(b.after or '') or '(none)'}")
    click.echo(f"signer     {sig}")
    click.echo(f"filters    {json.dumps(redact_doc(dict(m.filters)), sort_keys=True)}")
    click.echo(f"totals     {t['packages']} packages, {human(t['package_bytes'])}; {t['blobs']} blobs")
    if m.sbom is not None:
        click.echo(f"sbom       {m.sbom.format}, {human(m.sbom.size)} (airgap inspect ARCHIVE --sbom cyclonedx|spdx)")
    for ins in m.installers:
        click.echo(f"installer  {redact(ins.dir)}/{redact(ins.filename)} ({human(ins.size)})  <- {redact(ins.url)}")
    for ch in info.channels:
        click.echo(f"channel    {ch.name}  <- {ch.url}")
        for s in ch.subdirs:
            click.echo(f"  {s.subdir:<16} {s.packages:>7} packages {human(s.bytes):>11}   from {s.source.get('url', '?')}")
            if s.names is not None:
                click.echo(f"  {'':<16} {len(s.names):>7} names changed, {len(s.gone)} gone (only their records travel)")
            if s.removals:
                click.echo(f"  {'':<16} {len(s.removals):>7} removals: {', '.join(s.removals[:5])}{' ...' if len(s.removals) > 5 else ''}")


def _receipt(result: ReceiptResult) -> None:
    click.echo(f"wrote {result.written_to}: {result.files} files by sha256")
    for p in result.problems:
        click.echo(f"warning: {p.line()}")
    if result.problems:
        click.echo(f"warning: {len(result.problems)} problem(s) found; missing and damaged files are not recorded as held")


_RENDERERS: dict[str, Callable[..., None]] = {
    "PlanReport": _plan,
    "ExportResult": _export,
    "ImportResult": _import,
    "SyncResult": _sync,
    "CleanResult": _clean,
    "VerifyResult": _verify,
    "DestinationCheck": _check,
    "Inspection": _inspect,
    "ReceiptResult": _receipt,
}
