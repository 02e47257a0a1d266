"""Output: one renderer per format. JSON here (one compact line, ``"ok": true`` added), text in :mod:`.text`.

Every command ends in :func:`show`, handing it the typed result of its one ``ops`` call; the
JSON document is the result's own ``to_json()``, the text reads the result's attributes.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import click

from .text import text


class Result(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def emit_json(doc: Any) -> None:
    """The JSON renderer: one line, compact (the C encoder keeps a 300,000-package plan fast); "ok" as on failure."""
    if isinstance(doc, dict):
        doc = {"ok": True, **doc}
    click.echo(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str))


def show(result: Result, as_json: bool, **context: Any) -> None:
    """Render ``result`` as JSON or as text (``context``: what the text says besides the result, e.g. the archive names)."""
    if as_json:
        emit_json(result.to_json())
    else:
        text(result, **context)
