"""Config: cas-mirror keys, strict validation, one-line errors, --show-config."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from airgap.cli import main
from airgap.config import from_mapping, load_config
from airgap.errors import ConfigError

SEED_SYNC = """\
remote_url: https://repo.anaconda.com/
mirror_dir: /opt/cas-mirror
platforms: ['osx-64', 'win-64', 'linux-64']
fetch_installers: False
repodata_source: False
dir_names: []
server_log_dir: None
server_port: None
dest_site: myrepo
dest_channel: anaconda
verify_checksum: False
delta: False
delta_dir: None
log_dir: None
log_level: 20
python_versions: []
pkg_list: []
license_blacklist: []
blacklist: []
whitelist: []
sites: {myrepo: {url: /srv/conda}}
channels:
    - https://repo.anaconda.com/pkgs/main/
    - https://repo.anaconda.com/pkgs/free/
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cas_mirror_listing_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SEED_SYNC))
    assert cfg.platforms == ("osx-64", "win-64", "linux-64")
    assert cfg.channels == ("https://repo.anaconda.com/pkgs/main/", "https://repo.anaconda.com/pkgs/free/")
    assert cfg.dest_channel == "anaconda"
    assert cfg.destination() == "/srv/conda"
    assert cfg.log_level == 20
    assert load_config(write(tmp_path, "workers: 3\nretries: 2\ntimeout: 9\n", "n.yaml")).workers == 3
    assert cfg.unsupported_in_use() == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("platfroms: [linux-64]\n", "unknown key 'platfroms'; did you mean 'platforms'?"),
        ("pkglist: [zlib]\n", "did you mean 'pkg_list'?"),
        ("platforms: linux-65\n", "platforms[0]: expected a conda platform such as linux-64, found 'linux-65'; did you mean 'linux-64'?"),
        ("workers: many\n", "workers: expected a whole number of at least 1, found 'many'"),
        ("pkg_list: {a: 1}\n", "pkg_list: expected a list of strings, found a mapping"),
        ("log_level: LOUD\n", "log_level: expected one of CRITICAL, ERROR, WARNING, INFO, DEBUG"),
        ("- just\n- a list\n", "expected a mapping of keys to values at the top level, found a list"),
        ("sites: {a: {path: x}}\n", "sites.a: expected a mapping with at least 'url'"),
        ("dest_site: nowhere\n", None),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str | None) -> None:
    p = write(tmp_path, text)
    if message is None:  # valid to load, invalid to use
        with pytest.raises(ConfigError, match="dest_site: expected a name defined under 'sites'"):
            load_config(p).destination()
        return
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "platforms:\n  - linux-64\n pkg_list: [a\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).startswith(f"{p}:3:")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    cfg = load_config(write(tmp_path / "sub", "channels: [./up, 'file:///x/y']\nmirror_dir: cache\nsigning_key: k\n"))
    assert cfg.channels == (str(tmp_path / "sub" / "up"), "file:///x/y")
    assert cfg.mirror_dir == str(tmp_path / "sub" / "cache")
    assert cfg.signing_key == str(tmp_path / "sub" / "k")


def test_default_file_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AIRGAP_CONFIG", raising=False)
    assert load_config(None).path is None  # nothing there: pure defaults
    write(tmp_path, "pkg_list: [zlib]\n", ".airgap.yaml")
    assert load_config(None).pkg_list == ("zlib",)
    monkeypatch.setenv("AIRGAP_CONFIG", str(write(tmp_path, "pkg_list: [xz]\n", "other.yaml")))
    assert load_config(None).pkg_list == ("xz",)


def test_default_channel_follows_remote_url() -> None:
    assert from_mapping({"remote_url": "http://127.0.0.1:9/"}).channels == ("http://127.0.0.1:9/pkgs/main/",)


def test_every_documented_key_is_implemented() -> None:
    cfg = from_mapping({"blacklist": ["openssl"], "delta": True, "delta_dir": "/x", "volume_size": "4.7G"})
    assert cfg.unsupported_in_use() == []  # every filter, delta and volume key is implemented now
    assert cfg.volume_size == 4_700_000_000
    from airgap.config import KEYS

    assert not [k.name for k in KEYS.values() if k.status == "later"]


@pytest.mark.parametrize("command", ["export", "import", "verify", "inspect"])
def test_show_config_on_every_command(tmp_path: Path, command: str) -> None:
    p = write(tmp_path, "platforms: [linux-64]\nserver_port: 8080\n")
    result = CliRunner().invoke(main, [command, "-f", str(p), "--show-config", "ignored.tar"])
    assert result.exit_code == 0, result.output
    assert f"path: {p}" in result.output
    assert "platforms: [linux-64]" in result.output
    assert "server_port: 8080  # accepted for cas-mirror compatibility; no effect in airgap" in result.output
    assert "workers: 32" in result.output  # defaults filled in


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    p = write(tmp_path, "platfroms: [linux-64]\n")
    result = CliRunner().invoke(main, ["export", "-f", str(p), "--unsigned", str(tmp_path / "x.tar")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"airgap: error: {p}: unknown key 'platfroms'; did you mean 'platforms'?"]
    assert "Traceback" not in result.output
