"""The floor of a full import from Python: the least work DESIGN §4 allows, next to ``tar xf && sync`` (issue 15).

Run by hand (not part of the tests):

    python benchmarks/floors_import.py /tmp/s30/full.tar
    python benchmarks/floors_import.py /tmp/s30/full.tar --repeat 5 --airgap main=/work/main/.venv/bin/airgap \\
        --airgap branch=.venv/bin/airgap --trusted-key /tmp/s30/key.pub

The floor (``--floor ARCHIVE DEST``, run as a child process) does only what no import can skip
under DESIGN §4's staging rule: it reads the archive's members in one pass (hand-parsed ustar
headers, one buffered reader), hashes each blob with sha256 and compares it with the manifest,
writes each package blob to a staging name (``open``/``write``/``close`` relative to the staging
folder's descriptor), flushes everything with one ``syncfs``, then renames each staged file to its
final name (``channel/subdir/filename``) relative to the folders' descriptors, and fsyncs those
folders. No signature check, no index, no shards, pages, journal or receipt: what is left is the
per-file cost of Python plus the kernel's create and rename. A second floor (``--folders``) stages each
file under its final name in a copy of its (new) subdir folder and renames the folder into place:
one rename per subdir, valid only when the subdir does not exist yet (a first import).

``--output-floor`` adds the floor of what an import must *write*: the first ``--airgap`` imports once
(untimed), its destination is made a tarball, and each round times ``tar xf`` of that tarball ``&& sync``:
every file a client reads (the packages, ``repodata.json`` and its ``.zst``, the CEP-16 shards, the pages
of every package name) and airgap's state (receipt, SBOM, names table), written by the plain tool with no
check, parse or render at all. Its ratio to ``tar xf ARCHIVE`` is what the destination's size alone costs.

Each round runs the floor, ``tar xf ARCHIVE && sync`` into an empty folder, and each ``--airgap``
import into a fresh destination, one after another (the order rotates every round), each as a
child process (wall time; CPU time and peak RSS from ``wait4``: the disk is shared, so wall times of the
``sync`` part are noisy and CPU seconds say what each one computed). The table shows medians; a ratio is the
median of the per-round ratios to tar.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BLOCK = 512


def _number(field: bytes) -> int:
    digits = field.split(b"\0", 1)[0].strip(b" ")
    return int(digits, 8) if digits else 0


def _members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each member of the ustar ``archive``, in one pass (hand-parsed headers, one buffered reader)."""
    with open(archive, "rb", buffering=1 << 20) as fh:
        read = fh.read
        while True:
            header = read(BLOCK)
            if len(header) < BLOCK or header == bytes(BLOCK):
                return
            name = header[:100].split(b"\0", 1)[0].decode()
            size = _number(header[124:136])
            data = read(size)
            if len(data) != size:
                raise SystemExit(f"{archive}: truncated inside {name}")
            pad = -size % BLOCK
            if pad:
                read(pad)
            yield name, data


def floor_folders(archive: Path, dest: Path) -> int:
    """The floor when every subdir is new (a first import): each blob is staged under its final name in a copy of
    its subdir's folder inside the staging area, and each folder is renamed into place whole, once every blob is
    verified and on disk. DESIGN §4 holds (nothing outside the staging area changes before that; the files appear
    before any index names them), with one rename per subdir instead of one per file."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".staging"
    staging.mkdir()
    places: dict[str, list[tuple[str, str]]] = {}
    sizes: dict[str, int] = {}
    fds: dict[str, int] = {}  # folder -> its staging copy's descriptor
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    count = 0
    for name, data in _members(archive):
        if name == "manifest.json":
            doc = json.loads(data)
            for ch in doc["channels"]:
                for sub in ch["subdirs"]:
                    folder = f"{ch['name']}/{sub['subdir']}"
                    os.makedirs(staging / folder)
                    fds[folder] = os.open(staging / folder, os.O_RDONLY | os.O_DIRECTORY)
                    for p in sub["packages"]:
                        places.setdefault(p["sha256"], []).append((folder, p["filename"]))
            sizes = {b["sha256"]: b["size"] for b in doc["blobs"]}
            continue
        if not name.startswith("blobs/sha256/"):
            continue
        sha = name[13:]
        if sizes.get(sha) != len(data) or hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"{archive}: {name} does not match the manifest")
        for folder, filename in places.get(sha, ()):
            fd = os.open(filename, flags, 0o644, dir_fd=fds[folder])
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            count += 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(next(iter(fds.values()))) != 0:
        os.sync()
    for folder, fd in fds.items():
        os.close(fd)
        os.makedirs((dest / folder).parent, exist_ok=True)
        os.rename(staging / folder, dest / folder)  # the whole subdir at once (it did not exist)
        dir_fd = os.open((dest / folder).parent, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dir_fd)
        os.close(dir_fd)
    shutil.rmtree(staging)
    return count


def floor(archive: Path, dest: Path) -> int:
    """The floor import of ``archive`` into the empty folder ``dest``; returns the files placed."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".staging"
    staging.mkdir()
    staging_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    places: dict[str, list[tuple[str, str]]] = {}  # sha256 -> [(folder, filename)]
    sizes: dict[str, int] = {}
    staged: list[str] = []
    for name, data in _members(archive):
        if name == "manifest.json":
            doc = json.loads(data)
            for ch in doc["channels"]:
                for sub in ch["subdirs"]:
                    for p in sub["packages"]:
                        places.setdefault(p["sha256"], []).append((f"{ch['name']}/{sub['subdir']}", p["filename"]))
            sizes = {b["sha256"]: b["size"] for b in doc["blobs"]}
            continue
        if not name.startswith("blobs/sha256/"):
            continue
        sha = name[13:]
        if sizes.get(sha) != len(data) or hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"{archive}: {name} does not match the manifest")
        if sha not in places:
            continue  # a repodata or SBOM blob: an import keeps it in memory
        fd = os.open(sha, flags, 0o644, dir_fd=staging_fd)
        try:
            os.write(fd, data)  # small files: one write takes all
        finally:
            os.close(fd)
        staged.append(sha)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(staging_fd) != 0:  # every staged byte on disk before any final name points at it
        os.sync()
    folders: dict[str, int] = {}
    for sha in staged:
        last = len(places[sha]) - 1
        for i, (folder, filename) in enumerate(places[sha]):
            if folder not in folders:
                os.makedirs(dest / folder, exist_ok=True)
                folders[folder] = os.open(dest / folder, os.O_RDONLY | os.O_DIRECTORY)
            if i < last:  # the same bytes under another name too: a hard link, the last use a rename
                os.link(sha, filename, src_dir_fd=staging_fd, dst_dir_fd=folders[folder])
            else:
                os.rename(sha, filename, src_dir_fd=staging_fd, dst_dir_fd=folders[folder])
    for fd in folders.values():
        os.fsync(fd)  # the renames are durable
        os.close(fd)
    os.close(staging_fd)
    os.rmdir(staging)
    return len(staged)


def _run(cmd: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds, user and system CPU seconds, and peak RSS (KiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return elapsed, usage.ru_utime, usage.ru_stime, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", type=Path)
    ap.add_argument("--floor", type=Path, metavar="DEST", help="run the floor import into DEST (the child process)")
    ap.add_argument("--folders", action="store_true", help="with --floor: rename each subdir's folder, not each file")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (medians shown)")
    ap.add_argument("--airgap", action="append", default=[], metavar="LABEL=PATH", help="also time this airgap executable's import")
    ap.add_argument("--trusted-key", type=Path, help="for --airgap imports")
    ap.add_argument("--workdir", type=Path, default=None, help="where the destinations go (default: a temporary folder)")
    ap.add_argument("--output-floor", action="store_true", help="also time tar xf of what the first --airgap import writes")
    args = ap.parse_args()
    if args.floor is not None:
        (floor_folders if args.folders else floor)(args.archive, args.floor)
        return
    work = Path(tempfile.mkdtemp(prefix="floors-import-", dir=args.workdir))
    steps: dict[str, list[str]] = {
        "floor (Python, DESIGN §4)": [sys.executable, __file__, str(args.archive), "--floor", "{dest}"],
        "floor, one rename per new subdir": [sys.executable, __file__, str(args.archive), "--floor", "{dest}", "--folders"],
        "tar xf && sync": ["sh", "-c", f"mkdir -p {{dest}} && tar xf {args.archive} -C {{dest}} && sync"],
    }
    key = ["--trusted-key", str(args.trusted_key)] if args.trusted_key else ["--allow-unsigned"]
    for spec in args.airgap:
        label, _, path = spec.partition("=")
        steps[f"airgap import ({label})"] = [path, "import", str(args.archive), "--into", "{dest}", *key]
    if args.output_floor and args.airgap:
        made = work / "made"
        _run([args.airgap[0].partition("=")[2], "import", str(args.archive), "--into", str(made), *key])
        subprocess.run(["tar", "cf", str(work / "made.tar"), "-C", str(made), "."], check=True)
        made.rename(work / "made-untimed")  # deleted at the end with the rest (see below)
        steps["tar xf of what the import writes && sync"] = [
            "sh",
            "-c",
            f"mkdir -p {{dest}} && tar xf {work / 'made.tar'} -C {{dest}} && sync",
        ]
    times: dict[str, list[float]] = {name: [] for name in steps}
    user: dict[str, list[float]] = {name: [] for name in steps}
    system: dict[str, list[float]] = {name: [] for name in steps}
    rss: dict[str, int] = dict.fromkeys(steps, 0)
    names = list(steps)
    trash = work / "trash"
    trash.mkdir()
    try:
        for i in range(args.repeat):
            order = names[i % len(names) :] + names[: i % len(names)]  # who goes first rotates
            for name in order:
                dest = work / f"d{i}-{names.index(name)}"
                os.sync()  # start from a quiet disk: no one pays for the last one's writeback
                took, u, s, peak = _run([part.replace("{dest}", str(dest)) for part in steps[name]])
                times[name].append(took)
                user[name].append(u)
                system[name].append(s)
                rss[name] = max(rss[name], peak)
                # deleted after the last round: ext4 without a journal (this VM's disk) skips recently freed inodes
                # one by one when it creates files, which taxed whoever ran next (docs/performance.md, eighteenth session)
                dest.rename(trash / dest.name)
                print(f"round {i + 1}: {name}: {took:.2f} s, user {u:.2f} s, system {s:.2f} s, {peak // 1024} MB", file=sys.stderr)
        tar = times["tar xf && sync"]
        print(f"{args.archive} ({args.archive.stat().st_size / 1e6:.1f} MB), median of {args.repeat} interleaved round(s)\n")
        print("| step | median wall s | ratio to tar xf && sync | median user s | median system s | peak RSS |")
        print("|---|---|---|---|---|---|")
        for name in names:
            ratio = statistics.median(a / b for a, b in zip(times[name], tar, strict=True))
            med = [statistics.median(x[name]) for x in (times, user, system)]
            print(f"| {name} | {med[0]:.2f} | {ratio:.2f}x | {med[1]:.2f} | {med[2]:.2f} | {rss[name] // 1024} MB |")
    finally:  # the table is out first: deleting every round's files takes minutes
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
