"""Channel credentials never leave the process (issue 12, item 21).

A channel behind a password and a ``/t/TOKEN/`` path is exported (once failing, once not),
planned, shown, inspected, verified, imported and receipted; every output, the log, the
archive (and its decompressed repodata), the cache and the destination are searched for the
secrets. ``redact`` is also checked on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import cli
from scripted import Scripted, config

from airgap.redact import MARKER, redact
from airgap.testing.condapkg import PackageSpec, write_channel


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path / "up" / "chan"
    rd = write_channel(root, [PackageSpec("p", str(v), subdir="linux-64") for v in (1, 2)], subdirs=("linux-64",), formats=("conda",))
    server = Scripted(tmp_path / "up")
    yield {"root": root, "server": server, "repodata": rd, "tmp": tmp_path}
    server.close()


# --- 21: credentials never leave the process ----------------------------------------------------


def test_channel_credentials_are_in_no_output_log_archive_or_destination(upstream: dict[str, Any]) -> None:
    server, tmp, root = upstream["server"], upstream["tmp"], upstream["root"]
    secrets = ("pw-0f9e8d", "TOKEN-7c6b5a")
    (tmp / "up" / "t" / secrets[1]).mkdir(parents=True)
    (tmp / "up" / "t" / secrets[1] / "chan").symlink_to(root)
    server.auth = f"bob:{secrets[0]}"
    url = f"http://bob:{secrets[0]}@127.0.0.1:{server.port}/t/{secrets[1]}/chan/"
    cfg = config(tmp, url, log_dir=str(tmp / "logs"))
    missing = sorted(upstream["repodata"]["linux-64"]["packages.conda"])[0]
    moved = tmp / "aside"
    (root / "linux-64" / missing).rename(moved)  # first run: a 404 whose message quotes the URL
    outputs = [cli("export", "-f", cfg, "--unsigned", tmp / "m.tar", "-v")]
    assert outputs[0].exit_code == 1 and "404" in outputs[0].output
    moved.rename(root / "linux-64" / missing)
    outputs.append(cli("export", "-f", cfg, "--unsigned", tmp / "m.tar", "-v"))
    assert outputs[-1].exit_code == 0, outputs[-1].output
    outputs += [
        cli("export", "-f", cfg, "--plan", "--json"),
        cli("export", "-f", cfg, "--show-config"),
        cli("inspect", tmp / "m.tar"),
        cli("inspect", tmp / "m.tar", "--json"),
        cli("verify", tmp / "m.tar", "--allow-unsigned", "--json"),
        cli("import", tmp / "m.tar", "--into", tmp / "dest", "--allow-unsigned", "-v"),
        cli("import", tmp / "m.tar", "--into", tmp / "dest", "--allow-unsigned", "--json"),
        cli("receipt", "--into", tmp / "dest", "--json"),
    ]
    assert all(r.exit_code == 0 for r in outputs[1:]), [r.output for r in outputs]
    texts = [r.output for r in outputs]
    files = [p for d in ("logs", "dest", "cache") for p in (tmp / d).rglob("*") if p.is_file()] + [tmp / "m.tar"]
    blobs = {str(p): p.read_bytes() for p in files}
    blobs.update(
        {
            k + " (unpacked)": zstandard.ZstdDecompressor().stream_reader(b).read()
            for k, b in list(blobs.items())
            if b[:4] == b"\x28\xb5\x2f\xfd"
        }
    )
    assert len(blobs) > len(files)  # the repodata blobs were looked into
    for secret in secrets:
        assert not [t for t in texts if secret in t], secret
        assert not [k for k, b in blobs.items() if secret.encode() in b], secret
    manifest = json.loads(cli("inspect", tmp / "m.tar", "--json").stdout)
    assert manifest["channels"][0]["url"] == f"http://bob:{MARKER}@127.0.0.1:{server.port}/t/{MARKER}/chan/"
    assert (tmp / "logs" / "airgap.log").read_text().count(MARKER) >= 1


def test_redact_forms() -> None:
    assert redact("https://u:p@h/t/abc/x?token=zz&a=1") == f"https://u:{MARKER}@h/t/{MARKER}/x?token={MARKER}&a=1"
    assert redact("https://tokenonly@h/") == f"https://{MARKER}@h/"
    assert redact("https://u:p@ss@h/x and https://v:w@g/") == f"https://u:{MARKER}@h/x and https://v:{MARKER}@g/"
    assert redact("Max retries exceeded with url: /t/abc-123/main/x") == f"Max retries exceeded with url: /t/{MARKER}/main/x"
    assert redact("user@example.com wrote /tmp/x") == "user@example.com wrote /tmp/x"
    assert redact(redact("https://u:p@h/t/abc/")) == redact("https://u:p@h/t/abc/")


def test_a_channel_is_never_named_after_its_token() -> None:
    from airgap.errors import UsageError
    from airgap.upstream.channels import channel_from_string

    assert channel_from_string("https://u:p@h/t/TOK-1/main/").name == "main"
    with pytest.raises(UsageError) as err:
        channel_from_string("https://h/t/TOK-1/")
    assert "TOK-1" not in str(err.value)


def test_show_config_hides_site_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps(
            {
                "channels": ["https://u:pw-1a2b@h/t/TOK-3c4d/main/"],
                "sites": {"q": {"url": "quetz+http://127.0.0.1:1/ch", "api_key": "KEY-5e6f", "api_key_env": "QUETZ_KEY"}},
            }
        )
    )
    r = cli("export", "-f", cfg, "--show-config")
    assert r.exit_code == 0, r.output
    assert not [s for s in ("pw-1a2b", "TOK-3c4d", "KEY-5e6f") if s in r.output]
    assert "QUETZ_KEY" in r.output and f"api_key: {MARKER}" in r.output
