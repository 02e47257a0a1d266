"""The review page of a transfer: self-contained, complete, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from review_world import make_world, manifest_of


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Any]:
    return make_world(tmp_path_factory, http_server)


# --- review pages ---------------------------------------------------------------------------


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return path


def _headless(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def _self_contained(page: str) -> None:
    assert "<script" not in page and "<link" not in page and "<img" not in page and "<iframe" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(" not in page and "@import" not in page
    assert "@media print" in page


def test_review_page_of_a_delta_in_a_browser(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    page_file = tmp_path / "review.html"
    r = cli("inspect", t / "delta.tar", "--html", page_file, "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    page = page_file.read_text()
    _self_contained(page)
    manifest = manifest_of(t / "delta.tar")
    added = [p["filename"] for ch in manifest["channels"] for s in ch["subdirs"] for p in s["packages"]]
    removed = [fn for ch in manifest["channels"] for s in ch["subdirs"] for fn in s.get("removals", [])]
    assert sorted(added) == ["libfoo-2.0-0.conda", "newpkg-0.1-0.conda"]
    assert sorted(removed) == ["libfoo-1.0-0.conda", "oddlic-1.0-0.conda"]
    dom = _headless(tmp_path, "--dump-dom", page_file.as_uri()).stdout
    for fn in added + removed:
        assert fn in dom, fn
    assert world["keyid"] in dom and "verified against a trusted key" in dom
    assert "changed: new" in dom and "changed: old" in dom  # libfoo 1.0 -> 2.0
    for s in (ss for ch in manifest["channels"] for ss in ch["subdirs"]):
        assert s["source"]["sha256"] in dom and s["source"]["fetched"] in dom
    shot = tmp_path / "review.png"
    _headless(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page_file.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("AIRGAP_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["AIRGAP_KEEP_SCREENSHOT"])
    pdf = tmp_path / "review.pdf"  # the paper trail: the print style sheet lays it out
    _headless(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page_file.as_uri())
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_review_page_of_a_full_archive(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    page_file = tmp_path / "full.html"
    r = cli("inspect", t / "v1.tar", "--html", page_file)
    assert r.exit_code == 0, r.output
    page = page_file.read_text()
    assert "signature NOT checked" in page and world["keyid"] in page
    assert "libfoo-1.0-0.conda" in page and "full archive" in page
    # licence summary: counts per family, and the files whose licence is unknown
    assert re.search(r"<td>unknown</td><td class=num>2</td>", page)
    unknown = page.split("whose licence is unknown", 1)[1].split("</table>", 1)[0]
    assert "oddlic-1.0-0.conda" in unknown and "nolic-1.0-0.conda" in unknown and "zlib" not in unknown
    largest = page.split('id="largest"', 1)[1]
    assert largest.index("libfoo-1.0-0.conda") < largest.index("zlib-1.3-0.conda")  # libfoo is the big one


def test_plan_page_before_any_download(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    cfg = json.loads(world["cfg"].read_text())
    cfg["mirror_dir"] = str(tmp_path / "empty-cache")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    page_file = tmp_path / "plan.html"
    r = cli("export", "-f", tmp_path / "c.yaml", "--plan", "--html", page_file, "--sign-key", t / "k", "--since", world["receipt"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.conda"))
    page = page_file.read_text()
    _self_contained(page)
    dom = _headless(tmp_path, "--dump-dom", page_file.as_uri()).stdout
    for fn in ("libfoo-2.0-0.conda", "newpkg-0.1-0.conda", "libfoo-1.0-0.conda", "oddlic-1.0-0.conda"):
        assert fn in dom, fn
    assert world["keyid"] in dom and "the key the export will sign with" in dom
    excluded = dom.split('id="excluded"', 1)[1]
    assert "bad-gpl-1.0-0.conda" in excluded and "license_blacklist" in excluded
    r = cli("export", "-f", tmp_path / "c.yaml", "--html", page_file, "--sign-key", t / "k", tmp_path / "x.tar")
    assert r.exit_code == 2 and "--html: expected together with --plan" in r.output


def test_plan_page_screenshot(world: dict[str, Any], tmp_path: Path) -> None:
    """The plan of a full export: every record the filters exclude, with its reason."""
    page_file = tmp_path / "plan.html"
    r = cli("export", "-f", world["cfg"], "--plan", "--html", page_file)
    assert r.exit_code == 0, r.output
    dom = _headless(tmp_path, "--dump-dom", page_file.as_uri()).stdout
    assert "no signing key given" in dom and "UNSIGNED" in dom
    assert "bad-gpl-1.0-0.conda" in dom.split('id="excluded"', 1)[1]
    shot = tmp_path / "plan.png"
    _headless(tmp_path, f"--screenshot={shot}", "--window-size=1280,2600", page_file.as_uri())
    assert shot.stat().st_size > 10_000
    if os.environ.get("AIRGAP_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["AIRGAP_KEEP_SCREENSHOT"] + ".plan.png")


def test_hostile_records_are_escaped() -> None:
    from airgap.core.review import Package, Review, render

    evil = "<script>alert(1)</script>"
    page = render(
        Review(
            "archive",
            "id",
            "now",
            "airgap",
            "k" * 64,
            "verified against a trusted key",
            sources=[{"channel": "c", "subdir": "noarch", "url": evil, "sha256": evil, "fetched": evil}],
            filters={"pkg_list": [evil]},
            carried=[Package("c", "noarch", f"{evil}-1-0.conda", evil, evil, 1, None, evil, None)],
            removed=[("c", "noarch", f"{evil}-0-0.conda")],
        )
    )
    assert "<script" not in page and "&lt;script&gt;" in page
