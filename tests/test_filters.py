"""Filter semantics, table-driven, then on real channel snapshots with a real solver."""

from __future__ import annotations

import asyncio
import bz2
import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import shared_repodata

from airgap.core.filters import Filters, license_blocked, select_channel
from airgap.core.repodata import Repodata, parse_repodata
from airgap.errors import ConfigError

DATA = shared_repodata()


def rec(name: str, version: str = "1.0", build: str = "0", **kw: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "build": build, "build_number": 0, "depends": [], **kw}


def channel(**subdirs: list[dict[str, Any]]) -> dict[str, Repodata]:
    out = {}
    for subdir, records in subdirs.items():
        rd = Repodata(subdir=subdir.replace("_", "-"))
        for r in records:
            rd.put(f"{r['name']}-{r['version']}-{r['build']}.conda", r)
        out[rd.subdir] = rd
    return out


def run(records: list[dict[str, Any]], **filters: Any) -> tuple[set[str], dict[str, str]]:
    sel = select_channel(channel(linux_64=records), Filters(platforms=("linux-64",), **filters))["linux-64"]
    return {f.rsplit("-", 2)[0] + "-" + f.rsplit("-", 2)[1] for f in sel.selected}, sel.excluded


@pytest.mark.parametrize(
    "record, blacklist, blocked",
    [
        (rec("a", license_family="GPL"), ("GPL",), "GPL"),
        (rec("a", license_family="GPL2"), ("GPL",), "GPL"),
        (rec("a", license_family="gpl3"), ("GPL",), "GPL"),
        (rec("a", license_family="LGPL"), ("GPL",), None),
        (rec("a", license_family="AGPL"), ("GPL",), None),
        (rec("a", license_family="AGPL"), ("AGPL",), "AGPL"),
        (rec("a", license_family="GPL3"), ("GPL2",), None),
        (rec("a", license="GPL-3.0-only"), ("GPL",), "GPL"),
        (rec("a", license="GPL-2.0-or-later"), ("GPL2",), "GPL2"),
        (rec("a", license="GPLv3"), ("GPL3",), "GPL3"),
        (rec("a", license="LGPL-2.1-or-later"), ("GPL",), None),
        (rec("a", license="LGPL-2.1-or-later"), ("LGPL",), "LGPL"),
        (rec("a", license="GNU Affero General Public License v3"), ("AGPL",), "AGPL"),
        (rec("a", license="MIT OR GPL-3.0-only"), ("GPL",), None),  # usable under MIT
        (rec("a", license="GPL-2.0-only AND MIT"), ("GPL",), "GPL"),
        (rec("a", license="GPL-2.0 | GPL-3.0"), ("GPL",), "GPL"),
        (rec("a", license="Custom Foo License"), ("GPL",), None),  # cannot classify: kept
        (rec("a"), ("GPL",), None),
        (rec("a", license_family="BSD", license="GPL-3.0"), ("GPL",), None),  # license_family wins
    ],
)
def test_license_families(record: dict[str, Any], blacklist: tuple[str, ...], blocked: str | None) -> None:
    assert license_blocked(record, blacklist) == blocked


def test_blacklist_whitelist_pkg_list_exclude_order() -> None:
    records = [
        rec("openssl", "1.0.2"),
        rec("openssl", "1.1.1"),
        rec("gcc", "9", license_family="GPL3"),
        rec("readline", "8", license_family="GPL3"),
        rec("zlib", "1.3"),
        rec("xz", "5"),
    ]
    got, why = run(records, blacklist=("openssl 1.0.*",), license_blacklist=("GPL",), whitelist=("readline",))
    assert got == {"openssl-1.1.1", "readline-8", "zlib-1.3", "xz-5"}
    assert why["openssl-1.0.2-0.conda"] == "blacklist: openssl 1.0.*"
    assert why["gcc-9-0.conda"] == "license_blacklist: GPL"
    got, why = run(records, pkg_list=("openssl", "zlib", "gcc"), exclude=("zlib",), license_blacklist=("GPL",))
    assert got == {"openssl-1.0.2", "openssl-1.1.1"}
    assert why["zlib-1.3-0.conda"] == "exclude: zlib" and why["xz-5-0.conda"] == "not in pkg_list"
    got, _ = run(records, pkg_list=("openssl >=1.1",), include=("xz",))
    assert got == {"openssl-1.1.1", "xz-5"}


@pytest.mark.parametrize(
    "depends, noarch, kept",
    [
        (["python >=3.11,<3.12.0a0"], None, True),
        (["python >=3.10,<3.11.0a0"], None, False),
        (["python 3.6*"], None, False),
        (["python 3.11*", "openssl"], None, True),
        (["python_abi 3.11.* *_cp311"], None, True),
        (["python_abi 3.12.* *_cp312", "python >=3.12,<3.13.0a0"], None, False),
        (["python >=3.8"], "python", True),  # noarch: python is for every python
        (["python"], None, True),  # no version: not python-specific
        (["libzlib >=1.2"], None, True),
    ],
)
def test_python_versions_from_depends(depends: list[str], noarch: str | None, kept: bool) -> None:
    r = rec("pkg", depends=depends, **({"noarch": noarch} if noarch else {}))
    got, why = run([r], python_versions=("3.11",))
    assert bool(got) == kept, why


def test_python_interpreter_versions() -> None:
    records = [rec("python", "3.11.4"), rec("python", "3.12.0"), rec("python", "3.1.5")]
    got, why = run(records, python_versions=("3.11", "3.1"))
    assert got == {"python-3.11.4", "python-3.1.5"}
    assert why["python-3.12.0-0.conda"].startswith("python_versions: python 3.12.0 is not one of 3.1, 3.11")


def test_latest_uses_conda_version_order() -> None:
    records = [rec("a", v) for v in ("1.9", "1.10", "1.2")] + [rec("b", "0.1")]
    got, why = run(records, latest=2)
    assert got == {"a-1.10", "a-1.9", "b-0.1"}  # 1.10 is newer than 1.9 (not string order)
    assert why["a-1.2-0.conda"] == "latest: older than the newest 2 versions"
    got, _ = run([rec("a", v) for v in ("1.9", "1.10rc1", "1.10")], latest=2)
    assert got == {"a-1.10", "a-1.10rc1"}  # a release candidate sorts between 1.9 and 1.10


def test_snapshot_date_seconds_and_milliseconds() -> None:
    records = [rec("a", "1", timestamp=1577836800), rec("a", "2", timestamp=1609459200000), rec("a", "3")]
    got, why = run(records, snapshot_date="2020-06-01")
    assert got == {"a-1", "a-3"}
    assert why["a-2-0.conda"] == "snapshot_date: published after 2020-06-01"


def test_dependency_closure_crosses_noarch_and_follows_pins() -> None:
    subdirs = channel(
        linux_64=[
            rec("app", depends=["lib >=2", "data", "python_abi 3.11.* *_cp311", "__glibc >=2.17"]),
            rec("lib", "1"),
            rec("lib", "2"),
            rec("lib", "3", license_family="GPL"),
            rec("python_abi", "3.11", "4_cp311"),
            rec("python_abi", "3.12", "4_cp312"),
            rec("unrelated"),
        ],
        noarch=[rec("data", depends=["lib"]), rec("other")],
    )
    f = Filters(platforms=("linux-64",), pkg_list=("app",), with_dependencies=True, license_blacklist=("GPL",))
    sel = select_channel(subdirs, f)
    assert sel["linux-64"].selected == ["app-1.0-0.conda", "lib-1-0.conda", "lib-2-0.conda", "python_abi-3.11-4_cp311.conda"]
    assert sel["noarch"].selected == ["data-1.0-0.conda"]
    assert sel["linux-64"].excluded["lib-3-0.conda"] == "license_blacklist: GPL"  # never pulled back in
    assert sel["linux-64"].excluded["unrelated-1.0-0.conda"] == "not in pkg_list"


def test_bad_filter_values_fail_before_anything_runs() -> None:
    for kw, msg in [
        ({"pkg_list": ("py*",)}, "exact package name"),
        ({"python_versions": ("three",)}, "python_versions[0]"),
        ({"snapshot_date": "last week"}, "snapshot_date: expected a date"),
        ({"latest": 0}, "latest: expected"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(msg)):
            Filters(platforms=("linux-64",), **kw).validate()  # type: ignore[arg-type]


def test_closure_on_real_defaults_is_installable_and_small(tmp_path: Path) -> None:
    """defaults main osx-64 (2018): python 3.6 and its dependencies, then a real solve."""
    rd = parse_repodata(bz2.decompress((DATA / "main_osx-64_2018-10.repodata.json.bz2").read_bytes()), "osx-64", "main")
    noarch = parse_repodata((DATA / "main_noarch_2018-08.repodata.json").read_bytes(), "noarch", "main")
    f = Filters(platforms=("osx-64",), pkg_list=("python", "requests"), python_versions=("3.6",), with_dependencies=True, latest=1)
    sel = select_channel({"osx-64": rd, "noarch": noarch}, f)
    chosen = sel["osx-64"].selected
    assert 10 < len(chosen) < len(rd) // 50
    names = {rd.get(fn)["name"] for fn in chosen}  # type: ignore[index]
    assert {"python", "openssl", "requests", "urllib3", "zlib"} <= names
    assert all(not fn.startswith("python-2") for fn in chosen)
    # a real solver, against the selected records alone
    root = tmp_path / "ch"
    for subdir, src in (("osx-64", rd), ("noarch", noarch)):
        (root / subdir).mkdir(parents=True)
        (root / subdir / "repodata.json").write_text(json.dumps(src.subset(set(sel[subdir].selected)).to_document()))
    import rattler

    records = asyncio.run(
        rattler.solve(
            sources=[rattler.Channel(root.as_uri())],
            specs=["python 3.6.*", "requests"],
            gateway=rattler.Gateway(cache_dir=tmp_path / "cache"),
            platforms=["osx-64", "noarch"],
            virtual_packages=[],
        )
    )
    solved = {r.name.normalized for r in records}
    assert {"python", "requests", "openssl"} <= solved


def _load(name: str, subdir: str) -> Repodata:
    import zstandard

    raw = (DATA / name).read_bytes()
    data = bz2.decompress(raw) if name.endswith(".bz2") else zstandard.ZstdDecompressor().stream_reader(raw).read()
    return parse_repodata(data, subdir, name)


def test_python_versions_on_the_conda_forge_subchannel() -> None:
    """Real repodata v2 from conda-forge: decisions follow each record's python dependencies."""
    subdirs = {
        "linux-64": _load("cf-subchannel-py39_linux-64_2024-05.repodata.json.zst", "linux-64"),
        "noarch": _load("cf-subchannel-py39_noarch_2024-05.repodata.json.zst", "noarch"),
    }
    rd = subdirs["linux-64"]

    def py_deps(fn: str) -> list[str]:
        return [d for d in rd.get(fn)["depends"] if d.split(" ")[0] in ("python", "python_abi") and " " in d]  # type: ignore[index]

    sel = select_channel(subdirs, Filters(platforms=("linux-64",), python_versions=("3.9",)))
    kept, dropped = sel["linux-64"].selected, [fn for fn, r in sel["linux-64"].excluded.items() if r.startswith("python_versions")]
    assert len(kept) > 1000 and len(dropped) > 100
    built_for_39 = re.compile(r"python >=3\.9,|python 3\.9|_cp39")
    assert not [fn for fn in dropped if any(built_for_39.search(d) for d in py_deps(fn))]
    assert all(any(not built_for_39.search(d) for d in py_deps(fn)) for fn in dropped)
    cp39 = [fn for fn in kept if any("cp39" in d for d in py_deps(fn))]
    assert len(cp39) > 50
    sel312 = select_channel(subdirs, Filters(platforms=("linux-64",), python_versions=("3.12",)))
    assert set(cp39) <= set(sel312["linux-64"].excluded)
    assert len(sel312["noarch"].selected) == len(subdirs["noarch"])  # noarch: python is for every python


def test_licenses_on_real_channels() -> None:
    free = _load("free_osx-64_2018-10.repodata.json.bz2", "osx-64")
    sel = select_channel({"osx-64": free}, Filters(platforms=("osx-64",), license_blacklist=("GPL",)))["osx-64"]
    reasons = set(sel.excluded.values())
    assert reasons == {"license_blacklist: GPL"}
    for fn in sel.excluded:
        rec = free.get(fn)
        assert rec is not None and license_blocked(rec, ("GPL",)) == "GPL"
        assert "LGPL" not in str(rec.get("license_family", "")).upper()
    assert 100 < len(sel.excluded) < len(free) // 4
    bio = _load("bioconda_osx-64_2018-10.repodata.json.bz2", "osx-64")  # deps point outside the channel
    bio_sel = select_channel({"osx-64": bio}, Filters(platforms=("osx-64",), pkg_list=("samtools",), with_dependencies=True))
    names = {bio.get(fn)["name"] for fn in bio_sel["osx-64"].selected}  # type: ignore[index]
    assert "samtools" in names and len(names) > 1 and len(bio_sel["osx-64"].selected) < len(bio) // 10
