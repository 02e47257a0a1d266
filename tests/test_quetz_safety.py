"""Issue 20.2 against a real quetz: a name clash is refused before any upload, and a failed import
deletes nothing it uploaded (quetz listed each file at once; a concurrent import may rely on it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import build_archive, cli

from airgap import faults
from airgap.destinations.quetz import QuetzDestination
from airgap.testing.condapkg import PackageSpec


@pytest.fixture(autouse=True)
def _faults_off_after() -> Iterator[None]:
    yield
    faults.reset()  # the next store call reads the (restored) environment again: no fault leaks into other tests


def _specs(names: list[str], padding: int = 0) -> list[PackageSpec]:
    return [PackageSpec(n, "1.0", build="h0_0", subdir="linux-64", padding=padding) for n in names]


def _listed(q: Any, channel: str) -> dict[str, str | None]:
    rd = QuetzDestination(q.url, channel, q.key).read_repodata(channel, "linux-64")
    return {fn: rec.get("sha256") for fn, rec in rd.records()} if rd is not None else {}


def _calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str = "") -> Path:
    log = tmp_path / f"calls-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("AIRGAP_FAULT_LOG", str(log))
    monkeypatch.setenv("AIRGAP_FAULT", fault)
    faults.reset()
    return log


def test_a_name_clash_is_refused_before_anything_is_uploaded(
    quetz: Any, keyring: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = f"clash-{uuid.uuid4().hex[:8]}"
    into = f"quetz+{quetz.url}/{channel}"
    monkeypatch.setenv("QUETZ_API_KEY", quetz.key)
    first = build_archive(_specs(["xx"]), archive_id="1" * 32).write(tmp_path / "first.tar", keyring["good"])
    assert cli("import", first, "--into", into, "--trusted-key", keyring["good.pub"]).exit_code == 0
    held = _listed(quetz, channel)
    # the same file name with other bytes, after six new packages
    second = build_archive(_specs(["aa0", "aa1", "aa2", "aa3", "aa4", "aa5", "xx"], padding=2000), archive_id="2" * 32).write(
        tmp_path / "second.tar", keyring["good"]
    )
    log = _calls(monkeypatch, tmp_path)
    r = cli("import", second, "--into", into, "--trusted-key", keyring["good.pub"])
    assert r.exit_code == 1 and "holds with other bytes under the same name (first: linux-64/xx-1.0-h0_0" in r.output, r.output
    uploads = [line for line in log.read_text().splitlines() if "/upload/" in line]
    assert uploads == []  # found before the first byte went up
    assert _listed(quetz, channel) == held


def test_a_failed_import_deletes_nothing_it_uploaded(
    quetz: Any, keyring: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the rollback deleted aa0..aa5, which a concurrent import holding the same files had reported published."""
    channel = f"keep-{uuid.uuid4().hex[:8]}"
    into = f"quetz+{quetz.url}/{channel}"
    monkeypatch.setenv("QUETZ_API_KEY", quetz.key)
    archive = build_archive(_specs(["aa0", "aa1", "aa2"]), archive_id="3" * 32).write(tmp_path / "a.tar", keyring["good"])
    log = _calls(monkeypatch, tmp_path)
    assert (
        cli("import", archive, "--into", f"quetz+{quetz.url}/count-{uuid.uuid4().hex[:8]}", "--trusted-key", keyring["good.pub"]).exit_code
        == 0
    )
    calls = log.read_text().splitlines()
    last_upload = max(i for i, line in enumerate(calls, 1) if "/upload/" in line)
    _calls(monkeypatch, tmp_path, f"fail@{last_upload + 1}")  # the import fails right after its uploads
    r = cli("import", archive, "--into", into, "--trusted-key", keyring["good.pub"])
    assert r.exit_code != 0 and "they stay published" in r.output, r.output
    monkeypatch.setenv("AIRGAP_FAULT", "")
    faults.reset()
    listed = QuetzDestination(quetz.url, channel, quetz.key).wait_for("linux-64", {}, set())
    assert listed is not None and {fn for fn, _ in listed.records()} >= {"aa0-1.0-h0_0.conda", "aa1-1.0-h0_0.conda", "aa2-1.0-h0_0.conda"}
    # the next import finds them all and finishes
    r = cli("import", archive, "--into", into, "--trusted-key", keyring["good.pub"])
    assert r.exit_code == 0, r.output


def test_quetz_killed_mid_import_then_restarted_the_next_import_finishes(
    keyring: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in the issue's list of tried faults: the quetz server dies while files are uploaded, then comes back."""
    import os
    import subprocess
    import sys
    import time

    from servers import start_quetz, stop

    from airgap.testing.rattler_client import install

    server = start_quetz(tmp_path / "q")
    try:
        archive = build_archive(_specs([f"qq{i}" for i in range(6)], padding=2000), archive_id="4" * 32, formats=("conda",)).write(
            tmp_path / "q.tar", keyring["good"]
        )
        args = [
            sys.executable,
            "-m",
            "airgap",
            "import",
            str(archive),
            "--into",
            f"quetz+{server.url}/mirror",
            "--trusted-key",
            str(keyring["good.pub"]),
        ]
        log = tmp_path / "calls"
        env = {**os.environ, "QUETZ_API_KEY": server.key, "AIRGAP_FAULT_LOG": str(log), "AIRGAP_FAULT_PAUSE": "4"}
        counted = subprocess.run([*args[:6], f"quetz+{server.url}/count", *args[7:]], env=env, capture_output=True, text=True, timeout=120)
        assert counted.returncode == 0, counted.stderr
        uploads = [int(line.split()[0]) for line in log.read_text().splitlines() if "/upload/" in line]
        log.unlink()
        pause = uploads[2]  # two files are up when the server dies
        proc = subprocess.Popen(
            args, env={**env, "AIRGAP_FAULT": f"pause@{pause}"}, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not (log.exists() and len(log.read_text().splitlines()) >= pause):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        stop(server.proc)
        _out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1 and "cannot reach the server" in err, err
        server = start_quetz(tmp_path / "q", server)
        r = subprocess.run(args, env={**env, "QUETZ_API_KEY": server.key}, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        listed = _listed(server, "mirror")
        assert sorted(listed) == [f"qq{i}-1.0-h0_0.conda" for i in range(6)]
        monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
        assert install([f"{server.url}/get/mirror"], ["qq5"], tmp_path / "prefix", tmp_path / "pkgs") == ["qq5"]
    finally:
        stop(server.proc)
