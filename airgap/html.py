"""Static ``index.html`` pages that let a browser show what a channel holds. Pure: data in, HTML out.

Every value comes from upstream repodata and is escaped; links are relative, so the pages
work from any web server root and from ``file://``.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from .repodata import Repodata

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}p.meta{color:#555;margin:.2em 0 1em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}
th{background:#f3f3f3;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#fafafa}a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}
""".strip()


_NEEDS_ESCAPE = re.compile(r"""[&<>"']""")
_URL_SAFE = re.compile(r"[A-Za-z0-9._~/-]*\Z")  # what urllib.parse.quote leaves as it is


def _e(value: Any) -> str:
    text = "" if value is None else str(value)
    return html.escape(text, quote=True) if _NEEDS_ESCAPE.search(text) else text  # most text has nothing to escape


def _href(path: str) -> str:
    return _e(path if _URL_SAFE.match(path) else urllib.parse.quote(path))


def human(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _page(title: str, meta: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<style>{_STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n<p class="meta">{meta}</p>\n{body}\n</body></html>\n'
    )


def _origin(origin: Mapping[str, Any] | None, up: str = "../") -> str:
    """The last import, and links to the SBOMs the destination keeps (``up`` leads to its root)."""
    if not origin:
        return ""
    text = (
        f" Last import: archive <code>{_e(origin.get('archive_id'))}</code> created {_e(origin.get('created'))},"
        f" imported {_e(origin.get('imported'))}."
    )
    sboms = [s for s in origin.get("sboms") or () if isinstance(s, Mapping) and isinstance(s.get("path"), str)]
    if sboms:
        links = ", ".join(f'<a class="sbom" href="{_href(up + s["path"])}">{_e(s.get("archive_id"))}</a>' for s in sboms[:20])
        more = f" and {len(sboms) - 20} more in .airgap/sbom/" if len(sboms) > 20 else ""
        text += f" SBOMs (CycloneDX) of the archives imported: {links}{more}."
    return text


def subdir_page(channel: str, rd: Repodata, origin: Mapping[str, Any] | None = None) -> str:
    rows = []
    for filename, rec in sorted(rd.records(), key=lambda kv: (str(kv[1].get("name")), kv[0])):
        size = rec.get("size")
        rows.append(
            f"<tr><td>{_e(rec.get('name'))}</td><td>{_e(rec.get('version'))}</td><td>{_e(rec.get('build'))}</td>"
            f'<td class="num">{_e(human(size if isinstance(size, int) else None))}</td><td>{_e(rec.get("license"))}</td>'
            f'<td><a href="{_href(filename)}">{_e(filename)}</a></td></tr>'
        )
    body = (
        '<p><a href="../index.html">&larr; all platforms</a> · <a href="repodata.json">repodata.json</a></p>\n'
        "<table><thead><tr><th>name</th><th>version</th><th>build</th><th>size</th><th>license</th><th>file</th></tr></thead>"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )
    meta = f"{len(rd)} package files in {_e(channel)}/{_e(rd.subdir)}.{_origin(origin, '../../')}"
    return _page(f"{channel} / {rd.subdir}", meta, body)


def channel_page(channel: str, subdirs: Mapping[str, Repodata], origin: Mapping[str, Any] | None = None) -> str:
    """The channel's front page: one row per package name with its versions and platforms."""
    names: dict[str, dict[str, Any]] = {}
    for subdir, rd in subdirs.items():
        for _, rec in rd.records():
            slot = names.setdefault(str(rec.get("name")), {"versions": set(), "subdirs": set(), "bytes": 0, "license": None})
            slot["versions"].add(str(rec.get("version")))
            slot["subdirs"].add(subdir)
            size = rec.get("size")
            slot["bytes"] += size if isinstance(size, int) else 0
            slot["license"] = slot["license"] or rec.get("license")
    rows = []
    for name, slot in sorted(names.items()):
        platforms = " ".join(f'<a href="{_href(s)}/index.html">{_e(s)}</a>' for s in sorted(slot["subdirs"]))
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(', '.join(sorted(slot['versions'])))}</td><td>{platforms}</td>"
            f'<td class="num">{_e(human(slot["bytes"]))}</td><td>{_e(slot["license"])}</td></tr>'
        )
    links = " · ".join(f'<a href="{_href(s)}/index.html">{_e(s)}</a> ({len(rd)})' for s, rd in sorted(subdirs.items()))
    body = (
        f"<p>Platforms: {links}</p>\n<table><thead><tr><th>package</th><th>versions</th><th>platforms</th>"
        "<th>size</th><th>license</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )
    total = sum(len(rd) for rd in subdirs.values())
    meta = f"conda channel: {len(names)} packages, {total} files.{_origin(origin)}"
    return _page(channel, meta, body)


def site_page(channels: Mapping[str, list[str]], files: Sequence[str] = ()) -> str:
    """The served root's page (``airgap serve``'s ``/``): one row per channel, links to its pages."""
    rows = [
        f'<tr><td><a href="{_href(ch)}/index.html">{_e(ch)}</a></td><td>{_e(", ".join(subs))}</td></tr>'
        for ch, subs in sorted(channels.items())
    ]
    body = "<table><thead><tr><th>channel</th><th>platforms</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    if files:  # installers
        body += "\n<p>Installers: " + " · ".join(f'<a href="{_href(f)}">{_e(f)}</a>' for f in sorted(files)) + "</p>"
    meta = f"{len(channels)} conda channel(s). Point conda at one with <code>airgap condarc URL --into DEST</code>."
    return _page("conda channels", meta, body)
