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
from .sbom import purls as sbom_purls
from .sbom_deps import dependencies

_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # all that json.dumps(ensure_ascii=False) escapes
PIECE = 2000  # components per yielded piece


def _s(text: str) -> str:
    """``text`` as a JSON string."""
    return f'"{text}"' if _ESCAPED.search(text) is None else jsonbytes.encode(text).decode("utf-8")


def _licence(text: object) -> str:
    """The ``licenses`` part of a component (with its leading comma) for a record's licence text, or ""."""
    if isinstance(text, str) and text.strip():
        expr = to_spdx(text)
        return f',"licenses":[{{"expression":{_s(expr)}}}]' if expr else f',"licenses":[{{"license":{{"name":{_s(text.strip())}}}}}]'
    return ""


def _component(c: Component, supplier: str, purl: str, folder: str | None, licences: dict[object, str]) -> str:
    """One component's JSON. ``folder``: the file's folder URL as an open JSON string (no closing quote; None: no
    web address). ``licences``: the document's licence parts so far, by licence text (a few thousand texts for
    300,000 files). A safe file name and 64 hex digits (all the manifest admits) hold no character JSON escapes,
    so the common case concatenates them as they are; one search covers the four strings."""
    filename, sha, name, version = c.filename, c.sha256, c.name, c.version
    if _ESCAPED.search(f"{filename}{sha}{name}{version}") is None:
        fn_json, sha_json, name_json, version_json = f'"{filename}"', f'"{sha}"', f'"{name}"', f'"{version}"'
        url = None if folder is None else f'{folder}{filename}"'
    else:
        fn_json, sha_json, name_json, version_json = _s(filename), _s(sha), _s(name), _s(version)
        if folder is None:
            url = None
        elif _ESCAPED.search(f"{filename}{sha}") is None:
            url = f'{folder}{filename}"'
        else:
            url = _s(c.channel_url.rstrip("/") + "/" + c.subdir + "/" + filename)
    record = c.record
    md5 = record.get("md5")
    md5_part = f',{{"alg":"MD5","content":"{md5}"}}' if isinstance(md5, str) and _MD5.match(md5) else ""
    text = record.get("license")
    try:
        licence = licences[text]
    except KeyError:
        licence = licences[text] = _licence(text)
    except TypeError:  # a licence that is not a string (a list, a dict): not cached, and no part
        licence = _licence(text)
    # the purl: only letters, digits and URL punctuation, no escaping
    where = f',"externalReferences":[{{"type":"distribution","url":{url}}}]' if url is not None else ""
    return (
        f'{{"type":"library","bom-ref":"{purl}","supplier":{supplier},"name":{name_json},"version":{version_json},'
        f'"hashes":[{{"alg":"SHA-256","content":{sha_json}}}{md5_part}]{licence},"purl":"{purl}"{where},'
        f'"properties":[{{"name":"airgap:filename","value":{fn_json}}},{{"name":"airgap:size","value":"{c.size}"}}]}}'
    )


def cyclonedx_pieces(info: DocumentInfo, comps: list[Component]) -> Iterator[bytes]:
    """``sbom.to_bytes(sbom.cyclonedx(info, comps))``, in pieces."""
    deps = dependencies(comps)
    yield (
        f'{{"bomFormat":"CycloneDX","specVersion":"1.6","serialNumber":{_s(_serial(info.archive_id))},"version":1,'
        f'"metadata":{jsonbytes.encode(metadata(info)).decode("utf-8")},"components":['
    ).encode()
    purls = sbom_purls(comps)  # each made once here: the dependencies name each component many times
    suppliers: dict[tuple[str, str], str] = {}
    folders: dict[tuple[str, str], str | None] = {}  # (channel URL, subdir) -> the folder URL as an open JSON string
    licences: dict[object, str] = {}
    for start in range(0, len(comps), PIECE):
        parts = []
        for i in range(start, min(start + PIECE, len(comps))):
            c = comps[i]
            supplier = suppliers.get((c.channel, c.channel_url))
            if supplier is None:
                url = f',"url":[{_s(c.channel_url)}]' if _web(c.channel_url) else ""
                supplier = suppliers[(c.channel, c.channel_url)] = f'{{"name":{_s(c.channel)}{url}}}'
            where = (c.channel_url, c.subdir)
            if where not in folders:
                folders[where] = _s(c.channel_url.rstrip("/") + "/" + c.subdir + "/")[:-1] if _web(c.channel_url) else None
            parts.append(_component(c, supplier, purls[i], folders[where], licences))
        yield (("," if start else "") + ",".join(parts)).encode("utf-8")
    yield b'],"dependencies":['
    quoted = [f'"{p}"' for p in purls]
    joined: dict[int, str] = {}  # id of a dependency list -> its references joined: equal depends share one list
    for start in range(0, len(comps), PIECE):
        parts = []
        for i in range(start, min(start + PIECE, len(comps))):
            got = deps[i]
            refs = joined.get(id(got))
            if refs is None:
                refs = joined[id(got)] = ",".join([quoted[j] for j in got])
            parts.append('{"ref":' + quoted[i] + ',"dependsOn":[' + refs + "]}")
        yield (("," if start else "") + ",".join(parts)).encode("utf-8")
    yield b"]}\n"
