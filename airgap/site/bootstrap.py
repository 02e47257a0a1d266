"""Pre-configured installers: ``DEST/downloads/``, the guide's "installers pre-configured to search
your Repository".

For each installer a destination holds (per its receipt), a small bootstrap script: it fetches
the installer from the mirror, checks its sha256, runs it in batch mode into a prefix the user
chooses, then writes ``PREFIX/.condarc`` pointing only at the mirror and, for pixi users, a
``config.toml`` with ``[mirrors]``. ``.sh`` installers (Linux, macOS) get an ``install-*.sh``;
``.exe`` installers (Windows) an ``install-*.ps1``. Beside them: ``condarc``, ``pixi-config.toml``
and an ``index.html`` linking everything.

Rendering is pure (:func:`render_downloads`); :func:`write_downloads` writes the files atomically
into a directory destination. The base URL is what clients reach the mirror at (``public_url``
or ``--url``): the scripts cannot guess it. This module does not serve, fetch or import.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .._fs import atomic_write_bytes
from ..core.placement import installer_problem
from ..errors import UsageError

#: the folder of the destination the scripts and the page live in (the guide's /downloads)
DOWNLOADS = "downloads"
#: where conda's installers are commonly sent when the user names no prefix
DEFAULT_PREFIX = "$HOME/conda"
#: the upstream prefixes pixi rewrites to the mirror (a channel's name follows them)
PIXI_UPSTREAMS = ("https://conda.anaconda.org/", "https://repo.anaconda.com/pkgs/")
_SAFE = re.compile(r"^[A-Za-z0-9._+~=-]+$")


@dataclass(frozen=True)
class Installer:
    dir: str
    filename: str
    sha256: str


def check_url(url: str) -> str:
    """The mirror's base URL as clients reach it, without a trailing slash; a UsageError if it is none."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"public_url: expected the URL clients reach the mirror at (http://HOST:PORT[/PATH]), found {url!r}")
    if any(c in url for c in "'\"`$\\ \n\r\t"):
        raise UsageError(f"public_url: expected a URL without quotes, $, backslashes or spaces, found {url!r}")
    return url.rstrip("/")


def condarc_text(base: str, channels: Iterable[str]) -> str:
    """A ``.condarc`` using the mirror only: every channel (in the order given), the alias and the defaults point at it."""
    names = list(dict.fromkeys(channels))
    urls = [f"{base}/{c}" for c in names]

    def block(key: str, items: list[str], indent: str = "  ") -> list[str]:
        return [f"{key}:", *[f"{indent}{i}" for i in items]] if items else [f"{key}: []"]

    lines = ["# written by airgap: conda uses only the mirror at " + base, f"channel_alias: {base}"]
    lines += block("channels", [f"- {u}" for u in urls])
    lines += block("default_channels", [f"- {u}" for u in urls])
    lines += ["custom_channels:", *[f"  {c}: {base}" for c in names]] if names else ["custom_channels: {}"]
    lines += ["channel_priority: strict", "report_errors: false", "auto_update_conda: false", "notify_outdated_conda: false"]
    return "\n".join(lines) + "\n"


def pixi_config_text(base: str, channels: Iterable[str]) -> str:
    """pixi's ``config.toml``: ``[mirrors]`` sends the upstream hosts to the mirror; new projects default to it."""
    names = sorted(dict.fromkeys(channels))
    lines = [
        "# written by airgap: pixi uses only the mirror at " + base,
        "default-channels = [" + ", ".join(f'"{base}/{c}"' for c in names) + "]",
        "",
        "[mirrors]",
    ]
    lines += [f'"{up}" = ["{base}/"]' for up in PIXI_UPSTREAMS]
    lines += [f'"{up}{c}" = ["{base}/{c}"]' for c in names for up in PIXI_UPSTREAMS]
    return "\n".join(lines) + "\n"


def script_name(ins: Installer) -> str | None:
    """The bootstrap script's file name for an installer, or None when there is no batch mode we know."""
    stem, dot, ext = ins.filename.rpartition(".")
    if not dot:
        return None
    if ext == "sh":
        return f"install-{stem}.sh"
    if ext == "exe":
        return f"install-{stem}.ps1"
    return None


def _heredoc(text: str) -> str:
    if "AIRGAP_EOF" in text:  # cannot happen with checked URLs and channel names; never end a here-document early
        raise UsageError("expected a configuration without the word AIRGAP_EOF, found it")
    return text


def sh_script(base: str, ins: Installer, condarc: str, pixi: str) -> str:
    url = f"{base}/{urllib.parse.quote(ins.dir)}/{urllib.parse.quote(ins.filename)}"
    return f"""#!/bin/sh
# Written by airgap: install {ins.filename} from the mirror at {base},
# configured to use only the mirror (no channel on the internet).
#   usage: sh {script_name(ins)} [PREFIX]      (default PREFIX: {DEFAULT_PREFIX})
set -eu
PREFIX="${{1:-{DEFAULT_PREFIX}}}"
URL='{url}'
SHA256='{ins.sha256}'
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT INT TERM
echo "downloading $URL"
if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$TMP/installer" "$URL"
elif command -v wget >/dev/null 2>&1; then wget -q -O "$TMP/installer" "$URL"
else echo "error: expected curl or wget, found neither" >&2; exit 1; fi
if command -v sha256sum >/dev/null 2>&1; then GOT="$(sha256sum "$TMP/installer" | cut -d' ' -f1)"
else GOT="$(shasum -a 256 "$TMP/installer" | cut -d' ' -f1)"; fi
if [ "$GOT" != "$SHA256" ]; then
  echo "error: {ins.filename}: expected sha256 $SHA256, found $GOT; not installed (fetch it again, or ask the mirror's admin)" >&2
  exit 3
fi
bash "$TMP/installer" -b -p "$PREFIX"
cat > "$PREFIX/.condarc" <<'AIRGAP_EOF'
{_heredoc(condarc)}AIRGAP_EOF
echo "wrote $PREFIX/.condarc (conda uses only {base})"
PIXI_CONFIG="${{PIXI_HOME:-$HOME/.pixi}}/config.toml"
if [ -e "$PIXI_CONFIG" ]; then
  echo "$PIXI_CONFIG exists, left as it is; for pixi, add the [mirrors] of {base}/{DOWNLOADS}/pixi-config.toml"
else
  mkdir -p "$(dirname "$PIXI_CONFIG")"
  cat > "$PIXI_CONFIG" <<'AIRGAP_EOF'
{_heredoc(pixi)}AIRGAP_EOF
  echo "wrote $PIXI_CONFIG (pixi uses only {base})"
fi
echo "installed {ins.filename} into $PREFIX"
"""


def ps1_script(base: str, ins: Installer, condarc: str, pixi: str) -> str:
    url = f"{base}/{urllib.parse.quote(ins.dir)}/{urllib.parse.quote(ins.filename)}"
    return f"""# Written by airgap: install {ins.filename} from the mirror at {base},
# configured to use only the mirror (no channel on the internet).
#   usage: powershell -ExecutionPolicy Bypass -File {script_name(ins)} [-Prefix DIR]
param([string]$Prefix = "$env:USERPROFILE\\conda")
$ErrorActionPreference = "Stop"
$Url = '{url}'
$Sha256 = '{ins.sha256}'
$Tmp = Join-Path ([System.IO.Path]::GetTempPath()) ([System.Guid]::NewGuid().ToString())
New-Item -ItemType Directory -Path $Tmp | Out-Null
try {{
  $Installer = Join-Path $Tmp '{ins.filename}'
  Write-Host "downloading $Url"
  Invoke-WebRequest -Uri $Url -OutFile $Installer -UseBasicParsing
  $Got = (Get-FileHash -Algorithm SHA256 -Path $Installer).Hash.ToLower()
  if ($Got -ne $Sha256) {{
    Write-Error "{ins.filename}: expected sha256 $Sha256, found $Got; not installed (fetch it again, or ask the mirror's admin)"
    exit 3
  }}
  $p = Start-Process -FilePath $Installer -Wait -PassThru -ArgumentList @('/InstallationType=JustMe', '/RegisterPython=0', '/AddToPath=0', '/S', "/D=$Prefix")
  if ($p.ExitCode -ne 0) {{ Write-Error "the installer failed (exit code $($p.ExitCode))"; exit 1 }}
  Set-Content -Path (Join-Path $Prefix '.condarc') -Encoding ascii -Value @'
{condarc}'@
  Write-Host "wrote $Prefix\\.condarc (conda uses only {base})"
  $PixiHome = if ($env:PIXI_HOME) {{ $env:PIXI_HOME }} else {{ Join-Path $env:USERPROFILE '.pixi' }}
  $PixiConfig = Join-Path $PixiHome 'config.toml'
  if (Test-Path $PixiConfig) {{
    Write-Host "$PixiConfig exists, left as it is; for pixi, add the [mirrors] of {base}/{DOWNLOADS}/pixi-config.toml"
  }} else {{
    New-Item -ItemType Directory -Force -Path $PixiHome | Out-Null
    Set-Content -Path $PixiConfig -Encoding ascii -Value @'
{pixi}'@
    Write-Host "wrote $PixiConfig (pixi uses only {base})"
  }}
  Write-Host "installed {ins.filename} into $Prefix"
}} finally {{
  Remove-Item -Recurse -Force $Tmp
}}
"""


def _page(base: str, rows: list[tuple[Installer, str | None]]) -> str:
    e = html.escape
    items = []
    for ins, script in rows:
        link = f'<a href="../{e(ins.dir)}/{e(ins.filename)}">{e(ins.filename)}</a>'
        how = f'<a href="{e(script)}">{e(script)}</a>' if script else "no batch mode known: run the installer, then use the condarc below"
        items.append(f"<tr><td>{link}</td><td><code>{e(ins.sha256)}</code></td><td>{how}</td></tr>")
    sh = next((s for _, s in rows if s and s.endswith(".sh")), None)
    example = f"<pre>curl -fsSLO {e(base)}/{DOWNLOADS}/{e(sh)}\nsh {e(sh)} $HOME/conda</pre>" if sh else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>installers</title></head><body>
<h1>Installers pre-configured for {e(base)}</h1>
<p>Each script downloads its installer from this mirror, checks its sha256, installs it in batch mode
into the prefix you give, and writes a <code>.condarc</code> that uses only this mirror
(and, for pixi, <code>~/.pixi/config.toml</code> if there is none).</p>
{example}
<table><thead><tr><th>installer</th><th>sha256</th><th>bootstrap script</th></tr></thead><tbody>
{chr(10).join(items)}
</tbody></table>
<p>Configuration alone: <a href="condarc">condarc</a> (save as <code>~/.condarc</code>) ·
<a href="pixi-config.toml">pixi-config.toml</a> (save as <code>~/.pixi/config.toml</code>)</p>
</body></html>
"""


def render_downloads(base_url: str, channels: Iterable[str], installers: Iterable[Installer]) -> dict[str, bytes]:
    """Pure: the files of ``DEST/downloads/`` by name."""
    base = check_url(base_url)
    channels = sorted(dict.fromkeys(channels))
    condarc, pixi = condarc_text(base, channels), pixi_config_text(base, channels)
    files = {"condarc": condarc, "pixi-config.toml": pixi}
    rows: list[tuple[Installer, str | None]] = []
    for ins in sorted(installers, key=lambda i: (i.dir, i.filename)):
        if not (_SAFE.match(ins.dir) and _SAFE.match(ins.filename) and re.fullmatch(r"[0-9a-f]{64}", ins.sha256)):
            continue  # the receipt was checked at import; a hand-edited one is not turned into a script
        name = script_name(ins)
        if name is not None and name not in files:
            files[name] = (sh_script if name.endswith(".sh") else ps1_script)(base, ins, condarc, pixi)
        rows.append((ins, name))
    files["index.html"] = _page(base, rows)
    return {name: text.encode("utf-8") for name, text in files.items()}


def installers_of(receipt_installers: object) -> list[Installer]:
    """The installers a receipt's ``installers`` section records (``{dir: {filename: {sha256, size}}}``)."""
    out: list[Installer] = []
    if not isinstance(receipt_installers, Mapping):
        return out
    for d, names in receipt_installers.items():
        if not isinstance(names, Mapping):
            continue
        for fn, rec in names.items():
            sha = rec.get("sha256") if isinstance(rec, Mapping) else getattr(rec, "sha256", None)
            if isinstance(sha, str):
                out.append(Installer(str(d), str(fn), sha))
    return out


def write_downloads(root: Path, base_url: str, channels: Iterable[str], installers: Iterable[Installer]) -> list[str]:
    """Write ``root/downloads/`` (each file atomically); return the names written.

    Refused when ``downloads`` is one of the destination's channels (see :mod:`airgap.core.placement`).
    """
    channels = list(channels)
    problem = installer_problem(DOWNLOADS, "index.html", channels)
    if problem is not None and DOWNLOADS in channels:
        raise UsageError(
            f"{root}/{DOWNLOADS}: expected a folder for the bootstrap scripts that is no channel's, "
            f"found a channel named {DOWNLOADS!r}; import that channel with --dest-channel NAME"
        )
    files = render_downloads(base_url, channels, installers)
    folder = Path(root) / DOWNLOADS
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        mode = 0o755 if name.endswith(".sh") else 0o644
        atomic_write_bytes(folder / name, data, mode=mode)
    return sorted(files)


def publish_downloads(dest: object, base_url: str) -> list[str] | None:
    """Write ``downloads/`` into a directory destination from what its receipt and inventory hold.

    None when the destination is no directory (an object store or package server holds packages only).
    """
    from ..destinations.directory import DirectoryDestination

    if not isinstance(dest, DirectoryDestination):
        return None
    channels = list(dest.inventory())
    return write_downloads(dest.root, base_url, channels, installers_of(dest.read_receipt().get("installers")))
