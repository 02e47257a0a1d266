"""Deltas by package name (format airgap/2): only changed names travel, and the result equals a full import."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import build_archive, cli, published, specs

from airgap.testing.condapkg import PackageSpec, write_channel

LINUX = "linux-64"


def spec(name: str, version: str, variant: str = "", **kw: Any) -> PackageSpec:
    files = (("share/variant.txt", f"{name}{variant}".encode()),)
    return PackageSpec(name, version, subdir=LINUX, files=files, **kw)


def channel(root: Path, packages: list[PackageSpec]) -> None:
    shutil.rmtree(root, ignore_errors=True)
    write_channel(root, [*packages, PackageSpec("n1", "1.0", subdir="noarch")], subdirs=(LINUX,), formats=("conda",))


def export(t: Path, name: str, channels: list[Path], since: Path | None = None, dest_channel: str | None = None, **more: Any) -> Path:
    cfg = t / f"{name}.yaml"
    doc: dict[str, Any] = {"channels": [str(c) for c in channels], "platforms": [LINUX], "mirror_dir": str(t / "cache"), **more}
    if dest_channel:
        doc["dest_channel"] = dest_channel
    cfg.write_text(json.dumps(doc))
    out = t / f"{name}.tar"
    args = ["--since", since] if since is not None else []
    r = cli("export", "-f", cfg, "--unsigned", out, *args)
    assert r.exit_code == 0, r.output
    return out


def do_import(archive: Path, dest: Path, dest_channel: str | None = None) -> None:
    args = ["--dest-channel", dest_channel] if dest_channel else []
    r = cli("import", archive, "--into", dest, "--allow-unsigned", *args)
    assert r.exit_code == 0, r.output


def subdir_of(archive: Path, channel: str, subdir: str) -> dict[str, Any] | None:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.loads(member.read())
    assert manifest["format"] == "airgap/2"
    for ch in manifest["channels"]:
        for s in ch["subdirs"]:
            if ch["name"] == channel and s["subdir"] == subdir:
                return dict(s)
    return None


V1 = [spec("a", "1.0"), spec("a", "1.1"), spec("b", "1.0"), spec("c", "1.0"), spec("d", "1.0")]
# a 1.0 patched (same file), a 1.1 gone, a 1.2 new; b, d unchanged; c gone entirely; f new
V2 = [spec("a", "1.0", extra=(("patched", True),)), spec("a", "1.2"), spec("b", "1.0"), spec("d", "1.0"), spec("f", "1.0")]
V3 = [*V2[:2], spec("b", "1.0", extra=(("patched", 2),)), *V2[3:]]


def test_a_delta_carries_changed_names_only_and_equals_a_full_import(tmp_path: Path) -> None:
    t, up = tmp_path, tmp_path / "up" / "main"
    channel(up, V1)
    do_import(export(t, "v1", [up]), t / "dest")
    for version, packages in (("v2", V2), ("v3", V3)):
        channel(up, packages)
        delta = export(t, f"{version}-delta", [up], since=t / "dest" / ".airgap" / "receipt.json")
        do_import(delta, t / "dest")
        do_import(export(t, f"{version}-full", [up]), t / f"fresh-{version}")
        assert published(t / "dest") == published(t / f"fresh-{version}")
        kept, fresh = (json.loads((t / d / ".airgap" / "receipt.json").read_bytes())["name_index"] for d in ("dest", f"fresh-{version}"))
        assert kept["main"][LINUX]["names"] == fresh["main"][LINUX]["names"]  # the delta's names merged into the index
        assert subdir_of(delta, "main", "noarch") is None  # nothing changed there: left out
        sub = subdir_of(delta, "main", LINUX)
        assert sub is not None
        if version == "v2":
            assert (sub["names"], sub["gone"]) == (["a", "f"], ["c"])
            assert [p["filename"] for p in sub["packages"]] == ["a-1.2-0.conda", "f-1.0-0.conda"]
            assert [p["filename"] for p in sub["present"]] == ["a-1.0-0.conda"]  # never b's or d's
            assert sub["removals"] == ["a-1.1-0.conda", "c-1.0-0.conda"]
            assert "2 names changed, 1 gone" in cli("inspect", delta).output
            assert json.loads(cli("inspect", delta, "--json").stdout)["channels"][0]["subdirs"][0]["names"] == ["a", "f"]
        else:  # the name index the delta import kept: only b's patch travels
            assert (sub["names"], sub["gone"], sub["packages"], sub.get("removals", [])) == (["b"], [], [], [])
    record = json.loads((t / "dest" / "main" / LINUX / "repodata.json").read_bytes())["packages.conda"]["b-1.0-0.conda"]
    assert record["patched"] == 2


def test_without_the_name_index_a_delta_carries_every_name_and_still_agrees(tmp_path: Path) -> None:
    t, up = tmp_path, tmp_path / "up" / "main"
    channel(up, V1)
    do_import(export(t, "v1", [up]), t / "dest")
    receipt_path = t / "dest" / ".airgap" / "receipt.json"
    receipt = json.loads(receipt_path.read_bytes())
    assert set(receipt["name_index"]["main"]) == {LINUX, "noarch"}
    del receipt["name_index"]  # as an older airgap wrote it
    old = t / "old-receipt.json"
    old.write_text(json.dumps(receipt))
    channel(up, V2)
    delta = export(t, "delta", [up], since=old)
    sub = subdir_of(delta, "main", LINUX)
    assert sub is not None and sub["names"] == ["a", "b", "d", "f"] and sub["gone"] == ["c"]
    do_import(delta, t / "dest")
    do_import(export(t, "full", [up]), t / "fresh")
    assert published(t / "dest") == published(t / "fresh")


def test_filters_that_move_over_an_unchanged_upstream_carry_the_names_they_touch(tmp_path: Path) -> None:
    t, up = tmp_path, tmp_path / "up" / "main"
    channel(up, V1)
    do_import(export(t, "v1", [up], blacklist=["d", "a 1.1"]), t / "dest")
    delta = export(t, "delta", [up], since=t / "dest" / ".airgap" / "receipt.json", blacklist=["c"])
    sub = subdir_of(delta, "main", LINUX)
    assert sub is not None and (sub["names"], sub["gone"], sub["removals"]) == (["a", "d"], ["c"], ["c-1.0-0.conda"])
    do_import(delta, t / "dest")
    do_import(export(t, "full", [up], blacklist=["c"]), t / "fresh")
    assert published(t / "dest") == published(t / "fresh")


def test_merged_channels_with_a_collision_and_dest_channel_agree_with_a_full_import(tmp_path: Path) -> None:
    t, main, extra = tmp_path, tmp_path / "up" / "main", tmp_path / "up" / "extra"
    channel(main, [spec("a", "1.0"), spec("same", "1.0")])
    channel(extra, [spec("x", "1.0"), spec("same", "1.0", variant="-extra"), spec("y", "1.0")])
    do_import(export(t, "v1", [main, extra], dest_channel="merged"), t / "dest", dest_channel="merged")
    # main: a new build of same, a patched; extra: its same patched (still shadowed), y gone, z new
    channel(main, [spec("a", "1.0", extra=(("patched", True),)), spec("same", "1.0"), spec("same", "1.1")])
    channel(extra, [spec("x", "1.0"), spec("same", "1.0", variant="-extra", extra=(("patched", True),)), spec("z", "1.0")])
    receipt = t / "dest" / ".airgap" / "receipt.json"
    delta = export(t, "delta", [main, extra], since=receipt, dest_channel="merged")
    do_import(delta, t / "dest", dest_channel="merged")
    do_import(export(t, "full", [main, extra], dest_channel="merged"), t / "fresh", dest_channel="merged")
    assert published(t / "dest") == published(t / "fresh")
    listed = json.loads((t / "dest" / "merged" / LINUX / "repodata.json").read_bytes())["packages.conda"]
    main_same = hashlib.sha256((main / LINUX / "same-1.0-0.conda").read_bytes()).hexdigest()
    assert listed["same-1.0-0.conda"]["sha256"] == main_same and "patched" not in listed["same-1.0-0.conda"]
    m, e = subdir_of(delta, "main", LINUX), subdir_of(delta, "extra", LINUX)
    assert m is not None and e is not None
    assert m["names"] == ["a", "same"] and m["gone"] == []
    assert e["names"] == ["same", "z"] and e["gone"] == ["y"] and e["shadowed"] == ["same-1.0-0.conda"]


# --- hostile deltas: one line, exit 3, the destination unchanged --------------------------------


def _tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _as_delta(names: dict[str, list[str]], removals: dict[str, list[str]] | None = None) -> Any:
    built = build_archive(specs())
    built.manifest["format"] = "airgap/2"
    for sub in built.manifest["channels"][0]["subdirs"]:
        sub["names"], sub["gone"] = names.get(sub["subdir"], []), []
        sub["removals"] = (removals or {}).get(sub["subdir"], [])
    return built


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unlisted name", "expected records only of the names the manifest lists, found ['hostile002']"),
        ("listed name without records", "expected records of every name the manifest lists, found none for ['ghost']"),
        ("removal of an unchanged name", "expected removals only of the names the manifest lists as changed or gone"),
        ("names in airgap/1", "expected no package names in format airgap/1"),
    ],
)
def test_a_hostile_delta_is_refused_and_changes_nothing(tmp_path: Path, keyring: dict[str, Any], case: str, message: str) -> None:
    dest = tmp_path / "dest"
    good = tmp_path / "good.tar"
    build_archive(specs()).write(good, keyring["good"])
    assert cli("import", good, "--into", dest, "--trusted-key", keyring["good.pub"]).exit_code == 0
    names = {"noarch": ["hostile-data"], LINUX: ["hostile000", "hostile001", "hostile002"]}
    if case == "unlisted name":
        built = _as_delta({**names, LINUX: ["hostile000", "hostile001"]})
    elif case == "listed name without records":
        built = _as_delta({**names, LINUX: ["ghost", *names[LINUX]]})
    elif case == "removal of an unchanged name":
        built = _as_delta({**names, LINUX: ["hostile000", "hostile001", "hostile002"]}, {LINUX: ["other-1.0-0.conda"]})
    else:
        built = _as_delta(names)
        built.manifest["format"] = "airgap/1"
    bad = tmp_path / "bad.tar"
    built.write(bad, keyring["good"])
    before = _tree(dest)
    for command in ("verify", "import"):
        args = ["--into", dest] if command == "import" else []
        r = cli(command, bad, *args, "--trusted-key", keyring["good.pub"])
        assert r.exit_code == 3 and message in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert _tree(dest) == before


def test_a_name_index_holding_anything_but_strings_is_not_trusted() -> None:
    """The receipt is hostile: a name index whose names or digests are not all strings is dropped (a delta then
    carries every name), as a stale one is."""
    from airgap.core import delta_index
    from airgap.core.receipt import Receipt

    r = Receipt()
    r.sources = {"main": {LINUX: "s" * 64}}
    for names, kept in (({"a": "d1", "b": "d2"}, True), ({"a": "d1", "b": 2}, False), ({"a": ["d1"]}, False), ({}, True)):
        r.extra[delta_index.KEY] = {"main": {LINUX: {"source": "s" * 64, "names": names}}}
        assert (delta_index.stored(r, "main", LINUX) == names) if kept else delta_index.stored(r, "main", LINUX) is None
    r.extra[delta_index.KEY] = {"main": {LINUX: {"source": "other", "names": {"a": "d1"}}}}
    assert delta_index.stored(r, "main", LINUX) is None  # stale
