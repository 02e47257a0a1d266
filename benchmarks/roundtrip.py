"""Export / verify / import timings next to tar and sha256sum, in one run, one table.

Run by hand (not part of the tests):

    python benchmarks/roundtrip.py --packages 500 --size 1M       # ~500 MB channel
    python benchmarks/roundtrip.py --packages 10000 --size 16K    # per-file overhead

It generates a channel with airgap.testing.condapkg, serves it on 127.0.0.1, and measures
each airgap command as a child process (wall time and peak RSS), next to the plain tools
doing the same byte work: `tar cf … && sync` for the warm export, `tar xf … && sync` for the
import, `sha256sum` for verify. Each step runs ``--repeat`` times (default 3) in pairs, airgap
first in odd pairs and the plain tool first in even ones (on the 2-core VM of docs/performance.md
the first run of a step was often the slow one, whichever tool it was); the table shows medians,
and the ratio is the median of the per-pair ratios. Ratios are what to read; these machines are
noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airgap.testing.condapkg import PackageSpec, write_channel


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def run(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return elapsed, usage.ru_maxrss


def shell(script: str, cwd: Path) -> tuple[float, int]:
    return run(["bash", "-c", script], cwd)


def drop_caches() -> None:
    """Best effort: flush dirty pages so one step's writeback is not billed to the next."""
    os.sync()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=500)
    ap.add_argument("--size", default="1M", help="padding per package (bytes, or 16K, 1M)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each step (the table shows medians)")
    args = ap.parse_args()
    airgap = [sys.executable, "-m", "airgap"]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="airgap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    pad = parse_size(args.size)

    t0 = time.perf_counter()
    specs = [PackageSpec(f"bench{i:05d}", "1.0", subdir="linux-64", padding=pad) for i in range(args.packages)]
    write_channel(work / "up" / "bench", specs, formats=("conda",), subdirs=("linux-64",))
    files = sorted((work / "up" / "bench" / "linux-64").glob("*.conda"))
    total = sum(f.stat().st_size for f in files)
    gen = time.perf_counter() - t0
    print(f"generated {len(files)} packages, {total / 2**20:.1f} MiB in {gen:.1f}s at {work}", file=sys.stderr)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(work / "up")))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/bench/"
    (work / "export.yaml").write_text(f"channels: ['{url}']\nplatforms: [linux-64]\nmirror_dir: {work / 'cache'}\n")
    run(airgap + ["keygen", str(work / "key")])

    rows: list[tuple[str, float, float | None, float | None, int, str]] = []
    export = airgap + ["export", "-q", "-f", str(work / "export.yaml"), "--sign-key", str(work / "key"), str(work / "m.tar")]
    imp = airgap + ["import", "-q", str(work / "m.tar"), "--into", str(work / "dest"), "--trusted-key", str(work / "key.pub")]

    def measure(name: str, ours: list[str], plain: str | None, label: str, before_ours: Any = None, before_plain: Any = None) -> None:
        """``--repeat`` interleaved runs of airgap and the plain tool; the medians, and the median of the per-pair ratios."""
        mine: list[tuple[float, int]] = []
        theirs: list[float] = []

        def ours_once() -> None:
            if before_ours:
                before_ours()
            drop_caches()
            mine.append(run(ours))

        def plain_once() -> None:
            if plain is not None:
                if before_plain:
                    before_plain()
                drop_caches()
                theirs.append(shell(plain, work)[0])

        for rep in range(args.repeat):  # who goes first alternates: the first run of a step is often the slow one
            for step in (ours_once, plain_once) if rep % 2 == 0 else (plain_once, ours_once):
                step()
        times = [t for t, _ in mine]
        ratio = statistics.median([a / b for a, b in zip(times, theirs, strict=True)]) if theirs else None
        rows.append((name, statistics.median(times), statistics.median(theirs) if theirs else None, ratio, max(r for _, r in mine), label))
        print(f"{name}: airgap {' '.join(f'{t:.2f}' for t in times)}; plain {' '.join(f'{t:.2f}' for t in theirs)}", file=sys.stderr)

    def fresh(*paths: Path) -> Any:
        def clear() -> None:
            for p in paths:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()

        return clear

    def fresh_dir(path: Path) -> Any:
        def clear() -> None:
            fresh(path)()
            path.mkdir()

        return clear

    measure("cold export (HTTP 127.0.0.1)", export, None, "", before_ours=fresh(work / "cache", work / "m.tar"))
    measure(
        "warm export (all cached)",
        export,
        f"tar cf {work / 'plain.tar'} -C {files[0].parent} . && sync",
        "tar cf && sync",
        before_ours=fresh(work / "m.tar"),
        before_plain=fresh(work / "plain.tar"),
    )
    measure(
        "verify",
        airgap + ["verify", "-q", str(work / "m.tar"), "--trusted-key", str(work / "key.pub")],
        f"sha256sum {files[0].parent}/*.conda > /dev/null",
        "sha256sum files",
    )
    measure(
        "import (verify + durable publish)",
        imp,
        f"tar xf {work / 'plain.tar'} -C {work / 'plain'} && sync",
        "tar xf && sync",
        before_ours=fresh(work / "dest"),
        before_plain=fresh_dir(work / "plain"),
    )
    measure("re-import (no-op)", imp, None, "")

    print(
        f"\n{len(files)} packages × {args.size} = {total / 2**20:.0f} MiB; {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
        f"median of {args.repeat} interleaved runs"
    )
    print(f"{'step':<36} {'airgap s':>9} {'plain s':>9} {'ratio':>7} {'peak RSS':>10}  plain tool")
    for name, ours_s, plain_s, ratio_x, rss, label in rows:
        ratio = f"{ratio_x:.2f}x" if ratio_x else "-"
        plain = f"{plain_s:.2f}" if plain_s else "-"
        print(f"{name:<36} {ours_s:>9.2f} {plain:>9} {ratio:>7} {rss / 1024:>8.0f}MB  {label}")
    httpd.shutdown()
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
