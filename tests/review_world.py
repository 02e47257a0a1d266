"""The archives the SBOM and review-page tests share: a small channel, a full archive, a delta (not a test module)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import cli

from airgap.testing.condapkg import PackageSpec, write_channel


def specs(version: int) -> list[PackageSpec]:
    out = [
        PackageSpec("zlib", "1.3", subdir="linux-64", license="Zlib", license_family="Other"),
        PackageSpec(
            "libfoo",
            "1.0" if version == 1 else "2.0",
            subdir="linux-64",
            depends=("zlib >=1.2,<2",),
            license="MIT",
            license_family=None,
            padding=30_000,
        ),
        PackageSpec(
            "app",
            "1.0",
            subdir="linux-64",
            depends=("libfoo", "python >=3.8", "zlib >=9"),
            license="GPL-2.0-or-later OR MIT",
            license_family=None,
        ),
        PackageSpec("pyx", "1.0", subdir="noarch", depends=("libfoo >=1",), license="Apache 2.0", license_family=None),
        PackageSpec("nolic", "1.0", subdir="noarch", license="", license_family=None),
        PackageSpec("bad-gpl", "1.0", subdir="linux-64", license="GPL-3.0-only", license_family="GPL3"),
    ]
    if version == 1:
        out.append(PackageSpec("oddlic", "1.0", subdir="linux-64", license="Custom: see LICENSE.txt", license_family=None))
    else:
        out.append(PackageSpec("newpkg", "0.1", subdir="noarch", license="BSD 3-Clause", license_family=None))
    return out


def make_world(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Any]:
    """A channel, a signed full archive imported into a directory, and a delta on its receipt after upstream moved on."""
    t = tmp_path_factory.mktemp("review")
    up = t / "up" / "main"
    write_channel(up, specs(1), subdirs=("linux-64",), formats=("conda",))
    url = http_server(up.parent) + "/main/"
    cfg = t / "c.yaml"
    cfg.write_text(
        json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(t / "cache"), "license_blacklist": ["GPL3"]})
    )
    assert cli("keygen", t / "k").exit_code == 0
    assert cli("keygen", t / "other").exit_code == 0
    r = cli("export", "-f", cfg, "--sign-key", t / "k", t / "v1.tar")
    assert r.exit_code == 0, r.output
    dest = t / "dest"
    r = cli("import", t / "v1.tar", "--into", dest, "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    receipt = t / "receipt-v1.json"
    shutil.copy(dest / ".airgap" / "receipt.json", receipt)
    shutil.rmtree(up)
    write_channel(up, specs(2), subdirs=("linux-64",), formats=("conda",))  # upstream moves on
    r = cli("export", "-f", cfg, "--sign-key", t / "k", t / "delta.tar", "--since", receipt)
    assert r.exit_code == 0, r.output
    keyid = cli("verify", t / "v1.tar", "--trusted-key", t / "k.pub", "--json")
    return {"t": t, "cfg": cfg, "dest": dest, "receipt": receipt, "url": url, "keyid": json.loads(keyid.stdout)["signer"]}


def manifest_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tf:
        member = tf.extractfile("manifest.json")
        assert member is not None
        doc: dict[str, Any] = json.loads(member.read())
        return doc


def blob_of(archive: Path, sha: str) -> bytes:
    with tarfile.open(archive) as tf:
        member = tf.extractfile(f"blobs/sha256/{sha}")
        assert member is not None
        return member.read()


def sbom_document_of(archive: Path) -> bytes:
    """The CycloneDX document an archive carries: its SBOM blob, decompressed when the manifest says ``+zstd``."""
    sbom = manifest_of(archive)["sbom"]
    blob = blob_of(archive, sbom["sha256"])
    if not sbom["format"].endswith("+zstd"):
        return blob
    doc: bytes = zstandard.ZstdDecompressor().decompress(blob, max_output_size=sbom["raw_size"])
    assert len(doc) == sbom["raw_size"]
    return doc
