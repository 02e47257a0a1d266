"""An upstream's CEP-16 shards at export: only the shards the filters need, and a warning when they disagree.

A generated upstream serves repodata.json and shards (written with :mod:`airgap.core.shards` from the
same records) through ``airgap serve``, whose access log says what was asked for.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airgap.config import load_config
from airgap.core import shards
from airgap.ops.plan import run_plan
from airgap.testing.condapkg import PackageSpec, write_channel
from airgap.upstream.upstream_shards import dependency_names, wanted_names


def upstream_specs(unrelated: int) -> list[PackageSpec]:
    """``app`` (linux-64) needs ``lib`` (noarch), which needs ``base`` (linux-64); and many names nothing needs."""
    out = [
        PackageSpec("app", "1.0", subdir="linux-64", depends=("lib >=1", "__glibc >=2.17")),
        PackageSpec("app", "2.0", subdir="linux-64", depends=("lib >=2",)),
        PackageSpec("lib", "2.0", subdir="noarch", depends=("base",)),
        PackageSpec("base", "1.0", subdir="linux-64"),
    ]
    out += [PackageSpec(f"other{i:03d}", "1.0", subdir="linux-64" if i % 2 else "noarch") for i in range(unrelated)]
    return out


def write_shards(channel: Path, docs: dict[str, dict[str, Any]]) -> None:
    for subdir, doc in docs.items():
        out = shards.render(subdir, doc)
        (channel / subdir / shards.INDEX).write_bytes(out.index)
        (channel / subdir / "shards").mkdir(exist_ok=True)
        for digest, data in out.shards.items():
            (channel / subdir / shards.shard_file(digest)).write_bytes(data)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Callable[[int], tuple[str, list[str], Path]]]:
    """A sharded upstream channel served over HTTP: (its URL, the access log, its directory)."""
    from airgap.site.serve import make_server

    servers = []

    def start(unrelated: int = 30) -> tuple[str, list[str], Path]:
        root = tmp_path / "up"
        docs = write_channel(root / "main", upstream_specs(unrelated), subdirs=("linux-64",), formats=("conda",))
        write_shards(root / "main", docs)
        lines: list[str] = []
        server = make_server(root, port=0, access_log=lines.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/main/", lines, root / "main"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def config(tmp_path: Path, url: str, **keys: Any) -> Any:
    path = tmp_path / f"export-{len(list(tmp_path.glob('export-*')))}.yaml"
    path.write_text(json.dumps({"channels": [url], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), **keys}))
    return load_config(path)


def paths(lines: list[str]) -> list[str]:
    return [line.split('"')[1].split()[1] for line in lines if '"GET ' in line]


def selected(plan: Any) -> dict[str, list[str]]:
    return {s: sel.selected for s, sel in plan.selections["main"].items()}


def test_names_the_filters_need() -> None:
    from airgap.core.filters import Filters

    assert wanted_names(
        Filters(platforms=("linux-64",), pkg_list=("numpy >=1.26", "Python", "conda-forge::zlib"), include=("scipy[build=*_0]",))
    ) == {
        "zlib",
        "numpy",
        "python",
        "scipy",
    }
    assert wanted_names(Filters(platforms=("linux-64",))) is None  # everything: repodata.json
    assert dependency_names([{"depends": ["python >=3.8,<3.9", "__glibc >=2.17", "libzlib", "numpy[version='>=1']", 3]}]) == {
        "python",
        "libzlib",
        "numpy",
    }


def test_an_export_naming_packages_fetches_only_their_shards(
    upstream: Callable[[int], tuple[str, list[str], Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, log, _ = upstream(30)
    caplog.set_level(logging.INFO)
    sharded = run_plan(config(tmp_path, url, pkg_list=["app"], with_dependencies=True)).plan
    asked = paths(log)
    assert not [p for p in asked if "repodata.json" in p], asked  # the shard indexes and the needed shards only
    assert sorted(p.rsplit("/", 1)[-1] for p in asked if p.endswith(shards.INDEX)) == [shards.INDEX] * 2
    assert len([p for p in asked if "/shards/" in p]) == 3  # app, lib, base: the closure; none of the 30 others
    assert "3 names fetched from shards" in caplog.text
    log.clear()
    whole = run_plan(config(tmp_path, url, pkg_list=["app"], with_dependencies=True, upstream_shards="never")).plan
    assert [p for p in paths(log) if "repodata.json" in p]
    assert selected(sharded) == selected(whole)  # the same selection, closure included
    assert selected(sharded)["noarch"] == ["lib-2.0-0.conda"] and len(selected(sharded)["linux-64"]) == 3
    wants = sorted(w.url for w in sharded.wants)
    assert wants == sorted(w.url for w in whole.wants)  # the packages are downloaded from the same place


def test_without_names_or_without_shards_the_export_reads_repodata(
    upstream: Callable[[int], tuple[str, list[str], Path]], tmp_path: Path
) -> None:
    url, log, root = upstream(4)
    run_plan(config(tmp_path, url))  # no pkg_list: every record is needed
    assert [p for p in paths(log) if p.endswith("repodata.json.zst")]
    (root / "noarch" / shards.INDEX).unlink()  # one subdir not sharded: the channel reads repodata.json
    log.clear()
    plan = run_plan(config(tmp_path, url, pkg_list=["app"], with_dependencies=True)).plan
    assert [p for p in paths(log) if p.endswith("repodata.json.zst")] and selected(plan)["noarch"] == ["lib-2.0-0.conda"]


def test_a_shard_that_does_not_hash_to_its_name_stops_the_export(
    upstream: Callable[[int], tuple[str, list[str], Path]], tmp_path: Path
) -> None:
    from airgap.errors import UpstreamError

    url, _log, root = upstream(4)
    index = shards.decode_index((root / "noarch" / shards.INDEX).read_bytes(), "i")
    path = root / "noarch" / shards.shard_file(index.shards["lib"])
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(
        UpstreamError, match=r"expected the shard of 'lib' to hash to its name [0-9a-f]{64}, found [0-9a-f]{64}; the upstream serves bad"
    ):
        run_plan(config(tmp_path, url, pkg_list=["app"], with_dependencies=True))


def test_upstream_shards_that_disagree_with_its_repodata_are_reported(
    upstream: Callable[[int], tuple[str, list[str], Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _log, root = upstream(6)
    doc = json.loads((root / "linux-64" / "repodata.json").read_bytes())
    for record in doc["packages.conda"].values():
        if record["name"] == "app":
            record["depends"] = ["lib >=1"]  # a repodata patch the shards did not get (conda/infrastructure#1326)
    write_shards(root, {"linux-64": doc})
    caplog.set_level(logging.WARNING)
    run_plan(config(tmp_path, url))  # repodata.json read: the shards are checked against it
    warned = [r.getMessage() for r in caplog.records if "disagree" in r.getMessage()]
    assert len(warned) == 1 and "linux-64: the upstream's shards disagree with its repodata.json for 1 of " in warned[0], warned
    assert "(first: app: app-1.0-0.conda differs)" in warned[0] and "conda/infrastructure#1326" in warned[0]


def test_shards_base_url_obeys_the_link_rules(
    upstream: Callable[[int], tuple[str, list[str], Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import msgpack
    import zstandard

    url, log, root = upstream(2)
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompress((root / "noarch" / shards.INDEX).read_bytes()), raw=False)
    index["info"]["shards_base_url"] = "file:///etc/"
    (root / "noarch" / shards.INDEX).write_bytes(zstandard.ZstdCompressor().compress(msgpack.packb(index, use_bin_type=True)))
    caplog.set_level(logging.WARNING)
    plan = run_plan(config(tmp_path, url, pkg_list=["app"], with_dependencies=True)).plan
    assert "info.shards_base_url points to file:///etc/" in caplog.text and "reading repodata.json instead" in caplog.text
    assert [p for p in paths(log) if p.endswith("repodata.json.zst")] and selected(plan)["noarch"] == ["lib-2.0-0.conda"]
