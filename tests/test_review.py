"""Review before crossing: SBOMs (validated by the standards' own tools), the SBOM kept at the
destination, and the review pages (rendered by a real browser)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from airgap.licenses import family, to_spdx
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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Any]:
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


def _manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tf:
        member = tf.extractfile("manifest.json")
        assert member is not None
        doc: dict[str, Any] = json.loads(member.read())
        return doc


def _blob(archive: Path, sha: str) -> bytes:
    with tarfile.open(archive) as tf:
        member = tf.extractfile(f"blobs/sha256/{sha}")
        assert member is not None
        return member.read()


# --- licences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("MIT", "MIT"),
        ("MIT License", "MIT"),
        ("BSD 3-Clause", "BSD-3-Clause"),
        ("Apache 2.0", "Apache-2.0"),
        ("GPL-2.0-or-later OR MIT", "GPL-2.0-or-later OR MIT"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("GPL-3.0", "GPL-3.0-only"),
        ("MIT/BSD-3-Clause", "MIT OR BSD-3-Clause"),
        ("(mit and zlib) or apache-2.0", "(MIT AND Zlib) OR Apache-2.0"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
        ("LicenseRef-Acme-1", "LicenseRef-Acme-1"),
        ("BSD", None),
        ("Public Domain", None),
        ("MIT AND", None),
        ("(MIT", None),
        ("MIT WITH Nonsense", None),
        ("", None),
        ("GPL2", None),
        ("Custom: see LICENSE.txt", None),
    ],
)
def test_licence_text_to_spdx(text: str, expr: str | None) -> None:
    assert to_spdx(text) == expr


def test_licence_family() -> None:
    assert family({"license": "GPL-2.0-or-later OR MIT"}) == "GPL2 / MIT"
    assert family({"license": "whatever", "license_family": "bsd"}) == "BSD"
    assert family({"license": "BSD"}) == "BSD"  # no SPDX expression, but its family is clear
    assert family({"license": "Custom: see LICENSE.txt"}) is None
    assert family({}) is None
    assert family({"license": "Zlib", "license_family": "Other"}) == "ZLIB"  # "OTHER" says less than the text
    assert family({"license": "Custom", "license_family": "OTHER"}) == "OTHER"


# --- SBOMs ---------------------------------------------------------------------------------


def test_cyclonedx_sbom_is_valid_complete_and_the_one_in_the_archive(world: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    t = world["t"]
    r = cli("inspect", t / "v1.tar", "--sbom", "cyclonedx", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(r.stdout) is None
    bom = json.loads(r.stdout)
    manifest = _manifest(t / "v1.tar")
    files = {p["filename"]: p for ch in manifest["channels"] for s in ch["subdirs"] for p in s["packages"]}
    assert len(bom["components"]) == len(files) == 6  # one per package file; bad-gpl is filtered out
    by_name = {c["name"]: c for c in bom["components"]}
    for c in bom["components"]:
        purl = PackageURL.from_string(c["purl"])
        fn = next(p for k, p in c_props(c).items() if k == "airgap:filename")
        assert purl.type == "conda" and purl.name == c["name"] and purl.version == c["version"]
        assert purl.qualifiers == {
            "build": "0",
            "channel": "main",
            "subdir": fn.split("/")[0] if "/" in fn else purl.qualifiers["subdir"],
            "type": "conda",
        }
        assert c["hashes"][0] == {"alg": "SHA-256", "content": files[fn]["sha256"]}
        assert [h["alg"] for h in c["hashes"]] == ["SHA-256", "MD5"]  # the records carry md5 too
        assert c["supplier"]["name"] == "main" and c["supplier"]["url"] == [world["url"]]
        assert c["bom-ref"] == c["purl"]
    assert PackageURL.from_string(by_name["pyx"]["purl"]).qualifiers["subdir"] == "noarch"
    assert by_name["app"]["licenses"] == [{"expression": "GPL-2.0-or-later OR MIT"}]
    assert by_name["pyx"]["licenses"] == [{"expression": "Apache-2.0"}]  # "Apache 2.0" parsed
    assert by_name["oddlic"]["licenses"] == [{"license": {"name": "Custom: see LICENSE.txt"}}]
    assert "licenses" not in by_name["nolic"]
    deps = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert deps[by_name["app"]["bom-ref"]] == [by_name["libfoo"]["bom-ref"]]  # python is not in the archive; zlib >=9 matches none
    assert deps[by_name["libfoo"]["bom-ref"]] == [by_name["zlib"]["bom-ref"]]
    assert deps[by_name["pyx"]["bom-ref"]] == [by_name["libfoo"]["bom-ref"]]  # noarch → a platform file of the channel
    props = {p["name"]: p["value"] for p in bom["metadata"]["properties"] if p["name"] != "airgap:source"}
    assert props == {"airgap:archive_id": manifest["archive_id"], "airgap:signer": world["keyid"]}
    sources = [p["value"] for p in bom["metadata"]["properties"] if p["name"] == "airgap:source"]
    for ch in manifest["channels"]:
        for s in ch["subdirs"]:
            assert any(s["source"]["sha256"] in v and s["source"]["fetched"] in v for v in sources)
    assert bom["metadata"]["timestamp"] == manifest["created"]
    assert bom["metadata"]["tools"]["components"][0]["name"] == "airgap"
    # the export signed the same document into the archive
    assert manifest["sbom"]["format"] == "CycloneDX-1.6"
    embedded = _blob(t / "v1.tar", manifest["sbom"]["sha256"])
    assert embedded == r.stdout_bytes and hashlib.sha256(embedded).hexdigest() == manifest["sbom"]["sha256"]
    assert {"sha256": manifest["sbom"]["sha256"], "size": len(embedded), "kind": "sbom"} in manifest["blobs"]


def c_props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_spdx_sbom_is_valid(world: dict[str, Any], tmp_path: Path) -> None:
    from packageurl import PackageURL
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    t = world["t"]
    r = cli("inspect", t / "v1.tar", "--sbom", "spdx")
    assert r.exit_code == 0, r.output
    out = tmp_path / "sbom.spdx.json"
    out.write_bytes(r.stdout_bytes)
    document = parse_file(str(out))
    assert validate_full_spdx_document(document) == []
    doc = json.loads(r.stdout)
    assert len(doc["packages"]) == 6
    by_name = {p["name"]: p for p in doc["packages"]}
    assert by_name["app"]["licenseDeclared"] == "GPL-2.0-or-later OR MIT"
    odd = by_name["oddlic"]["licenseDeclared"]
    assert (
        odd.startswith("LicenseRef-")
        and {"licenseId": odd, "extractedText": "Custom: see LICENSE.txt", "name": "Custom: see LICENSE.txt"}
        in doc["hasExtractedLicensingInfos"]
    )
    assert by_name["nolic"]["licenseDeclared"] == "NOASSERTION"
    for p in doc["packages"]:
        ref = p["externalRefs"][0]
        assert ref["referenceType"] == "purl" and PackageURL.from_string(ref["referenceLocator"]).name == p["name"]
        assert p["supplier"] == "Organization: main" and p["checksums"][0]["algorithm"] == "SHA256"
    ids = {p["name"]: p["SPDXID"] for p in doc["packages"]}
    assert {"spdxElementId": ids["app"], "relationshipType": "DEPENDS_ON", "relatedSpdxElement": ids["libfoo"]} in doc["relationships"]
    assert world["keyid"] in doc["creationInfo"]["comment"]


def test_sbom_with_an_untrusted_key_prints_nothing(world: dict[str, Any]) -> None:
    t = world["t"]
    for kind in ("cyclonedx", "spdx"):
        r = cli("inspect", t / "v1.tar", "--sbom", kind, "--trusted-key", t / "other.pub")
        assert r.exit_code == 3, r.output
        assert r.stdout == ""
    r = cli("inspect", t / "v1.tar", "--html", t / "untrusted.html", "--trusted-key", t / "other.pub")
    assert r.exit_code == 3 and not (t / "untrusted.html").exists()


def test_tampered_repodata_blob_is_refused(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    data = bytearray((t / "v1.tar").read_bytes())
    manifest = _manifest(t / "v1.tar")
    sha = manifest["channels"][0]["subdirs"][0]["repodata"]["sha256"]
    blob = _blob(t / "v1.tar", sha)
    at = bytes(data).index(blob)
    data[at + len(blob) // 2] ^= 1
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    r = cli("inspect", bad, "--sbom", "cyclonedx")
    assert r.exit_code == 3 and r.stdout == "" and "does not match its sha256" in r.output


def test_delta_sbom_lists_what_it_carries(world: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    r = cli("inspect", world["t"] / "delta.tar", "--sbom", "cyclonedx")
    assert r.exit_code == 0, r.output
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(r.stdout) is None
    bom = json.loads(r.stdout)
    assert sorted(c["name"] for c in bom["components"]) == ["libfoo", "newpkg"]
    assert any(p["name"] == "airgap:base" for p in bom["metadata"]["properties"])


# --- the SBOM at the destination -------------------------------------------------------------


def test_import_keeps_the_sbom_and_the_pages_link_it(world: dict[str, Any], http_server: Callable[[Path], str]) -> None:
    dest, t = world["dest"], world["t"]
    manifest = _manifest(t / "v1.tar")
    kept = dest / ".airgap" / "sbom" / f"{manifest['archive_id']}.cdx.json"
    assert kept.read_bytes() == _blob(t / "v1.tar", manifest["sbom"]["sha256"])
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert receipt["archives"][-1]["sbom"] == f".airgap/sbom/{manifest['archive_id']}.cdx.json"
    page = (dest / "main" / "index.html").read_text()
    assert f'href="../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in page
    sub = (dest / "main" / "linux-64" / "index.html").read_text()
    assert f'href="../../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in sub
    from airgap.serve import make_server  # airgap serve answers the link, and still hides the receipt

    server = make_server(dest, "127.0.0.1", 0)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/main/.airgap/../../.airgap/sbom/{manifest['archive_id']}.cdx.json") as resp:
            assert resp.read() == kept.read_bytes()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/.airgap/receipt.json")
    finally:
        server.shutdown()
        server.server_close()


def test_archive_without_sbom_still_imports(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    r = cli("export", "-f", world["cfg"], "--sign-key", t / "k", tmp_path / "old.tar", "--no-sbom")
    assert r.exit_code == 0, r.output
    manifest = _manifest(tmp_path / "old.tar")
    assert "sbom" not in manifest and {b["kind"] for b in manifest["blobs"]} == {"repodata", "package"}
    r = cli("import", tmp_path / "old.tar", "--into", tmp_path / "d", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "d" / ".airgap" / "sbom").exists()
    assert "SBOM" not in (tmp_path / "d" / "main" / "index.html").read_text()
    r = cli("inspect", tmp_path / "old.tar", "--sbom", "cyclonedx")  # derived from the repodata all the same
    assert r.exit_code == 0 and len(json.loads(r.stdout)["components"]) == 6


def test_failed_import_leaves_no_sbom(world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airgap.destinations.directory import DirectoryChange

    def fail(self: Any, receipt: Any) -> None:
        raise OSError(28, "No space left on device")

    dest = tmp_path / "d"
    dest.mkdir()
    monkeypatch.setattr(DirectoryChange, "write_receipt", fail)  # after the SBOM was written
    r = cli("import", world["t"] / "v1.tar", "--into", dest, "--trusted-key", world["t"] / "k.pub")
    assert r.exit_code == 1, r.output
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == []  # exactly as it was


def test_s3_keeps_the_sbom_beside_the_receipt(world: dict[str, Any], seaweed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    for k, v in {
        "AWS_ACCESS_KEY_ID": seaweed.key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret,
        "AWS_ENDPOINT_URL": seaweed.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    client = seaweed.client()
    bucket = "airgap-review"
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
    prefix = f"r{uuid.uuid4().hex[:8]}"
    t = world["t"]
    r = cli("import", t / "v1.tar", "--into", f"s3://{bucket}/{prefix}", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    manifest = _manifest(t / "v1.tar")
    key = f"{prefix}/.airgap/sbom/{manifest['archive_id']}.cdx.json"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == _blob(t / "v1.tar", manifest["sbom"]["sha256"])
    page = client.get_object(Bucket=bucket, Key=f"{prefix}/main/index.html")["Body"].read().decode()
    assert f'href="../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in page


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
    manifest = _manifest(t / "delta.tar")
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


def test_spdx_download_location_of_a_public_channel(tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    from airgap import sbom

    info = sbom.DocumentInfo("0" * 32, "2026-01-01T00:00:00Z", "airgap 0.1.0", None, None)
    comps = [
        sbom.Component(
            ch,
            url,
            "linux-64",
            "numpy-2.0.0+cpu-py311_0.conda",
            "a" * 64,
            10,
            {"name": "numpy", "version": "2.0.0+cpu", "build": "py311_0", "license": "BSD-3-Clause"},
        )
        for ch, url in (("conda-forge", "https://conda.anaconda.org/conda-forge/"), ("local", "http://127.0.0.1:8000/local/"))
    ]
    doc = sbom.spdx(info, comps)
    assert [p["downloadLocation"] for p in doc["packages"]] == [
        "https://conda.anaconda.org/conda-forge/linux-64/numpy-2.0.0%2Bcpu-py311_0.conda",
        "NOASSERTION",
    ]
    assert doc["creationInfo"]["comment"].endswith("signer key id: unsigned")
    out = tmp_path / "doc.spdx.json"
    out.write_bytes(sbom.to_bytes(doc))
    assert validate_full_spdx_document(parse_file(str(out))) == []
    assert comps[0].purl == "pkg:conda/numpy@2.0.0%2Bcpu?build=py311_0&channel=conda-forge&subdir=linux-64&type=conda"


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


def test_a_dependency_references_the_newest_file_that_satisfies_it() -> None:
    from airgap import sbom

    def comp(subdir: str, name: str, version: str, depends: tuple[str, ...] = (), bn: int = 0) -> sbom.Component:
        rec = {"name": name, "version": version, "build": f"h_{bn}", "build_number": bn, "depends": list(depends)}
        return sbom.Component("c", "https://example.org/c/", subdir, f"{name}-{version}-h_{bn}.conda", "0" * 64, 1, rec)

    comps = [
        comp("linux-64", "zlib", "1.2"),
        comp("linux-64", "zlib", "1.10"),
        comp("linux-64", "zlib", "1.10", bn=1),
        comp("osx-64", "zlib", "1.3"),
        comp("linux-64", "app", "1", ("zlib",)),
        comp("linux-64", "old", "1", ("zlib <1.3",)),
        comp("noarch", "py", "1", ("zlib",)),
        comp("linux-64", "none", "1", ("zlib >=2", "__glibc >=2.17", "missing")),
    ]
    deps = sbom.dependencies(comps)
    assert deps[4] == [2]  # 1.10 build 1: conda's version order (1.10 > 1.2), then the build number
    assert deps[5] == [0]
    assert deps[6] == [2, 3]  # noarch: the newest of each platform
    assert deps[7] == []


def test_sbom_of_a_split_archive(world: dict[str, Any], tmp_path: Path) -> None:
    t = world["t"]
    r = cli("export", "-f", world["cfg"], "--sign-key", t / "k", tmp_path / "m.tar", "--volume-size", "60000")
    assert r.exit_code == 0, r.output
    volumes = sorted(tmp_path.glob("m.tar.0*"))
    assert len(volumes) >= 2
    r = cli("inspect", volumes[0], "--sbom", "cyclonedx", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["components"]) == 6
    manifest = _manifest(volumes[0])
    sbom_volume = next(b["volume"] for b in manifest["blobs"] if b["kind"] == "sbom")
    assert sbom_volume == 1  # with the repodata, ahead of the packages
    r = cli("inspect", volumes[-1], "--sbom", "cyclonedx")
    assert r.exit_code == 2 and r.stdout == "" and "give volume 001" in r.output
    r = cli("inspect", volumes[0])
    assert r.exit_code == 0 and "sbom       CycloneDX-1.6" in r.output
    r = cli("import", *volumes, "--into", tmp_path / "d", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / ".airgap" / "sbom" / f"{manifest['archive_id']}.cdx.json").is_file()


def test_secrets_in_upstream_urls_and_hostile_records_stay_out_of_the_documents() -> None:
    from airgap import sbom
    from airgap.review import Package, Review, render

    assert (
        sbom.public_url("https://user:s3cret@host.example:8443/t/tk-123/conda-forge/") == "https://host.example:8443/t/<token>/conda-forge/"
    )
    assert sbom.public_url("https://conda.anaconda.org/conda-forge/") == "https://conda.anaconda.org/conda-forge/"
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
