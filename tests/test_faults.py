"""Fault injection (issue 20, "Done when"): SIGKILL before a store call of an import, a clean and a sync.

The hook is :mod:`airgap.faults` (``AIRGAP_FAULT=kill@N``). For each backend (the session's real
SeaweedFS, a directory) and each command, an unfaulted run first counts the store calls; then
the command is killed before chosen calls, each time on a fresh copy of a destination holding
the first archive. After every kill, the index names only files that are there with their
sha256; the very next run of the same command succeeds with no hand-deleted lock and leaves no
lock or staging area; a real client (py-rattler) then installs over HTTP.

By default two kill points per command (during the uploads, during the index and receipt writes); ``-m slow`` runs every one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from remote import BUCKET, _s3_env, client_install, s3_objects

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["import", "clean", "sync"]


class Site:
    """A destination of one backend: fresh copies of a template holding the first archive, and what it holds."""

    def __init__(self, kind: str, seaweed: Any, tmp: Path) -> None:
        self.kind, self.seaweed, self.tmp = kind, seaweed, tmp
        self.template = self.fresh_name()

    def fresh_name(self) -> str:
        return f"s3://{BUCKET}/faults/{uuid.uuid4().hex[:8]}" if self.kind == "s3" else str(self.tmp / uuid.uuid4().hex[:8])

    def copy(self) -> str:
        into = self.fresh_name()
        if self.kind == "s3":
            client = self.seaweed.client()
            src, dst = self.template.split("/", 3)[3], into.split("/", 3)[3]
            for key in s3_objects(self.seaweed, src + "/"):
                client.copy_object(Bucket=BUCKET, Key=dst + key[len(src) :], CopySource={"Bucket": BUCKET, "Key": key})
        else:
            shutil.copytree(self.template, into)
        return into

    def objects(self, into: str) -> dict[str, bytes]:
        if self.kind == "s3":
            prefix = into.split("/", 3)[3] + "/"
            return {k[len(prefix) :]: v for k, v in s3_objects(self.seaweed, prefix).items()}
        root = Path(into)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}

    def channel_url(self, into: str, http_server: Callable[[Path], str]) -> str:
        if self.kind == "s3":
            return f"{self.seaweed.endpoint}/{BUCKET}/{into.split('/', 3)[3]}/main"
        return http_server(Path(into)) + "/main"


def index_problems(objects: dict[str, bytes]) -> list[str]:
    """Files an index names that are missing or hold other bytes (empty: a client finds every file it is told of)."""
    problems = []
    for key, data in objects.items():
        if key.endswith("/repodata.json") and not key.startswith(".airgap/"):
            folder = key.rsplit("/", 1)[0]
            doc = json.loads(data)
            for fn, rec in [*doc.get("packages", {}).items(), *doc.get("packages.conda", {}).items()]:
                held = objects.get(f"{folder}/{fn}")
                if held is None or hashlib.sha256(held).hexdigest() != rec.get("sha256"):
                    problems.append(f"{folder}/{fn}")
    return problems


def leftovers(objects: dict[str, bytes]) -> list[str]:
    return [k for k in objects if k == ".airgap/lock" or k.startswith(".airgap/staging-")]


def command(name: str, into: str, archives: dict[str, Path]) -> list[str]:
    if name == "import":
        return ["import", str(archives["v2"]), "--into", into, "--trusted-key", str(archives["pub"])]
    if name == "clean":
        return ["clean", "-f", str(archives["clean"]), "--into", into]
    return ["sync", "-f", str(archives["export"]), "--into", into]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airgap", *args, "-q"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def kill_points(n: int, every: bool) -> list[int]:
    return list(range(1, n + 1)) if every else sorted({max(1, n // 3), n - max(1, n // 6)})


def matrix(
    kind: str,
    every: bool,
    seaweed: Any,
    archives: dict[str, Path],
    tmp_path: Path,
    http_server: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _s3_env(monkeypatch, seaweed)
    site = Site(kind, seaweed, tmp_path)
    r = cli("import", archives["v1"], "--into", site.template, "--trusted-key", archives["pub"])
    assert r.exit_code == 0, r.output
    last = ""
    for name in COMMANDS:
        into = site.copy()
        log = tmp_path / f"{name}.calls"
        done = run(command(name, into, archives), AIRGAP_FAULT_LOG=str(log))
        assert done.returncode == 0, done.stderr
        calls = log.read_text().splitlines()
        assert len(calls) > 5, calls
        for k in kill_points(len(calls), every):
            into = site.copy()
            killed = run(command(name, into, archives), AIRGAP_FAULT=f"kill@{k}")
            where = f"{kind} {name} killed before store call {k} ({calls[k - 1]})"
            assert killed.returncode == -9, f"{where}: {killed.stderr}"
            assert index_problems(site.objects(into)) == [], where
            again = cli(*command(name, into, archives), "--lock-timeout", "5")  # the very next run recovers by itself
            assert again.exit_code == 0, f"{where}, then: {again.output}"
            held = site.objects(into)
            assert index_problems(held) == [] and leftovers(held) == [], where
            last = into
    assert client_install(site.channel_url(last, http_server), tmp_path, monkeypatch, "a4") == ["a4", "d1"]


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_a_kill_at_sampled_store_calls_is_recovered_by_the_next_run(
    kind: str,
    seaweed: Any,
    bucket: str,
    archives: dict[str, Path],
    tmp_path: Path,
    http_server: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    matrix(kind, False, seaweed, archives, tmp_path, http_server, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_a_kill_at_every_store_call_is_recovered_by_the_next_run(
    kind: str,
    seaweed: Any,
    bucket: str,
    archives: dict[str, Path],
    tmp_path: Path,
    http_server: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    matrix(kind, True, seaweed, archives, tmp_path, http_server, monkeypatch)
