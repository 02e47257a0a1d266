"""The archive's way across: ``export`` (and ``export --plan``), ``import``, ``sync``."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..errors import UsageError
from ..signals import terminate_raises
from ._base import State, common_options, log, progress_for
from .options import (
    MERGE_HELP,
    allow_downgrade_option,
    allow_unsigned_option,
    dest_channel_option,
    env_option,
    into_option,
    json_option,
    lock_timeout_option,
    public_url_option,
    trusted_key_option,
)
from .render import emit_json, show


@click.command()
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
@env_option()
@json_option("Print the result (or the plan) as JSON.")
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
    state: State,
    config: Config,
) -> None:
    """Fetch, filter and download upstream packages into one signed ARCHIVE.

    \b
    Examples:
      airgap export -f export.yaml --sign-key ~/keys/airgap mirror.tar
      airgap export -f export.yaml --plan --media-size 25G
      airgap export -f export.yaml --plan --check-installable "python 3.11.*" --check-installable numpy
    """
    from ..ops.options import ExportOptions, PlanOptions, with_environments

    config = with_environments(config, env_files)
    if plan_only:
        from ..ops.plan import run_plan

        plan_options = PlanOptions.from_config(
            config,
            archive=archive,
            check_specs=check_specs,
            allow_unsolvable=allow_unsolvable,
            media_size=media_size,
            html=html_file,
            sign_key=sign_key,
            unsigned=unsigned,
            since=since,
        )
        report = run_plan(config, plan_options, progress=progress_for(state.quiet))
        too_big = report.too_big
        if as_json and too_big:  # one JSON object on stdout: the plan, marked as the failure it is
            emit_json({**report.to_json(), "ok": False, "error": too_big, "exit_code": 2})
            click.echo(f"airgap: error: {too_big}", err=True)
            sys.exit(2)
        show(report, as_json)
        if too_big:
            raise UsageError(too_big)
        return
    from ..ops.export import run_export

    options = ExportOptions.from_config(
        config,
        archive=archive,
        sign_key=sign_key,
        unsigned=unsigned,
        since=since,
        volume_size=volume_size,
        media_size=media_size,
        html=html_file,
        check_specs=check_specs,
        allow_unsolvable=allow_unsolvable,
        sbom=not no_sbom,
    )
    with terminate_raises():  # SIGTERM cleans up like Ctrl-C: no partial archive is left behind
        result = run_export(config, options, progress=progress_for(state.quiet))
    show(result, as_json)


@click.command(name="import")
@click.argument("archive", nargs=-1, type=click.Path(dir_okay=False))  # none: the config's file:// trees (or --show-config)
@into_option()
@trusted_key_option()
@dest_channel_option(MERGE_HELP.format(what=" of the archive"))
@public_url_option(
    "The URL clients reach the mirror at: write DEST/downloads/, pre-configured installer scripts (default: public_url in the config)."
)
@allow_unsigned_option()
@allow_downgrade_option()
@lock_timeout_option()
@json_option()
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
    state: State,
    config: Config,
) -> None:
    """Verify ARCHIVE (or all its volumes, in any order), then publish it into a directory channel, all or nothing.

    \b
    Examples:
      airgap import $USB/mirror.tar --into /srv/conda --trusted-key airgap.pub
      airgap import /media/dvd*/mirror.tar.0* --into /srv/conda
      airgap import -f import.yaml     (no ARCHIVE: publish the file:// trees in channels, as cas-sync-api-v4 did)
    """
    from pathlib import Path

    from ..config_hints import import_notes
    from ..ops.import_ import run_import
    from ..ops.options import ImportOptions, SyncOptions, destination_from, trusted_keys_for

    if not archive:  # the guide's `cas-sync-api-v4 -f import.yaml` on a tree cas-sync wrote
        from ..ops.trees import run_tree_import, tree_channels

        tree_channels(config)  # online channels: say to run airgap sync, before anything else
        dest = destination_from(into, config)
        tree_options = SyncOptions.from_config(
            config, dest_channel=dest_channel, public_url=public_url, allow_downgrade=allow_downgrade, lock_timeout=lock_timeout
        )
        result = run_tree_import(config, dest, tree_options, progress=progress_for(state.quiet))
        show(result, as_json, verb="published the file:// trees into")
        return
    for note in import_notes(config):
        log.warning("%s", note)
    dest = destination_from(into, config)
    options = ImportOptions.from_config(
        config,
        dest_channel=dest_channel,
        public_url=public_url,
        allow_unsigned=allow_unsigned,
        allow_downgrade=allow_downgrade,
        lock_timeout=lock_timeout,
    )
    trusted = trusted_keys_for(trusted_keys, config)
    imported = run_import([Path(a) for a in archive], dest, trusted, options, progress=progress_for(state.quiet))
    show(imported, as_json, archives=archive)


@click.command()
@into_option()
@dest_channel_option(MERGE_HELP.format(what=""))
@click.option(
    "--reset",
    is_flag=True,
    help="Forget what the destination is known to hold: re-check every file (by hash); still write only what differs.",
)
@public_url_option("The URL clients reach the mirror at: write DEST/downloads/ (default: public_url in the config).")
@allow_downgrade_option()
@lock_timeout_option()
@env_option()
@json_option()
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
    state: State,
    config: Config,
) -> None:
    """Fetch, filter, download and publish into a destination in one step (a connected mirror).

    \b
    Examples:
      airgap sync -f sync.yaml
      airgap sync -f sync.yaml --into /srv/conda --reset
    """
    from ..ops.options import SyncOptions, destination_from, with_environments
    from ..ops.sync import run_sync

    config = with_environments(config, env_files)
    dest = destination_from(into, config)
    options = SyncOptions.from_config(
        config, dest_channel=dest_channel, public_url=public_url, allow_downgrade=allow_downgrade, lock_timeout=lock_timeout, reset=reset
    )
    result = run_sync(config, dest, options, progress=progress_for(state.quiet))
    show(result, as_json)
