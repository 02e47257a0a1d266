"""The browsable pages scale with what changed: one row per name on a subdir's page, one page per name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.core import rawindex
from airgap.core.repodata import Repodata
from airgap.destinations import open_destination
from airgap.ops import pages as pages_module
from airgap.site import html as html_module
from airgap.site.html import (
    NAME_PAGE_ROWS,
    SUBDIR_PAGE_NAMES,
    channel_page,
    group_by_name,
    name_page_file,
    name_pages,
    rows_of,
    subdir_page,
    subdir_pages,
)
from airgap.testing.condapkg import PackageSpec, write_channel


def _big(names: int, per_name: int) -> Repodata:
    rd = Repodata(subdir="linux-64")
    for n in range(names):
        for v in range(per_name):
            fn = f"pkg{n:04d}-1.{v}-h{v:05d}_0.tar.bz2"
            rd.put(fn, {"name": f"pkg{n:04d}", "version": f"1.{v}", "build": f"h{v:05d}_0", "size": 1000, "license": "MIT"})
    return rd


def test_a_large_subdir_page_lists_names_not_files() -> None:
    rd = _big(names=50, per_name=400)  # 20,000 files
    page = subdir_page("ch", rd)
    assert len(page) < 20_000  # one row per name; a row per file made 2.6 MB of it
    assert page.count('<tr><td><a href="names/') == 50
    assert f'href="{name_page_file("pkg0007")}"' in page and "1.399" in page  # latest version, in conda's order (1.399 > 1.99)
    assert "20000 package files" in page
    assert len(channel_page("ch", {"linux-64": rd, "noarch": None})) < 5_000


def test_past_many_names_the_subdir_page_becomes_an_index_by_letter() -> None:
    rd = _big(names=SUBDIR_PAGE_NAMES + 1, per_name=1)
    pages = dict(subdir_pages("ch", "linux-64", rows_of(group_by_name(rd)), len(rd)))
    assert set(pages) == {"index.html", "names/_index-p.html"}
    assert 'href="names/_index-p.html"' in pages["index.html"] and len(pages["index.html"]) < 5_000
    letter = pages["names/_index-p.html"]
    assert letter.count("<tr><td><a href=") == SUBDIR_PAGE_NAMES + 1 and 'href="pkg0042.html"' in letter  # beside the name pages
    assert len(letter) < 2_000_000


def test_a_name_with_many_files_gets_several_linked_pages() -> None:
    items = list(_big(names=1, per_name=NAME_PAGE_ROWS + 10).records())
    pages = name_pages("ch", "linux-64", "pkg0000", items)
    assert [f for f, _ in pages] == ["names/pkg0000.html", "names/pkg0000~2.html"]
    first, second = pages[0][1], pages[1][1]
    assert 'href="pkg0000~2.html"' in first and 'href="pkg0000.html"' in second
    assert first.count("<tr><td>") == NAME_PAGE_ROWS and second.count("<tr><td>") == 10
    assert 'href="../pkg0000-1.5009-h05009_0.tar.bz2"' in first  # newest first, links lead back to the subdir


def test_odd_names_get_pages_inside_names() -> None:
    for name in ("../../etc/passwd", "Index", "a/b", "<script>"):
        target = name_page_file(name)
        assert target.startswith("names/_") and "/" not in target[len("names/") :]
    assert name_page_file("numpy") == "names/numpy.html"


def _specs(version: int) -> list[PackageSpec]:
    out = [PackageSpec(n, "1.0", subdir="linux-64") for n in ("alpha", "beta", "gamma", "delta")]
    if version == 2:
        out = [s for s in out if s.name != "delta"] + [PackageSpec("beta", "2.0", subdir="linux-64")]
    return out


UNTOUCHED = "<!-- untouched -->"


def _first_import(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Version 1 of a four-name channel exported and imported: (upstream, config, destination)."""
    up = tmp_path / "up" / "main"
    write_channel(up, _specs(1), subdirs=("linux-64",), formats=("conda",))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [str(up)], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    dest = tmp_path / "dest"
    assert cli("export", "-f", cfg, "--unsigned", tmp_path / "v1.tar").exit_code == 0
    assert cli("import", tmp_path / "v1.tar", "--into", dest, "--allow-unsigned").exit_code == 0
    return up, cfg, dest


def _mark(pages: Iterable[Path]) -> None:
    """Mark each page: a page rewritten loses its mark."""
    for page in pages:
        page.write_text(page.read_text() + UNTOUCHED)


def _marked(pages: Iterable[Path]) -> set[str]:
    return {p.name for p in pages if UNTOUCHED in p.read_text()}


def _a_week_later(tmp_path: Path, up: Path, cfg: Path, dest: Path) -> None:
    """Upstream moves to version 2 (beta 2.0 new, delta gone); its delta is exported and imported."""
    shutil.rmtree(up)
    write_channel(up, _specs(2), subdirs=("linux-64",), formats=("conda",))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "d.tar", "--since", dest / ".airgap" / "receipt.json")
    assert r.exit_code == 0, r.output
    r = cli("import", tmp_path / "d.tar", "--into", dest, "--allow-unsigned")
    assert r.exit_code == 0, r.output


def test_an_import_rewrites_only_the_pages_of_the_names_it_changed(tmp_path: Path) -> None:
    up, cfg, dest = _first_import(tmp_path)
    names = dest / "main" / "linux-64" / "names"
    assert sorted(p.name for p in names.iterdir()) == ["alpha.html", "beta.html", "delta.html", "gamma.html"]
    _mark(names.iterdir())
    _a_week_later(tmp_path, up, cfg, dest)
    assert _marked(names.iterdir()) == {"alpha.html", "gamma.html"}
    beta = (names / "beta.html").read_text()
    assert "2.0" in beta and "1.0" in beta
    assert "no longer holds delta" in (names / "delta.html").read_text()
    index = (dest / "main" / "linux-64" / "index.html").read_text()
    assert 'href="names/beta.html"' in index and "delta" not in index


def test_an_import_tells_the_pages_its_files_by_subdir_as_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages learn a subdir's placed and removed files as file names under it, not a (channel, subdir, file) tuple
    per file (19 MB at 300,000 files, held from the placing to the pages)."""
    import airgap.ops.publish as publish

    up, cfg, dest = _first_import(tmp_path)
    seen: list[object] = []
    real = pages_module.write_pages

    def pages(*args: Any, **kwargs: Any) -> None:
        seen.append(args[4])
        real(*args, **kwargs)

    monkeypatch.setattr(publish, "write_pages", pages)
    _a_week_later(tmp_path, up, cfg, dest)
    (touched,) = seen
    assert isinstance(touched, dict) and list(touched) == [("main", "linux-64")]
    files = touched[("main", "linux-64")]
    assert type(files) is list and all(type(f) is str for f in files)
    assert sorted({f.split("-")[0] for f in files}) == ["beta", "delta"]  # beta 2.0 placed, delta removed


def test_clean_rewrites_the_pages_of_the_names_it_removed(tmp_path: Path) -> None:
    up, cfg, dest = _first_import(tmp_path)
    names = dest / "main" / "linux-64" / "names"
    _mark(names.iterdir())
    cfg.write_text(
        json.dumps({"channels": [str(up)], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache"), "blacklist": ["gamma"]})
    )
    r = cli("clean", "-f", cfg, "--into", dest)
    assert r.exit_code == 0, r.output
    assert _marked(names.iterdir()) == {"alpha.html", "beta.html", "delta.html"}
    assert "no longer holds gamma" in (names / "gamma.html").read_text()
    assert 'href="names/gamma.html"' not in (dest / "main" / "linux-64" / "index.html").read_text()


def test_past_many_names_an_import_rewrites_only_the_letters_it_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_module, "SUBDIR_PAGE_NAMES", 2)  # four names: a letter index, a page per letter
    up, cfg, dest = _first_import(tmp_path)
    names = dest / "main" / "linux-64" / "names"
    letters = sorted(names.glob("_index-*.html"))
    assert [p.name for p in letters] == ["_index-a.html", "_index-b.html", "_index-d.html", "_index-g.html"]
    _mark(letters)
    _a_week_later(tmp_path, up, cfg, dest)
    # d's only name is gone: the index no longer links its page, which is left as it was, as before letters followed the change
    assert _marked(letters) == {"_index-a.html", "_index-d.html", "_index-g.html"}
    assert "2.0" in (names / "_index-b.html").read_text()
    index = (dest / "main" / "linux-64" / "index.html").read_text()
    assert 'href="names/_index-b.html"' in index and 'href="names/_index-d.html"' not in index  # delta was the only d


def test_letter_pages_missing_are_all_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subdir that has just grown past the limit (its other letters' pages never written) gets every letter page."""
    monkeypatch.setattr(html_module, "SUBDIR_PAGE_NAMES", 2)
    rd = _big(names=3, per_name=1)  # pkg0000..pkg0002: one letter, p
    rd.put("zeta-1-0.tar.bz2", {"name": "zeta", "version": "1", "build": "0", "size": 1})
    (tmp_path / "d").mkdir()
    dest = open_destination(str(tmp_path / "d"))
    assert pages_module._letters_to_write(dest, "ch", "linux-64", group_by_name(rd), {"zeta"}) is None  # _index-p.html is not there
    dest.put_page("ch", "linux-64", b"<p>", "names/_index-p.html")
    assert pages_module._letters_to_write(dest, "ch", "linux-64", group_by_name(rd), {"zeta"}) == {"z"}


def test_a_name_page_from_records_kept_as_bytes_shows_what_the_records_say() -> None:
    """A full import's records are bytes: the page decodes four fields of each, not the record (pages._Shown)."""
    records: dict[str, dict[str, Any]] = {
        "odd-1.0-0.conda": {"name": "odd", "version": "1.0", "build": "0", "subdir": "linux-64", "size": 2048, "license": "MIT"},
        "odd-2.0-1.conda": {"name": "odd", "version": "2.0", "build": "1", "subdir": "linux-64", "size": 10, "depends": ["x"]},
        "odd-3-1.conda": {"name": "odd", "version": "3", "build": "1", "subdir": "linux-64", "license": "<b>Apache</b>", "size": 7},
    }
    held = Repodata(subdir="linux-64")
    for fn, rec in records.items():
        held.put(fn, rec)
    parsed = rawindex.parse_trusted(json.dumps(held.to_document()).encode(), "linux-64")
    assert parsed is not None
    as_bytes = Repodata(subdir="linux-64")
    as_bytes.packages_conda = parsed[1]["packages.conda"]
    shown = [(fn, pages_module._peek(as_bytes, fn)) for fn in records]
    assert all(not isinstance(rec, dict) for _, rec in shown)  # not decoded whole
    assert [(rec.get("version"), rec.get("license"), rec.get("depends")) for _, rec in shown] == [
        ("1.0", "MIT", None),
        ("2.0", None, None),  # a field the page does not show is not decoded
        ("3", "<b>Apache</b>", None),
    ]
    assert name_pages("c", "linux-64", "odd", shown) == name_pages("c", "linux-64", "odd", list(records.items()))
