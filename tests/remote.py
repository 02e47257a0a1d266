"""What the destination tests against real servers share (a helper module, not a test module):
the SeaweedFS bucket and credentials, two signed archives of a small channel, a conda client
install over HTTP, and a fresh remote site (S3 or quetz) per test."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.destinations.base import Destination
from airgap.testing.condapkg import PackageSpec, write_channel

BUCKET = "airgap-tests"


def _s3_env(monkeypatch: pytest.MonkeyPatch, seaweed: Any, key: str | None = None, secret: str | None = None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key or seaweed.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret or seaweed.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def bucket(seaweed: Any) -> str:
    client = seaweed.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return BUCKET


def s3_objects(seaweed: Any, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` with its bytes: what 'changed nothing' compares."""
    client = seaweed.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


def state(dest: Destination) -> dict[str, Any]:
    """What a client and the next import see: indexes (file names and hashes) and the files held."""
    out: dict[str, Any] = {}
    for ch, subdirs in dest.inventory().items():
        for s in subdirs:
            rd = dest.read_repodata(ch, s)
            assert rd is not None
            out[f"{ch}/{s}"] = (
                sorted((fn, rec.get("sha256")) for fn, rec in rd.records()),
                {fn: size for fn, size in dest.files(ch, s).items() if fn.endswith(".conda")},
            )
    return out


def specs(version: int) -> list[PackageSpec]:
    names = ["a1", "a2", "a3", "gpl1"]
    if version == 2:
        names = [n for n in names if n != "a2"] + ["a4"]  # a2 gone upstream, a4 new
    return [
        PackageSpec(
            n,
            "1.0",
            subdir="linux-64",
            depends=("d1",),
            padding=3000,
            license="GPL-3.0-only" if n.startswith("gpl") else "MIT",
            license_family="GPL3" if n.startswith("gpl") else "MIT",
        )
        for n in names
    ] + [PackageSpec("d1", "1.0", subdir="noarch")]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("sites")
    up = t / "up" / "main"
    write_channel(up, specs(1), subdirs=("linux-64",), formats=("conda",))
    url = http_server(up.parent) + "/main/"
    cfg = t / "export.yaml"
    cfg.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(t / "cache")}))
    assert cli("keygen", t / "k").exit_code == 0
    assert cli("export", "-f", cfg, "--sign-key", t / "k", t / "v1.tar").exit_code == 0
    shutil.rmtree(up)
    write_channel(up, specs(2), subdirs=("linux-64",), formats=("conda",))
    assert cli("export", "-f", cfg, "--sign-key", t / "k", t / "v2.tar").exit_code == 0
    clean_cfg = t / "clean.yaml"
    clean_cfg.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "license_blacklist": ["GPL"]}))
    return {"v1": t / "v1.tar", "v2": t / "v2.tar", "pub": t / "k.pub", "key": t / "k", "export": cfg, "clean": clean_cfg, "tmp": t}


@pytest.fixture(scope="module")
def delta_world(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ``memory://`` destination holding v1 (imported by airgap) and the delta from it to v2."""
    from airgap.signing import load_trusted_keys

    t = tmp_path_factory.mktemp("delta-cost")
    base = f"base-{uuid.uuid4().hex[:12]}"
    assert cli("import", archives["v1"], "--into", f"memory://{base}", "--trusted-key", archives["pub"]).exit_code == 0
    assert cli("receipt", "--into", f"memory://{base}", "-o", t / "receipt.json").exit_code == 0
    delta = t / "delta.tar"
    r = cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", t / "receipt.json")
    assert r.exit_code == 0, r.output
    return {"base": base, "delta": delta, "trusted": load_trusted_keys([str(archives["pub"])])}


def client_install(url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch, spec: str = "a1") -> list[str]:
    from airgap.testing.rattler_client import install

    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp / "rattler"))
    names = install([url], [spec], tmp / "prefix", tmp / "pkgs")
    assert (tmp / "prefix" / "conda-meta").is_dir()
    shutil.rmtree(tmp / "prefix")
    shutil.rmtree(tmp / "pkgs")
    return names


@pytest.fixture
def site(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh remote destination: its --into URL, the channel URL clients use, and how to list what it holds."""
    if request.param == "s3":
        seaweed = request.getfixturevalue("seaweed")
        request.getfixturevalue("bucket")
        _s3_env(monkeypatch, seaweed)
        prefix = f"cli/{uuid.uuid4().hex[:8]}"
        return {
            "kind": "s3",
            "into": f"s3://{BUCKET}/{prefix}",
            "channel": f"{seaweed.endpoint}/{BUCKET}/{prefix}/main",
            "snapshot": lambda: s3_objects(seaweed, prefix + "/"),
            "seaweed": seaweed,
            "prefix": prefix,
        }
    q = request.getfixturevalue("quetz")
    monkeypatch.setenv("QUETZ_API_KEY", q.key)
    name = f"cli-{uuid.uuid4().hex[:8]}"

    def snapshot() -> Any:
        from airgap.destinations.quetz import QuetzDestination

        return state(QuetzDestination(q.url, name, q.key))

    return {
        "kind": "quetz",
        "into": f"quetz+{q.url}/{name}",
        "channel": f"{q.url}/get/{name}",
        "snapshot": snapshot,
        "quetz": q,
        "name": name,
    }
