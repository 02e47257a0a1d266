"""The options several commands share, each declared once.

A decorator per option (``@json_option``, ``@into_option(...)``, ``@trusted_key_option(...)``,
``@lock_timeout_option(...)`` ...): the flag, its destination name, its type and default live
here; a command only chooses the help text where the meaning differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..ops.options import LOCK_TIMEOUT

F = TypeVar("F", bound=Callable[..., Any])

INTO_HELP = (
    "Destination: a directory, s3://BUCKET/PREFIX, quetz+http(s)://HOST:PORT/CHANNEL or a site name "
    "(default: into / dest_site in the config)."
)
DOWNGRADE_HELP = (
    "Apply an archive older than the destination's newest (or a delta built on another state) "
    "for its new files only: nothing is removed or replaced."
)
MERGE_HELP = (
    "Merge every channel{what} into this channel (--account: the guide's spelling); channel_map in the config sends channels to their own."
)


def json_option(help: str = "Print the result as JSON.") -> Callable[[F], F]:
    """``--json``: one JSON document on stdout (also on failure: ``{"ok": false, ...}``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def into_option(help: str = INTO_HELP) -> Callable[[F], F]:
    """``--into DEST``: the destination (a path, URL or site name)."""
    return click.option("--into", "into", help=help)


def trusted_key_option(help: str = "Public key whose signature is accepted (repeatable; adds to trusted_keys).") -> Callable[[F], F]:
    """``--trusted-key KEY`` (repeatable): the public keys an archive's signature may come from."""
    return click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(dir_okay=False), help=help)


def lock_timeout_option(help: str = "Seconds to wait for another import to finish.") -> Callable[[F], F]:
    """``--lock-timeout SECONDS``: how long to wait for the destination's lock."""
    return click.option("--lock-timeout", type=float, default=LOCK_TIMEOUT, show_default=True, help=help)


def dest_channel_option(help: str) -> Callable[[F], F]:
    """``--dest-channel`` / ``--account``: the destination channel."""
    return click.option("--dest-channel", "--account", "dest_channel", help=help)


def allow_unsigned_option() -> Callable[[F], F]:
    """``--allow-unsigned``: the dangerous switch, named as such."""
    return click.option("--allow-unsigned", is_flag=True, help="DANGEROUS: accept an archive that carries no signature.")


def allow_downgrade_option() -> Callable[[F], F]:
    return click.option("--allow-downgrade", is_flag=True, help=DOWNGRADE_HELP)


def env_option(
    help: str = "environment.yml, pixi.lock (:NAME,... picks environments), conda-lock.yml or @EXPLICIT file to mirror (repeatable; adds to environments).",
    metavar: str = "FILE[:NAME,...]",
) -> Callable[[F], F]:
    """``--env FILE`` (repeatable): environment or lock files (export and sync: to mirror; condarc: to redirect)."""
    return click.option("--env", "env_files", multiple=True, metavar=metavar, help=help)


def public_url_option(help: str) -> Callable[[F], F]:
    """``--url URL``: where clients reach the mirror (writes DEST/downloads/)."""
    return click.option("--url", "public_url", help=help)
