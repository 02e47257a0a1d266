"""Sorted-key JSON of a receipt-shaped document: msgspec's ``order="sorted"`` against ``encode_sorted``
and ``json.dumps(sort_keys=True)`` (issue 15).

Run by hand (not part of the tests):

    python benchmarks/sorted_keys.py                     # 30,000, 100,000 and 300,000 files
    python benchmarks/sorted_keys.py --files 300000 --repeat 3

The document is what a receipt is after a delta import: ``{channel: {subdir: {filename: {sha256,
size}}}}`` whose file names were read in sorted order and then had a few new ones appended
(``--appended``, 30 by default: nearly sorted, the case msgspec 0.23's sort handles in quadratic
time; measured at 300,000 files: 0 appended 0.13 s, 30 appended 20 s, 3,000 appended 0.37 s). Each encoder's bytes are
checked equal to ``json.dumps``'s before any time is taken; the table shows medians of ``--repeat``
rounds, msgspec's own sort timed once at most per size (it takes minutes at 300,000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from airgap.core.jsonbytes import encode_sorted


def receipt_like(files: int, appended: int = 30) -> dict[str, Any]:
    names = sorted(f"pkg{i % 9973}-{i // 9973}.{i}-py_0.conda" for i in range(files))
    sub = {n: {"sha256": hashlib.sha256(n.encode()).hexdigest(), "size": len(n) * 1000} for n in names}
    for i in range(appended):  # a delta's new files, appended after the sorted ones
        n = f"new{i}-1.0-0.conda"
        sub[n] = {"sha256": hashlib.sha256(n.encode()).hexdigest(), "size": i}
    return {"format": "airgap-receipt/1", "channels": {"conda-forge": {"linux-64": sub}}}


def timed(fn: Any, doc: Any) -> tuple[float, bytes]:
    t = time.perf_counter()
    out = fn(doc)
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, action="append", help="files in the receipt (repeatable)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--appended", type=int, default=30, help="new file names appended after the sorted ones")
    ap.add_argument("--skip-msgspec-above", type=int, default=400_000, help="time msgspec's own sort only up to this size")
    args = ap.parse_args()
    plain = msgspec.json.Encoder(order="sorted").encode

    def dumps(d: Any) -> bytes:
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    print(f"{'files':>8} {'msgspec sorted':>15} {'encode_sorted':>14} {'json.dumps':>11}")
    for n in args.files or [30_000, 100_000, 300_000]:
        doc = receipt_like(n, args.appended)
        want = dumps(doc)
        ours = [timed(encode_sorted, doc) for _ in range(args.repeat)]
        theirs = [timed(dumps, doc) for _ in range(args.repeat)]
        assert all(b == want for _, b in ours), "encode_sorted differs from json.dumps"
        ms = "skipped"
        if n <= args.skip_msgspec_above:
            secs, got = timed(plain, doc)
            assert got == want, "msgspec differs from json.dumps"
            ms = f"{secs:.2f} s"
        med = statistics.median
        print(f"{n:>8} {ms:>15} {med(t for t, _ in ours):>12.2f} s {med(t for t, _ in theirs):>9.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
