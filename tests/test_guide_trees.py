"""The guide's offline workflow with a tree cas-sync wrote: ``cas-sync-api-v4 -f import.yaml`` becomes
``airgap import -f import.yaml`` (no ARCHIVE), and cas-mirror's default config files are read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import cli, published

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _cas_sync_tree(root: Path) -> Path:
    """What ``cas-sync -f export.yaml`` leaves in /opt/mirror/export: pkgs/ with one repository per
    platform (repodata.json only, no .zst), an empty one for a platform with nothing selected."""
    pkgs = root / "opt" / "mirror" / "export" / "pkgs"
    for subdir in ("linux-64", "noarch"):
        shutil.copytree(SAMPLES / "channel" / subdir, pkgs / subdir)
        (pkgs / subdir / "repodata.json.zst").unlink(missing_ok=True)
    (pkgs / "win-64").mkdir()
    (pkgs / "win-64" / "repodata.json").write_text(json.dumps({"info": {"subdir": "win-64"}, "packages": {}, "packages.conda": {}}))
    return root / "opt" / "mirror" / "export"


def _import_yaml(path: Path, dest: Path, **extra: object) -> Path:
    # the guide's import.yaml, word for word, plus where the site 'mysite' is (anaconda-client kept that)
    path.write_text(
        "dest_site: mysite\ndest_channel: anaconda\nchannels:\n  - file://$EXPORT/pkgs/\n"
        "platforms:\n  - linux-64\n  - win-64\npython_versions:\n  - 2.7\n  - 3.6\n"
        + yaml.safe_dump({"sites": {"mysite": {"url": str(dest)}}, **extra})
    )
    return path


def test_import_without_archive_publishes_a_cas_sync_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = _cas_sync_tree(tmp_path)
    monkeypatch.setenv("EXPORT", str(export))  # $VARS in file:// URLs expand
    dest = tmp_path / "srv"
    cfg = _import_yaml(tmp_path / "import.yaml", dest)
    r = cli("import", "-f", cfg)
    assert r.exit_code == 0, r.output
    assert f"published the file:// trees into {dest}" in r.output
    seen = published(dest)
    packages, conda, _, hashes = seen["anaconda/linux-64/repodata.json"]
    tree = export / "pkgs" / "linux-64"
    assert set(hashes) == {p.name for p in tree.iterdir() if p.name != "repodata.json"} and len(hashes) == 6
    for name, sha in hashes.items():  # the very files of the tree, and their records verbatim
        assert (dest / "anaconda" / "linux-64" / name).read_bytes() == (tree / name).read_bytes()
        assert sha == (packages.get(name) or conda.get(name))["sha256"]
    assert len(seen["anaconda/noarch/repodata.json"][3]) == 6
    assert set(seen) == {"anaconda/linux-64/repodata.json", "anaconda/noarch/repodata.json", "anaconda/win-64/repodata.json"}
    again = cli("import", "-f", cfg)
    assert again.exit_code == 0 and "nothing to do (12 package files already there" in again.output


def test_a_damaged_tree_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = _cas_sync_tree(tmp_path)
    monkeypatch.setenv("EXPORT", str(export))
    victim = export / "pkgs" / "linux-64" / "airgap-hello-0.2.0-h1234567_1.conda"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the hash can tell
    victim.write_bytes(bytes(data))
    dest = tmp_path / "srv"
    dest.mkdir()
    (dest / "keep.txt").write_text("there before")
    cfg = _import_yaml(tmp_path / "import.yaml", dest)
    r = cli("import", "-f", cfg)
    assert r.exit_code != 0 and "airgap-hello-0.2.0-h1234567_1.conda" in r.output, r.output
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]  # nothing published, nothing left behind


def test_import_without_archive_of_online_channels_says_run_sync(tmp_path: Path) -> None:
    cfg = tmp_path / "import.yaml"
    cfg.write_text("channels:\n  - https://conda.anaconda.org/r\ninto: " + str(tmp_path / "srv") + "\n")
    r = cli("import", "-f", cfg)
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and f"run `airgap sync -f {cfg}`" in r.output and "expected ARCHIVE" in r.output
    assert not (tmp_path / "srv").exists()


def test_cas_mirror_default_config_files_are_read_after_airgaps(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    (home / ".cas-mirror").write_text("dest_site: myrepo\nsites: {myrepo: {url: /srv/conda}}\n")
    r = cli("import", "--show-config")
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith(f"path: {home / '.cas-mirror'}  # no -f given: the first that exists of ")
    assert "dest_site: myrepo" in r.output
    (home / ".airgap.yaml").write_text("dest_site: other\nsites: {other: {url: /srv/other}}\n")
    r = cli("sync", "--show-config")
    assert r.output.splitlines()[0].startswith(f"path: {home / '.airgap.yaml'}  # no -f given")
    r = cli("sync", "-f", home / ".cas-mirror", "--show-config")
    assert r.output.splitlines()[0] == f"path: {home / '.cas-mirror'}"  # named with -f: no note
