"""Cold `airgap export` next to conda-mirror 0.10.0 on the same channel, in one run, one table.

Run by hand (not part of the tests):

    python benchmarks/conda_mirror.py                      # 600 packages x 1 MiB
    python benchmarks/conda_mirror.py --small              # 10,000 packages x 16 KiB
    python benchmarks/conda_mirror.py --packages 3000 --size 16K

conda-mirror lives in its own venv (it pins nothing airgap needs; it does not need conda):

    python3 -m venv /tmp/cm && /tmp/cm/bin/pip install conda-mirror==0.10.0

It generates a channel (about 90 % linux-64, the rest noarch, `.conda` only) with
airgap.testing.condapkg, serves it on 127.0.0.1 with ThreadingHTTPServer, and times each tool as
a child process (wall time and peak RSS of the largest process in its tree):

* `python -m airgap export -q -f CONFIG --unsigned OUT.tar` with an empty mirror_dir: downloads
  linux-64 + noarch into the cache, checking size + sha256, then writes and fsyncs the archive;
* `conda-mirror --upstream-channel http://127.0.0.1:PORT/bench --platform P --target-directory
  DIR --temp-directory TMP --no-progress`, once for linux-64 then once for noarch into the same
  fresh DIR (it mirrors one platform per run): the row is the sum of both runs. Downloads are
  serial, validation is md5 + size; it runs with its default (`--num-threads 1`) and again with
  `--num-threads N` (default 0 = all cores), which only parallelises validation.

conda-mirror is only given a fully qualified http://127.0.0.1 URL, so it never falls back to
conda.anaconda.org; proxy variables are removed from both children's environments. Before the
table is printed, every mirror must hold exactly the upstream's package files (names, sizes and
sha256), else the run fails. conda-mirror does not fsync; the `sync s` column is a `sync` run
right after each tool, for reading the cost of durability next to airgap's fsync of its archive.
The tools run ``--repeat`` times (default 3), interleaved (airgap, conda-mirror, conda-mirror
--num-threads, again), each from an empty cache or target; the table shows each tool's median run.
The upstream server is a thread of this (otherwise idle) benchmark process, the same for all.

A slow link: ``--latency 50`` answers every request 50 ms after it arrives (a CDN far away);
``--workers 8,16,32,64`` adds one airgap row per worker count (how the default was chosen);
``--no-conda-mirror`` times airgap alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airgap.testing.condapkg import PackageSpec, write_channel

SUBDIRS = ("linux-64", "noarch")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run(cmd: list[str], log: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process; stderr goes to ``log`` (no pipe to fill)."""
    with open(log, "ab") as err:
        err.write(f"$ {' '.join(cmd)}\n".encode())
        err.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=err, stderr=err, env=child_env())
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{log.read_text()[-4000:]}")
    return elapsed, usage.ru_maxrss


def timed_sync() -> float:
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


Inventory = dict[tuple[str, str], tuple[int, str]]  # (subdir, filename) -> (size, sha256)


def directory_inventory(root: Path) -> Inventory:
    out: Inventory = {}
    for subdir in SUBDIRS:
        d = root / subdir
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.name.endswith((".conda", ".tar.bz2")):
                out[(subdir, f.name)] = (f.stat().st_size, sha256_file(f))
    return out


def archive_inventory(archive: Path) -> Inventory:
    """The packages airgap's manifest lists (member 1 of the archive)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    out: Inventory = {}
    for channel in manifest["channels"]:
        for sub in channel["subdirs"]:
            for pkg in sub["packages"]:
                out[(sub["subdir"], pkg["filename"])] = (pkg["size"], pkg["sha256"])
    return out


def check_same(name: str, got: Inventory, want: Inventory) -> None:
    if got == want:
        return
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    per = Counter(s for s, _ in got)
    raise SystemExit(
        f"MISMATCH: {name} holds {len(got)} package files {dict(per)}, upstream has {len(want)}; "
        f"missing {len(missing)} {missing[:5]}, extra {len(extra)} {extra[:5]}, "
        f"different bytes {len(differ)} {differ[:5]}"
    )


@dataclass
class Row:
    name: str
    wall: float
    rss_kib: int
    sync: float
    note: str = ""
    parts: dict[str, float] = field(default_factory=dict)


class Upstream:
    """The generated channel over HTTP on 127.0.0.1, counting requests (to show who fetched what)."""

    def __init__(self, root: Path, latency: float = 0.0) -> None:
        self.requests: Counter[str] = Counter()
        lock = threading.Lock()
        counter = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    counter[self.path.rsplit("/", 1)[-1].split(".")[-1]] += 1
                if latency:  # a slow link: every answer comes `latency` seconds after its request
                    time.sleep(latency)
                super().do_GET()

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # 64 workers connecting at once must not overflow the listen backlog

        self.httpd = Server(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/bench"

    def take(self) -> str:
        text = ", ".join(f"{n} .{ext}" for ext, n in sorted(self.requests.items()))
        self.requests.clear()
        return text


def median_row(rows: list[Row]) -> Row:
    """The run with the median wall time (the upper one of an even count); peak RSS is the largest of all."""
    ordered = sorted(rows, key=lambda r: r.wall)
    mid = ordered[len(ordered) // 2]
    return Row(mid.name, mid.wall, max(r.rss_kib for r in rows), mid.sync, mid.note, mid.parts)


def find_conda_mirror(given: str | None) -> str:
    if given:
        return given
    return shutil.which("conda-mirror") or "/tmp/cm/bin/conda-mirror"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=None, help="number of packages (default 600; --small: 10000)")
    ap.add_argument("--size", default=None, help="padding per package: bytes, or 16K, 1M (default 1M; --small: 16K)")
    ap.add_argument("--small", action="store_true", help="preset: 10,000 packages x 16 KiB (per-file overhead)")
    ap.add_argument(
        "--conda-mirror",
        default=None,
        metavar="PATH",
        help="conda-mirror executable (default: conda-mirror on PATH, else /tmp/cm/bin/conda-mirror)",
    )
    ap.add_argument(
        "--num-threads", type=int, default=0, help="conda-mirror --num-threads for its second run (0 = all cores; its default is 1)"
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of every tool (the table shows the median run)")
    ap.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="delay every upstream response by MS milliseconds (a link to a distant CDN; e.g. 50)",
    )
    ap.add_argument(
        "--workers",
        default=None,
        metavar="N,N,...",
        help="airgap rows with these worker counts (default: one row with the configured default)",
    )
    ap.add_argument("--max-bandwidth", default=None, metavar="SIZE", help="airgap's max_bandwidth (bytes/s: 20M, 500K)")
    ap.add_argument("--no-conda-mirror", action="store_true", help="time airgap only (conda-mirror not installed)")
    args = ap.parse_args()
    packages = args.packages if args.packages is not None else (10_000 if args.small else 600)
    size_text = args.size or ("16K" if args.small else "1M")
    pad = parse_size(size_text)
    cm = find_conda_mirror(args.conda_mirror)
    if not args.no_conda_mirror and not os.access(cm, os.X_OK):
        raise SystemExit(
            f"conda-mirror not found at {cm}: python3 -m venv /tmp/cm && /tmp/cm/bin/pip install conda-mirror==0.10.0 "
            f"(or --no-conda-mirror)"
        )
    cm_version = (
        "not run"
        if args.no_conda_mirror
        else subprocess.run([cm, "--version"], capture_output=True, text=True, env=child_env()).stdout.strip()
    )
    worker_counts = [int(w) for w in args.workers.split(",")] if args.workers else [None]
    airgap = [sys.executable, "-m", "airgap"]

    work = Path(args.workdir or tempfile.mkdtemp(prefix="airgap-cm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "children.log"

    t0 = time.perf_counter()
    n_noarch = round(packages * 0.1)
    specs = [
        PackageSpec(f"bench{i:05d}", "1.0", subdir="noarch" if i >= packages - n_noarch else "linux-64", padding=pad)
        for i in range(packages)
    ]
    write_channel(work / "up" / "bench", specs, formats=("conda",), subdirs=SUBDIRS)
    upstream_inv = directory_inventory(work / "up" / "bench")
    per_subdir = Counter(s for s, _ in upstream_inv)
    total = sum(size for size, _ in upstream_inv.values())
    print(
        f"generated {len(upstream_inv)} packages ({dict(per_subdir)}), {total / 2**20:.1f} MiB "
        f"in {time.perf_counter() - t0:.1f}s at {work}",
        file=sys.stderr,
    )

    up = Upstream(work / "up", args.latency / 1000)
    runs: dict[str, list[Row]] = {}
    config = work / "export.yaml"
    config_text = f"channels: ['{up.url}/']\nplatforms: [linux-64]\nmirror_dir: {work / 'airgap-cache'}\n"
    if args.max_bandwidth:
        config_text += f"max_bandwidth: {args.max_bandwidth}\n"
    variants = [("default (--num-threads 1)", []), (f"--num-threads {args.num_threads}", ["--num-threads", str(args.num_threads)])]

    def run_airgap(workers: int | None) -> Row:
        """Cold export: empty mirror_dir, one process for linux-64 + noarch."""
        config.write_text(config_text + (f"workers: {workers}\n" if workers else ""))
        shutil.rmtree(work / "airgap-cache", ignore_errors=True)
        (work / "airgap.tar").unlink(missing_ok=True)
        os.sync()
        up.take()
        wall, rss = run(airgap + ["export", "-q", "-f", str(config), "--unsigned", str(work / "airgap.tar")], log)
        row = Row(f"airgap export (cold, {workers or 'default'} workers)", wall, rss, timed_sync(), note=up.take())
        check_same("airgap archive", archive_inventory(work / "airgap.tar"), upstream_inv)
        check_same(
            "airgap cache",
            {k: v for k, v in upstream_inv.items() if (work / "airgap-cache" / "blobs" / "sha256" / v[1]).is_file()},
            upstream_inv,
        )
        return row

    def run_conda_mirror(label: str, extra: list[str]) -> Row:
        """One run per platform into one fresh target directory, summed."""
        base = work / "cm"
        shutil.rmtree(base, ignore_errors=True)
        target, tmp = base / "target", base / "tmp"
        tmp.mkdir(parents=True)
        os.sync()
        up.take()
        parts: dict[str, float] = {}
        peak = 0
        for subdir in SUBDIRS:
            cmd = [
                cm,
                "--upstream-channel",
                up.url,
                "--target-directory",
                str(target),
                "--temp-directory",
                str(tmp),
                "--platform",
                subdir,
                "--no-progress",
                *extra,
            ]
            parts[subdir], rss = run(cmd, log)
            peak = max(peak, rss)
        row = Row(f"conda-mirror {label}", sum(parts.values()), peak, timed_sync(), note=up.take(), parts=parts)
        check_same(f"conda-mirror {label} target", directory_inventory(target), upstream_inv)
        return row

    for rep in range(args.repeat):  # interleaved, so a slow spell of the machine hits every tool alike
        tools = [
            *(partial(run_airgap, w) for w in worker_counts),
            *([] if args.no_conda_mirror else [partial(run_conda_mirror, label, extra) for label, extra in variants]),
        ]
        for tool in tools:
            row = tool()
            runs.setdefault(row.name, []).append(row)
            print(f"run {rep + 1}: {row.name}: {row.wall:.2f}s", file=sys.stderr)
    rows = [median_row(rs) for rs in runs.values()]

    up.httpd.shutdown()
    errors = [line for line in log.read_text().splitlines() if "ERROR" in line or "Traceback" in line]
    if errors:
        raise SystemExit("children logged errors:\n" + "\n".join(errors[:20]))

    ours = rows[0]
    print(
        f"\n{len(upstream_inv)} packages ({per_subdir['linux-64']} linux-64 + {per_subdir['noarch']} noarch) x {size_text} "
        f"= {total / 2**20:.0f} MiB over HTTP on 127.0.0.1, {args.latency:g} ms per response; {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
        f"conda-mirror {cm_version}; median of {args.repeat} interleaved runs"
    )
    print("All mirrors hold the same package files as upstream (names, sizes, sha256).")
    print(
        f"{'tool (cold, empty target)':<40} {'wall s':>8} {'x airgap':>9} {'peak RSS':>9} {'x airgap':>9} {'sync s':>7}  "
        f"{'linux-64 s':>10} {'noarch s':>9}  requests served"
    )
    for r in rows:
        lin = f"{r.parts['linux-64']:.2f}" if r.parts else "-"
        noa = f"{r.parts['noarch']:.2f}" if r.parts else "-"
        print(
            f"{r.name:<40} {r.wall:>8.2f} {r.wall / ours.wall:>8.2f}x {r.rss_kib / 1024:>7.0f}MB {r.rss_kib / ours.rss_kib:>8.2f}x "
            f"{r.sync:>7.2f}  {lin:>10} {noa:>9}  {r.note}"
        )
    print(
        "conda-mirror rows: two runs (linux-64, then noarch, same target dir); wall s = their sum, peak RSS = the larger.\n"
        "airgap also writes and fsyncs the archive (a second copy of every byte); conda-mirror only fills its target.\n"
        "sync s: a sync run right after the tool (conda-mirror does not fsync). Peak RSS: largest single process in the tree."
    )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
