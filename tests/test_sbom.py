"""SBOMs of archives, validated by the standards' own tools, and the SBOM kept at the destination."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from review_world import blob_of, make_world, manifest_of, sbom_document_of

from airgap.core.licenses import family, to_spdx


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, http_server: Callable[[Path], str]) -> dict[str, Any]:
    return make_world(tmp_path_factory, http_server)


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
    manifest = manifest_of(t / "v1.tar")
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
    assert manifest["sbom"]["format"] == "CycloneDX-1.6+zstd"  # compressed (docs/decisions/0011)
    blob = blob_of(t / "v1.tar", manifest["sbom"]["sha256"])
    assert sbom_document_of(t / "v1.tar") == r.stdout_bytes and manifest["sbom"]["raw_size"] == len(r.stdout_bytes)
    assert hashlib.sha256(blob).hexdigest() == manifest["sbom"]["sha256"] and len(blob) < len(r.stdout_bytes)
    assert {"sha256": manifest["sbom"]["sha256"], "size": len(blob), "kind": "sbom"} in manifest["blobs"]


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
    manifest = manifest_of(t / "v1.tar")
    sha = manifest["channels"][0]["subdirs"][0]["repodata"]["sha256"]
    blob = blob_of(t / "v1.tar", sha)
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
    manifest = manifest_of(t / "v1.tar")
    kept = dest / ".airgap" / "sbom" / f"{manifest['archive_id']}.cdx.json"
    assert kept.read_bytes() == sbom_document_of(t / "v1.tar")  # the CycloneDX JSON, decompressed
    receipt = json.loads((dest / ".airgap" / "receipt.json").read_bytes())
    assert receipt["archives"][-1]["sbom"] == f".airgap/sbom/{manifest['archive_id']}.cdx.json"
    page = (dest / "main" / "index.html").read_text()
    assert f'href="../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in page
    sub = (dest / "main" / "linux-64" / "index.html").read_text()
    assert f'href="../../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in sub
    from airgap.site.serve import make_server  # airgap serve answers the link, and still hides the receipt

    server = make_server(dest, "127.0.0.1", 0)

    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        link = urllib.parse.urljoin(
            f"{base}/main/linux-64/", f"../../.airgap/sbom/{manifest['archive_id']}.cdx.json"
        )  # as a browser resolves it
        with urllib.request.urlopen(link) as resp:
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
    manifest = manifest_of(tmp_path / "old.tar")
    assert "sbom" not in manifest and {b["kind"] for b in manifest["blobs"]} == {"repodata", "package"}
    r = cli("import", tmp_path / "old.tar", "--into", tmp_path / "d", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "d" / ".airgap" / "sbom").exists()
    assert "SBOM" not in (tmp_path / "d" / "main" / "index.html").read_text()
    r = cli("inspect", tmp_path / "old.tar", "--sbom", "cyclonedx")  # derived from the repodata all the same
    assert r.exit_code == 0 and len(json.loads(r.stdout)["components"]) == 6


def test_failed_import_leaves_no_sbom(world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airgap.destinations.engine import StoreChange

    def fail(self: Any, receipt: Any) -> None:
        raise OSError(28, "No space left on device")

    dest = tmp_path / "d"
    dest.mkdir()
    monkeypatch.setattr(StoreChange, "write_receipt", fail)  # after the SBOM was written
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
    manifest = manifest_of(t / "v1.tar")
    key = f"{prefix}/.airgap/sbom/{manifest['archive_id']}.cdx.json"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == sbom_document_of(t / "v1.tar")
    page = client.get_object(Bucket=bucket, Key=f"{prefix}/main/index.html")["Body"].read().decode()
    assert f'href="../.airgap/sbom/{manifest["archive_id"]}.cdx.json"' in page


def test_spdx_download_location_of_a_public_channel(tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    from airgap.core import sbom

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


def test_a_dependency_references_the_newest_file_that_satisfies_it() -> None:
    from airgap.core import sbom

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
    r = cli("export", "-f", world["cfg"], "--sign-key", t / "k", tmp_path / "m.tar", "--volume-size", "45000")
    assert r.exit_code == 0, r.output
    volumes = sorted(tmp_path.glob("m.tar.0*"))
    assert len(volumes) >= 2
    r = cli("inspect", volumes[0], "--sbom", "cyclonedx", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["components"]) == 6
    manifest = manifest_of(volumes[0])
    sbom_volume = next(b["volume"] for b in manifest["blobs"] if b["kind"] == "sbom")
    assert sbom_volume == 1  # with the repodata, ahead of the packages
    r = cli("inspect", volumes[-1], "--sbom", "cyclonedx")
    assert r.exit_code == 2 and r.stdout == "" and "give volume 001" in r.output
    r = cli("inspect", volumes[0])
    assert r.exit_code == 0 and "sbom       CycloneDX-1.6" in r.output
    r = cli("import", *volumes, "--into", tmp_path / "d", "--trusted-key", t / "k.pub")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / ".airgap" / "sbom" / f"{manifest['archive_id']}.cdx.json").is_file()


def test_secrets_in_upstream_urls_stay_out_of_the_documents() -> None:
    from airgap.core import sbom

    assert (
        sbom.public_url("https://user:s3cret@host.example:8443/t/tk-123/conda-forge/") == "https://host.example:8443/t/<token>/conda-forge/"
    )
    assert sbom.public_url("https://conda.anaconda.org/conda-forge/") == "https://conda.anaconda.org/conda-forge/"
