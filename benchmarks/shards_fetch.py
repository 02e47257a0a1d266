"""Bytes an export fetches for its plan: an upstream's CEP-16 shards (only the names needed) against its repodata.json.zst.

Run by hand (not part of the tests):

    python benchmarks/shards_fetch.py                          # 20,000 names x 8 records, pkg_list of 5 + closure
    python benchmarks/shards_fetch.py --names 2000 --records 4 --roots 20

It writes a synthetic linux-64 + noarch channel (records shaped like conda-forge's: name,
version, build, build_number, depends on up to 4 of the 1 % most used names and on python, license, md5, sha256,
size, subdir, timestamp; no package files: the plan downloads none), its repodata.json(.zst)
and its shards (:mod:`airgap.core.shards`), serves it with ``airgap serve`` on 127.0.0.1, and runs
``airgap plan``'s code (``run_plan``) twice with the same filters (``pkg_list`` of ``--roots``
names, ``with_dependencies: true``): once with ``upstream_shards: auto``, once with ``never``.
Bytes are the response sizes of the server's access log; both runs must select the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zstandard

from airgap.config import load_config
from airgap.core import shards
from airgap.ops.plan import run_plan
from airgap.site.serve import make_server


def channel(root: Path, names: int, records: int, seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    all_names = [f"pkg{i:05d}" for i in range(names)]
    core_size = max(10, names // 100)
    sizes = {}
    for subdir in ("linux-64", "noarch"):
        doc: dict[str, Any] = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "removed": [], "repodata_version": 1}
        for i, name in enumerate(all_names):
            if (i % 5 == 0) != (subdir == "noarch"):
                continue  # a fifth of the names are noarch
            for r in range(records):
                version, build = f"1.{r // 2}.{r % 2}", f"py3{10 + r % 3}h{r:04x}_{r}"
                core = all_names[: max(1, min(i, core_size))]  # most dependencies are on a few widely used names
                deps = sorted({rng.choice(core) for _ in range(rng.randint(0, 2 if i < core_size else 4))} - {name})
                record = {
                    "build": build,
                    "build_number": r,
                    "depends": [f"{d} >=1.0" for d in deps] + [f"python >=3.{10 + r % 3},<3.{11 + r % 3}.0a0"],
                    "license": "BSD-3-Clause",
                    "md5": hashlib.md5(f"{name}{r}{subdir}".encode()).hexdigest(),
                    "name": name,
                    "sha256": hashlib.sha256(f"{name}{r}{subdir}".encode()).hexdigest(),
                    "size": 10_000 + r,
                    "subdir": subdir,
                    "timestamp": 1_700_000_000_000 + i * 1000 + r,
                    "version": version,
                }
                doc["packages.conda"][f"{name}-{version}-{build}.conda"] = record
        d = root / subdir
        (d / "shards").mkdir(parents=True)
        raw = json.dumps(doc, separators=(",", ":")).encode()
        (d / "repodata.json").write_bytes(raw)
        (d / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(raw))
        out = shards.render(subdir, doc)
        (d / shards.INDEX).write_bytes(out.index)
        for digest, data in out.shards.items():
            (d / shards.shard_file(digest)).write_bytes(data)
        sizes[subdir] = len(raw)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=8)
    parser.add_argument("--roots", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        sizes = channel(t / "site" / "bench", args.names, args.records)
        lines: list[str] = []
        server = make_server(t / "site", port=0, access_log=lines.append, workers=32)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/bench/"
        roots = [f"pkg{i:05d}" for i in range(args.names // 2, args.names, max(1, args.names // (2 * args.roots)))][: args.roots]
        rows = []
        selections = []
        for mode in ("auto", "never"):
            cfg = t / f"{mode}.yaml"
            keys = {"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(t / "cache"), "pkg_list": roots}
            cfg.write_text(json.dumps({**keys, "with_dependencies": True, "upstream_shards": mode}))
            lines.clear()
            start = time.perf_counter()
            plan = run_plan(load_config(cfg)).plan
            seconds = time.perf_counter() - start
            got = [line for line in lines if '"GET ' in line]
            fetched = sum(int(line.rsplit(" ", 1)[1]) for line in got if line.rsplit(" ", 1)[1].isdigit())
            selections.append({s: sel.selected for s, sel in plan.selections["bench"].items()})
            rows.append((mode, len(got), fetched, seconds, sum(len(v) for v in selections[-1].values())))
        server.shutdown()
        assert selections[0] == selections[1], "the two modes selected different files"
        print(f"upstream: {args.names} names x {args.records} records; repodata.json {sizes} bytes; pkg_list {len(roots)} names + closure")
        print(f"{'upstream_shards':<16}{'requests':>10}{'bytes':>14}{'seconds':>10}{'selected':>10}")
        for mode, requests, fetched, seconds, chosen in rows:
            print(f"{mode:<16}{requests:>10}{fetched:>14,}{seconds:>10.2f}{chosen:>10}")
        print(f"bytes saved: {rows[1][2] - rows[0][2]:,} ({rows[0][2] / max(1, rows[1][2]):.3f}x of repodata.json.zst)")


if __name__ == "__main__":
    main()
