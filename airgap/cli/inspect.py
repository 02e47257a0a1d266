"""Reading without changing: ``verify`` (an archive, or a destination with ``--into``) and ``inspect``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import Config
from ..errors import UsageError
from ._base import State, common_options, progress_for
from .options import allow_unsigned_option, into_option, json_option, lock_timeout_option, trusted_key_option
from .render import show


def _require_archive(archive: str | tuple[str, ...] | None) -> None:
    """ARCHIVE is optional on the command line only so that ``--show-config`` works without one."""
    if not archive:
        raise UsageError("expected ARCHIVE (the archive file, or all its volumes), found none")


@click.command()
@click.argument("archive", nargs=-1, type=click.Path(dir_okay=False))  # required unless --show-config
@trusted_key_option()
@allow_unsigned_option()
@into_option("Verify this destination instead of an archive: re-hash every file its indexes list.")
@click.option("--no-record", is_flag=True, help="With --into: only report; do not record the damage found (see docs/usage.md).")
@lock_timeout_option("With --into: seconds to wait for the lock to record.")
@json_option()
@common_options()
def verify(
    archive: tuple[str, ...],
    trusted_keys: tuple[str, ...],
    allow_unsigned: bool,
    into: str | None,
    no_record: bool,
    lock_timeout: float,
    as_json: bool,
    state: State,
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
    from ..ops.options import destination_from, trusted_keys_for

    if into is not None or not archive:
        if archive:
            raise UsageError("verify: expected ARCHIVE or --into DEST, found both")
        if into is None:
            raise UsageError("verify: expected ARCHIVE (or --into DEST), found neither")
        from ..ops.options import VerifyDestinationOptions
        from ..ops.verify_dest import run_verify_destination

        options = VerifyDestinationOptions(record_findings=not no_record, lock_timeout=lock_timeout)
        check = run_verify_destination(destination_from(into, config), options, progress=progress_for(state.quiet))
        show(check, as_json)
        if check.damaged:
            sys.exit(3)
        return
    from ..ops.verify import run_verify

    _require_archive(archive)
    trusted = trusted_keys_for(trusted_keys, config)
    result = run_verify([Path(a) for a in archive], trusted, allow_unsigned=allow_unsigned, progress=progress_for(state.quiet))
    show(result, as_json)


@click.command()
@click.argument("archive", type=click.Path(dir_okay=False), required=False)  # required unless --show-config
@trusted_key_option("Also check the signature against this key (repeatable).")
@json_option("Print the description as JSON.")
@click.option("--sbom", type=click.Choice(["cyclonedx", "spdx"]), help="Print the archive's SBOM (CycloneDX 1.6 or SPDX 2.3 JSON) instead.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write the review page of the transfer to this file.")
@common_options()
def inspect(
    archive: str | None,
    trusted_keys: tuple[str, ...],
    as_json: bool,
    sbom: str | None,
    html_file: str | None,
    state: State,
    config: Config,
) -> None:
    """Show what ARCHIVE holds: channels, subdirs, counts, sizes, signer, sources.

    Reads only the manifest; the signature is checked when trusted keys are given.

    \b
    Example:  airgap inspect mirror.tar --json
    """
    from ..ops.options import trusted_keys_for

    _require_archive(archive)
    assert archive is not None
    keys = list(trusted_keys) + list(config.trusted_keys)
    trusted = trusted_keys_for(trusted_keys, config) if keys else None
    if sbom or html_file:  # with trusted keys, nothing is written unless the signature verifies
        from ..ops.review import run_review

        document = run_review(Path(archive), trusted, sbom_format=sbom, html=Path(html_file) if html_file else None)
        if document is not None:
            click.echo(document, nl=False)
        return
    from ..ops.verify import run_inspect

    show(run_inspect(Path(archive), trusted), as_json, archive=archive)
