"""JSON bytes by msgspec where they are exactly what ``json.dumps`` writes, by ``json`` otherwise. Pure.

msgspec encodes strings, integers, booleans, None, lists and dicts with string keys to the same
bytes as ``json.dumps(..., ensure_ascii=False)`` with compact separators (tests/test_sbom_bytes.py
compares them over any code point), several times faster. Floats differ (``1e16`` is ``1e+16``
for json, and NaN is ``null`` for msgspec where json refuses it), as would any other type: a
document holding one is left to ``json``. Deciding costs one walk over the document, a fraction
of the encoding it replaces.

Sorted keys: msgspec's own ``order="sorted"`` is quadratic on keys that are already nearly in
order (a receipt read in sorted order with a few new files appended: 16-19 s at 300,000 files,
``benchmarks/sorted_keys.py``), so :func:`encode_sorted` sorts big dicts in Python first
(:func:`presorted`, Timsort: linear on such keys) and hands msgspec keys that are in order.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from typing import Any

import msgspec

_SCALARS = frozenset({str, int, bool, type(None)})
_NESTED = frozenset({dict, list, tuple})
_BIG = 32  # dicts with more keys are sorted in Python; msgspec sorts small ones fast enough
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
ENCODER = msgspec.json.Encoder()
encode = ENCODER.encode
# many small documents (a repodata record each, 300,000 of them): msgspec's own sort, whose slow case
# needs one dict of tens of thousands of keys; presorted's look at each would cost more than it saves
encode_sorted_small = _encode_sorted


def encode_sorted(doc: Any) -> bytes:
    """``doc`` as compact JSON with every dict's keys sorted (the bytes of ``json.dumps(sort_keys=True)``
    where :func:`msgspec_safe` holds), in time linear in the keys however they are ordered."""
    return _encode_sorted(presorted(doc))


def presorted(doc: Any) -> Any:
    """``doc`` with every dict of more than ``_BIG`` keys that is out of order rebuilt in sorted key order.

    Nothing else is copied: a dict or list with nothing to rebuild inside is returned itself. The
    checks run at C speed where they can (a receipt's subdir of 300,000 ``{sha256, size}`` entries
    is looked at through ``map``, not a Python call per entry). Keys that cannot be compared (not
    all strings) leave the dict as it is, for the encoder to refuse as it would have."""
    t = type(doc)
    if t is dict:
        out = doc
        if len(doc) > _BIG and not _in_order(doc):
            try:
                out = by_key(doc)
            except TypeError:
                return doc
        if not _may_hold_big(out.values()):
            return out
        rebuilt: dict[Any, Any] | None = None
        for k, v in out.items():
            if type(v) in _NESTED and (new := presorted(v)) is not v:
                if rebuilt is None:
                    rebuilt = dict(out)
                rebuilt[k] = new
        return out if rebuilt is None else rebuilt
    if (t is list or t is tuple) and _may_hold_big(doc):
        changed: list[Any] | None = None
        for i, v in enumerate(doc):
            if type(v) in _NESTED and (new := presorted(v)) is not v:
                if changed is None:
                    changed = list(doc)
                changed[i] = new
        return doc if changed is None else changed
    return doc


def _in_order(d: dict[Any, Any]) -> bool:
    keys = list(d)
    try:
        return all(map(operator.le, keys, itertools.islice(keys, 1, None)))
    except TypeError:
        return True  # not comparable: left to the encoder


def _may_hold_big(values: Iterable[Any]) -> bool:
    """Whether some value is, or holds, a dict of more than ``_BIG`` keys (False is certain; True may be wrong)."""
    kinds = set(map(type, values))
    if kinds.isdisjoint(_NESTED):
        return False
    if kinds == {dict} and max(map(len, values)) <= _BIG:  # small dicts (a receipt's files): look one level down
        return not set(map(type, itertools.chain.from_iterable(map(dict.values, values)))).isdisjoint(_NESTED)
    return True


def by_key(d: dict[Any, Any]) -> dict[Any, Any]:
    """``dict(sorted(d.items()))``, sorting the keys alone (string keys compare at C speed; pairs go through tuple
    comparison: 300,000 records' file names 0.2 s against 0.8-1.4 s); ``d`` itself when its keys are in order."""
    keys = sorted(d)
    return d if keys == list(d) else {k: d[k] for k in keys}


def msgspec_safe(doc: Any, leaves: frozenset[type] = frozenset()) -> bool:
    """Only what msgspec writes exactly as ``json`` does: no float, no non-string key, no subclass.
    ``leaves``: struct types the caller has checked hold only such values (taken as they are)."""
    stack = [doc]
    scalars = _SCALARS | leaves if leaves else _SCALARS
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
            if len(x) > _BIG and set(map(type, x)) <= scalars:  # a long list of leaves (a manifest's entries): one C pass
                continue
            stack.extend(x)
        else:
            return False
    return True
