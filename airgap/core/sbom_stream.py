"""The CycloneDX SBOM written as bytes, in pieces, without a dict per component. Pure.

:func:`airgap.core.sbom.cyclonedx` describes the document as a dict; this writes the same
document, byte for byte (tests/test_sbom_bytes.py compares them), straight from the
components: each one's JSON from one template, a string escaped only when it holds a character
JSON escapes. For 300,000 files the dict form held some ten containers per file (about 2 KB
each) before a byte was written; here the caller gets the document in pieces of a few
thousand components and may write them away as they come (:func:`airgap.ops.review.attach_sbom`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import jsonbytes
from .licenses import to_spdx
from .sbom import _MD5, Component, DocumentInfo, _serial, _web, metadata
from .sbom_deps import dependencies

_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # all that json.dumps(ensure_ascii=False) escapes
PIECE = 2000  # components per yielded piece


def _s(text: str) -> str:
    """``text`` as a JSON string."""
    return f'"{text}"' if _ESCAPED.search(text) is None else jsonbytes.encode(text).decode("utf-8")


def _component(c: Component, supplier: str) -> str:
    record = c.record
    md5 = record.get("md5")
    md5_part = f',{{"alg":"MD5","content":"{md5}"}}' if isinstance(md5, str) and _MD5.match(md5) else ""
    text = record.get("license")
    licence = ""
    if isinstance(text, str) and text.strip():
        expr = to_spdx(text)
        licence = f',"licenses":[{{"expression":{_s(expr)}}}]' if expr else f',"licenses":[{{"license":{{"name":{_s(text.strip())}}}}}]'
    purl = c.purl  # only letters, digits and URL punctuation: no escaping
    where = ""
    if _web(c.channel_url):
        url = _s(c.channel_url.rstrip("/") + "/" + c.subdir + "/" + c.filename)
        where = f',"externalReferences":[{{"type":"distribution","url":{url}}}]'
    return (
        f'{{"type":"library","bom-ref":"{purl}","supplier":{supplier},"name":{_s(c.name)},"version":{_s(c.version)},'
        f'"hashes":[{{"alg":"SHA-256","content":{_s(c.sha256)}}}{md5_part}]{licence},"purl":"{purl}"{where},'
        f'"properties":[{{"name":"airgap:filename","value":{_s(c.filename)}}},{{"name":"airgap:size","value":"{c.size}"}}]}}'
    )


def cyclonedx_pieces(info: DocumentInfo, comps: list[Component]) -> Iterator[bytes]:
    """``sbom.to_bytes(sbom.cyclonedx(info, comps))``, in pieces."""
    deps = dependencies(comps)
    yield (
        f'{{"bomFormat":"CycloneDX","specVersion":"1.6","serialNumber":{_s(_serial(info.archive_id))},"version":1,'
        f'"metadata":{jsonbytes.encode(metadata(info)).decode("utf-8")},"components":['
    ).encode()
    suppliers: dict[tuple[str, str], str] = {}
    for start in range(0, len(comps), PIECE):
        parts = []
        for c in comps[start : start + PIECE]:
            supplier = suppliers.get((c.channel, c.channel_url))
            if supplier is None:
                url = f',"url":[{_s(c.channel_url)}]' if _web(c.channel_url) else ""
                supplier = suppliers[(c.channel, c.channel_url)] = f'{{"name":{_s(c.channel)}{url}}}'
            parts.append(_component(c, supplier))
        yield (("," if start else "") + ",".join(parts)).encode("utf-8")
    yield b'],"dependencies":['
    for start in range(0, len(comps), PIECE):
        parts = [
            '{"ref":"' + comps[i].purl + '","dependsOn":[' + ",".join(['"' + comps[j].purl + '"' for j in deps[i]]) + "]}"
            for i in range(start, min(start + PIECE, len(comps)))
        ]
        yield (("," if start else "") + ",".join(parts)).encode("utf-8")
    yield b"]}\n"
