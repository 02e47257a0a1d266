"""Output: one renderer per format. JSON here (one compact line, ``"ok": true`` added), text in :mod:`.text`.

Every command ends in :func:`show`, handing it the typed result of its one ``ops`` call; the
JSON document is the result's own ``to_json()``, the text reads the result's attributes.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import click
import msgspec

from ..core.jsonbytes import presorted
from .text import text


class Result(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def emit_json(doc: Any) -> None:
    """The JSON renderer: one line, compact, keys sorted, UTF-8; "ok" as on failure."""
    if isinstance(doc, dict):
        doc = {"ok": True, **doc}
    click.echo(encode_json(doc), nl=False)  # echo's newline would copy the bytes (tens of MB for a big plan)
    click.echo()


_encode = msgspec.json.Encoder(enc_hook=str, order="sorted").encode  # keys given in order by presorted: see core/jsonbytes


def encode_json(doc: Any) -> bytes:
    """``doc`` as one line of JSON: msgspec's encoder (a 300,000-package plan in a tenth of the
    ``json`` module's time), the ``json`` module for what msgspec refuses (a lone surrogate)."""
    try:
        return _encode(presorted(doc))
    except (UnicodeEncodeError, msgspec.EncodeError, TypeError):
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode("ascii")


def show(result: Result, as_json: bool, **context: Any) -> None:
    """Render ``result`` as JSON or as text (``context``: what the text says besides the result, e.g. the archive names)."""
    if as_json:
        emit_json(result.to_json())
    else:
        text(result, **context)
