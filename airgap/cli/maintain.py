"""Keys and the destination's upkeep: ``keygen``, ``clean``, ``receipt``."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Config
from ._base import State, common_options, log, progress_for
from .options import dest_channel_option, into_option, json_option, lock_timeout_option
from .render import show


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
@common_options(reads_config=False)
def keygen(path: str, force: bool, state: State, config: Config | None) -> None:
    """Write a new Ed25519 signing key to PATH (mode 0600) and its public key to PATH.pub.

    The private key is encrypted when AIRGAP_KEY_PASSPHRASE is set.

    \b
    Example:  AIRGAP_KEY_PASSPHRASE=... airgap keygen ~/keys/airgap
    """
    from ..signing import generate_keypair, passphrase_from_env

    kid = generate_keypair(Path(path), passphrase_from_env(), force)
    click.echo(f"wrote {path} (private, keep it on the connected side) and {path}.pub (copy it to the isolated side)")
    click.echo(f"key id: {kid}")


@click.command()
@into_option("The destination to clean (default: into / dest_site in the config).")
@dest_channel_option("Clean only this channel (default: the channels channel_map / dest_channel name, else all).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed, and why; change nothing.")
@lock_timeout_option("Seconds to wait for an import to finish.")
@json_option()
@common_options()
def clean(
    into: str | None, dest_channel: str | None, dry_run: bool, lock_timeout: float, as_json: bool, state: State, config: Config
) -> None:
    """Remove what the destination holds that the current filters no longer select.

    Repodata is republished first, then the files are deleted: clients never see an index
    that lists a missing file. Kept packages that would lose a dependency are reported.

    \b
    Examples:
      airgap clean -f export.yaml --into /srv/conda --dry-run
      airgap clean -f export.yaml --into /srv/conda --json
    """
    from ..config_hints import clean_notes
    from ..ops.clean import run_clean
    from ..ops.options import CleanOptions, destination_from

    for note in clean_notes(config):
        log.warning("%s", note)
    dest = destination_from(into, config)
    options = CleanOptions.from_config(config, dest_channel=dest_channel, dry_run=dry_run, lock_timeout=lock_timeout)
    show(run_clean(dest, options), as_json)


@click.command()
@into_option("The destination (default: into / dest_site in the config).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the receipt here instead of DEST/.airgap/receipt.json.")
@json_option()
@common_options()
def receipt(into: str | None, output: str | None, as_json: bool, state: State, config: Config) -> None:
    """Rebuild the receipt of a destination from the files it holds (hashing each one).

    \b
    Example:  airgap receipt --into /srv/conda -o /media/usb/receipt.json
    """
    from ..ops.options import destination_from
    from ..ops.receipt import run_receipt

    dest = destination_from(into, config)
    show(run_receipt(dest, Path(output) if output else None, progress=progress_for(state.quiet)), as_json)
