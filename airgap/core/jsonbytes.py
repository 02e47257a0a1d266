"""JSON bytes by msgspec where they are exactly what ``json.dumps`` writes, by ``json`` otherwise. Pure.

msgspec encodes strings, integers, booleans, None, lists and dicts with string keys to the same
bytes as ``json.dumps(..., ensure_ascii=False)`` with compact separators (tests/test_sbom_bytes.py
compares them over any code point), several times faster. Floats differ (``1e16`` is ``1e+16``
for json, and NaN is ``null`` for msgspec where json refuses it), as would any other type: a
document holding one is left to ``json``. Deciding costs one walk over the document, a fraction
of the encoding it replaces.
"""

from __future__ import annotations

from typing import Any

import msgspec

_SCALARS = frozenset({str, int, bool, type(None)})
encode_sorted = msgspec.json.Encoder(order="sorted").encode
encode = msgspec.json.Encoder().encode


def msgspec_safe(doc: Any) -> bool:
    """Only what msgspec writes exactly as ``json`` does: no float, no non-string key, no subclass."""
    stack = [doc]
    scalars = _SCALARS
    while stack:
        x = stack.pop()
        t = type(x)
        if t in scalars:
            continue
        if t is dict:
            for k, v in x.items():
                if type(k) is not str:
                    return False
                tv = type(v)
                if tv is not str and tv is not int:  # most values: no push, no pop
                    stack.append(v)
        elif t is list or t is tuple:
            stack.extend(x)
        else:
            return False
    return True
