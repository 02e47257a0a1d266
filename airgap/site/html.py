"""Static ``index.html`` pages that let a browser show what a channel holds. Pure: data in, HTML out.

Every value comes from upstream repodata and is escaped; links are relative, so the pages
work from any web server root and from ``file://``.
"""

from __future__ import annotations

import hashlib
import html
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import msgspec

from ..core import rawindex
from ..core.repodata import Repodata

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
        links = ", ".join(
            f'<a class="sbom" href="{_href(up + s["path"])}">{_e(s.get("archive_id"))}</a>'
            + (" (zstd)" if s["path"].endswith(".zst") else "")
            for s in sboms[:20]
        )
        more = f" and {len(sboms) - 20} more in .airgap/sbom/" if len(sboms) > 20 else ""
        text += f" SBOMs (CycloneDX) of the archives imported: {links}{more}."
    return text


#: rows on one package-name page; a name with more files gets more pages (``name~2.html`` ...)
NAME_PAGE_ROWS = 5000
_SLUG = re.compile(r"[a-z0-9][a-z0-9_.+-]{0,199}\Z")

_SEARCH = (
    '<p><input id="q" type="search" placeholder="filter package names" autofocus '
    "oninput=\"var q=this.value.toLowerCase();for(const r of document.querySelectorAll('tbody tr'))"
    'r.hidden=q&&!r.cells[0].textContent.toLowerCase().includes(q)"></p>'
)


def name_page_file(name: str, part: int = 1) -> str:
    """Where a package name's page lives, relative to its subdir: ``names/<name>.html``.

    Names that are not plain conda names (upper case, odd characters: hostile upstreams) get a
    name derived from their hash, so no page name can escape ``names/`` or clash.
    """
    slug = name if _SLUG.match(name) else "_" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"names/{slug}{'' if part == 1 else f'~{part}'}.html"


def _href_from_names(target: str) -> str:
    return _href(target[len("names/") :])


def group_by_name(rd: Repodata) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    """``{name: [(filename, record), ...]}``, one pass over the subdir. A record kept as bytes (core/rawindex.py)
    is not decoded: its head (name, version, build, size) stands for it, which is all the names table reads."""
    names: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    get, head = names.get, rawindex.Head
    for section in (rd.packages, rd.packages_conda):
        for pair in rawindex.heads(section):  # one pass of 300,000 at conda-forge scale: kept tight
            rec = pair[1]
            name = rec.name if type(rec) is head else str(rec.get("name"))
            group = get(name)
            if group is None:
                names[name] = [pair]
            else:
                group.append(pair)
    return names


def _version_keys(versions: set[str]) -> dict[str, int]:
    """Each version's rank in conda's order (py-rattler); unparsable ones rank first, by text."""
    from rattler import Version

    parsed, odd = [], []
    for v in versions:
        try:
            parsed.append((Version(v), v))
        except Exception:
            odd.append(v)
    ranked = sorted(odd) + [v for _, v in sorted(parsed)]
    return {v: i for i, v in enumerate(ranked)}


def latest_version(versions: set[str]) -> str:
    """The highest of ``versions`` in conda's order."""
    if len(versions) == 1:
        return next(iter(versions))
    ranks = _version_keys(versions)
    return max(versions, key=ranks.__getitem__)


#: names on one subdir page; a subdir with more gets an index by first letter, one page per letter
SUBDIR_PAGE_NAMES = 10_000


class Row(msgspec.Struct, array_like=True, gc=False):
    """A package name's row of its subdir's names table: its file names (sorted, one a line), its latest version,
    the sum of its files' sizes. Kept between imports (:mod:`airgap.site.names_file`)."""

    files: str
    latest: str
    size: int

    @property
    def count(self) -> int:
        return self.files.count("\n") + 1


def row(items: Iterable[tuple[str, Mapping[str, Any]]]) -> Row:
    """The row of a name whose files and records (or heads) are ``items`` (at least one)."""
    pairs = list(items)
    size = sum(n for _, r in pairs if isinstance(n := r.get("size"), int))
    return Row("\n".join(sorted(fn for fn, _ in pairs)), latest_version({str(r.get("version")) for _, r in pairs}), size)


def rows_of(names: Mapping[str, list[tuple[str, Mapping[str, Any]]]]) -> dict[str, Row]:
    """Every name's row, from :func:`group_by_name`."""
    return {name: row(items) for name, items in names.items()}


def subdir_page(channel: str, rd: Repodata, origin: Mapping[str, Any] | None = None) -> str:
    """The subdir's ``index.html`` (see :func:`subdir_pages`)."""
    return subdir_pages(channel, rd.subdir, rows_of(group_by_name(rd)), len(rd), origin)[0][1]


def lettered(names: Mapping[str, Any]) -> bool:
    """Whether a subdir of these package names is listed one page per first letter (past SUBDIR_PAGE_NAMES)."""
    return len(names) > SUBDIR_PAGE_NAMES


def letter_of(name: str) -> str:
    """The first-letter group a package name is listed under past SUBDIR_PAGE_NAMES names (``_``: not a letter or digit)."""
    first = name[:1].lower()
    return first if first.isascii() and first.isalnum() else "_"


def letter_page_file(letter: str) -> str:
    return f"names/_index-{letter}.html"


def subdir_pages(
    channel: str,
    subdir: str,
    names: Mapping[str, Row],
    files: int,
    origin: Mapping[str, Any] | None = None,
    letters: AbstractSet[str] | None = None,
) -> list[tuple[str, str]]:
    """``[(file relative to the subdir, html)]``: ``index.html`` first, with one row per package name
    (latest version, files, bytes) linking to the name's page, and a filter box.

    The pages' size follows the number of names, never the number of files. Past
    SUBDIR_PAGE_NAMES names, ``index.html`` lists first letters and each letter's names get a
    page of their own (``names/_index-<letter>.html``), so no page grows past a few MB.
    ``letters``: render only these letters' pages (those of the names an import changed; the
    others are as they were), besides ``index.html``; None: every letter's.
    """
    meta = f"{len(names)} packages, {files} package files in {_e(channel)}/{_e(subdir)}.{_origin(origin, '../../')}"
    top = '<p><a href="../index.html">&larr; all platforms</a> · <a href="repodata.json">repodata.json</a></p>\n'
    if not lettered(names):
        return [("index.html", _page(f"{channel} / {subdir}", meta, top + _names_table(sorted(names.items()), "names/")))]
    buckets: dict[str, list[tuple[str, Row]]] = {}
    for name, r in sorted(names.items()):
        buckets.setdefault(letter_of(name), []).append((name, r))
    rows = "\n".join(f'<tr><td><a href="{letter_page_file(b)}">{b}</a><td class="num">{len(group)}' for b, group in sorted(buckets.items()))
    out = [
        (
            "index.html",
            _page(
                f"{channel} / {subdir}",
                meta,
                top + "<table><thead><tr><th>first letter</th><th>packages</th></tr></thead><tbody>\n" + rows + "\n</tbody></table>",
            ),
        )
    ]
    for b, group in sorted(buckets.items()):
        if letters is not None and b not in letters:
            continue
        body = '<p><a href="../index.html">&larr; all letters</a></p>\n' + _names_table(group, "")
        out.append((letter_page_file(b), _page(f"{channel} / {subdir} / {b}", f"{len(group)} packages.", body)))
    return out


def _names_table(names: Iterable[tuple[str, Row]], prefix: str) -> str:
    """One compact row per name (end tags left out, as HTML allows); ``prefix`` leads to ``names/``."""
    rows = []
    for name, r in names:
        href = _href(prefix + name_page_file(name)[len("names/") :])
        rows.append(f'<tr><td><a href="{href}">{_e(name)}</a><td>{_e(r.latest)}<td class="num">{r.count}<td class="num">{human(r.size)}')
    return (
        _SEARCH
        + "\n<table><thead><tr><th>package</th><th>latest version</th><th>files</th><th>size</th></tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def name_pages(channel: str, subdir: str, name: str, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """``[(file relative to the subdir, html)]``: one package name's files, newest first, in pages of NAME_PAGE_ROWS."""
    ranks = _version_keys({str(r.get("version")) for _, r in items})
    ordered = sorted(items, key=lambda kv: (ranks[str(kv[1].get("version"))], kv[0]), reverse=True)
    chunks = [ordered[i : i + NAME_PAGE_ROWS] for i in range(0, len(ordered), NAME_PAGE_ROWS)] or [[]]
    out = []
    for n, chunk in enumerate(chunks, start=1):
        rows = []
        for filename, rec in chunk:
            size = rec.get("size")
            rows.append(
                f"<tr><td>{_e(rec.get('version'))}</td><td>{_e(rec.get('build'))}</td>"
                f'<td class="num">{_e(human(size if isinstance(size, int) else None))}</td><td>{_e(rec.get("license"))}</td>'
                f'<td><a href="../{_href(filename)}">{_e(filename)}</a></td></tr>'
            )
        nav = f'<p><a href="../index.html">&larr; {_e(subdir)}</a>'
        if n > 1:
            nav += f' · <a href="{_href_from_names(name_page_file(name, n - 1))}">previous</a>'
        if n < len(chunks):
            nav += f' · <a href="{_href_from_names(name_page_file(name, n + 1))}">next</a>'
        body = (
            nav + "</p>\n<table><thead><tr><th>version</th><th>build</th><th>size</th><th>license</th><th>file</th></tr></thead>"
            "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
        )
        part = f" (page {n} of {len(chunks)})" if len(chunks) > 1 else ""
        meta = f"{len(items)} package files of {_e(name)} in {_e(channel)}/{_e(subdir)}{part}."
        out.append((name_page_file(name, n), _page(f"{channel} / {subdir} / {name}", meta, body)))
    return out


def gone_page(channel: str, subdir: str, name: str) -> str:
    """What a package name's page says once the subdir no longer holds any of its files."""
    return _page(
        f"{channel} / {subdir} / {name}",
        f"{_e(channel)}/{_e(subdir)} no longer holds {_e(name)}.",
        '<p><a href="../index.html">&larr; back</a></p>',
    )


def channel_page(channel: str, subdirs: Mapping[str, Repodata | None], origin: Mapping[str, Any] | None = None) -> str:
    """The channel's front page: its platforms, each linking to its page (with counts where known).

    It never lists packages: that would cost a read of every subdir's repodata on every import.
    """
    rows = []
    for s, rd in sorted(subdirs.items()):
        count = f"{len(rd)}" if rd is not None else ""
        rows.append(f'<tr><td><a href="{_href(s)}/index.html">{_e(s)}</a></td><td class="num">{count}</td></tr>')
    body = "<table><thead><tr><th>platform</th><th>package files</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    meta = f"conda channel: {len(subdirs)} platforms.{_origin(origin)}"
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
