"""Planning over one big subdir vs a bare ``json.load`` of the same repodata. Run by hand:

    python benchmarks/plan.py --records 300000

The subdir copies the shape of real records (defaults main osx-64, 2018, from tests/data),
repeated with renamed packages until it holds --records records. Each step runs as its own
child process (wall time, peak RSS): a bare ``json.load``; ``airgap export --plan`` with no
filters; with the cas-mirror filters (license_blacklist, blacklist, python_versions); and
with pkg_list + with_dependencies.
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "repodata" / "main_osx-64_2018-10.repodata.json.bz2"


def run(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return time.perf_counter() - t0, usage.ru_maxrss


def make_subdir(path: Path, n: int) -> None:
    base = json.loads(bz2.decompress(DATA.read_bytes()))
    records = list(base["packages"].items())
    packages: dict[str, dict[str, object]] = {}
    copy = 0
    while len(packages) < n:
        for fn, rec in records:
            if len(packages) >= n:
                break
            if copy:
                rec = {**rec, "name": f"{rec['name']}-x{copy}"}
                fn = f"{rec['name']}-{rec['version']}-{rec['build']}.tar.bz2"
            packages[fn] = rec
        copy += 1
    doc = {"info": {"subdir": "osx-64"}, "packages": packages, "packages.conda": {}, "removed": [], "repodata_version": 1}
    (path / "osx-64").mkdir(parents=True)
    (path / "osx-64" / "repodata.json").write_text(json.dumps(doc))
    (path / "noarch").mkdir()
    (path / "noarch" / "repodata.json").write_text(json.dumps({"info": {"subdir": "noarch"}, "packages": {}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="airgap-plan-") as tmp:
        work = Path(tmp)
        make_subdir(work / "big", args.records)
        size = (work / "big" / "osx-64" / "repodata.json").stat().st_size
        rows = [
            (
                "json.load (baseline)",
                run([sys.executable, "-c", f"import json; json.load(open({str(work / 'big' / 'osx-64' / 'repodata.json')!r}))"]),
            )
        ]
        configs: dict[str, dict[str, Any]] = {
            "plan, no filters": {},
            "plan, cas-mirror filters": {"license_blacklist": ["GPL"], "blacklist": ["openssl 1.0.*"], "python_versions": ["3.6", "3.7"]},
            "plan, pkg_list + closure": {
                "pkg_list": ["python", "numpy", "requests"],
                "with_dependencies": True,
                "python_versions": ["3.6"],
            },
        }
        for name, extra in configs.items():
            cfg = work / "c.yaml"
            cfg.write_text(
                json.dumps({"channels": [str(work / "big")], "platforms": ["osx-64"], "mirror_dir": str(work / "cache"), **extra})
            )
            rows.append((name, run([sys.executable, "-m", "airgap", "export", "-q", "-f", str(cfg), "--plan", "--json"])))
    base = rows[0][1][0]
    print(f"\n{args.records} records, {size / 2**20:.0f} MiB of repodata; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"{'step':<28} {'seconds':>8} {'x json.load':>12} {'peak RSS':>10}")
    for name, (secs, rss) in rows:
        print(f"{name:<28} {secs:>8.2f} {secs / base:>11.2f}x {rss / 1024:>8.0f}MB")


if __name__ == "__main__":
    main()
