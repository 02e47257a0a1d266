"""Mirroring what environments need: environment.yml, pixi.lock, conda-lock.yml, explicit files.

The upstream channel, the environments and the lock files are all made here: the locks are
written with py-rattler (pixi.lock) and PyYAML (conda-lock.yml) from real solves against the
served upstream. After import, each environment installs from the mirror alone, upstream down.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import serve_directory
from helpers import cli

from airgap.core.virtual_packages import entries_for
from airgap.testing.condapkg import PackageSpec, write_channel

LINUX = "linux-64"


def upstream_specs() -> list[PackageSpec]:
    return [
        PackageSpec("libz", "1.2", subdir=LINUX),
        PackageSpec("libz", "1.3", subdir=LINUX),
        PackageSpec("util", "1.0"),
        PackageSpec("app", "1.0", subdir=LINUX, depends=("libz >=1.3", "util")),
        PackageSpec("tool", "2.0", subdir=LINUX, depends=("libz",)),
        PackageSpec("extra", "1.0"),
        PackageSpec("other", "1.0", subdir=LINUX),
        PackageSpec("gpltool", "1.0", subdir=LINUX, license="GPL-3.0-only", license_family="GPL3"),
        PackageSpec("cudapkg", "1.0", subdir=LINUX, depends=("__cuda >=12",)),
    ]


def solve(url: str, specs: list[str], cache: Path) -> list[Any]:
    import rattler

    return asyncio.run(
        rattler.solve(
            sources=[rattler.Channel(url)],
            specs=specs,
            gateway=rattler.Gateway(cache_dir=cache),
            platforms=[rattler.Subdir(LINUX), rattler.Subdir("noarch")],
            virtual_packages=[],
        )
    )


def write_pixi_lock(path: Path, url: str, envs: dict[str, list[Any]]) -> None:
    import rattler

    lock = rattler.LockFile([rattler.LockPlatform(LINUX)])
    for name, records in envs.items():
        lock.set_channels(name, [rattler.LockChannel(url)])
        for r in records:
            lock.add_conda_package(name, rattler.LockPlatform(LINUX), r)
    lock.to_path(path)


def write_conda_lock(path: Path, url: str, records: list[Any], tamper: dict[str, str] | None = None) -> None:
    packages = []
    for r in records:
        packages.append(
            {
                "name": r.name.normalized,
                "version": str(r.version),
                "manager": "conda",
                "platform": LINUX,
                "dependencies": {},
                "url": (tamper or {}).get(r.file_name, r.url),
                "hash": {"md5": r.md5.hex(), "sha256": r.sha256.hex()},
                "category": "main",
                "optional": False,
            }
        )
    doc = {
        "version": 1,
        "metadata": {
            "channels": [{"url": url, "used_env_vars": []}],
            "platforms": [LINUX],
            "content_hash": {LINUX: "0" * 64},
            "sources": ["environment.yml"],
        },
        "package": packages,
    }
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    up = tmp_path / "up" / "main"
    write_channel(up, upstream_specs(), subdirs=(LINUX,))
    base, stop = serve_directory(up.parent)
    url = f"{base}/main/"
    cache = tmp_path / "solve-cache"
    (tmp_path / "environment.yml").write_text(yaml.safe_dump({"name": "web", "channels": [url], "dependencies": ["app"]}))
    pixi_records = solve(url, ["tool", "libz 1.2.*"], cache)
    write_pixi_lock(tmp_path / "pixi.lock", url, {"default": pixi_records})
    lock_records = solve(url, ["extra"], cache)
    write_conda_lock(tmp_path / "conda-lock.yml", url, lock_records)
    cfg = {
        "channels": [url],
        "platforms": [LINUX],
        "mirror_dir": str(tmp_path / "cache"),
        "environments": ["environment.yml", {"file": "pixi.lock", "environments": ["default"]}, "conda-lock.yml"],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli("keygen", tmp_path / "k").exit_code == 0
    world = {
        "tmp": tmp_path,
        "url": url,
        "up": up,
        "cfg": tmp_path / "c.yaml",
        "config": cfg,
        "stop": stop,
        "pixi_records": pixi_records,
        "lock_records": lock_records,
        "cache": cache,
    }
    yield world
    stop()


ENV_YML = {"app-1.0-0.conda", "libz-1.3-0.conda", "util-1.0-0.conda"}  # solved
PIXI = {"tool-2.0-0.conda", "libz-1.2-0.conda"}
CONDA_LOCK = {"extra-1.0-0.conda"}
UNION = ENV_YML | PIXI | CONDA_LOCK


def plan(cfg: Path, *args: Any) -> dict[str, Any]:
    r = cli("export", "-f", cfg, "--plan", "--json", *args)
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_the_archive_carries_exactly_the_union_and_each_environment_installs_from_the_mirror(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rattler
    from rattler.networking import Client, MirrorMiddleware

    from airgap.testing.rattler_client import install

    t = world["tmp"]
    doc = plan(world["cfg"])
    pulled = {p["filename"]: p["environments"] for p in doc["packages"]}
    assert set(pulled) == UNION
    assert pulled["libz-1.3-0.conda"] == ["environment.yml"] and pulled["libz-1.2-0.conda"] == ["pixi.lock#default"]
    assert pulled["extra-1.0-0.conda"] == ["conda-lock.yml"]
    reasons = {e["filename"]: e["reason"] for e in doc["excluded"]}
    assert reasons["other-1.0-0.conda"].startswith("environments: not needed")
    text = cli("export", "-f", world["cfg"], "--plan").stdout
    assert "file     main/linux-64/tool-2.0-0.conda  <- pixi.lock#default" in text

    assert cli("export", "-f", world["cfg"], "--sign-key", t / "k", t / "m.tar").exit_code == 0
    r = cli("import", t / "m.tar", "--into", t / "dest", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    held = {p.name for p in (t / "dest" / "main").glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))}
    assert held == UNION
    inspected = json.loads(cli("inspect", t / "m.tar", "--json").stdout)
    assert inspected["filters"]["environments"] == ["conda-lock.yml", "environment.yml", "pixi.lock#default"]

    world["stop"]()  # upstream is gone: only the mirror answers now
    mirror_base, stop_mirror = serve_directory(t / "dest")
    try:
        monkeypatch.setenv("RATTLER_CACHE_DIR", str(t / "rattler"))
        names = install([f"{mirror_base}/main/"], ["app"], t / "env-web", t / "c1")
        assert names == ["app", "libz", "util"]
        r = cli("condarc", mirror_base, "main", "--pixi", "--env", t / "pixi.lock", "--env", t / "conda-lock.yml")
        assert r.exit_code == 0, r.output
        mirrors = tomllib.loads(r.stdout)["mirrors"]
        assert mirrors[world["url"]] == [f"{mirror_base}/main/"]
        client = Client([MirrorMiddleware(mirrors)])
        for n, lock_file in enumerate(("pixi.lock", "conda-lock.yml")):  # the users' files, as they are
            env = rattler.LockFile.from_path(t / lock_file).default_environment()
            assert env is not None
            (platform,) = env.platforms()
            locked = env.conda_repodata_records_for_platform(platform) or []
            assert {r.file_name for r in locked} == (PIXI if n == 0 else CONDA_LOCK)
            assert all(r.url.startswith(world["url"]) for r in locked)  # they name upstream, which is down
            asyncio.run(
                rattler.install(locked, target_prefix=t / f"env-lock{n}", cache_dir=t / f"c-lock{n}", show_progress=False, client=client)
            )
            for rec in locked:
                assert (t / f"env-lock{n}" / "conda-meta" / f"{rec.file_name.removesuffix('.conda')}.json").is_file()
    finally:
        stop_mirror()


def _error_lines(r: Any) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.lower().startswith("airgap: error")]


@pytest.mark.parametrize("case", ["missing", "sha256", "licence"])
def test_a_bad_locked_file_is_one_clear_line(case: str, world: dict[str, Any]) -> None:
    t, url = world["tmp"], world["url"]
    cfg = dict(world["config"])
    if case == "missing":
        write_conda_lock(t / "conda-lock.yml", url, world["lock_records"], tamper={"extra-1.0-0.conda": url + "noarch/ghost-1.0-0.conda"})
        expected = "conda-lock.yml (linux-64): ghost-1.0-0.conda: expected it upstream in " + url + "noarch/, found no such file"
    elif case == "sha256":
        r = world["lock_records"][0]
        (t / "explicit.txt").write_text(f"# platform: linux-64\n@EXPLICIT\n{r.url}#sha256:{'0' * 64}\n")
        cfg["environments"] = ["explicit.txt"]
        expected = f"explicit.txt (linux-64): extra-1.0-0.conda: expected sha256 {'0' * 64} as locked, found {r.sha256.hex()} upstream"
    else:
        gpl = solve(url, ["gpltool"], world["cache"])
        write_pixi_lock(t / "pixi.lock", url, {"default": gpl})
        cfg["license_blacklist"] = ["GPL"]
        expected = "pixi.lock#default (linux-64): gpltool-1.0-0.conda: locked, but excluded by the site's filters (license_blacklist: GPL)"
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = cli("export", "-f", t / "c.yaml", "--plan")
    assert r.exit_code == 2, r.output
    lines = _error_lines(r)
    assert len(lines) == 1 and expected in lines[0], r.stderr


def test_an_explicit_file_with_md5_is_taken_exactly(world: dict[str, Any]) -> None:
    t = world["tmp"]
    lines = [f"{r.url}#{r.md5.hex()}" for r in world["pixi_records"]]
    (t / "env.txt").write_text("# platform: linux-64\n@EXPLICIT\n" + "\n".join(lines) + "\n")
    cfg = dict(world["config"], environments=[], pkg_list=["other"])
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    doc = plan(t / "c.yaml", "--env", t / "env.txt")
    pulled = {p["filename"]: p["environments"] for p in doc["packages"]}
    assert pulled == {
        "tool-2.0-0.conda": [str(t / "env.txt")],
        "libz-1.2-0.conda": [str(t / "env.txt")],
        "other-1.0-0.conda": ["pkg_list"],
        "other-1.0-0.tar.bz2": ["pkg_list"],
    }


def test_a_changed_lock_file_travels_as_a_delta_of_the_new_files(world: dict[str, Any]) -> None:
    t, url = world["tmp"], world["url"]
    cfg = dict(world["config"], environments=["pixi.lock"])
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli("export", "-f", t / "c.yaml", "--sign-key", t / "k", t / "v1.tar").exit_code == 0
    assert cli("import", t / "v1.tar", "--into", t / "dest", "--trusted-key", t / "k.pub").exit_code == 0
    receipt = t / "receipt.json"
    shutil.copy(t / "dest" / ".airgap" / "receipt.json", receipt)

    write_pixi_lock(t / "pixi.lock", url, {"default": solve(url, ["tool", "libz 1.3.*"], world["cache"])})  # re-locked
    r = cli("export", "-f", t / "c.yaml", "--sign-key", t / "k", t / "d.tar", "--since", receipt, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["downloaded"] == 1
    manifest = json.loads(cli("inspect", t / "d.tar", "--json").stdout)
    assert manifest["totals"]["packages"] == 1  # only libz 1.3 travels; tool is already there
    r = cli("import", t / "d.tar", "--into", t / "dest", "--trusted-key", t / "k.pub", "--json")
    assert r.exit_code == 0, r.output
    held = {p.name for p in (t / "dest" / "main").glob("*/*") if p.name.endswith(".conda")}
    assert held == {"tool-2.0-0.conda", "libz-1.3-0.conda"}


def test_virtual_packages_per_platform(world: dict[str, Any]) -> None:
    t, url = world["tmp"], world["url"]
    (t / "gpu.yml").write_text(yaml.safe_dump({"channels": ["main"], "dependencies": ["cudapkg"]}))
    cfg = dict(world["config"], environments=["gpu.yml"])
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = cli("export", "-f", t / "c.yaml", "--plan")
    assert r.exit_code == 2 and "gpu.yml (linux-64): expected to solve against the filtered upstream records" in r.output
    cfg["virtual_packages"] = {LINUX: ["__cuda=12.4"]}
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    doc = plan(t / "c.yaml")
    assert {p["filename"] for p in doc["packages"]} == {"cudapkg-1.0-0.conda"}
    assert url in world["config"]["channels"]
    names = {n: (v, b) for n, v, b in entries_for(LINUX, {LINUX: ("__cuda=12.4", "__glibc=2.17")})}
    assert names["__cuda"] == ("12.4", "0") and names["__glibc"] == ("2.17", "0") and names["__linux"] == ("5.10", "0")
    assert names["__archspec"] == ("1", "x86_64")
    cfg["virtual_packages"] = {LINUX: ["glibc 2.28"]}
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = cli("export", "-f", t / "c.yaml", "--plan")
    assert r.exit_code == 2 and "virtual_packages.linux-64[0]: expected a virtual package such as __glibc=2.28" in r.output


def test_condarc_redirects_lock_file_urls_to_the_mirror() -> None:
    r = cli("condarc", "http://mirror:8080", "conda-forge", "main", "--upstream", "https://proxy.corp/conda/conda-forge")
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.stdout)
    assert doc["custom_channels"] == {"conda-forge": "http://mirror:8080"}  # conda appends the name
    assert doc["migrated_custom_channels"] == {"conda-forge": "https://conda.anaconda.org"}
    assert doc["migrated_channel_aliases"] == ["https://conda.anaconda.org", "https://proxy.corp/conda"]
    assert doc["default_channels"] == ["http://mirror:8080/conda-forge", "http://mirror:8080/main"]
    r = cli("condarc", "http://mirror:8080", "conda-forge", "main", "--pixi", "--upstream", "https://proxy.corp/conda/conda-forge")
    mirrors = tomllib.loads(r.stdout)["mirrors"]
    assert mirrors == {
        "https://conda.anaconda.org/conda-forge/": ["http://mirror:8080/conda-forge/"],
        "https://proxy.corp/conda/conda-forge/": ["http://mirror:8080/conda-forge/"],
        "https://repo.anaconda.com/pkgs/main/": ["http://mirror:8080/main/"],
    }
    r = cli("condarc", "http://mirror:8080", "conda-forge", "main", "--upstream", "https://x.org/bioconda")
    assert r.exit_code == 2 and "expected a mirror channel named 'bioconda'" in r.output


def test_environment_entries_are_checked(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"environments": [{"file": "x.yml", "env": ["a"]}]}))
    r = cli("export", "-f", tmp_path / "c.yaml", "--plan")
    assert r.exit_code == 2 and "environments[0]: unknown key 'env'; expected file, environments" in r.output
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"environments": ["nothere.yml"], "channels": [str(tmp_path)]}))
    r = cli("export", "-f", tmp_path / "c.yaml", "--plan")
    assert r.exit_code == 2 and "environments: nothere.yml: expected an environment or lock file, found nothing" in r.output
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"environments": [{"file": "p.lock", "environments": ["dev"]}]}))
    r = cli("export", "-f", tmp_path / "c.yaml", "--show-config")
    assert r.exit_code == 0 and "environments: [{environments: [dev], file:" in r.stdout, r.output


def test_pixi_lock_every_environment_or_the_named_ones(world: dict[str, Any]) -> None:
    t, url = world["tmp"], world["url"]
    write_pixi_lock(t / "pixi.lock", url, {"default": world["pixi_records"], "test": world["lock_records"]})
    cfg = dict(world["config"], environments=["pixi.lock"])
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    pulled = {p["filename"]: p["environments"] for p in plan(t / "c.yaml")["packages"]}
    assert pulled == {**{fn: ["pixi.lock#default"] for fn in PIXI}, "extra-1.0-0.conda": ["pixi.lock#test"]}
    cfg["environments"] = []
    (t / "c.yaml").write_text(yaml.safe_dump(cfg))
    pulled = {p["filename"]: p["environments"] for p in plan(t / "c.yaml", "--env", f"{t / 'pixi.lock'}:test")["packages"]}
    assert pulled == {"extra-1.0-0.conda": [f"{t / 'pixi.lock'}#test"]}
    r = cli("export", "-f", t / "c.yaml", "--plan", "--env", f"{t / 'pixi.lock'}:prod")
    assert r.exit_code == 2 and "expected an environment named 'prod', found default, test" in r.output


def test_condarc_for_a_merged_channel_says_what_conda_cannot_do() -> None:
    r = cli("condarc", "http://mirror:8080", "prod", "--upstream", "https://conda.anaconda.org/conda-forge")
    assert r.exit_code == 0, r.output
    assert "# https://conda.anaconda.org/conda-forge/ -> http://mirror:8080/prod/: conda cannot rename a channel" in r.stdout
    mirrors = tomllib.loads(
        cli("condarc", "http://mirror:8080", "prod", "--pixi", "--upstream", "https://conda.anaconda.org/conda-forge").stdout
    )
    assert mirrors["mirrors"]["https://conda.anaconda.org/conda-forge/"] == ["http://mirror:8080/prod/"]


def _load(tmp_path: Path, name: str, text: str) -> list[Any]:
    from airgap.core.lockfiles import EnvSource, load

    (tmp_path / name).write_text(text)
    return load(EnvSource(str(tmp_path / name), name))


def test_files_are_told_apart_by_content_and_bad_ones_named(tmp_path: Path) -> None:
    from airgap.core.lockfiles import LockedEnv, SolveEnv
    from airgap.errors import ConfigError

    url = "https://conda.anaconda.org/conda-forge/noarch/six-1.16.0-pyh6c4a22f_0.tar.bz2"
    (env,) = _load(tmp_path, "a.txt", f"# a comment\n@EXPLICIT\n{url}#{'a' * 32}\n")
    assert isinstance(env, LockedEnv) and env.platforms["noarch"][0].md5 == "a" * 32
    assert env.platforms["noarch"][0].channel_url == "https://conda.anaconda.org/conda-forge/"
    with pytest.raises(
        ConfigError, match=r"b.txt: six-1.16.0-pyh6c4a22f_0.tar.bz2: expected #<md5> or #sha256:<hex> after the URL, found no hash"
    ):
        _load(tmp_path, "b.txt", f"@EXPLICIT\n{url}\n")
    (env,) = _load(tmp_path, "e.yml", "channels: [conda-forge, nodefaults]\ndependencies: [python 3.12.*, {pip: [requests]}]\n")
    assert isinstance(env, SolveEnv) and env.channels == ("conda-forge",) and env.specs == ("python 3.12.*",)
    assert env.skipped == ("requests",)
    with pytest.raises(ConfigError, match="c.yml: expected an environment.yml .dependencies., a pixi.lock, a conda-lock.yml"):
        _load(tmp_path, "c.yml", "name: x\n")
    with pytest.raises(ConfigError, match="environment names .dev. apply to a pixi.lock; this is an environment.yml"):
        from airgap.core.lockfiles import EnvSource, load

        load(EnvSource(str(tmp_path / "e.yml"), "e.yml", ("dev",)))


def test_an_environment_channel_must_be_configured(world: dict[str, Any]) -> None:
    t = world["tmp"]
    (t / "cf.yml").write_text(yaml.safe_dump({"channels": ["conda-forge"], "dependencies": ["app"]}))
    (t / "c.yaml").write_text(yaml.safe_dump(dict(world["config"], environments=["cf.yml"])))
    r = cli("export", "-f", t / "c.yaml", "--plan")
    assert r.exit_code == 2
    lines = _error_lines(r)
    assert len(lines) == 1 and "cf.yml: channel conda-forge: expected one of the configured channels (http://127.0.0.1:" in lines[0]


def test_sync_takes_environments_from_the_command_line(world: dict[str, Any]) -> None:
    t = world["tmp"]
    (t / "c.yaml").write_text(yaml.safe_dump(dict(world["config"], environments=[])))
    r = cli("sync", "-f", t / "c.yaml", "--into", t / "dest", "--env", t / "pixi.lock")
    assert r.exit_code == 0, r.output
    held = {p.name for p in (t / "dest" / "main").glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))}
    assert held == PIXI
