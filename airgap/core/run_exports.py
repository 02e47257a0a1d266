"""``run_exports.json`` (CEP-12): an upstream's run exports per package file, carried filtered to the mirrored files.

rattler-build and pixi build read ``<subdir>/run_exports.json`` to learn what a host dependency
adds to a package's run requirements without downloading the package. When the upstream has one
for a subdir, the export fetches it (``run_exports.json.zst`` or ``run_exports.json``, bounded by
``max_repodata_size``), keeps only the entries of the files the selection mirrors, and carries it
in the archive as a blob the manifest names beside the subdir's repodata (``run_exports``). The
import merges it with the destination's own (entries of the new archive win), keeps only files the
new index lists, and writes it beside ``repodata.json``, inside the same change (on destinations
that keep index-side files: the engine's stores). Entries are kept verbatim; the document is
``{"info": {...}, "packages": {file: entry}, "packages.conda": {file: entry}}``, keys sorted.

A clean that removes files rewrites the subdir's run_exports.json without their entries, in its
change (:func:`after_clean`).
"""

from __future__ import annotations

import json
import logging
import mmap
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..compress import zstd_compress, zstd_decompress_bounded
from ..errors import AirgapError, ArchiveFormatError, NotFound, UpstreamError
from ..redact import redact
from .manifest import RepodataBlob, is_safe_package_filename
from .repodata import Repodata

if TYPE_CHECKING:  # the import side never fetches: urllib3 loads slowly
    from ..upstream.fetch import Fetcher

NAME = "run_exports.json"
_SECTIONS = (("packages", ".tar.bz2"), ("packages.conda", ".conda"))


def parse(raw: bytes, subdir: str, where: str, error: type[AirgapError] = UpstreamError) -> dict[str, Any]:
    """A run_exports document: an object with ``packages``/``packages.conda`` objects; entries of unsafe names or not objects are dropped."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: expected run_exports JSON, found something unreadable ({str(exc)[:100]})") from None
    if not isinstance(doc, dict):
        raise error(f"{where}: expected a run_exports object, found {type(doc).__name__}")
    info = doc.get("info")
    out: dict[str, Any] = {"info": {**(info if isinstance(info, dict) else {}), "subdir": subdir}}
    for section, suffix in _SECTIONS:
        entries = doc.get(section)
        out[section] = {
            f: e
            for f, e in (entries.items() if isinstance(entries, dict) else ())
            if isinstance(f, str) and is_safe_package_filename(f) and f.endswith(suffix) and isinstance(e, dict)
        }
    return out


def filtered(doc: Mapping[str, Any], keep: Callable[[str], bool]) -> dict[str, Any]:
    """The document with only the entries of files ``keep`` accepts."""
    return {"info": dict(doc.get("info") or {}), **{s: {f: e for f, e in (doc.get(s) or {}).items() if keep(f)} for s, _ in _SECTIONS}}


def to_bytes(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fetch(fetcher: Fetcher, subdir_url: str, subdir: str, max_bytes: int) -> dict[str, Any] | None:
    """The upstream's run_exports of one subdir, or None if it has none (an unreadable one is a warning, not a failure)."""
    for name in (NAME + ".zst", NAME):
        url = subdir_url + name
        try:
            data = fetcher.get_bytes(url, max_bytes)
            raw = zstd_decompress_bounded(data, max_bytes, redact(url), UpstreamError) if name.endswith(".zst") else data
            return parse(raw, subdir, redact(url))
        except NotFound:
            continue
        except UpstreamError as exc:
            logging.getLogger(__name__).warning("%s; the mirror gets no run_exports.json for %s", exc, subdir)
            return None
    return None


def carry(
    fetcher: Fetcher, subdir_url: str, subdir: str, filenames: Iterable[str], max_bytes: int, put: Callable[[bytes], str]
) -> RepodataBlob | None:
    """Export: fetch, keep the mirrored files' entries, store the blob with ``put`` (the cache); None if upstream has none.
    ``filenames`` (the mirrored files) is read only when upstream has one: a subdir's 300,000 names are not listed for nothing."""
    doc = fetch(fetcher, subdir_url, subdir, max_bytes)
    if doc is None:
        return None
    wanted = set(filenames)
    raw = to_bytes(filtered(doc, wanted.__contains__))
    packed = zstd_compress(raw)
    return RepodataBlob(put(packed), len(packed), len(raw))


def for_import(
    dest: Any,
    manifest: Any,
    target_channel: Callable[[str], str],
    blobs: Mapping[str, bytes | mmap.mmap],
    new_index: Mapping[tuple[str, str], Repodata],
) -> dict[tuple[str, str], bytes]:
    """Import: ``{(channel, subdir): bytes}`` of each run_exports.json to write: the destination's, updated with the archive's,
    filtered to what the new index lists. A subdir neither had is left out."""
    incoming: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ch in manifest.channels:
        for sub in ch.subdirs:
            ref = getattr(sub, "run_exports", None)
            if ref is None:
                continue
            what = f"{ch.name}/{sub.subdir} {NAME}"
            raw = zstd_decompress_bounded(blobs[ref.sha256], ref.raw_size, what, ArchiveFormatError)
            incoming.setdefault((target_channel(ch.name), sub.subdir), []).append(parse(raw, sub.subdir, what, ArchiveFormatError))
    out: dict[tuple[str, str], bytes] = {}
    for (channel, subdir), rd in new_index.items():
        held = dest.read_index_file(channel, subdir, NAME)
        if held is None and (channel, subdir) not in incoming:
            continue
        merged: dict[str, Any] = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}}
        try:
            if held is not None:
                merged = parse(held, subdir, f"{dest}/{channel}/{subdir}/{NAME}", ArchiveFormatError)
        except AirgapError as exc:
            logging.getLogger(__name__).warning("%s; it is rewritten from the archive's", exc)
        for doc in incoming.get((channel, subdir), []):
            merged["info"].update(doc["info"])
            for section, _suffix in _SECTIONS:
                merged[section].update(doc[section])
        data = to_bytes(filtered(merged, rd.lists))
        if data != held:
            out[(channel, subdir)] = data
    return out


def after_clean(dest: Any, channel: str, subdir: str, index: Repodata) -> bytes | None:
    """The subdir's run_exports.json once ``index`` is published (entries of files it no longer lists gone), or None: no change."""
    held = dest.read_index_file(channel, subdir, NAME)
    if held is None:
        return None
    try:
        data = to_bytes(filtered(parse(held, subdir, f"{dest}/{channel}/{subdir}/{NAME}"), index.lists))
    except AirgapError as exc:
        logging.getLogger(__name__).warning("%s; left as it is", exc)
        return None
    return data if data != held else None
