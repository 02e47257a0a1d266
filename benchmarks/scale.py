"""conda-forge scale: one big subdir, every step next to the plain tool doing the same work (issue 15).

Run by hand (not part of the tests; ``--quick`` is the suite's smoke test):

    python benchmarks/scale.py                   # 300,000 records, 3 interleaved pairs per step
    python benchmarks/scale.py --records 50000
    python benchmarks/scale.py --quick           # ~2,000 records, one pair per step

It generates one ``linux-64`` subdir of ``--records`` records shaped like real defaults records
(defaults main osx-64, 2018, from tests/data, repeated with renamed packages) and one small file
per record, as a ``file://`` upstream. Each step runs as a child process (wall time, peak RSS
from ``ru_maxrss``), paired with the plain tool doing comparable work, who goes first alternating;
the full export and import, which run as two processes, run once more, untimed, with both
processes' memory sampled (timed runs are not sampled: the sampler's own work slowed them, see ``run``):

- full export (empty cache) vs ``tar cf && sync`` of the same files;
- full import (fresh destination) vs ``tar xf && sync``;
- then upstream changes as in a week (+60 records and files, -10): the delta export
  (``--since`` the destination's receipt) vs a ``json.load`` of the upstream repodata; the delta
  archive's size; the delta import vs a ``json.load`` of the destination's repodata;
- the plan (``export --plan --json``) vs a ``json.load`` of the upstream repodata;
- the destination's largest ``index.html`` page.

The table shows medians; a ratio is the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "tests" / "data" / "repodata" / "main_osx-64_2018-10.repodata.json.bz2"
SUBDIR = "linux-64"
ADDED, REMOVED = 60, 10

Row = tuple[str, float, float | None, float | None, int, str, float, float | None]  # ..., CPU seconds: airgap's, the plain tool's


#: Linux keeps a process's peak RSS across fork and exec, so what ``wait4`` says of a child is at least this process's
#: RSS when it started the child (this one holds the generated records: ~570 MB at 300,000). Every command therefore
#: runs under this launcher, which forks it once more and reports the grandchild's own wall time and peak RSS.
_LAUNCHER = """
import os, sys, threading, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
peak = [0]
def tree(top):
    out, i = [top], 0
    while i < len(out):
        try:
            for task in os.listdir(f"/proc/{out[i]}/task"):
                out += [int(c) for c in open(f"/proc/{out[i]}/task/{task}/children").read().split()]
        except OSError:
            pass
        i += 1
    return out
def pss(p):
    try:
        return next((int(line.split()[1]) for line in open(f"/proc/{p}/smaps_rollup") if line.startswith("Pss:")), 0)
    except OSError:
        return 0
def sample():  # a command of two processes (an import's blob child, an export's body child): their memory summed
    while not done.is_set():
        kids = tree(pid)
        if len(kids) > 1:
            peak[0] = max(peak[0], sum(map(pss, kids)))
        done.wait(0.02)
done = threading.Event()
if os.environ.get("AIRGAP_BENCH_SAMPLE") == "1":
    threading.Thread(target=sample, daemon=True).start()
_, status, usage = os.wait4(pid, 0)
done.set()
sys.stderr.write(f"\\nairgap-bench {time.perf_counter() - t0} {max(usage.ru_maxrss, peak[0])} {usage.ru_utime + usage.ru_stime}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: list[str], cwd: Path | None = None, sample: bool = False) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds of one command, as measured by :data:`_LAUNCHER` around it: the
    process's peak (``wait4``: the largest of it and its children), or, ``sample``, while it has children, the sum of
    their proportional set sizes (sampled every 20 ms), whichever is larger: a second process's memory counts. The CPU
    seconds are user and system time of the command and every process it waited for (an import's blob child, tar
    under bash): on 2 cores a command's wall time is at least half of them, whatever runs in parallel.

    The sampler reads ``smaps_rollup``, which walks the page tables of an 800 MB process: on this 2-core VM it took
    0.8-1.5 s from a full export whose two processes keep both cores busy (8.60 / 9.25 / 10.58 s sampled against
    7.79 / 7.78 / 9.47 s not, alternating), and nothing from ``tar``, which runs as one process and is never
    sampled. So timed runs are not sampled; each step's memory comes from one more run of its own."""
    env = {**os.environ, "AIRGAP_BENCH_SAMPLE": "1" if sample else "0"}
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=env
    )
    err = proc.stderr.decode("utf-8", "replace").rstrip("\n")
    said, _, last = err.rpartition("\n")
    if proc.returncode != 0 or not last.startswith("airgap-bench "):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}): {said if last.startswith('airgap-bench ') else err}")
    _, elapsed, rss, cpu = last.split()
    return float(elapsed), int(rss), float(cpu)


def json_load(path: Path) -> list[str]:
    return [sys.executable, "-c", f"import json; json.load(open({str(path)!r}, 'rb'))"]


def _file_for(record: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {**record, "subdir": SUBDIR, "size": len(body), "md5": hashlib.md5(body).hexdigest(), "sha256": hashlib.sha256(body).hexdigest()}


def make_upstream(channel: Path, n: int) -> dict[str, dict[str, Any]]:
    """``channel``/linux-64 with ``n`` records and their files, and an empty noarch; the records."""
    shapes = list(json.loads(bz2.decompress(SHAPES.read_bytes()))["packages"].values())
    sub = channel / SUBDIR
    sub.mkdir(parents=True)
    (channel / "noarch").mkdir()
    (channel / "noarch" / "repodata.json").write_text(json.dumps({"info": {"subdir": "noarch"}, "packages": {}}))
    packages: dict[str, dict[str, Any]] = {}
    copy = 0
    while len(packages) < n:
        for rec in shapes:
            if len(packages) >= n:
                break
            name = f"{rec['name']}-x{copy}" if copy else str(rec["name"])
            fn = f"{name}-{rec['version']}-{rec['build']}.tar.bz2"
            if fn in packages:
                continue
            body = f"{fn}\n".encode()
            (sub / fn).write_bytes(body)
            packages[fn] = _file_for({**rec, "name": name}, body)
        copy += 1
    write_repodata(sub, packages)
    return packages


def write_repodata(sub: Path, packages: dict[str, dict[str, Any]]) -> None:
    doc = {"info": {"subdir": SUBDIR}, "packages": packages, "packages.conda": {}, "removed": [], "repodata_version": 1}
    tmp = sub / "repodata.json.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, sub / "repodata.json")


def a_week_later(sub: Path, packages: dict[str, dict[str, Any]]) -> None:
    """+60 new builds of existing names, -10 records (and their files) gone."""
    names = sorted(packages)
    for fn in names[: REMOVED * 7 : 7]:
        del packages[fn]
        (sub / fn).unlink()
    kept = sorted(packages)
    for i, fn in enumerate(kept[1 : ADDED * 13 : 13]):
        rec = packages[fn]
        build = f"weekly_{i}"
        new = f"{rec['name']}-{rec['version']}-{build}.tar.bz2"
        body = f"{new}\n".encode()
        (sub / new).write_bytes(body)
        packages[new] = _file_for({**rec, "build": build, "timestamp": 1_700_000_000_000 + i}, body)
    write_repodata(sub, packages)


def largest_page(root: Path) -> tuple[int, int, str]:
    """(largest index.html page in bytes, pages, its path) under a destination."""
    best, count, where = 0, 0, ""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".html"):
                count += 1
                size = os.stat(os.path.join(dirpath, f)).st_size
                if size > best:
                    best, where = size, os.path.relpath(os.path.join(dirpath, f), root)
    return best, count, where


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved pairs per step (medians shown)")
    ap.add_argument("--quick", action="store_true", help="smoke test: ~2,000 records, one pair per step")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.repeat = 2000, 1
    airgap = [sys.executable, "-m", "airgap"]
    # byte-compiled once, as an installed airgap is: with PYTHONDONTWRITEBYTECODE set (as on the test VM),
    # every airgap child would compile its modules from source again (0.3-0.5 s a command)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "airgap")], check=False, stdout=subprocess.DEVNULL)  # best effort
    work = Path(args.workdir or tempfile.mkdtemp(prefix="airgap-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    up = work / "up" / "big"
    t0 = time.perf_counter()
    packages = make_upstream(up, args.records)
    upstream_json = up / SUBDIR / "repodata.json"
    print(
        f"generated {len(packages)} records ({upstream_json.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )
    cfg = work / "export.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": [SUBDIR], "mirror_dir": str(work / "cache")}))
    run([*airgap, "keygen", str(work / "key")])
    sign = ["--sign-key", str(work / "key")]
    trust = ["--trusted-key", str(work / "key.pub")]
    dests = [work / f"dest{i}" for i in range(args.repeat + 1)]  # the last: the memory run's
    rows: list[Row] = []

    def measure(name: str, ours: Callable[[int], list[str]], plain: Callable[[int], list[str]] | None, label: str, **prep: Any) -> None:
        mine: list[tuple[float, int, float]] = []
        theirs: list[tuple[float, int, float]] = []
        for rep in range(args.repeat):

            def ours_once(rep: int = rep) -> None:
                if prep.get("before_ours"):
                    prep["before_ours"](rep)
                os.sync()
                mine.append(run(ours(rep)))

            def plain_once(rep: int = rep) -> None:
                if plain is not None:
                    if prep.get("before_plain"):
                        prep["before_plain"](rep)
                    os.sync()
                    theirs.append(run(plain(rep), work))

            for step in (ours_once, plain_once) if rep % 2 == 0 else (plain_once, ours_once):
                step()
        times = [t for t, _, _ in mine]
        plain_times = [t for t, _, _ in theirs]
        sampled = 0
        if prep.get("two_processes"):  # one more run, sampled and not timed (see run()): both processes' memory
            if prep.get("before_ours"):
                prep["before_ours"](args.repeat)
            os.sync()
            _, sampled, _ = run(ours(args.repeat), sample=True)
        ratio = statistics.median(a / b for a, b in zip(times, plain_times, strict=True)) if theirs else None
        peak = max(sampled, *(r for _, r, _ in mine))
        cpu = statistics.median(c for _, _, c in mine)
        plain_cpu = statistics.median(c for _, _, c in theirs) if theirs else None
        rows.append(
            (name, statistics.median(times), statistics.median(plain_times) if theirs else None, ratio, peak, label, cpu, plain_cpu)
        )
        print(
            f"{name}: airgap {' '.join(f'{t:.2f}' for t in times)}; plain {' '.join(f'{t:.2f}' for t in plain_times)}; "
            f"CPU airgap {' '.join(f'{c:.2f}' for _, _, c in mine)}; plain {' '.join(f'{c:.2f}' for _, _, c in theirs)}; "
            f"peak {peak / 1024:.0f} MiB" + (f" (sampled run {sampled / 1024:.0f})" if sampled else ""),
            file=sys.stderr,
        )

    trash = work / "trash"

    def gone(*paths: Path) -> None:
        """Out of the way; a tree of files is deleted only after the last timed step. ext4 without a journal (this
        VM's disk) skips inodes freed in the last seconds to minutes when it allocates new ones, one by one: after
        300,000 files were deleted, creating 300,000 more took 137 s of kernel time instead of 14 (perf: 75 % of
        the samples in ``recently_deleted``), for airgap and for tar alike (docs/performance.md, eighteenth session)."""
        for p in paths:
            if p.is_dir():
                trash.mkdir(exist_ok=True)
                p.rename(trash / f"{len(list(trash.iterdir()))}")
            elif p.exists():
                p.unlink()

    def sh(script: str) -> list[str]:
        return ["bash", "-c", script]

    files = up / SUBDIR
    measure(
        "full export (file://, empty cache)",
        lambda _: [*airgap, "export", "-q", "-f", str(cfg), *sign, str(work / "full.tar")],
        lambda _: sh(f"tar cf {work / 'plain.tar'} -C {files} . && sync"),
        "tar cf && sync",
        before_ours=lambda _: gone(work / "cache", work / "full.tar"),
        before_plain=lambda _: gone(work / "plain.tar"),
        two_processes=True,
    )
    measure(
        "full import",
        lambda i: [*airgap, "import", "-q", str(work / "full.tar"), "--into", str(dests[i]), *trust],
        lambda i: sh(f"mkdir -p {work / f'plain{i}'} && tar xf {work / 'plain.tar'} -C {work / f'plain{i}'} && sync"),
        "tar xf && sync",
        before_ours=lambda i: gone(dests[i]),
        before_plain=lambda i: gone(work / f"plain{i}"),
        two_processes=True,
    )
    for i in range(args.repeat):
        gone(work / f"plain{i}")
    before_page = largest_page(dests[0])
    a_week_later(files, packages)
    receipt = dests[0] / ".airgap" / "receipt.json"
    delta = work / "delta.tar"
    measure(
        f"delta export (+{ADDED}/-{REMOVED})",
        lambda _: [*airgap, "export", "-q", "-f", str(cfg), *sign, "--since", str(receipt), str(delta)],
        lambda _: json_load(upstream_json),
        "json.load upstream",
        before_ours=lambda _: gone(delta),
    )
    delta_size = delta.stat().st_size
    dest_json = dests[0] / "big" / SUBDIR / "repodata.json"
    measure(
        "delta import",
        lambda i: [*airgap, "import", "-q", str(delta), "--into", str(dests[i]), *trust],
        lambda i: json_load(dests[i] / "big" / SUBDIR / "repodata.json") if dest_json.exists() else json_load(upstream_json),
        "json.load dest",
    )
    measure(
        "plan (export --plan --json)",
        lambda _: [*airgap, "export", "-q", "-f", str(cfg), "--plan", "--json"],
        lambda _: json_load(upstream_json),
        "json.load upstream",
    )
    page, pages, where = largest_page(dests[0])

    print(
        f"\n{len(packages)} records, {upstream_json.stat().st_size / 2**20:.0f} MiB of repodata; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}; median of {args.repeat} interleaved pair(s)"
    )
    print(f"{'step':<36} {'airgap s':>9} {'plain s':>9} {'ratio':>7} {'peak RSS':>10} {'CPU s':>7} {'plain':>7}  plain tool")
    for name, ours_s, plain_s, ratio_x, rss, label, cpu, plain_cpu in rows:
        ratio = f"{ratio_x:.2f}x" if ratio_x is not None else "-"
        plain_txt = f"{plain_s:.2f}" if plain_s is not None else "-"
        plain_cpu_txt = f"{plain_cpu:.2f}" if plain_cpu is not None else "-"
        print(f"{name:<36} {ours_s:>9.2f} {plain_txt:>9} {ratio:>7} {rss / 1024:>7.0f}MiB {cpu:>7.2f} {plain_cpu_txt:>7}  {label}")
    print(f"delta archive: {delta_size / 2**20:.2f} MiB ({delta_size} bytes) for {ADDED} new files")
    print(f"largest page after the full import: {before_page[0] / 2**20:.2f} MiB ({before_page[2]}), {before_page[1]} pages")
    print(f"largest page after the delta import: {page / 2**20:.2f} MiB ({where}), {pages} pages")
    shutil.rmtree(trash, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
