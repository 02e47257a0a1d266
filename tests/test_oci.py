"""An OCI registry as a destination, against a real one: Debian's docker-registry (distribution 2.8)
on 127.0.0.1:443 with TLS from a CA made by the test (tests/ociparts.py), and a real client:
py-rattler solves and installs from ``oci://127.0.0.1/PREFIX/main`` through its OCI middleware.

The contract suite runs on OCI too (tests/test_destinations.py). Here: the layout clients read,
import → install → re-import (no blob uploaded twice) → delta → clean; token auth (a loopback token
service), basic auth (htpasswd), docker's config.json; TLS and credential failures as one line that
changes nothing; a registry that refuses deletes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from ociparts import PASSWORD, USER, Registry, RegistryHandle

from airgap.destinations import open_destination
from airgap.destinations.oci import OciDestination
from airgap.destinations.ociclient import OciClient


def _import(archives: dict[str, Path], which: str, into: str, *extra: Any) -> Any:
    return cli("import", archives[which], "--into", into, "--trusted-key", archives["pub"], "--json", *extra)


def _client() -> OciClient:
    return OciClient("127.0.0.1")


def rattler_install(channel: str, specs: list[str], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Solve and install with py-rattler's OCI middleware, passed to both the Gateway and install()."""
    import rattler
    from rattler.networking import Client, OciMiddleware

    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp / "rattler"))

    async def go() -> list[str]:
        client = Client([OciMiddleware()])
        records = await rattler.solve(
            sources=[rattler.Channel(channel)],
            specs=specs,
            gateway=rattler.Gateway(cache_dir=tmp / "repodata", client=client),
            platforms=[rattler.Subdir("linux-64"), rattler.Subdir("noarch")],
            virtual_packages=[],
        )
        await rattler.install(records, target_prefix=tmp / "prefix", cache_dir=tmp / "pkgs", show_progress=False, client=client)
        return sorted(r.name.normalized for r in records)

    names = asyncio.run(go())
    assert (tmp / "prefix" / "conda-meta").is_dir()
    for d in ("prefix", "pkgs", "repodata", "rattler"):
        shutil.rmtree(tmp / d, ignore_errors=True)
    return names


def test_layout_is_what_clients_read(oci_registry: Registry, oci_prefix: str, archives: dict[str, Path]) -> None:
    r = _import(archives, "v1", f"oci://127.0.0.1/{oci_prefix}")
    assert r.exit_code == 0, r.output
    rd = open_destination(f"oci://127.0.0.1/{oci_prefix}").read_repodata("main", "linux-64")
    assert rd is not None
    c = _client()
    doc, _ = c.manifest(f"{oci_prefix}/main/linux-64/a1", "1.0-0") or ({}, "")
    (layer,) = doc["layers"]
    assert layer["mediaType"] == "application/vnd.conda.package.v2"
    # the layer digest is the package's own sha256: rattler fetches the blob by it
    assert layer["digest"] == "sha256:" + dict(rd.records())["a1-1.0-0.conda"]["sha256"]
    assert layer["annotations"]["org.opencontainers.image.title"] == "a1-1.0-0.conda"
    index, _ = c.manifest(f"{oci_prefix}/main/linux-64/repodata.json", "latest") or ({}, "")
    assert {lay["mediaType"] for lay in index["layers"]} >= {  # (+ the shard index where the shards format is on)
        "application/vnd.conda.repodata.v1+json",
        "application/vnd.conda.repodata.v1+json+zst",
    }
    tags = c.tags(f"{oci_prefix}/main/linux-64/repodata.json")
    assert "latest" in tags and any(t[:4].isdigit() for t in tags)  # plus a timestamp tag
    receipt = c.manifest(f"{oci_prefix}/zzz.airgap", "receipt.json")
    assert receipt is not None  # the receipt lives in the registry


def test_import_installs_reimports_as_noop_takes_a_delta_and_cleans(
    oci_registry: Registry, oci_prefix: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    into = f"oci://127.0.0.1/{oci_prefix}"
    r = _import(archives, "v1", into)
    assert r.exit_code == 0, r.output
    assert rattler_install(f"oci://127.0.0.1/{oci_prefix}/main", ["a1"], tmp_path, monkeypatch) == ["a1", "d1"]

    uploads: list[str] = []
    original = OciClient.upload

    def counting(self: OciClient, repo: str, digest: str, size: int, data: Any) -> None:
        uploads.append(f"{repo}@{digest}")
        original(self, repo, digest, size, data)

    monkeypatch.setattr(OciClient, "upload", counting)
    r = _import(archives, "v1", into)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["noop"] is True
    # re-import: no package or index blob sent again; only the lock record (new each run) goes to the state repository
    assert [u for u in uploads if "/zzz.airgap@" not in u] == []

    # a delta against the registry's own receipt: a4 arrives, a2 leaves
    receipt = tmp_path / "receipt.json"
    r = cli("receipt", "--into", into, "-o", receipt, "--json")
    assert r.exit_code == 0, r.output
    delta = tmp_path / "delta.tar"
    r = cli("export", "-f", archives["export"], "--sign-key", archives["key"], delta, "--since", receipt, "--json")
    assert r.exit_code == 0, r.output
    r = _import(archives | {"delta": delta}, "delta", into)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["packages_added"] == 1 and res["packages_removed"] == 1
    sent = {u.split("@")[0].rsplit("/", 1)[-1] for u in uploads if "zzz.airgap" not in u}
    assert "a4" in sent and not sent & {"a1", "a3", "d1"}  # only the new package's blob (and the index) went up
    assert _client().manifest(f"{oci_prefix}/main/linux-64/a2", "1.0-0") is None
    assert rattler_install(f"oci://127.0.0.1/{oci_prefix}/main", ["a4"], tmp_path, monkeypatch) == ["a4", "d1"]

    r = cli("clean", "-f", archives["clean"], "--into", into)
    assert r.exit_code == 0, r.output
    dest = open_destination(into)
    held = dest.files("main", "linux-64")
    assert "gpl1-1.0-0.conda" not in held and "a1-1.0-0.conda" in held
    rd = dest.read_repodata("main", "linux-64")
    assert rd is not None and "gpl1-1.0-0.conda" not in {f for f, _ in rd.records()}
    assert _client().manifest(f"{oci_prefix}/main/linux-64/gpl1", "1.0-0") is None  # the manifest is deleted, not only unlisted


def test_import_order_and_clean_publishes_the_index_before_it_deletes(
    oci_registry: Registry, oci_prefix: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    into = f"oci://127.0.0.1/{oci_prefix}"
    order: list[str] = []
    put, delete, upload = OciClient.put_manifest, OciClient.delete_manifest, OciClient.upload

    def record_put(self: OciClient, repo: str, ref: str, data: bytes) -> str:
        order.append(f"put {repo.removeprefix(oci_prefix + '/')}:{ref}")
        return put(self, repo, ref, data)

    def record_delete(self: OciClient, repo: str, digest: str) -> None:
        order.append(f"delete {repo.removeprefix(oci_prefix + '/')}")
        delete(self, repo, digest)

    def record_upload(self: OciClient, repo: str, digest: str, size: int, data: Any) -> None:
        order.append(f"blob {repo.removeprefix(oci_prefix + '/')}")
        upload(self, repo, digest, size, data)

    monkeypatch.setattr(OciClient, "put_manifest", record_put)
    monkeypatch.setattr(OciClient, "delete_manifest", record_delete)
    monkeypatch.setattr(OciClient, "upload", record_upload)
    assert _import(archives, "v1", into).exit_code == 0
    packages = [i for i, e in enumerate(order) if e.startswith("put main/") and "repodata.json" not in e]
    blobs = [i for i, e in enumerate(order) if e.startswith("blob main/") and "repodata.json" not in e]
    index = [i for i, e in enumerate(order) if e.startswith("put main/") and "repodata.json:latest" in e]
    receipt = order.index("put zzz.airgap:receipt.json")
    assert len(packages) == 5 and max(packages) < min(index) and max(blobs) < min(index) and max(index) < receipt
    order.clear()
    assert cli("clean", "-f", archives["clean"], "--into", into).exit_code == 0
    assert order.index("put main/linux-64/repodata.json:latest") < order.index("delete main/linux-64/gpl1")


def test_delete_disabled_leaves_empty_manifests_and_says_so(
    oci_registries: RegistryHandle,
    oci_prefix: str,
    archives: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = oci_registries.use(delete=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca))
    into = f"oci://127.0.0.1/{oci_prefix}"
    r = _import(archives, "v1", into)
    assert r.exit_code == 0, r.output
    r = cli("clean", "-f", archives["clean"], "--into", into)
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if "refuses deletes" in line]
    assert len(lines) == 1 and "storage.delete.enabled" in lines[0], r.output
    dest = open_destination(into)
    assert "gpl1-1.0-0.conda" not in dest.files("main", "linux-64")
    doc, _ = _client().manifest(f"{oci_prefix}/main/linux-64/gpl1", "1.0-0") or ({}, "")
    assert doc["layers"] == [] and doc["annotations"]["io.airgap.deleted"] == "true"
    assert _import(archives, "v1", into).exit_code == 0  # and the next import puts it back


def test_untrusted_tls_is_one_line_and_changes_nothing(
    oci_registry: Registry, oci_prefix: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    r = _import(archives, "v1", f"oci://127.0.0.1/{oci_prefix}")
    assert r.exit_code != 0
    assert "TLS" in r.output and "ca_file" in r.output and "Traceback" not in r.output
    assert not open_destination(f"oci://127.0.0.1/{oci_prefix}", {"ca_file": str(oci_registry.ca)}).exists()  # the site's CA file


def test_token_auth_with_credentials_from_env_and_docker_config(
    oci_registries: RegistryHandle, oci_prefix: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reg = oci_registries.use(auth="token")
    assert reg.tokens is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca))
    into = f"oci://127.0.0.1/{oci_prefix}"
    r = _import(archives, "v1", into)  # anonymous: the token service grants pull only
    assert r.exit_code != 0 and "anonymous access refused" in r.output, r.output
    monkeypatch.setenv("AIRGAP_OCI_USERNAME", USER)
    monkeypatch.setenv("AIRGAP_OCI_PASSWORD", "wrong-" + PASSWORD)
    r = _import(archives, "v1", into)
    assert r.exit_code != 0 and "token" in r.output and "refused the credentials" in r.output, r.output
    assert PASSWORD not in r.output
    monkeypatch.setenv("AIRGAP_OCI_PASSWORD", PASSWORD)
    assert not open_destination(into).exists()  # the refused imports left nothing
    r = _import(archives, "v1", into)
    assert r.exit_code == 0, r.output
    assert any(line.startswith(USER) and "push" in line for line in reg.tokens.requests)
    monkeypatch.delenv("AIRGAP_OCI_USERNAME")
    monkeypatch.delenv("AIRGAP_OCI_PASSWORD")
    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {"127.0.0.1": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    r = _import(archives, "v2", into)
    assert r.exit_code == 0, r.output
    dest = open_destination(into)
    assert isinstance(dest, OciDestination) and "a4-1.0-0.conda" in dest.files("main", "linux-64")


def test_basic_auth(oci_registries: RegistryHandle, oci_prefix: str, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    reg = oci_registries.use(auth="basic")
    monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca))
    into = f"oci://127.0.0.1/{oci_prefix}"
    r = _import(archives, "v1", into)
    assert r.exit_code != 0 and "asks for credentials" in r.output, r.output
    monkeypatch.setenv("OCI_PASS", PASSWORD)
    cfg = archives["tmp"] / f"sites-{oci_prefix}.yaml"
    cfg.write_text(json.dumps({"sites": {"reg": {"url": into, "username": USER, "password_env": "OCI_PASS"}}, "dest_site": "reg"}))
    r = cli("import", archives["v1"], "-f", cfg, "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output


def test_opener_checks_site_keys() -> None:
    from airgap.errors import UsageError

    with pytest.raises(UsageError, match="expected only"):
        open_destination("oci://127.0.0.1/x", {"url": "oci://127.0.0.1/x", "bucket": "no"})
    with pytest.raises(UsageError, match="oci://HOST"):
        open_destination("oci://user:pw@127.0.0.1/x")


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory: pytest.TempPathFactory, http_server: Any) -> dict[str, Path]:
    """A signed archive whose names need the layout's escapes: a leading ``_``, ``+``, ``!`` and both archive formats."""
    from airgap.testing.condapkg import PackageSpec, write_channel

    t = tmp_path_factory.mktemp("odd")
    up = t / "up" / "main"
    specs = [
        PackageSpec("_mutex", "1.0", build="gnu_0", subdir="linux-64"),
        PackageSpec("app", "1.0+local.1", subdir="linux-64", depends=("_mutex", "epoch")),
        PackageSpec("epoch", "1!2.0", subdir="noarch"),
    ]
    write_channel(up, specs, subdirs=("linux-64",), formats=("conda", "tar.bz2"))
    url = http_server(up.parent) + "/main/"
    cfg = t / "export.yaml"
    cfg.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(t / "cache")}))
    assert cli("keygen", t / "k").exit_code == 0
    r = cli("export", "-f", cfg, "--sign-key", t / "k", t / "odd.tar")
    assert r.exit_code == 0, r.output
    return {"odd": t / "odd.tar", "pub": t / "k.pub"}


def test_escaped_names_and_both_formats_install_with_rattler(
    oci_registry: Registry, oci_prefix: str, odd_names: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = _import(odd_names, "odd", f"oci://127.0.0.1/{oci_prefix}")
    assert r.exit_code == 0, r.output
    c = _client()
    doc, _ = c.manifest(f"{oci_prefix}/main/linux-64/zzz_mutex", "1.0-gnu_0") or ({}, "")
    assert sorted(lay["mediaType"] for lay in doc["layers"]) == ["application/vnd.conda.package.v1", "application/vnd.conda.package.v2"]
    assert c.manifest(f"{oci_prefix}/main/linux-64/app", "1.0__p__local.1-0") is not None
    assert c.manifest(f"{oci_prefix}/main/noarch/epoch", "1__e__2.0-0") is not None
    assert rattler_install(f"oci://127.0.0.1/{oci_prefix}/main", ["app"], tmp_path, monkeypatch) == ["_mutex", "app", "epoch"]
    dest = open_destination(f"oci://127.0.0.1/{oci_prefix}")
    assert {f for f in dest.files("main", "linux-64") if not f.startswith("repodata")} == {
        f"{s}.{e}" for s in ("_mutex-1.0-gnu_0", "app-1.0+local.1-0") for e in ("conda", "tar.bz2")
    }


def test_a_second_importer_waits_for_the_lock_then_gives_up(oci_registry: Registry, oci_prefix: str) -> None:
    from airgap.errors import LockError

    first = open_destination(f"oci://127.0.0.1/{oci_prefix}")
    second = open_destination(f"oci://127.0.0.1/{oci_prefix}")
    with first.locked(5):
        with pytest.raises(LockError, match="another airgap"):
            with second.locked(1):
                pass
    with second.locked(5):  # released: the next one gets it
        pass


def test_layout_names() -> None:
    from airgap.destinations.ocilayout import Layout, decode_state, encode_state, escape_tag
    from airgap.errors import DestinationError

    assert escape_tag("1!2.0+x=y-0") == "1__e__2.0__p__x__eq__y-0"
    layout = Layout("mirror/conda")
    t = layout.target("main/linux-64/_openmp_mutex-4.5-2_gnu.tar.bz2")
    assert t is not None and (t.repo, t.tag, t.media_type) == (
        "mirror/conda/main/linux-64/zzz_openmp_mutex",
        "4.5-2_gnu",
        "application/vnd.conda.package.v1",
    )
    assert layout.target("main/linux-64/current_repodata.json") is None
    for path in ("staging-x_y-abc/backup/3", "sbom/0a.cdx.json", "lock", ".x/Ü"):
        assert decode_state(encode_state(path)) == path
    with pytest.raises(DestinationError, match="lowercase"):
        layout.target("Main/linux-64/a-1-0.conda")
    with pytest.raises(DestinationError, match="state repository"):
        layout.target("zzz.airgap/linux-64/a-1-0.conda")


def test_rattler_installs_from_the_shards(
    oci_registry: Registry, oci_prefix: str, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the CEP-16 ``shards`` format: the shard index is a layer of ``repodata.json:latest``, each shard
    ``repodata.json/shards:<sha256>``; rattler installs when the monolithic layers list nothing, so from the shards."""
    into = f"oci://127.0.0.1/{oci_prefix}"
    cfg = tmp_path / "import.yaml"
    cfg.write_text(json.dumps({"sites": {"reg": {"url": into, "index_formats": ["shards", "repodata"]}}, "dest_site": "reg"}))
    r = cli("import", archives["v1"], "-f", cfg, "--trusted-key", archives["pub"], "--json")
    assert r.exit_code == 0, r.output
    c = _client()
    repo = f"{oci_prefix}/main/linux-64/repodata.json"
    doc, _ = c.manifest(repo, "latest") or ({}, "")
    types = {lay["mediaType"]: lay for lay in doc["layers"]}
    assert "application/vnd.conda.repodata.shards.v1+msgpack+zst" in types
    shard_tags = c.tags(repo + "/shards")
    assert shard_tags and all(len(t) == 64 for t in shard_tags)
    shard, _ = c.manifest(repo + "/shards", shard_tags[0]) or ({}, "")
    assert shard["layers"][0]["mediaType"] == "application/vnd.conda.repodata.shard.v1+msgpack+zst"
    # leave the monolithic index empty: what rattler installs now can only come from the shards
    import hashlib

    import zstandard

    from airgap.destinations.ocilayout import INDEX_TYPES, descriptor, manifest_bytes

    empty = json.dumps({"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": {}, "repodata_version": 1}).encode()
    layers = [types[INDEX_TYPES["repodata_shards.msgpack.zst"]]]
    for name, data in (("repodata.json", empty), ("repodata.json.zst", zstandard.ZstdCompressor().compress(empty))):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        c.upload(repo, digest, len(data), data)
        layers.append(descriptor(INDEX_TYPES[name], digest, len(data), name))
    c.put_manifest(repo, "latest", manifest_bytes(layers))
    assert rattler_install(f"oci://127.0.0.1/{oci_prefix}/main", ["a1"], tmp_path, monkeypatch) == ["a1", "d1"]


def test_two_importers_racing_for_the_lock_one_wins(oci_registry: Registry, oci_prefix: str) -> None:
    """No conditional writes: check, write, settle, read back. Two creates at the same moment: exactly one holds it."""
    import threading

    from airgap.destinations.oci import OciStore

    stores = [OciStore(_client(), oci_prefix, lock_settle=2.0) for _ in range(2)]  # settle far beyond one round trip
    barrier = threading.Barrier(2)
    won: list[str | None] = [None, None]

    def take(i: int) -> None:
        barrier.wait()
        won[i] = stores[i].create(".airgap/lock", f"owner {i}".encode())

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w is not None for w in won) == 1, won
    held = stores[0].read_versioned(".airgap/lock")
    assert held is not None and held[1] == next(w for w in won if w is not None)
