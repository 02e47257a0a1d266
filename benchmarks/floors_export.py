"""The floor of a full export from Python: the least Python can do for the same job, next to ``tar cf && sync``.

Run by hand (not in the suite):

    python benchmarks/floors_export.py --files /tmp/s30/up/big/linux-64

The job (issue 15: a full export of many small files from a ``file://`` upstream): list the
folder's files, read and sha256 each one, write a tar member for each into one file, and sync.
The floor does only that, in a fresh interpreter (its start counts, as airgap's does): one
``open``, one ``read`` and one ``close`` per file, a ustar header from a template, the bytes
gathered into a 1 MiB buffer written with ``os.write``, then ``fsync`` and ``sync``. No
manifest, no SBOM, no repodata parse, no signature: whatever airgap spends beyond this floor is
its own work. Each round runs the floor and ``tar cf ARCHIVE -C FILES . && sync`` back to back
(their order alternating), each as a child process (wall time, peak RSS); the table gives the
medians and the median of the per-round ratios. The floor's archive is checked with ``tarfile``
once (every member there, with the file's bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BLOCK = 512
BUF = 1 << 20


def _template() -> tuple[bytes, bytes, int]:
    """The parts of a ustar header that do not change per file, and their checksum contribution."""
    info = tarfile.TarInfo("x")
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
    raw = info.tobuf(tarfile.USTAR_FORMAT)
    middle, tail = raw[100:124], raw[156:]
    return middle, tail, sum(middle) + sum(tail) + 8 * 32


def _rest(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, BUF):
        chunks.append(chunk)
    return b"".join(chunks)


def floor(files: Path, out: Path) -> dict[str, float]:
    """The job, timed by step; returns the seconds of each (the child prints them)."""
    t0 = time.perf_counter()
    names = sorted(e.name for e in os.scandir(files) if e.is_file(follow_symlinks=False))
    t1 = time.perf_counter()
    middle, tail, fixed = _template()
    nuls, zeros = bytes(100), bytes(BLOCK)
    mtime = int(time.time())
    digests = []
    view = memoryview(bytearray(BUF))
    buf = bytearray()
    fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for name in names:
            fd = os.open(os.path.join(files, name), os.O_RDONLY)
            try:
                n = os.readv(fd, [view])  # into one reused buffer: no allocation per file
                data = view[:n] if n < BUF else memoryview(view.tobytes() + _rest(fd))
            finally:
                os.close(fd)
            digests.append(hashlib.sha256(data).hexdigest())
            raw = name.encode()
            if len(raw) > 100:  # a long name: a pax header first (tarfile builds it)
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), mtime, 0o644, 0, 0, "", ""
                buf += info.tobuf(tarfile.PAX_FORMAT)
            else:
                numbers = b"%011o\0%011o\0" % (len(data), mtime)
                checksum = fixed + sum(raw) + sum(numbers)
                buf += raw + nuls[len(raw) :] + middle + numbers + b"%06o\0 " % checksum + tail
            buf += data
            buf += zeros[: -len(data) % BLOCK]
            if len(buf) >= BUF:
                os.write(fd_out, buf)
                buf.clear()
        buf += bytes(2 * BLOCK)
        buf += bytes(-(os.lseek(fd_out, 0, os.SEEK_CUR) + len(buf)) % (20 * BLOCK))
        os.write(fd_out, buf)
        t2 = time.perf_counter()
        os.fsync(fd_out)
    finally:
        os.close(fd_out)
    os.sync()
    t3 = time.perf_counter()
    return {"list": t1 - t0, "read, hash, write": t2 - t1, "fsync and sync": t3 - t2, "files": float(len(names))}


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return time.perf_counter() - t0, usage.ru_maxrss, out


def check(files: Path, archive: Path) -> None:
    """Every file of the folder is a member of the floor's archive, with its bytes."""
    with tarfile.open(archive) as tf:
        members = {m.name: m for m in tf.getmembers()}
        names = sorted(e.name for e in os.scandir(files) if e.is_file(follow_symlinks=False))
        assert sorted(members) == names, "the floor's archive misses files"
        for name in names[:: max(1, len(names) // 200)]:
            member = tf.extractfile(members[name])
            assert member is not None and member.read() == (files / name).read_bytes(), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--files", type=Path, default=Path("/tmp/s30/up/big/linux-64"), help="the folder of files")
    ap.add_argument("--workdir", type=Path, default=None, help="where the archives go (default: a temporary folder)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("FILES", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(floor(Path(args.child[0]), Path(args.child[1]))))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="floors-export-"))
    work.mkdir(parents=True, exist_ok=True)
    ours, plain = work / "floor.tar", work / "plain.tar"
    floor_cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(args.files), str(ours)]
    tar_cmd = ["sh", "-c", f"tar cf {plain} -C {args.files} . && sync"]
    rows: list[tuple[float, int, float, int, dict[str, float]]] = []
    for n in range(args.rounds):
        for p in (ours, plain):
            p.unlink(missing_ok=True)
        os.sync()
        if n % 2 == 0:
            f_s, f_rss, f_out = run(floor_cmd)
            t_s, t_rss, _ = run(tar_cmd)
        else:
            t_s, t_rss, _ = run(tar_cmd)
            f_s, f_rss, f_out = run(floor_cmd)
        rows.append((f_s, f_rss, t_s, t_rss, json.loads(f_out)))
        print(f"round {n + 1}: floor {f_s:.2f} s, tar cf && sync {t_s:.2f} s, ratio {f_s / t_s:.2f}x", file=sys.stderr)
    check(args.files, ours)
    steps = {k: statistics.median(r[4][k] for r in rows) for k in rows[0][4]}
    files = int(steps.pop("files"))
    print(f"{files} files in {args.files}, {args.rounds} interleaved rounds, medians")
    print("| | wall | peak RSS | ratio to tar (median of rounds) |")
    print("|---|---|---|---|")
    print(f"| `tar cf && sync` | {statistics.median(r[2] for r in rows):.2f} s | {max(r[3] for r in rows) // 1024} MB | 1x |")
    ratio = statistics.median(r[0] / r[2] for r in rows)
    print(f"| Python floor | {statistics.median(r[0] for r in rows):.2f} s | {max(r[1] for r in rows) // 1024} MB | {ratio:.2f}x |")
    print("floor by step (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()
