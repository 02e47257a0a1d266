"""Export / verify / import timings next to tar and sha256sum, in one run, one table.

Run by hand (not part of the tests):

    python benchmarks/roundtrip.py --packages 500 --size 1M       # ~500 MB channel
    python benchmarks/roundtrip.py --packages 10000 --size 16K    # per-file overhead

It generates a channel with airgap.testing.condapkg, serves it on 127.0.0.1, and measures
each airgap command as a child process (wall time and peak RSS), next to the plain tools
doing the same byte work: `tar cf … && sync` for the warm export, `tar xf … && sync` for the
import, `sha256sum` for verify. Ratios are what to read; these machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
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

    rows: list[tuple[str, float, float | None, int, str]] = []

    def add(name: str, ours: tuple[float, int], theirs: tuple[float, int] | None, label: str) -> None:
        rows.append((name, ours[0], theirs[0] if theirs else None, ours[1], label))

    drop_caches()
    cold = run(airgap + ["export", "-q", "-f", str(work / "export.yaml"), "--sign-key", str(work / "key"), str(work / "m.tar")])
    add("cold export (HTTP 127.0.0.1)", cold, None, "")
    os.unlink(work / "m.tar")
    drop_caches()
    warm = run(airgap + ["export", "-q", "-f", str(work / "export.yaml"), "--sign-key", str(work / "key"), str(work / "m.tar")])
    drop_caches()
    tar_c = shell(f"tar cf {work / 'plain.tar'} -C {files[0].parent} . && sync", work)
    add("warm export (all cached)", warm, tar_c, "tar cf && sync")
    drop_caches()
    ver = run(airgap + ["verify", "-q", str(work / "m.tar"), "--trusted-key", str(work / "key.pub")])
    drop_caches()
    sha = shell(f"sha256sum {files[0].parent}/*.conda > /dev/null", work)
    add("verify", ver, sha, "sha256sum files")
    drop_caches()
    imp = run(airgap + ["import", "-q", str(work / "m.tar"), "--into", str(work / "dest"), "--trusted-key", str(work / "key.pub")])
    drop_caches()
    (work / "plain").mkdir()
    tar_x = shell(f"tar xf {work / 'plain.tar'} -C {work / 'plain'} && sync", work)
    add("import (verify + durable publish)", imp, tar_x, "tar xf && sync")
    noop = run(airgap + ["import", "-q", str(work / "m.tar"), "--into", str(work / "dest"), "--trusted-key", str(work / "key.pub")])
    add("re-import (no-op)", noop, None, "")

    print(f"\n{len(files)} packages × {args.size} = {total / 2**20:.0f} MiB; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"{'step':<36} {'airgap s':>9} {'plain s':>9} {'ratio':>7} {'peak RSS':>10}  plain tool")
    for name, ours_s, plain_s, rss, label in rows:
        ratio = f"{ours_s / plain_s:.2f}x" if plain_s else "-"
        plain = f"{plain_s:.2f}" if plain_s else "-"
        print(f"{name:<36} {ours_s:>9.2f} {plain:>9} {ratio:>7} {rss / 1024:>8.0f}MB  {label}")
    httpd.shutdown()
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
