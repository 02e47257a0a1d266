"""The guide's "Mirroring additional channels": R, Wakari and anaconda-adam, each into its own
account, from an expanded air-gap archive (``file://$MIRRORS_ARCHIVE/<name>/pkgs``) or online.
``channel_map`` carries them in one archive; ``--account`` is the guide's ``--dest-channel``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import cli, published

from airgap.testing.condapkg import PackageSpec, write_channel
from airgap.testing.rattler_client import install

CHANNELS = {
    "r": [
        PackageSpec("r-base", "4.3.1", subdir="linux-64"),
        PackageSpec("r-glue", "1.7.0", depends=("r-base >=4",)),
        PackageSpec("r-old", "0.1", license="GPL-3.0", license_family="GPL"),
    ],
    "wakari": [PackageSpec("wakari-app", "1.0")],
    "anaconda-nb-extensions": [PackageSpec("nb-ext", "2.0")],
    "anaconda-adam": [PackageSpec("adam", "4.2", subdir="linux-64")],
}


@pytest.fixture
def mirrors_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``x64-repo-mirrors-*.tar`` expanded to $MIRRORS_ARCHIVE: one <name>/pkgs channel per product."""
    root = tmp_path / "mirrors"
    for name, specs in CHANNELS.items():
        write_channel(root / name / "pkgs", specs, subdirs=("linux-64", "osx-64", "win-64"))
    monkeypatch.setenv("MIRRORS_ARCHIVE", str(root))
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    return root


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_one_archive_carries_each_channel_to_its_own_account(mirrors_archive: Path, tmp_path: Path) -> None:
    # the guide's three yaml files as one export.yaml: $VARS in file:// URLs expand, as in the guide
    export = _write(
        tmp_path / "export.yaml",
        f"""
channels:
  - file://$MIRRORS_ARCHIVE/r/pkgs
  - file://$MIRRORS_ARCHIVE/wakari/pkgs
  - file://$MIRRORS_ARCHIVE/anaconda-adam/pkgs
platforms: [linux-64, osx-64, win-64]
mirror_dir: {tmp_path / "cache"}
channel_map:
  file://$MIRRORS_ARCHIVE/r/pkgs: r-channel
  file://$MIRRORS_ARCHIVE/wakari/pkgs: wakari
  file://$MIRRORS_ARCHIVE/anaconda-adam/pkgs: anaconda-adam
""",
    )
    r = cli("export", "-f", export, "--unsigned", tmp_path / "mirrors.tar")
    assert r.exit_code == 0, r.output
    doc = json.loads(cli("inspect", tmp_path / "mirrors.tar", "--json").stdout)
    assert {c["name"]: c["url"] for c in doc["channels"]} == {
        "r-channel": (mirrors_archive / "r" / "pkgs").as_uri() + "/",
        "wakari": (mirrors_archive / "wakari" / "pkgs").as_uri() + "/",
        "anaconda-adam": (mirrors_archive / "anaconda-adam" / "pkgs").as_uri() + "/",
    }
    dest = tmp_path / "srv"
    r = cli("import", tmp_path / "mirrors.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output
    seen = published(dest)
    assert {k.split("/")[0] for k in seen} == {"r-channel", "wakari", "anaconda-adam"}
    names = install([(dest / "r-channel").as_uri()], ["r-glue"], tmp_path / "env", tmp_path / "pkgs")
    assert names == ["r-base", "r-glue"]
    # without the map the three are all "pkgs": the archive names them by more of their URL
    text = export.read_text()
    _write(export, text[: text.index("channel_map:")])
    r = cli("export", "-f", export, "--unsigned", tmp_path / "other.tar")
    assert r.exit_code == 0, r.output
    doc = json.loads(cli("inspect", tmp_path / "other.tar", "--json").stdout)
    assert sorted(c["name"] for c in doc["channels"]) == ["anaconda-adam-pkgs", "r-pkgs", "wakari-pkgs"]
    _write(export, text[: text.index("channel_map:")].replace("platforms:", "  - file://$MIRRORS_ARCHIVE/r/pkgs/\nplatforms:"))
    r = cli("export", "-f", export, "--unsigned", tmp_path / "other.tar")
    assert r.exit_code == 2 and "two named 'pkgs'" in r.output and "list each channel once" in r.output


def test_import_maps_archive_channels_by_name_or_url(mirrors_archive: Path, tmp_path: Path, http_server: Callable[[Path], str]) -> None:
    online = http_server(mirrors_archive)  # stands for https://conda.anaconda.org/
    export = _write(
        tmp_path / "export.yaml",
        yaml.safe_dump(
            {
                "channels": [f"{online}/r/pkgs", f"{online}/anaconda-nb-extensions/pkgs/"],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "cache"),
                "channel_map": {f"{online}/r/pkgs": "r", f"{online}/anaconda-nb-extensions/pkgs": "nb"},
            }
        ),
    )
    assert cli("export", "-f", export, "--unsigned", tmp_path / "m.tar").exit_code == 0
    dest = tmp_path / "srv"
    imp = _write(
        tmp_path / "import.yaml",
        yaml.safe_dump({"into": str(dest), "channel_map": {"r": "r-channel", f"{online}/anaconda-nb-extensions/pkgs": "wakari"}}),
    )
    bad = _write(tmp_path / "bad.yaml", yaml.safe_dump({"into": str(dest), "channel_map": {"rr": "r-channel"}}))
    r = cli("import", "-f", bad, tmp_path / "m.tar", "--allow-unsigned")
    assert r.exit_code == 2 and "found 'rr', which names none of: r (" in r.output and not dest.exists()
    r = cli("import", "-f", imp, tmp_path / "m.tar", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert sorted(d.name for d in dest.iterdir() if not d.name.startswith(".")) == ["r-channel", "wakari"]
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert set(receipt["channels"]) == {"r-channel", "wakari"}


def test_the_guides_per_account_commands(mirrors_archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "srv"
    # $PREFIX/etc/anaconda-server/mirror/r.yaml, as the guide writes it (air-gap archive variant)
    r_yaml = _write(
        tmp_path / "r.yaml",
        "channels:\n  - file://$MIRRORS_ARCHIVE/r/pkgs\n\n"
        "# The platforms should correspond to the platforms contained in\n# the archive.\n"
        f"platforms:\n  - linux-64\n  - osx-64\n  - win-64\nmirror_dir: {tmp_path / 'cache'}\n",
    )
    # anaconda-server-sync-conda --mirror-config r.yaml --account=r-channel
    r = cli("sync", "-f", r_yaml, "--account=r-channel", "--into", dest)
    assert r.exit_code == 0, r.output
    # wakari.yaml: two channels into one account (merged, as --dest-channel merges)
    wakari_yaml = _write(
        tmp_path / "wakari.yaml",
        "channels:\n  - file://$MIRRORS_ARCHIVE/anaconda-nb-extensions/pkgs\n"
        "  - file://$MIRRORS_ARCHIVE/wakari/pkgs\nplatforms: [linux-64]\n"
        f"mirror_dir: {tmp_path / 'cache'}\n",
    )
    r = cli("import", "-f", wakari_yaml, "--account", "wakari", "--into", dest)  # the tree-import spelling
    assert r.exit_code == 0, r.output
    seen = published(dest)
    assert sorted(seen["wakari/noarch/repodata.json"][3]) == [
        "nb-ext-2.0-0.conda",
        "nb-ext-2.0-0.tar.bz2",
        "wakari-app-1.0-0.conda",
        "wakari-app-1.0-0.tar.bz2",
    ]
    assert "r-old-0.1-0.conda" in seen["r-channel/noarch/repodata.json"][3]
    # clean with r.yaml (now dropping GPL) and --account touches r-channel only
    _write(r_yaml, r_yaml.read_text() + "license_blacklist: [GPL]\npkg_list: [r-base, r-glue, r-old]\n")
    r = cli("clean", "-f", r_yaml, "--account", "r-channel", "--into", dest, "--json")
    assert r.exit_code == 0, r.output
    gone = {(x["channel"], x["filename"]) for x in json.loads(r.stdout)["remove"]}
    assert gone == {("r-channel", "r-old-0.1-0.conda"), ("r-channel", "r-old-0.1-0.tar.bz2")}
    assert len(published(dest)["wakari/noarch/repodata.json"][3]) == 4
    # the same with channel_map in the file instead of --account
    _write(r_yaml, r_yaml.read_text() + "channel_map: {r: r-channel}\n")  # not 'pkgs': the map names it by URL or name
    r = cli("clean", "-f", r_yaml, "--into", dest, "--dry-run")
    assert r.exit_code == 2 and "found 'r', which names none of" in r.output
    _write(r_yaml, r_yaml.read_text().replace("channel_map: {r: r-channel}", "channel_map: {'file://$MIRRORS_ARCHIVE/r/pkgs': r-channel}"))
    r = cli("clean", "-f", r_yaml, "--into", dest, "--dry-run", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["remove"] == [] and json.loads(r.stdout)["keep"] > 0


def test_the_wakari_token_stays_out_of_archive_logs_and_messages(
    mirrors_archive: Path, tmp_path: Path, http_server: Callable[[Path], str]
) -> None:
    # the guide's online wakari.yaml: https://conda.anaconda.org/t/<TOKEN>/anaconda-nb-extensions
    site = tmp_path / "site"
    shutil.copytree(mirrors_archive / "anaconda-nb-extensions" / "pkgs", site / "t" / "tk-SECRET-123" / "anaconda-nb-extensions")
    shutil.copytree(mirrors_archive / "wakari" / "pkgs", site / "wakari")
    online = http_server(site)
    token_url = f"{online}/t/tk-SECRET-123/anaconda-nb-extensions"
    cfg = _write(
        tmp_path / "wakari.yaml",
        yaml.safe_dump(
            {
                "channels": [token_url, f"{online}/wakari"],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "cache"),
                "channel_map": {token_url: "wakari", "wakari": "wakari"},
                "log_dir": str(tmp_path / "logs"),
            }
        ),
    )
    r = cli("export", "-f", cfg, "--unsigned", "-v", tmp_path / "w.tar")
    assert r.exit_code == 0, r.output
    assert "/t/<redacted>/anaconda-nb-extensions" in r.output  # logged, redacted
    r2 = cli("export", "-f", cfg, "--show-config")
    assert "/t/<redacted>/" in r2.output
    r3 = cli("inspect", tmp_path / "w.tar", "--json")
    dest = tmp_path / "srv"
    r4 = cli("import", "-f", cfg, tmp_path / "w.tar", "--allow-unsigned", "--into", dest)  # the map matches the redacted URL
    assert r4.exit_code == 0, r4.output
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == ["wakari"]
    missing = _write(
        tmp_path / "missing.yaml",
        yaml.safe_dump(
            {"channels": [f"{online}/t/tk-SECRET-123/nothing-here"], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}
        ),
    )
    r5 = cli("export", "-f", missing, "--unsigned", tmp_path / "x.tar")
    assert r5.exit_code != 0 and "/t/<redacted>/nothing-here" in r5.output
    for text in (r.output, r2.output, r3.output, r4.output, r5.output, (tmp_path / "logs" / "airgap.log").read_text()):
        assert "SECRET" not in text
    assert b"SECRET" not in (tmp_path / "w.tar").read_bytes() and b"SECRET" not in (dest / ".airgap" / "receipt.json").read_bytes()


def test_channel_map_in_the_config_and_on_the_command_line(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "c.yaml", "channels: [https://conda.anaconda.org/r]\nchannel_map: {https://conda.anaconda.org/r: r-channel}\n")
    r = cli("sync", "-f", cfg, "--show-config")
    assert "channel_map: {'https://conda.anaconda.org/r': r-channel}" in r.output
    _write(cfg, "channel_map: {r: '../up'}\n")
    r = cli("sync", "-f", cfg, "--show-config")
    assert r.exit_code == 2 and "channel_map.r: expected a destination channel name" in r.output
    _write(cfg, "channel_map: [r]\n")
    assert "channel_map: expected a mapping of source channel" in cli("sync", "-f", cfg, "--show-config").output
    for command in ("import", "sync", "clean"):
        assert "--dest-channel, --account" in cli(command, "--help").output
