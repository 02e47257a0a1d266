"""Installer folders never collide with channels or pages: refused at export, at parsing, at import."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _config(tmp_path: Path, channel: Path, installer: Path, folder: str) -> Path:
    cfg = tmp_path / f"{channel.name}-{folder}-{installer.name}.yaml"
    cfg.write_text(
        json.dumps(
            {
                "channels": [str(channel)],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "cache"),
                "installers": [{"url": str(installer), "dir": folder}],
            }
        )
    )
    return cfg


def _rewrite_manifest(archive: Path, out: Path, edit: Any) -> Path:
    """An unsigned archive with its manifest edited (the blobs stay as they are)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                doc = json.loads(data)
                edit(doc)
                data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A destination holding the sample channel ``channel``, and an archive of channel ``other`` with an installer."""
    dest = tmp_path / "dest"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(SAMPLES / "channel")], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "a.tar")
    assert r.exit_code == 0, r.output
    r = cli("import", tmp_path / "a.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    other = tmp_path / "other"
    shutil.copytree(SAMPLES / "channel", other)
    tool = tmp_path / "tool.sh"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    r = cli("export", "-f", _config(tmp_path, other, tool, "tools"), "--unsigned", tmp_path / "b.tar")
    assert r.exit_code == 0, r.output
    return {"dest": dest, "b": tmp_path / "b.tar", "other": other, "tool": tool, "tmp": tmp_path}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_refuses_an_installer_in_a_channel_folder_or_named_like_a_page(setup: dict[str, Path]) -> None:
    t = setup["tmp"]
    page = t / "index.html"
    page.write_text("<html>not a page of ours</html>")
    for cfg, expected in (
        (_config(t, setup["other"], setup["tool"], "other"), "expected an installer folder that is no channel's, found 'other'"),
        (_config(t, setup["other"], page, "tools"), "found tools/index.html; rename it"),
    ):
        r = cli("export", "-f", cfg, "--unsigned", t / "x.tar")
        assert r.exit_code == 2, r.output
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "installers: expected" in lines[0] and expected in lines[0], r.output
        assert not (t / "x.tar").exists()


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda m: m["installers"][0].update(dir="other"), "installers[0]: expected an installer folder that is no channel's"),
        (lambda m: m["installers"][0].update(filename="index.html"), "installers[0]: expected an installer folder that is no channel's"),
    ],
)
def test_a_manifest_whose_installer_collides_is_refused(setup: dict[str, Path], edit: Any, expected: str) -> None:
    hostile = _rewrite_manifest(setup["b"], setup["tmp"] / "hostile.tar", edit)
    before = _snapshot(setup["dest"])
    r = cli("import", hostile, "--into", setup["dest"], "--allow-unsigned")
    assert r.exit_code == 3 and expected in r.output, r.output
    assert _snapshot(setup["dest"]) == before


def test_import_refuses_an_installer_folder_that_is_a_channel_of_the_destination(setup: dict[str, Path]) -> None:
    dest = setup["dest"]
    page = (dest / "channel" / "index.html").read_bytes()
    # the reproduction: an archive of channel 'other' whose installer lands at the top of channel 'channel'
    hostile = _rewrite_manifest(setup["b"], setup["tmp"] / "into-channel.tar", lambda m: m["installers"][0].update(dir="channel"))
    before = _snapshot(dest)
    r = cli("import", hostile, "--into", dest, "--allow-unsigned")
    assert r.exit_code == 1, r.output
    assert "expected an installer folder that is no channel's, found 'channel'" in r.output and "nothing was changed" in r.output
    assert _snapshot(dest) == before and (dest / "channel" / "index.html").read_bytes() == page
    # and the other way: a channel that would land in a folder of installers the destination holds
    r = cli("import", setup["b"], "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert (dest / "tools" / "tool.sh").is_file()
    tools_channel = setup["tmp"] / "tools"
    shutil.copytree(SAMPLES / "channel", tools_channel)
    cfg = setup["tmp"] / "tools.yaml"
    cfg.write_text(json.dumps({"channels": [str(tools_channel)], "platforms": ["linux-64"], "mirror_dir": str(setup["tmp"] / "cache")}))
    r = cli("export", "-f", cfg, "--unsigned", setup["tmp"] / "t.tar")
    assert r.exit_code == 0, r.output
    before = _snapshot(dest)
    r = cli("import", setup["tmp"] / "t.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 1 and "found 'tools', which the destination holds installers in (tools/)" in r.output, r.output
    assert _snapshot(dest) == before
