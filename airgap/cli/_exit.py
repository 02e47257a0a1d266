"""How a command ends when it fails: the CLI's one error path (see :func:`airgap.cli._base._run`).

One line on stderr, and with ``--json`` one JSON object on stdout as well
(``{"ok": false, "error": ..., "exit_code": N}``), so a script reads the same kind of document
whether the command worked or not. A reader that closed the pipe early (``| head``) gets no
"Broken pipe" noise.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click


def fail(message: str, code: int, as_json: bool, more: list[str] | None = None) -> NoReturn:
    """The one way a command fails: one line on stderr (and the failures it lists), with --json also
    one JSON object on stdout, then the exit code."""
    prefix = "airgap: " if code in (130, 143) else "airgap: error: "  # Ctrl-C or SIGTERM: a stop, not an error
    click.echo(prefix + message, err=True)
    for line in (more or [])[:50]:
        click.echo(f"  {line}", err=True)
    if more and len(more) > 50:
        click.echo(f"  … and {len(more) - 50} more", err=True)
    if as_json:
        doc: dict[str, Any] = {"ok": False, "error": message, "exit_code": code}
        if more:
            doc["failures"] = more
        try:
            click.echo(json.dumps(doc, sort_keys=True, separators=(",", ":")))
        except BrokenPipeError:
            quiet_stdout()
    sys.exit(code)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test runner's buffer): nothing to flush into a pipe
        pass
