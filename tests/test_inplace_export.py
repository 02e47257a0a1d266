"""A file:// upstream's packages go into the archive from where they lie, hashed on the way."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli

from airgap.testing.condapkg import PackageSpec, write_channel


def _channel(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    up = tmp_path / "up" / "main"
    repodata = write_channel(up, [PackageSpec(f"p{i}", "1.0", subdir="linux-64") for i in range(5)], subdirs=("linux-64",))
    shas = {
        fn: rec["sha256"] for sub in repodata.values() for section in ("packages", "packages.conda") for fn, rec in sub[section].items()
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"channels": [up.as_uri()], "platforms": ["linux-64"], "mirror_dir": str(tmp_path / "cache")}))
    return up, cfg, shas


def test_file_upstream_packages_are_not_copied_into_the_cache(tmp_path: Path) -> None:
    up, cfg, shas = _channel(tmp_path)
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 0, r.output
    cached = {p.name for p in (tmp_path / "cache" / "blobs" / "sha256").iterdir()}
    assert shas and not cached & set(shas.values())  # repodata and the SBOM only
    r = cli("import", tmp_path / "m.tar", "--into", tmp_path / "dest", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    for fn in shas:
        assert (tmp_path / "dest" / "main" / "linux-64" / fn).read_bytes() == (up / "linux-64" / fn).read_bytes()


def test_a_file_changed_under_its_record_fails_the_export_and_writes_no_archive(tmp_path: Path) -> None:
    up, cfg, shas = _channel(tmp_path)
    victim = up / "linux-64" / sorted(shas)[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1  # same size, other bytes: only a hash can tell
    victim.write_bytes(bytes(data))
    r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
    assert r.exit_code != 0
    assert f"expected sha256 {shas[victim.name]}" in r.output and str(victim) in r.output
    assert not (tmp_path / "m.tar").exists()


def test_the_archive_writer_checks_a_file_upstream_blob_again(tmp_path: Path) -> None:
    """It may change between the check at collect time and the archive: it is never marked as hashed."""
    from airgap.upstream.cache import BlobCache, Expected
    from airgap.upstream.fetch import Fetcher

    up, _cfg, shas = _channel(tmp_path)
    fn = sorted(shas)[0]
    cache = BlobCache(tmp_path / "cache")
    with Fetcher() as fetcher:
        sha = cache.download(fetcher, (up / "linux-64" / fn).as_uri(), Expected(shas[fn], None, (up / "linux-64" / fn).stat().st_size))
    assert sha == shas[fn] and cache.file(sha) == str(up / "linux-64" / fn)
    assert cache.hashed_here(sha) == ()  # so write_archive hashes it as it streams it
    assert not (tmp_path / "cache" / "blobs" / "sha256" / sha).exists()
