"""One write(2) of a big buffer against the same bytes in slices (airgap._fs.WRITE_SLICE).

Run by hand:

    python benchmarks/write_slices.py            # 128 MiB, 5 rounds
    python benchmarks/write_slices.py --mib 32

Each round writes the same bytes to a new file in a temporary folder, once per slice size, in a
different order each round, and prints the median seconds per slice size. The files are kept
until the end (rounds x 6 x MiB of page cache): a file removed at once frees its pages, and the
next write reuses them warm, which hides the difference. On this project's test
VMs one call for 124 MiB took 0.84-1.05 s and 1 MiB slices 0.04-0.05 s; reads and
``copy_file_range`` of the same size showed no such difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

SLICES = {"one call": 0, "64 MiB": 64 << 20, "8 MiB": 8 << 20, "4 MiB": 4 << 20, "1 MiB": 1 << 20, "256 KiB": 256 << 10}


def write(path: str, data: bytes, piece: int) -> float:
    view = memoryview(data)
    piece = piece or len(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        t0 = time.perf_counter()
        done = 0
        while done < len(data):
            done += os.write(fd, view[done : done + piece])
        return time.perf_counter() - t0
    finally:
        os.close(fd)  # kept until the end: a page freed by one round would be reused, warm, by the next


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    data = os.urandom(1 << 20) * args.mib
    times: dict[str, list[float]] = {name: [] for name in SLICES}
    with tempfile.TemporaryDirectory(prefix="airgap-write-") as tmp:
        for r in range(args.rounds):
            names = list(SLICES)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(write(os.path.join(tmp, f"{r}-{SLICES[name]}"), data, SLICES[name]))
    for name, ts in times.items():
        print(f"{name:>9}: {statistics.median(ts):.3f} s  ({' '.join(f'{t:.3f}' for t in ts)})")


if __name__ == "__main__":
    main()
