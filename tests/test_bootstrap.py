"""Pre-configured installers (the guide's http://<repository>/downloads), as its user would use them:
an installer is carried, imported with the mirror's URL, served by ``airgap serve``, its bootstrap
script fetched with curl and run; conda's .condarc then names only the mirror, and a real client
installs from the channel it names."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cli
from servers import _wait, free_ports, stop

from airgap.site.bootstrap import Installer, render_downloads

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

# a stand-in for Miniforge's installer: no real one can be downloaded here. It takes the same
# batch-mode flags (-b -p PREFIX) and leaves a prefix with a bin/ folder, as a real one does.
STAND_IN = b"""#!/bin/bash
set -eu
BATCH=0; PREFIX=""
while [ $# -gt 0 ]; do case "$1" in -b) BATCH=1; shift;; -p) PREFIX="$2"; shift 2;; *) shift;; esac; done
[ "$BATCH" = 1 ] || { echo "interactive mode: not in a test" >&2; exit 9; }
mkdir -p "$PREFIX/bin" "$PREFIX/conda-meta"
echo '#!/bin/sh' > "$PREFIX/bin/conda"
echo "stand-in installed into $PREFIX"
"""


def _carried(tmp_path: Path, port: int) -> tuple[Path, Path, str]:
    """Export the sample channel with the stand-in installer; import it as the guide's user would."""
    installer = tmp_path / "up" / "Miniforge3-24.1.0-0-Linux-x86_64.sh"
    installer.parent.mkdir()
    installer.write_bytes(STAND_IN)
    sha = hashlib.sha256(STAND_IN).hexdigest()
    export = tmp_path / "export.yaml"
    export.write_text(
        yaml.safe_dump(
            {
                "channels": [str(SAMPLES / "channel")],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp_path / "cache"),
                "installers": [{"url": str(installer), "sha256": sha, "dir": "installers"}],
            }
        )
    )
    r = cli("export", "-f", export, "--unsigned", tmp_path / "mirror.tar")
    assert r.exit_code == 0, r.output
    url = f"http://127.0.0.1:{port}"
    dest = tmp_path / "srv"
    imp = tmp_path / "import.yaml"
    imp.write_text(yaml.safe_dump({"into": str(dest), "public_url": url}))
    r = cli("import", "-f", imp, tmp_path / "mirror.tar", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "install-Miniforge3-24.1.0-0-Linux-x86_64.sh" in r.output
    return dest, installer, url


def test_bootstrap_script_installs_and_points_only_at_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (port,) = free_ports(1)
    dest, installer, url = _carried(tmp_path, port)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airgap", "serve", str(dest), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(url + "/downloads/index.html", proc, log)
        page = subprocess.run(["curl", "-fsS", url + "/downloads/"], capture_output=True, text=True, check=True).stdout
        script_name = "install-Miniforge3-24.1.0-0-Linux-x86_64.sh"
        assert f'href="{script_name}"' in page and hashlib.sha256(STAND_IN).hexdigest() in page
        assert "downloads/index.html" in subprocess.run(["curl", "-fsS", url + "/"], capture_output=True, text=True, check=True).stdout
        head = subprocess.run(["curl", "-fsSI", f"{url}/downloads/pixi-config.toml"], capture_output=True, text=True, check=True).stdout
        assert "Content-Type: text/plain; charset=utf-8" in head
        script = tmp_path / script_name
        subprocess.run(["curl", "-fsS", "-o", str(script), f"{url}/downloads/{script_name}"], check=True)
        home = tmp_path / "home"
        home.mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(home)}
        prefix = tmp_path / "conda"
        run = subprocess.run(["sh", str(script), str(prefix)], capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr + run.stdout
        assert (prefix / "bin" / "conda").is_file()
        condarc = yaml.safe_load((prefix / ".condarc").read_text())
        mirror = f"{url}/channel"
        assert condarc["channels"] == [mirror] and condarc["default_channels"] == [mirror]
        assert condarc["channel_alias"] == url and condarc["custom_channels"] == {"channel": url}
        assert "custom_multichannels" not in condarc  # conda reserves "defaults": default_channels says it
        every_url = json.dumps(condarc)
        assert "anaconda" not in every_url and "conda-forge" not in every_url  # nothing reaches the internet
        pixi = (home / ".pixi" / "config.toml").read_text()
        assert '[mirrors]\n"https://conda.anaconda.org/" = ["' + url + '/"]' in pixi
        import tomllib

        assert tomllib.loads(pixi)["mirrors"]["https://conda.anaconda.org/channel"] == [mirror]

        # a real client, told only the channel the .condarc names, installs from the mirror
        from airgap.testing.rattler_client import install

        monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
        names = install(condarc["channels"], ["airgap-hello"], tmp_path / "env", tmp_path / "pkgs")
        assert names == ["airgap-demo-data", "airgap-hello"]
        assert any(p.name.startswith("airgap-hello-0.2.0") for p in (tmp_path / "env" / "conda-meta").iterdir())
        assert "GET /channel/" in log.read_text()  # served by the mirror, not from anywhere else

        # the installer on the mirror is not the one the script was made for: nothing is installed
        (dest / "installers" / installer.name).write_bytes(STAND_IN + b"# tampered\n")
        other = tmp_path / "other"
        run = subprocess.run(["sh", str(script), str(other)], capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 3 and "expected sha256" in run.stderr and not other.exists()
    finally:
        stop(proc)


def test_url_from_the_command_line_and_refusals(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    dest, installer, url = _carried(tmp_path, port)
    r = cli("import", tmp_path / "mirror.tar", "--into", dest, "--allow-unsigned", "--url", "https://conda.example.org/mirror/")
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output  # re-running the import rewrites downloads/
    text = (dest / "downloads" / "condarc").read_text()
    assert "channel_alias: https://conda.example.org/mirror\n" in text
    r = cli("import", tmp_path / "mirror.tar", "--into", dest, "--allow-unsigned", "--url", "mirror:8080")
    assert r.exit_code == 2 and "public_url: expected the URL clients reach the mirror at" in r.output


def test_render_is_pure_and_windows_gets_powershell() -> None:
    sha = "ab" * 32
    files = render_downloads(
        "http://m:8080/",
        ["main", "r-channel"],
        [Installer("installers", "Miniforge3-Windows-x86_64.exe", sha), Installer("installers", "Miniforge3-MacOSX-arm64.pkg", sha)],
    )
    ps1 = files["install-Miniforge3-Windows-x86_64.ps1"].decode()
    assert f"$Sha256 = '{sha}'" in ps1 and "Get-FileHash -Algorithm SHA256" in ps1 and "/S" in ps1
    assert "custom_channels:\n  main: http://m:8080\n  r-channel: http://m:8080\n" in ps1
    assert sorted(files) == ["condarc", "index.html", "install-Miniforge3-Windows-x86_64.ps1", "pixi-config.toml"]
    assert "no batch mode known" in files["index.html"].decode()  # the .pkg is listed, with no script
