"""Careless or hostile local inputs (issue 12, items 14, 15 and 22).

Files a user points airgap at (config, keys) that are devices, FIFOs, huge or YAML alias
bombs; SIGTERM in the middle of writing an archive; a full disk; a private key others can
read. Where the broken behaviour was an endless read or a hang, the command runs in a
subprocess with a memory limit and a timeout, so a regression fails instead of taking the
machine with it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.ops.verify import run_inspect
from airgap.testing.condapkg import PackageSpec, write_channel

MEMORY_LIMIT = 2 << 30


def run(*args: Any, timeout: float = 60, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m airgap ARGS`` with at most MEMORY_LIMIT of address space (and ``fsize`` bytes per file)."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "airgap", *map(str, args)], capture_output=True, text=True, timeout=timeout, preexec_fn=limits
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("airgap: error: "), proc.stderr[-2000:]
    assert len(lines[0]) < 400, lines[0][:400]
    return lines[0]


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "up" / "chan"
    write_channel(
        root, [PackageSpec("p", str(v), subdir="linux-64", padding=8000) for v in range(1, 6)], subdirs=("linux-64",), formats=("conda",)
    )
    return root


def export_config(tmp_path: Path, channel: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(channel)], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    return cfg


# --- 14: files that are not small regular files -------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "fifo", "huge"])
def test_config_and_key_files_are_bounded_regular_files(tmp_path: Path, kind: str) -> None:
    if kind == "device":
        path, found = Path("/dev/zero"), "found a character device"
    elif kind == "fifo":
        path, found = tmp_path / "fifo", "found a FIFO"
        os.mkfifo(path)
    else:
        path, found = tmp_path / "huge", "of at most"
        path.write_bytes(b"#" * (2 << 20))
    proc = run("export", "-f", path, "--plan")
    assert proc.returncode == 2
    assert found in one_error_line(proc)
    proc = run("verify", tmp_path / "none.tar", "--trusted-key", path)
    assert proc.returncode == 2
    assert found in one_error_line(proc)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(tmp_path)], "signing_key": str(path)}))
    proc = run("export", "-f", cfg, tmp_path / "m.tar")
    assert proc.returncode == 2
    assert found in one_error_line(proc)


# --- 15: YAML alias bombs, long values ------------------------------------------------------------


def alias_bomb() -> str:
    """448 bytes that name 9**9 strings once the aliases are expanded."""
    lines = ["pkg_list:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(alias_bomb())
    assert cfg.stat().st_size < 500
    proc = run("export", "-f", cfg, "--plan", timeout=60)
    assert proc.returncode == 2
    assert "refusing an alias bomb" in one_error_line(proc)
    cfg.write_text("pkg_list: &a [*a]\n")  # an alias inside its own anchor
    assert "refusing an alias bomb" in one_error_line(run("export", "-f", cfg, "--plan"))


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pkg_list: &names [numpy, scipy]\nwhitelist: *names\nchannels: [/nowhere]\n")
    r = cli("export", "-f", cfg, "--show-config")
    assert r.exit_code == 0, r.output
    assert "whitelist: [numpy, scipy]" in r.output


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("pkg_list", {"a": "x" * 200_000}, "pkg_list: expected a list of strings, found a mapping"),
        ("python_versions", ["x" * 200_000], "python_versions[0]: expected a version such as 3.11"),
        ("snapshot_date", "x" * 200_000, "snapshot_date: expected a date"),
    ],
)
def test_error_messages_quote_a_short_prefix(tmp_path: Path, key: str, value: Any, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(tmp_path)], key: value}))
    r = cli("export", "-f", cfg, "--plan")
    assert r.exit_code == 2
    assert message in r.output
    assert len(r.output) < 300


# --- 22: SIGTERM, a full disk, a readable private key ------------------------------------------------


def test_sigterm_while_writing_the_archive_leaves_nothing_behind(tmp_path: Path, channel: Path) -> None:
    cfg = export_config(tmp_path, channel)
    out = tmp_path / "out"
    out.mkdir()
    assert cli("export", "-f", cfg, "--unsigned", out / "first.tar").exit_code == 0
    # the next export writes the same repodata blobs: make them FIFOs, so it blocks reading one
    # while its archive is half written
    for ch in run_inspect(out / "first.tar").manifest.channels:
        for sub in ch.subdirs:
            blob = tmp_path / "cache" / "blobs" / "sha256" / sub.repodata.sha256
            blob.unlink()
            os.mkfifo(blob)
    proc = subprocess.Popen(
        [sys.executable, "-m", "airgap", "export", "-f", str(cfg), "--unsigned", str(out / "m.tar")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".m.tar.*")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list(out.glob(".m.tar.*")), "the export never started writing its archive"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["first.tar"]


def test_a_full_disk_names_the_file(tmp_path: Path, channel: Path) -> None:
    cfg = export_config(tmp_path, channel)
    proc = run("export", "-q", "-f", cfg, "--unsigned", tmp_path / "m.tar", fsize=30_000)  # each package fits, the archive not
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith(f"airgap: error: {tmp_path / 'm.tar'}: could not write the archive (File too large"), line
    assert "--volume-size" in line
    assert not list(tmp_path.glob("*m.tar*"))


def test_a_full_disk_at_import_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "up" / "chan"
    write_channel(root, [PackageSpec("big", "1", subdir="linux-64", padding=60_000)], subdirs=("linux-64",), formats=("conda",))
    assert cli("export", "-f", export_config(tmp_path, root), "--unsigned", tmp_path / "m.tar").exit_code == 0
    dest = tmp_path / "dest"
    proc = run("import", "-q", tmp_path / "m.tar", "--into", dest, "--allow-unsigned", fsize=40_000)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith(f"airgap: error: {dest / '.airgap'}/") and line.endswith(": File too large"), line
    assert not (dest / "chan").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_a_private_key_others_can_read_is_refused(tmp_path: Path, channel: Path, mode: int) -> None:
    key = tmp_path / "key"
    assert cli("keygen", key).exit_code == 0
    key.chmod(mode)
    r = cli("export", "-f", export_config(tmp_path, channel), "--sign-key", key, tmp_path / "m.tar")
    assert r.exit_code == 2, r.output
    assert f"found mode {mode:04o}" in r.output and f"run: chmod 600 {key}" in r.output
    assert not (tmp_path / "m.tar").exists()
    key.chmod(0o600)
    assert cli("export", "-f", export_config(tmp_path, channel), "--sign-key", key, tmp_path / "m.tar").exit_code == 0
