"""A new site administrator's first hour (issue 13): what they meet, in that order, says what to do."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.ops.output_check import archive_write_error
from airgap.testing.condapkg import PackageSpec, write_channel


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("up") / "main"
    write_channel(
        root,
        [PackageSpec(f"tool{i}", "1.0", build="h0_0", subdir="linux-64", padding=20_000) for i in range(3)],
        subdirs=("linux-64",),
        formats=("conda",),
    )
    return root


def config(tmp_path: Path, channel: Path, **kw: Any) -> Path:
    p = tmp_path / "export.yaml"
    p.write_text(json.dumps({"channels": [str(channel)], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), **kw}))
    return p


def downloaded(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# --- 1. export to a read-only or full medium -------------------------------------------------


def test_export_to_a_read_only_medium_fails_before_any_download(tmp_path: Path, channel: Path) -> None:
    archive = Path("/sys/fs/mirror.tar")  # sysfs takes no new file, not even from root
    r = cli("export", "-f", config(tmp_path, channel), "--unsigned", archive)
    assert r.exit_code == 1, r.output
    assert f"{archive}: expected a writable place for the archive" in r.output and "nothing was downloaded" in r.output
    assert ".tmp" not in r.output and ".probe" not in r.output
    assert downloaded(tmp_path) == []


def test_export_to_a_full_medium_says_how_much_is_needed_and_free(tmp_path: Path, channel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airgap.ops.output_check.free_space", lambda directory: 10_000)  # a nearly full medium
    out = tmp_path / "usb"
    out.mkdir()
    r = cli("export", "-f", config(tmp_path, channel), "--unsigned", out / "mirror.tar")
    assert r.exit_code == 1, r.output
    line = r.output.strip().splitlines()[-1]
    assert f"{out / 'mirror.tar'}: the archive needs about " in line and "found 9.8 KiB free on" in line, line
    assert "--volume-size" in line and "nothing was downloaded" in line
    assert downloaded(tmp_path) == [] and list(out.iterdir()) == []


def test_export_that_fits_is_written(tmp_path: Path, channel: Path) -> None:
    r = cli("export", "-f", config(tmp_path, channel), "--unsigned", tmp_path / "mirror.tar")
    assert r.exit_code == 0, r.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mirror.tar")] == []  # the probe is gone


def test_a_failed_archive_write_names_the_archive_not_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "mirror.tar"
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".mirror.tar.k2j4.tmp"))
    err = archive_write_error(target, full)
    assert err is not None and str(err) == f"{target}: could not write the archive (the medium is full); no partial archive was left there"
    cache_file = OSError(errno.EIO, "Input/output error", str(tmp_path / "cache" / "blobs" / "sha256" / "ab"))
    assert archive_write_error(target, cache_file) is None  # a cache file's error keeps its own name


# --- 2. cas-mirror users bring their import.yaml --------------------------------------------


def test_unknown_dest_site_shows_a_sites_example_and_into(tmp_path: Path) -> None:
    cfg = tmp_path / "import.yaml"
    cfg.write_text("dest_site: prod\ndest_channel: anaconda\n")
    r = cli("import", "-f", cfg, tmp_path / "mirror.tar")
    assert r.exit_code == 2, r.output
    assert "dest_site: expected a name defined under 'sites' (known: none), found 'prod'" in r.output
    assert "  sites:\n    prod: {url: /srv/conda}\n" in r.output and "--into" in r.output


def test_channels_in_an_import_config_is_said_to_have_no_effect(tmp_path: Path) -> None:
    cfg = tmp_path / "import.yaml"
    cfg.write_text(f"channels: [https://repo.anaconda.com/pkgs/main/]\ninto: {tmp_path / 'dest'}\n")
    r = cli("import", "-f", cfg, tmp_path / "missing.tar", "--allow-unsigned")
    assert "channels has no effect on the import of an archive" in r.output, r.output
    cfg.write_text(f"into: {tmp_path / 'dest'}\n")
    assert "no effect" not in cli("import", "-f", cfg, tmp_path / "missing.tar", "--allow-unsigned").output


def test_show_config_says_what_mirror_dir_means_now(tmp_path: Path) -> None:
    cfg = tmp_path / "import.yaml"
    cfg.write_text("mirror_dir: /opt/mirror\n")
    r = cli("import", "-f", cfg, "--show-config", "x.tar")
    line = next(line for line in r.output.splitlines() if line.startswith("mirror_dir:"))
    assert "download cache" in line and "cas-mirror wrote its output tree here" in line


def test_clean_with_a_config_without_filters_warns_it_selects_everything(tmp_path: Path, channel: Path) -> None:
    dest = tmp_path / "dest"
    assert cli("export", "-f", config(tmp_path, channel), "--unsigned", tmp_path / "m.tar").exit_code == 0
    assert cli("import", tmp_path / "m.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    cfg = tmp_path / "import.yaml"
    cfg.write_text(f"into: {dest}\n")
    r = cli("clean", "-f", cfg, "--dry-run")
    assert r.exit_code == 0 and "would remove 0 packages" in r.output, r.output
    assert "sets no filters" in r.output and "selects everything" in r.output and "-f export.yaml" in r.output
    r = cli("clean", "-f", config(tmp_path, channel, pkg_list=["tool1"], into=str(dest)), "--dry-run")
    assert "sets no filters" not in r.output and "would remove 2 packages" in r.output, r.output


# --- 3. a delta imported under another channel name ------------------------------------------


def test_delta_base_under_another_channel_names_the_dest_channel_to_pass(tmp_path: Path) -> None:
    up = tmp_path / "up" / "main"
    tools = [PackageSpec(f"tool{i}", "1.0", build="h0_0", subdir="linux-64") for i in range(3)]
    write_channel(up, tools, subdirs=("linux-64",), formats=("conda",))
    cfg = config(tmp_path, up)
    dest = tmp_path / "dest"
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "v1.tar").exit_code == 0
    r = cli("import", tmp_path / "v1.tar", "--into", dest, "--allow-unsigned", "--dest-channel", "anaconda")
    assert r.exit_code == 0, r.output
    write_channel(up, [*tools, PackageSpec("tool3", "1.0", build="h0_0", subdir="linux-64")], subdirs=("linux-64",), formats=("conda",))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "delta.tar", "--since", dest / ".airgap" / "receipt.json")
    assert r.exit_code == 0, r.output
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    r = cli("import", tmp_path / "delta.tar", "--into", dest, "--allow-unsigned")  # forgot --dest-channel
    # the delta records the destination channel it was made for (manifest "bases"): the refusal names it
    assert r.exit_code == 2, r.output
    assert "expected channel 'main' to be imported into 'anaconda'" in r.output
    assert "import it with --dest-channel anaconda" in r.output
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    r = cli("import", tmp_path / "delta.tar", "--into", dest, "--allow-unsigned", "--dest-channel", "anaconda")
    assert r.exit_code == 0, r.output


def test_missing_base_message_names_the_channel_that_holds_the_base() -> None:
    """Deltas made before manifests recorded their destination channel get this hint instead."""
    from types import SimpleNamespace

    from airgap.ops.delta_hint import missing_base_message

    p = SimpleNamespace(filename="tool0-1.0-h0_0.conda", sha256="a" * 64)
    held = {"anaconda": {"linux-64": {p.filename: {"sha256": "a" * 64, "size": 1}}}}
    msg = missing_base_message([("main", "linux-64", p)], ["main/linux-64/tool0-1.0-h0_0.conda"], held, ["main"], None)
    assert "the destination holds them under channel 'anaconda'" in msg and "pass --dest-channel anaconda" in msg
    msg = missing_base_message([("main", "linux-64", p)], ["main/linux-64/tool0-1.0-h0_0.conda"], {}, ["main"], None)
    assert "import its base first" in msg


# --- 4. --check-installable with a spec that pins python -------------------------------------


@pytest.fixture(scope="module")
def pythons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("py") / "forge"
    write_channel(
        root,
        [
            PackageSpec("python", "2.7.18", build="h0_cpython", subdir="linux-64"),
            PackageSpec("python", "3.6.15", build="h0_cpython", subdir="linux-64"),
            PackageSpec("numpy", "1.16", build="py36h0_0", subdir="linux-64", depends=("python >=3.6,<3.7.0a0",)),
        ],
        subdirs=("linux-64",),
        formats=("conda",),
    )
    return root


def test_a_python_pinning_spec_is_solved_only_with_the_pythons_it_admits(tmp_path: Path, pythons: Path) -> None:
    cfg = config(tmp_path, pythons, python_versions=["2.7", "3.6"])
    r = cli("export", "-f", cfg, "--plan", "--json", "--check-installable", "python 3.6.*", "--check-installable", "numpy")
    assert r.exit_code == 0, r.output
    assert [(s["python"], s["ok"]) for s in json.loads(r.stdout)["installable"]] == [("3.6", True)]
    r = cli("export", "-f", cfg, "--plan", "--json", "--check-installable", "python >=3")
    assert [s["python"] for s in json.loads(r.stdout)["installable"]] == ["3.6"]
    r = cli("export", "-f", cfg, "--plan", "--json", "--check-installable", "numpy")  # no pin: every python
    assert r.exit_code == 1 and "1 of 2 solves failed (first: linux-64 with python 2.7, explained above)" in r.output


def test_the_solver_explanation_keeps_its_lines(tmp_path: Path, pythons: Path) -> None:
    cfg = config(tmp_path, pythons, python_versions=["2.7", "3.6"])
    r = cli("export", "-f", cfg, "--plan", "--check-installable", "numpy", "--allow-unsolvable")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    at = next(
        i for i, line in enumerate(lines) if line.startswith("solve    linux-64 python 2.7") and line.endswith("FAILED, the solver says:")
    )
    assert "numpy 1.16 would require" in lines[at + 2] and "python >=3.6,<3.7.0a0" in lines[at + 3], lines[at:]


def test_plan_refuses_an_archive_argument(tmp_path: Path, pythons: Path) -> None:
    r = cli("export", "-f", config(tmp_path, pythons), "--plan", "--check-installable", "python 3.6.*", "numpy")
    assert r.exit_code == 2 and "--plan: expected no ARCHIVE" in r.output and "repeat --check-installable" in r.output


# --- 5. quetz: the API key's variable, and the patch warning when it matters ------------------


def _quetz_import_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "import.yaml"
    cfg.write_text(json.dumps({"dest_site": "server", "sites": {"server": {"url": url, "api_key_env": "QUETZ_MIRROR_KEY"}}}))
    return cfg


def test_quetz_errors_name_the_configured_api_key_variable(tmp_path: Path, channel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("export", "-f", config(tmp_path, channel), "--unsigned", tmp_path / "m.tar").exit_code == 0
    monkeypatch.delenv("QUETZ_MIRROR_KEY", raising=False)
    monkeypatch.setenv("QUETZ_API_KEY", "the-other-variable")  # not the one the site names: not used
    r = cli("import", "-f", _quetz_import_config(tmp_path, "quetz+http://127.0.0.1:9/mirror"), tmp_path / "m.tar", "--allow-unsigned")
    assert r.exit_code == 2 and "expected an API key ($QUETZ_MIRROR_KEY, or api_key in the site config)" in r.output, r.output
    assert "QUETZ_API_KEY" not in r.output


def _patched_channel(root: Path) -> None:
    """Upstream patched one record's depends in its repodata (the package's own index.json is older)."""
    import zstandard

    write_channel(
        root, [PackageSpec(f"p{i}", "1.0", build="h0_0", subdir="linux-64") for i in range(3)], subdirs=("linux-64",), formats=("conda",)
    )
    rd_path = root / "linux-64" / "repodata.json"
    doc = json.loads(rd_path.read_bytes())
    doc["packages.conda"]["p1-1.0-h0_0.conda"]["depends"] = ["zlib >=1.2.13"]
    raw = json.dumps(doc).encode()
    rd_path.write_bytes(raw)
    (root / "linux-64" / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))


def test_quetz_warns_about_lost_patches_only_when_records_differ(
    tmp_path: Path, channel: Path, quetz: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    monkeypatch.setenv("QUETZ_MIRROR_KEY", quetz.key)
    name = f"fh-{uuid.uuid4().hex[:8]}"
    cfg = _quetz_import_config(tmp_path, f"quetz+{quetz.url}/{name}")
    assert cli("export", "-f", config(tmp_path, channel), "--unsigned", tmp_path / "plain.tar").exit_code == 0
    r = cli("import", "-f", cfg, tmp_path / "plain.tar", "--allow-unsigned")
    assert r.exit_code == 0 and "patches" not in r.output, r.output  # 0 records differ: no warning
    patched = tmp_path / "up" / "patched"
    _patched_channel(patched)
    assert cli("export", "-f", config(tmp_path, patched), "--unsigned", tmp_path / "patched.tar").exit_code == 0
    r = cli("import", "-f", cfg, tmp_path / "patched.tar", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert re.search(r"upstream repodata patches do not reach it: 1 of \d+ records differ", r.output), r.output

    monkeypatch.setenv("QUETZ_MIRROR_KEY", "not-a-key")
    r = cli("import", "-f", cfg, tmp_path / "plain.tar", "--allow-unsigned")
    assert r.exit_code == 1 and "refused the API key (401" in r.output and "check $QUETZ_MIRROR_KEY" in r.output, r.output


# --- 6. scripts: JSON on failure, exit codes, pipes, noop --------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("arch")
    assert cli("keygen", t / "k").exit_code == 0
    assert cli("export", "-f", config(t, channel), "--sign-key", t / "k", t / "m.tar").exit_code == 0
    return {"tar": t / "m.tar", "pub": t / "k.pub", "dir": t}


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["verify", "{tar}", "--trusted-key", "{dir}/missing.pub"], 2, "missing.pub: expected an Ed25519 public key"),
        (["verify", "{tar}"], 3, "no trusted key configured"),
        (["import", "{tar}", "--into", "{dir}/dest", "--trusted-key", "{dir}/missing.pub"], 2, "missing.pub"),
        (["inspect", "{dir}/nothing.tar"], 3, "nothing.tar: expected an airgap archive"),
        (["export", "-f", "{dir}/none.yaml", "--unsigned", "{dir}/x.tar"], 2, "none.yaml: expected a configuration file"),
        (["receipt", "--into", "{dir}/no-dest"], 1, ""),
        (["clean", "--into", "{dir}/no-dest", "--dry-run"], 1, "expected a destination holding channels"),
    ],
)
def test_json_commands_print_a_json_object_on_failure(archive: dict[str, Path], argv: list[str], code: int, says: str) -> None:
    r = cli(*[a.format(tar=archive["tar"], dir=archive["dir"]) for a in argv], "--json")
    assert r.exit_code == code, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == code and says in doc["error"], doc
    assert "airgap: error: " in r.stderr


def test_plan_that_does_not_fit_prints_one_json_object(tmp_path: Path, channel: Path) -> None:
    r = cli("export", "-f", config(tmp_path, channel), "--plan", "--json", "--media-size", "1K")
    assert r.exit_code == 2, r.output
    (line,) = r.stdout.splitlines()
    doc = json.loads(line)
    assert doc["ok"] is False and doc["fits"] is False and doc["exit_code"] == 2 and len(doc["packages"]) == 3
    assert "expected the selection to fit in 1000 B" in doc["error"]


def test_json_success_says_ok(archive: dict[str, Path]) -> None:
    r = cli("inspect", archive["tar"], "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True


def test_inspect_into_a_closed_pipe_is_quiet(archive: dict[str, Path]) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "airgap", "inspect", str(archive["tar"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -0`: the reader is gone before airgap writes
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == "", err


def test_noop_means_nothing_changed_in_sync_and_import(tmp_path: Path, channel: Path) -> None:
    cfg = config(tmp_path, channel, into=str(tmp_path / "synced"))
    first = json.loads(cli("sync", "-f", cfg, "--json").stdout)
    assert first["noop"] is False and first["packages_added"] == 3
    receipt = (tmp_path / "synced" / ".airgap" / "receipt.json").read_bytes()
    again = cli("sync", "-f", cfg, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["noop"] is True, again.output
    assert (tmp_path / "synced" / ".airgap" / "receipt.json").read_bytes() == receipt  # not even the receipt changed
    assert "nothing to do" in cli("sync", "-f", cfg).output

    for name in ("a.tar", "b.tar"):  # two exports of the same upstream: the second import changes nothing either
        assert cli("export", "-f", cfg, "--unsigned", tmp_path / name).exit_code == 0
    assert json.loads(cli("import", tmp_path / "a.tar", "--into", tmp_path / "d", "--allow-unsigned", "--json").stdout)["noop"] is False
    r = cli("import", tmp_path / "b.tar", "--into", tmp_path / "d", "--allow-unsigned", "--json")
    assert json.loads(r.stdout)["noop"] is True, r.output


# --- 8. what the docs say is what the program does ---------------------------------------------


def test_keygen_creates_a_missing_folder_private_to_its_owner(tmp_path: Path) -> None:
    import stat

    r = cli("keygen", tmp_path / "keys" / "airgap")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "airgap").stat().st_mode) == 0o600 and (tmp_path / "keys" / "airgap.pub").exists()
    (tmp_path / "file").write_text("")
    r = cli("keygen", tmp_path / "file" / "airgap")
    assert r.exit_code == 2 and "expected a directory for the key, found a file" in r.output


@pytest.mark.parametrize("command", ["import", "verify", "inspect"])
def test_show_config_needs_no_archive(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "import.yaml"
    cfg.write_text("dest_channel: anaconda\n")
    r = cli(command, "-f", cfg, "--show-config")
    assert r.exit_code == 0 and "dest_channel: anaconda" in r.output, r.output
    r = cli(command, "-f", cfg)
    assert r.exit_code == 2 and "expected ARCHIVE" in r.output, r.output


def test_docs_give_no_config_file_to_commands_that_read_none() -> None:
    root = Path(__file__).resolve().parents[1]
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for line in page.read_text().splitlines():
            for m in re.finditer(r"airgap (serve|condarc|keygen)\b[^`\n|]*", line):
                assert not re.search(r"\s(-f|--file|--show-config)\b", m.group(0)), f"{page.name}: {m.group(0)}"
