"""The command line. The only module that prints, exits or draws progress.

Each command parses its options, loads the configuration once, and makes one ``ops.run_*``
call. Errors are translated to one line and an exit code in :func:`_run` alone:
0 ok, 1 failure, 2 usage or configuration, 3 integrity or signature.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from ._cli_base import _emit_json, _human, _progress, _State, common_options, log
from .config import Config
from .errors import UsageError
from .signals import terminate_raises

# --- commands ------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="airgap", message="%(prog)s %(version)s")
def main() -> None:
    """Move conda channels across an air gap.

    \b
    On the connected host:   airgap keygen ~/keys/airgap
                             airgap export -f export.yaml --sign-key ~/keys/airgap mirror.tar
    On the isolated host:    airgap verify mirror.tar --trusted-key airgap.pub
                             airgap import mirror.tar --into /srv/conda --trusted-key airgap.pub
    """


#: import and verify: the public keys an archive's signature may come from
_TRUSTED_KEY_OPTION = click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Public key whose signature is accepted (repeatable; adds to trusted_keys).",
)

#: export and sync: environments to mirror, besides those the config lists
_ENV_OPTION = click.option(
    "--env",
    "env_files",
    multiple=True,
    metavar="FILE[:NAME,...]",
    help="environment.yml, pixi.lock (:NAME,... picks environments), conda-lock.yml or @EXPLICIT file to mirror (repeatable; adds to environments).",
)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
@common_options(reads_config=False)
def keygen(path: str, force: bool, state: _State, config: Config | None) -> None:
    """Write a new Ed25519 signing key to PATH (mode 0600) and its public key to PATH.pub.

    The private key is encrypted when AIRGAP_KEY_PASSPHRASE is set.

    \b
    Example:  AIRGAP_KEY_PASSPHRASE=... airgap keygen ~/keys/airgap
    """
    from .signing import generate_keypair, passphrase_from_env

    kid = generate_keypair(Path(path), passphrase_from_env(), force)
    click.echo(f"wrote {path} (private, keep it on the connected side) and {path}.pub (copy it to the isolated side)")
    click.echo(f"key id: {kid}")


@main.command()
@click.argument("archive", type=click.Path(dir_okay=False), required=False)
@click.option("--sign-key", type=click.Path(dir_okay=False), help="Ed25519 private key (default: signing_key in the config).")
@click.option("--unsigned", is_flag=True, help="Write an archive without a signature (import then needs --allow-unsigned).")
@click.option("--plan", "plan_only", is_flag=True, help="Compute the selection and stop: no package is downloaded, no archive written.")
@click.option("--media-size", help="With --plan: compare the total with a medium (4.7G, 25G, 700M, bytes).")
@click.option(
    "--since",
    type=click.Path(dir_okay=False, exists=True),
    help="A destination's receipt (DEST/.airgap/receipt.json): write a delta with only what it lacks, plus removals.",
)
@click.option("--volume-size", help="Split the archive into ARCHIVE.001, .002, ... of at most this size (4.7G, 700M, bytes).")
@click.option(
    "--check-installable",
    "check_specs",
    multiple=True,
    metavar="SPEC",
    help="Solve SPEC against the selection per platform x python before downloading (repeatable; adds to installable).",
)
@click.option("--allow-unsolvable", is_flag=True, help="Report unsolvable specs but export anyway.")
@_ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the plan) as JSON.")
@click.option(
    "--html", "html_file", type=click.Path(dir_okay=False), help="With --plan: write the review page of the transfer to this file."
)
@click.option(
    "--no-sbom", is_flag=True, help="Put no SBOM into the archive (for importers that predate SBOMs: they refuse an archive carrying one)."
)
@common_options()
def export(
    archive: str | None,
    sign_key: str | None,
    unsigned: bool,
    plan_only: bool,
    media_size: str | None,
    since: str | None,
    volume_size: str | None,
    check_specs: tuple[str, ...],
    allow_unsolvable: bool,
    env_files: tuple[str, ...],
    as_json: bool,
    html_file: str | None,
    no_sbom: bool,
    state: _State,
    config: Config,
) -> None:
    """Fetch, filter and download upstream packages into one signed ARCHIVE.

    \b
    Examples:
      airgap export -f export.yaml --sign-key ~/keys/airgap mirror.tar
      airgap export -f export.yaml --plan --media-size 25G
      airgap export -f export.yaml --plan --check-installable "python 3.11.*" --check-installable numpy
    """
    from .config import parse_size
    from .ops.export import run_export, run_plan
    from .signing import load_signer

    specs = list(check_specs) + list(config.installable)
    config = _with_envs(config, env_files)
    if plan_only:
        if archive:
            raise UsageError(
                f"--plan: expected no ARCHIVE (a plan writes nothing), found {archive!r}; "
                f"to check several specs, repeat --check-installable SPEC"
            )
        media = parse_size(media_size, "--media-size") if media_size else None
        plan = run_plan(config, installable_specs=specs, allow_unsolvable=allow_unsolvable, progress=_progress(state.quiet))
        too_big = None
        if media is not None and plan.total_bytes > media:
            too_big = f"--media-size: expected the selection to fit in {_human(media)}, found {_human(plan.total_bytes)}"
        if html_file:
            from .ops.review import plan_page

            key = sign_key or (None if unsigned else config.signing_key)
            plan_page(plan, config, Path(html_file), load_signer(key).keyid if key else None, Path(since) if since else None)
        if as_json:
            doc = plan.to_json()
            if media is not None:
                doc["media_size"] = media
                doc["fits"] = too_big is None
            if too_big:  # one JSON object on stdout: the plan, marked as the failure it is
                doc.update(ok=False, error=too_big, exit_code=2)
                _emit_json(doc)
                click.echo(f"airgap: error: {too_big}", err=True)
                sys.exit(2)
            _emit_json(doc)
        else:
            _print_plan(plan.summary(), media, [o.to_json() for o in plan.installability])
        if too_big:
            raise UsageError(too_big)
        return
    if media_size:
        raise UsageError("--media-size: expected together with --plan (to split an archive, use --volume-size)")
    if html_file:
        raise UsageError("--html: expected together with --plan (for an archive, use airgap inspect ARCHIVE --html FILE)")
    volumes = parse_size(volume_size, "--volume-size") if volume_size else config.volume_size
    if since is None and config.delta:
        if not config.delta_dir:
            raise UsageError("delta: expected delta_dir too (the folder holding the destination's receipt.json), found none")
        since = str(Path(config.delta_dir) / "receipt.json")
    if not archive:
        raise UsageError("expected ARCHIVE, the file to write (or --plan to only compute the selection)")
    key = sign_key or config.signing_key
    if unsigned and sign_key:
        raise UsageError("--unsigned and --sign-key: expected one of them, found both")
    if not key and not unsigned:
        raise UsageError(
            "expected --sign-key KEY (or signing_key in the config), found neither; use --unsigned to write an unsigned archive on purpose"
        )
    signer = None if unsigned else load_signer(key)  # type: ignore[arg-type]
    with terminate_raises():  # SIGTERM cleans up like Ctrl-C: no partial archive is left behind
        result = run_export(
            config,
            Path(archive),
            signer,
            installable_specs=specs,
            allow_unsolvable=allow_unsolvable,
            volume_size=volumes,
            since=Path(since) if since else None,
            progress=_progress(state.quiet),
            sbom=not no_sbom,
        )
    if as_json:
        _emit_json(result.to_json())
        return
    where = f"{len(result.volumes)} volumes {result.volumes[0]} … {result.volumes[-1]}" if result.volumes else str(result.archive)
    click.echo(
        f"wrote {where}: {result.packages} packages, {_human(result.package_bytes)} "
        f"({result.downloaded} downloaded, {result.cached} from the cache, {result.excluded} excluded by filters), "
        f"archive {_human(result.archive_bytes)}, id {result.archive_id}, "
        + (f"signed by {result.signer[:16]}" if result.signer else "UNSIGNED")
    )


def _with_envs(config: Config, env_files: tuple[str, ...]) -> Config:
    import dataclasses

    from .lockfiles import source_from_option

    added = tuple({"file": s.file, "label": s.label, "environments": list(s.names)} for s in map(source_from_option, env_files))
    return dataclasses.replace(config, environments=config.environments + added) if added else config


def _print_plan(summary: dict[str, Any], media: int | None, solves: list[dict[str, Any]]) -> None:
    for channel, subdirs in sorted(summary["channels"].items()):
        click.echo(f"channel {channel}")
        for subdir, n in sorted(subdirs.items()):
            click.echo(f"  {subdir:<16} {n['packages']:>8} packages {_human(n['bytes']):>11}")
    click.echo(
        f"total    {summary['packages']} packages, {_human(summary['total_bytes'])}"
        + (f" of {_human(media)} ({100 * summary['total_bytes'] / media:.0f}%)" if media else "")
    )
    if summary["excluded_by_rule"]:
        click.echo("excluded " + ", ".join(f"{n} by {rule}" for rule, n in summary["excluded_by_rule"].items()))
    for path, envs in sorted(summary.get("environments", {}).items()):
        click.echo(f"file     {path}  <- {', '.join(envs)}")
    for o in solves:
        where = o["platform"] + (f" python {o['python']}" if o["python"] else "")
        click.echo(f"solve    {where:<22} {'ok, ' + str(o['packages']) + ' packages' if o['ok'] else 'FAILED, the solver says:'}")
        for line in [] if o["ok"] else o["message"].splitlines():
            click.echo(f"           {line}")


def _destination(into: str | None, config: Config) -> Any:
    """The destination ``--into`` names (a path or URL; a site name too), else the config's ``into`` / ``dest_site``."""
    from .destinations import open_destination

    site = None
    if into and "://" not in into and into in config.sites and not Path(into).exists():
        site = config.sites[into]  # --into NAME picks a site of the config
        into = str(site["url"])
    elif not into and not config.into:
        site = config.site()
    dest = into or config.destination()
    if not dest:
        raise UsageError(
            "expected a destination: --into DIR|s3://BUCKET/PREFIX|quetz+http://HOST:PORT/CHANNEL, or into / dest_site in the config; found none"
        )
    return open_destination(dest, site)


def _dest_channel(option: str | None, config: Config) -> str | None:
    from .manifest import is_safe_channel_name

    channel = option or config.dest_channel
    if channel is not None and not is_safe_channel_name(channel):
        raise UsageError(f"dest_channel: expected one path component of letters, digits, . _ + -, found {channel!r}")
    return channel


def _trusted(keys: tuple[str, ...], config: Config) -> Any:
    from .signing import load_trusted_keys

    return load_trusted_keys(list(keys) + list(config.trusted_keys))


_DOWNGRADE_HELP = (
    "Apply an archive older than the destination's newest (or a delta built on another state) "
    "for its new files only: nothing is removed or replaced."
)


def _require_archive(archive: str | tuple[str, ...] | None) -> None:
    """ARCHIVE is optional on the command line only so that ``--show-config`` works without one."""
    if not archive:
        raise UsageError("expected ARCHIVE (the archive file, or all its volumes), found none")


@main.command(name="import")
@click.argument("archive", nargs=-1, type=click.Path(dir_okay=False))  # none: the config's file:// trees (or --show-config)
@click.option(
    "--into",
    "into",
    help="Destination: a directory, s3://BUCKET/PREFIX, quetz+http(s)://HOST:PORT/CHANNEL or a site name (default: into / dest_site in the config).",
)
@_TRUSTED_KEY_OPTION
@click.option(
    "--dest-channel",
    "--account",
    "dest_channel",
    help="Merge every channel of the archive into this channel (--account: the guide's spelling); channel_map in the config sends channels to their own.",
)
@click.option(
    "--url",
    "public_url",
    help="The URL clients reach the mirror at: write DEST/downloads/, pre-configured installer scripts (default: public_url in the config).",
)
@click.option("--allow-unsigned", is_flag=True, help="DANGEROUS: accept an archive that carries no signature.")
@click.option("--allow-downgrade", is_flag=True, help=_DOWNGRADE_HELP)
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for another import to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options()
def import_(
    archive: tuple[str, ...],
    into: str | None,
    trusted_keys: tuple[str, ...],
    dest_channel: str | None,
    public_url: str | None,
    allow_unsigned: bool,
    allow_downgrade: bool,
    lock_timeout: float,
    as_json: bool,
    state: _State,
    config: Config,
) -> None:
    """Verify ARCHIVE (or all its volumes, in any order), then publish it into a directory channel, all or nothing.

    \b
    Examples:
      airgap import $USB/mirror.tar --into /srv/conda --trusted-key airgap.pub
      airgap import /media/dvd*/mirror.tar.0* --into /srv/conda
      airgap import -f import.yaml     (no ARCHIVE: publish the file:// trees in channels, as cas-sync-api-v4 did)
    """
    from .config_hints import import_notes
    from .ops.import_ import run_import

    if not archive:  # the guide's `cas-sync-api-v4 -f import.yaml` on a tree cas-sync wrote
        from .ops.trees import run_tree_import, tree_channels

        tree_channels(config)  # online channels: say to run airgap sync, before anything else
        dest = _destination(into, config)
        _print_sync(
            run_tree_import(
                config,
                dest,
                dest_channel=_dest_channel(dest_channel, config),
                allow_downgrade=allow_downgrade,
                lock_timeout=lock_timeout,
                progress=_progress(state.quiet),
            ),
            as_json,
            "published the file:// trees into",
        )
        _downloads(dest, public_url or config.public_url, as_json)
        return
    for note in import_notes(config):
        log.warning("%s", note)
    dest = _destination(into, config)
    channel = _dest_channel(dest_channel, config)
    trusted = _trusted(trusted_keys, config)
    result = run_import(
        [Path(a) for a in archive],
        dest,
        trusted,
        dest_channel=channel,
        channel_map=config.channel_map,
        allow_unsigned=allow_unsigned,
        allow_downgrade=allow_downgrade,
        lock_timeout=lock_timeout,
        progress=_progress(state.quiet),
    )
    if as_json:
        _emit_json(result.to_json())
        _downloads(dest, public_url or config.public_url, True)
        return
    chans = ", ".join(f"{c} ({', '.join(sorted(set(s)))})" for c, s in sorted(result.channels.items()))
    if result.noop:
        click.echo(f"{', '.join(archive)} verified; it is already imported into {result.destination}: nothing to do")
    elif result.downgrade:
        click.echo(
            f"imported the new files of older archive {', '.join(archive)} into {result.destination}: "
            f"{result.packages_added} package files added, nothing removed or replaced; channels: {chans}"
        )
    else:
        click.echo(
            f"imported {', '.join(archive)} into {result.destination}: {result.packages_added} package files added "
            f"({_human(result.bytes_written)}), {result.packages_present} already present, "
            f"{result.packages_removed} removed; channels: {chans}"
        )
    _downloads(dest, public_url or config.public_url, as_json)


def _downloads(dest: Any, url: str | None, quiet: bool) -> None:
    """Hook: write DEST/downloads/ (airgap.bootstrap) when the mirror's public URL is known."""
    from .bootstrap import publish_downloads

    if not url:
        return
    written = publish_downloads(dest, url)
    if written is None:
        log.warning("%s: a %s destination holds no installers; no downloads/ written", dest, dest.kind)
    elif not quiet:
        click.echo(f"wrote {dest}/downloads/ for {url.rstrip('/')}: {', '.join(written)}")


@main.command()
@click.option(
    "--into",
    "into",
    help="Destination: a directory, s3://BUCKET/PREFIX, quetz+http(s)://HOST:PORT/CHANNEL or a site name (default: into / dest_site in the config).",
)
@click.option(
    "--dest-channel",
    "--account",
    "dest_channel",
    help="Merge every channel into this channel (--account: the guide's spelling); channel_map in the config sends channels to their own.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Forget what the destination is known to hold: re-check every file (by hash); still write only what differs.",
)
@click.option("--url", "public_url", help="The URL clients reach the mirror at: write DEST/downloads/ (default: public_url in the config).")
@click.option("--allow-downgrade", is_flag=True, help=_DOWNGRADE_HELP)
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for another import to finish.")
@_ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options()
def sync(
    into: str | None,
    dest_channel: str | None,
    reset: bool,
    public_url: str | None,
    allow_downgrade: bool,
    lock_timeout: float,
    env_files: tuple[str, ...],
    as_json: bool,
    state: _State,
    config: Config,
) -> None:
    """Fetch, filter, download and publish into a destination in one step (a connected mirror).

    \b
    Examples:
      airgap sync -f sync.yaml
      airgap sync -f sync.yaml --into /srv/conda --reset
    """
    from .ops.sync import run_sync

    config = _with_envs(config, env_files)
    dest = _destination(into, config)
    channel = _dest_channel(dest_channel, config)
    result = run_sync(
        config,
        dest,
        dest_channel=channel,
        reset=reset,
        allow_downgrade=allow_downgrade,
        lock_timeout=lock_timeout,
        progress=_progress(state.quiet),
    )
    _print_sync(result, as_json)
    _downloads(dest, public_url or config.public_url, as_json)


def _print_sync(result: Any, as_json: bool, verb: str = "synced into") -> None:
    if as_json:
        _emit_json(result.to_json())
        return
    imp = result.imported
    if imp.noop:
        click.echo(
            f"{verb} {imp.destination}: nothing to do ({imp.packages_present} package files already there, "
            f"{result.downloaded} downloaded, {result.excluded} excluded by filters)"
        )
        return
    click.echo(
        f"{verb} {imp.destination}: {imp.packages_added} package files written ({_human(imp.bytes_written)}), "
        f"{imp.packages_present} already present; {result.downloaded} downloaded, {result.cached} from the cache, "
        f"{result.excluded} excluded by filters"
    )


@main.command()
@click.option("--into", "into", help="The destination to clean (default: into / dest_site in the config).")
@click.option(
    "--dest-channel",
    "--account",
    "dest_channel",
    help="Clean only this channel (default: the channels channel_map / dest_channel name, else all).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed, and why; change nothing.")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for an import to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options()
def clean(
    into: str | None, dest_channel: str | None, dry_run: bool, lock_timeout: float, as_json: bool, state: _State, config: Config
) -> None:
    """Remove what the destination holds that the current filters no longer select.

    Repodata is republished first, then the files are deleted: clients never see an index
    that lists a missing file. Kept packages that would lose a dependency are reported.

    \b
    Examples:
      airgap clean -f export.yaml --into /srv/conda --dry-run
      airgap clean -f export.yaml --into /srv/conda --json
    """
    from .channel_map import destination_channels
    from .config_hints import clean_notes
    from .ops.clean import run_clean
    from .ops.export import filters_from_config, resolve_channels

    for note in clean_notes(config):
        log.warning("%s", note)
    dest = _destination(into, config)
    scope = destination_channels(config.channel_map, _dest_channel(dest_channel, config), resolve_channels(config))
    filters, grace = filters_from_config(config), config.shard_grace_days
    result = run_clean(dest, filters, dry_run=dry_run, lock_timeout=lock_timeout, channels=scope, shard_grace_days=grace)
    if as_json:
        _emit_json(result.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for r in result.remove:
        click.echo(f"{verb} {r.channel}/{r.subdir}/{r.filename} ({_human(r.size or 0)}): {r.reason}")
    for b in result.broken:
        click.echo(f"warning: {b['channel']}/{b['subdir']}/{b['filename']} would lose its dependency {b['dependency']!r}")
    for shard in result.shards.removed:
        click.echo(f"{verb} {shard}: no shard index has named it for {config.shard_grace_days} days")
    click.echo(
        f"{verb} {len(result.remove)} packages ({_human(result.bytes)}); {result.keep} kept"
        + ("; nothing was changed (--dry-run)" if dry_run else "")
    )


@main.command()
@click.argument("archive", nargs=-1, type=click.Path(dir_okay=False))  # required unless --show-config
@_TRUSTED_KEY_OPTION
@click.option("--allow-unsigned", is_flag=True, help="DANGEROUS: accept an archive that carries no signature.")
@click.option("--into", "into", help="Verify this destination instead of an archive: re-hash every file its indexes list.")
@click.option("--no-record", is_flag=True, help="With --into: only report; do not record the damage found (see docs/usage.md).")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="With --into: seconds to wait for the lock to record.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options()
def verify(
    archive: tuple[str, ...],
    trusted_keys: tuple[str, ...],
    allow_unsigned: bool,
    into: str | None,
    no_record: bool,
    lock_timeout: float,
    as_json: bool,
    state: _State,
    config: Config,
) -> None:
    """Check ARCHIVE's signature, format, members and every hash; change nothing.

    A volume of a split archive verifies alone (its own files), or give several. With --into
    DEST (and no ARCHIVE): re-hash every file DEST's repodata lists; exit 3 on any damage.

    \b
    Examples:
      airgap verify $USB/mirror.tar --trusted-key airgap.pub && echo OK
      airgap verify --into /srv/conda --json
    """
    if into is not None or not archive:
        if archive:
            raise UsageError("verify: expected ARCHIVE or --into DEST, found both")
        if into is None:
            raise UsageError("verify: expected ARCHIVE (or --into DEST), found neither")
        from .ops.verify_dest import run_verify_destination

        check = run_verify_destination(
            _destination(into, config), record_findings=not no_record, lock_timeout=lock_timeout, progress=_progress(state.quiet)
        )
        if as_json:
            _emit_json(check.to_json())
        else:
            _print_check(check)
        if check.damaged:
            sys.exit(3)
        return
    from .ops.verify import run_verify

    _require_archive(archive)
    result = run_verify(
        [Path(a) for a in archive], _trusted(trusted_keys, config), allow_unsigned=allow_unsigned, progress=_progress(state.quiet)
    )
    if as_json:
        _emit_json({"ok": True, **result.to_json()})
        return
    signer = f"signed by trusted key {result.signer[:16]}" if result.signer else "UNSIGNED (allowed by --allow-unsigned)"
    part = f" (volumes {', '.join(map(str, result.volumes or []))} of {result.of_volumes})" if result.of_volumes > 1 else ""
    click.echo(f"OK {result.archive}{part}: {result.packages} packages, {result.blobs} blobs, {_human(result.bytes)} verified; {signer}")


@main.command()
@click.argument("archive", type=click.Path(dir_okay=False), required=False)  # required unless --show-config
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also check the signature against this key (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@click.option("--sbom", type=click.Choice(["cyclonedx", "spdx"]), help="Print the archive's SBOM (CycloneDX 1.6 or SPDX 2.3 JSON) instead.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write the review page of the transfer to this file.")
@common_options()
def inspect(
    archive: str | None,
    trusted_keys: tuple[str, ...],
    as_json: bool,
    sbom: str | None,
    html_file: str | None,
    state: _State,
    config: Config,
) -> None:
    """Show what ARCHIVE holds: channels, subdirs, counts, sizes, signer, sources.

    Reads only the manifest; the signature is checked when trusted keys are given.

    \b
    Example:  airgap inspect mirror.tar --json
    """
    from .ops.verify import run_inspect

    _require_archive(archive)
    assert archive is not None
    keys = list(trusted_keys) + list(config.trusted_keys)
    if sbom or html_file:  # with trusted keys, nothing is written unless the signature verifies
        from .ops.review import archive_review, read_documents, write_page
        from .review import render
        from .sbom import render as render_sbom

        docs = read_documents(Path(archive), _trusted(trusted_keys, config) if keys else None)
        if html_file:
            write_page(Path(html_file), render(archive_review(docs)))
        if sbom:
            click.echo(render_sbom(sbom, docs.manifest, docs.repodata, docs.signer), nl=False)
        return
    info = run_inspect(Path(archive), _trusted(trusted_keys, config) if keys else None)
    doc = info.to_json()
    if as_json:
        _emit_json(doc)
        return
    t = doc["totals"]
    sig = (
        "unsigned"
        if not doc["signer"]
        else f"{doc['signer'][:16]} ({'verified' if doc['signature_checked'] else 'not checked: no trusted key given'})"
    )
    click.echo(f"archive    {archive} ({_human(doc['archive_bytes'])})")
    click.echo(f"format     {doc['format']}   id {doc['archive_id']}")
    click.echo(f"created    {doc['created']} by {doc['tool']}")
    for name, b in sorted(doc["bases"].items()):
        click.echo(f"delta      {name} -> {b['channel']}, built on archive {b['after'] or '(none)'}")
    click.echo(f"signer     {sig}")
    click.echo(f"filters    {json.dumps(doc['filters'], sort_keys=True)}")
    click.echo(f"totals     {t['packages']} packages, {_human(t['package_bytes'])}; {t['blobs']} blobs")
    if doc["sbom"]:
        click.echo(f"sbom       {doc['sbom']['format']}, {_human(doc['sbom']['size'])} (airgap inspect ARCHIVE --sbom cyclonedx|spdx)")
    for ins in doc["installers"]:
        click.echo(f"installer  {ins['dir']}/{ins['filename']} ({_human(ins['size'])})  <- {ins['url']}")
    for ch in doc["channels"]:
        click.echo(f"channel    {ch['name']}  <- {ch['url']}")
        for s in ch["subdirs"]:
            click.echo(f"  {s['subdir']:<16} {s['packages']:>7} packages {_human(s['bytes']):>11}   from {s['source'].get('url', '?')}")
            if s["removals"]:
                click.echo(
                    f"  {'':<16} {len(s['removals']):>7} removals: {', '.join(s['removals'][:5])}{' ...' if len(s['removals']) > 5 else ''}"
                )


@main.command()
@click.option("--into", "into", help="The destination (default: into / dest_site in the config).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the receipt here instead of DEST/.airgap/receipt.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options()
def receipt(into: str | None, output: str | None, as_json: bool, state: _State, config: Config) -> None:
    """Rebuild the receipt of a destination from the files it holds (hashing each one).

    \b
    Example:  airgap receipt --into /srv/conda -o /media/usb/receipt.json
    """
    from .ops.receipt import run_receipt

    dest = _destination(into, config)
    result = run_receipt(dest, Path(output) if output else None, progress=_progress(state.quiet))
    if as_json:
        _emit_json(result.to_json())
        return
    click.echo(f"wrote {result.written_to}: {result.files} files by sha256")
    for p in result.problems:
        click.echo(f"warning: {p.line()}")
    if result.problems:
        click.echo(f"warning: {len(result.problems)} problem(s) found; missing and damaged files are not recorded as held")


def _print_check(check: Any) -> None:
    for p in check.problems:
        click.echo(p.line())
    for line in check.recorded:
        click.echo(f"recorded: {line}")
    if check.cleared:
        click.echo(f"{check.cleared} problem(s) were gone when checked again under the lock (an import ran or was rolled back)")
    if check.not_recorded:
        click.echo(f"warning: the damage found was not recorded: {check.not_recorded}", err=True)
    click.echo(("DAMAGED " if check.damaged else "OK ") + check.summary())


@main.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--port", type=int, default=8080, show_default=True, help="TCP port.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option(
    "--access-log", "access_log", type=click.Path(dir_okay=False), help="Append one line per request to FILE (default: log them at INFO)."
)
@common_options(reads_config=False)
def serve(dest: str, port: int, bind: str, access_log: str | None, state: _State, config: Config | None) -> None:
    """Serve the channels in DEST over HTTP, inside the air gap.

    \b
    Example:  airgap serve /srv/conda --port 8080 --bind 0.0.0.0
    """
    from .serve import AccessLog, make_server

    access = AccessLog(Path(access_log) if access_log else None)
    server = make_server(Path(dest), bind, port, access_log=access)
    host, real_port = str(server.server_address[0]), int(server.server_address[1])
    base = f"http://{host}:{real_port}"
    channels = sorted(server.channels())
    click.echo(f"serving {dest} at {base}/ (Ctrl-C to stop)")
    for ch in channels:
        click.echo(f"  channel {ch}: {base}/{ch}   (browse {base}/{ch}/index.html)")
    click.echo(f"point conda at it:  airgap condarc {base} --into {dest} > ~/.condarc")
    if (Path(dest) / "downloads" / "index.html").is_file():  # written by the import for public_url (airgap.bootstrap)
        click.echo(f"pre-configured installers: {base}/downloads/ (made for the public_url given at import)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        access.close()


@main.command()
@click.argument("url")
@click.argument("channels", nargs=-1)
@click.option("--into", "into", help="Take the channel names from this destination (a directory or URL).")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Also redirect this upstream channel URL (as lock files name it) to the mirror channel of the same name (repeatable).",
)
@click.option(
    "--env", "env_files", multiple=True, metavar="FILE", help="Also redirect the channels this environment or lock file names (repeatable)."
)
@click.option("--pixi", is_flag=True, help="Print pixi's config.toml [mirrors] table instead of the .condarc.")
@common_options(reads_config=False)
def condarc(
    url: str,
    channels: tuple[str, ...],
    into: str | None,
    upstreams: tuple[str, ...],
    env_files: tuple[str, ...],
    pixi: bool,
    state: _State,
    config: Config | None,
) -> None:
    """Print a .condarc (or with --pixi a pixi [mirrors] table) that points clients at the mirror at URL.

    Both redirect the upstream URLs written in lock files (conda.anaconda.org/NAME, repo.anaconda.com/pkgs/NAME,
    and those given with --upstream or found with --env) to the mirror, so lock files work unchanged.

    \b
    Examples:
      airgap condarc http://mirror.internal:8080 main conda-forge > ~/.condarc
      airgap condarc http://mirror.internal:8080 --into /srv/conda
      airgap condarc http://mirror.internal:8080 --into /srv/conda --pixi --env pixi.lock >> ~/.pixi/config.toml
    """
    from . import mirrors
    from .destinations import open_destination
    from .lockfiles import source_from_option
    from .serve import condarc as render

    if not url.startswith(("http://", "https://", "file://")):
        raise UsageError(f"URL: expected http://HOST:PORT (or https://, file://), found {url!r}")
    names = list(channels) + (sorted(open_destination(into).inventory()) if into else [])
    if not names:
        raise UsageError("expected channel names (CHANNELS... or --into DEST), found none")
    from .manifest import is_safe_channel_name
    from .urlsafety import check_under

    names = list(dict.fromkeys(names))
    for name in names:
        if not is_safe_channel_name(name):
            raise UsageError(f"channel: expected one path component of letters, digits, . _ + -, found {name!r}")
        check_under(url, f"{url.rstrip('/')}/{name}")  # never print a URL that leaves the mirror's prefix
    found = mirrors.upstreams_in([source_from_option(f) for f in env_files])
    pairs = mirrors.redirects(url, names, [*upstreams, *found])
    if pixi:
        click.echo(mirrors.pixi_mirrors(pairs), nl=False)
        return
    click.echo(render(url, names, mirrors.conda_redirects(pairs)), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
