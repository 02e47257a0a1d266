"""The review page of a transfer: one self-contained HTML file a security officer approves. Pure.

Data in (:class:`Review`), HTML out (:func:`render`). The page loads nothing: no scripts, no
fonts, no images, no external style sheet; it prints on paper (a print style sheet, table
headers repeated on each page, a sign-off box). It shows who signed (or will sign) the archive
and when it was made, every upstream repodata with its sha256 and fetch time, the filters and
totals, every package file that crosses grouped by channel, subdir and name (for a delta: added,
removed, changed), a licence summary, the largest packages and, for a plan, every record the
filters excluded with the reason.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..site.html import human

LARGEST = 20


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass(frozen=True)
class Package:
    channel: str
    subdir: str
    filename: str
    name: str
    version: str
    size: int | None
    sha256: str | None
    license: str | None  # the record's text
    family: str | None  # licences.family; None: unknown


@dataclass
class Review:
    stage: str  # "archive" or "plan"
    archive_id: str | None
    created: str
    tool: str
    signer: str | None
    signer_note: str  # "verified against a trusted key", "not checked", "the key the export will sign with"...
    base: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)  # channel, subdir, url, sha256, size, fetched
    filters: Mapping[str, Any] = field(default_factory=dict)
    totals: Mapping[str, int] = field(default_factory=dict)
    carried: list[Package] = field(default_factory=list)  # files that cross (added, for a delta)
    present: int = 0  # delta: files the destination already holds, not carried
    removed: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, subdir, filename)
    excluded: list[tuple[str, str, str, str]] = field(default_factory=list)  # (channel, subdir, filename, reason)
    installers: list[dict[str, Any]] = field(default_factory=list)
    sbom: str | None = None  # "CycloneDX-1.6, sha256 …" when the archive carries one


def name_of(filename: str) -> str:
    """The package name in a conda file name (``NAME-VERSION-BUILD.conda``)."""
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else stem


def version_of(filename: str) -> str:
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    parts = stem.rsplit("-", 2)
    return parts[1] if len(parts) == 3 else ""


_STYLE = """
:root{--ink:#1d1d1f;--mute:#5f6368;--line:#d9dce1;--add:#e6f4ea;--del:#fce8e6;--chg:#fef7e0;--head:#f1f3f4}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);margin:0 auto;padding:1.5em 2em;max-width:1200px}
h1{font-size:1.6em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid var(--ink)}
h3{font-size:1em;margin:1.2em 0 .4em;color:var(--mute)}
p.lead{color:var(--mute);margin:.2em 0 1em}
table{border-collapse:collapse;width:100%;margin:.3em 0 1em}
th,td{text-align:left;vertical-align:top;padding:.25em .55em;border-bottom:1px solid var(--line)}
th{background:var(--head);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nowrap{white-space:nowrap}
table.changes{table-layout:fixed}
table.changes th:nth-child(1){width:18%}table.changes th:nth-child(2){width:11%}table.changes th:nth-child(3){width:11%}
table.changes th:nth-child(4){width:36%}table.changes th:nth-child(5){width:9%}table.changes th:nth-child(6){width:15%}
table.changes td{overflow-wrap:anywhere}
code,.hash{font:12px/1.3 ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;word-break:break-all}
table.facts th{width:14em;background:none;border-bottom:1px solid var(--line)}
.signer{font-size:1.05em;font-weight:600}
.badge{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.85em;font-weight:600}
.ok{background:#e6f4ea;color:#137333}.warn{background:#fef7e0;color:#8a5a00}.bad{background:#fce8e6;color:#a50e0e}
tr.added td.change{background:var(--add)}tr.removed td.change{background:var(--del)}tr.changed td.change{background:var(--chg)}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:.5em 0 1em}
.card{border:1px solid var(--line);border-radius:.4em;padding:.5em .9em;min-width:9em}
.card b{display:block;font-size:1.4em}
details>summary{cursor:pointer;color:var(--mute)}
.signoff{margin-top:2em;border:1px solid var(--ink);padding:1em;display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
.signoff div{border-bottom:1px solid var(--ink);height:2.5em;color:var(--mute);font-size:.85em}
@media print{
  body{max-width:none;padding:0;font-size:9.5pt}
  h2{break-after:avoid}
  thead{display:table-header-group}
  tr,.card,.signoff{break-inside:avoid}
  details>summary{display:none}
  a{color:inherit;text-decoration:none}
  .badge{border:1px solid currentColor}
  @page{margin:14mm 12mm;size:A4}
}
""".strip()


def _table(head: list[str], rows: list[str], nums: tuple[int, ...] = (), cls: str = "") -> str:
    ths = "".join(f"<th{' class=num' if i in nums else ''}>{_e(h)}</th>" for i, h in enumerate(head))
    opening = f'<table class="{cls}">' if cls else "<table>"
    return f"{opening}<thead><tr>{ths}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _td(value: Any, cls: str = "") -> str:
    return f"<td{f' class={cls}' if cls else ''}>{_e(value)}</td>"


def _facts(r: Review) -> str:
    status = "ok" if r.signer and "verified" in r.signer_note else "bad" if not r.signer else "warn"
    rows = [
        (
            "signer key id",
            f'<span class="signer" id="signer"><code>{_e(r.signer or "UNSIGNED")}</code></span> '
            f'<span class="badge {status}">{_e(r.signer_note)}</span>',
        ),
        ("archive id", f"<code>{_e(r.archive_id or '(assigned when the archive is written)')}</code>"),
        ("created", _e(r.created)),
        ("tool", _e(r.tool)),
        ("kind", _e("delta on base " + r.base if r.base else "full archive")),
    ]
    if r.stage == "archive":
        rows.append(
            (
                "SBOM",
                _e(
                    f"{r.sbom}, signed with the manifest"
                    if r.sbom
                    else "none in the archive (written before airgap carried one, or with --no-sbom); inspect --sbom derives it"
                ),
            )
        )
    return '<table class="facts"><tbody>' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</tbody></table>"


def _sources(r: Review) -> str:
    rows = [
        f"<tr>{_td(s.get('channel'))}{_td(s.get('subdir'), 'nowrap')}<td><code>{_e(s.get('url'))}</code></td>"
        f"<td class=hash>{_e(s.get('sha256'))}</td>{_td(human(s.get('size')), 'num')}{_td(s.get('fetched'), 'nowrap')}</tr>"
        for s in r.sources
    ]
    return _table(["channel", "subdir", "repodata URL", "sha256 of the bytes fetched", "size", "fetched"], rows, (4,))


def _filters(r: Review) -> str:
    rows = [
        f"<tr><th>{_e(k)}</th><td><code>{_e(json.dumps(v, sort_keys=True))}</code></td></tr>"
        for k, v in sorted(r.filters.items())
        if v not in (None, [], {}, "", False)
    ]
    return (
        '<table class="facts"><tbody>' + "".join(rows) + "</tbody></table>"
        if rows
        else "<p>No filters: every record of the listed platforms.</p>"
    )


def _cards(r: Review) -> str:
    carried_bytes = sum(p.size or 0 for p in r.carried)
    cards = [("package files carried", f"{len(r.carried):,}"), ("bytes carried", human(carried_bytes))]
    if r.base:
        cards += [("already at the destination", f"{r.present:,}"), ("removed", f"{len(r.removed):,}")]
    if r.stage == "plan":
        cards.append(("records excluded", f"{len(r.excluded):,}"))
    for k in ("blobs", "blob_bytes"):
        if k in r.totals:
            cards.append((k.replace("_", " "), human(r.totals[k]) if k.endswith("bytes") else f"{r.totals[k]:,}"))
    return '<div class="cards">' + "".join(f"<div class=card><b>{_e(v)}</b>{_e(k)}</div>" for k, v in cards) + "</div>"


def _changes(r: Review) -> str:
    """Every file that crosses or goes, grouped by channel, subdir and name."""
    groups: dict[tuple[str, str, str], dict[str, list[Any]]] = {}
    for p in r.carried:
        groups.setdefault((p.channel, p.subdir, p.name), {"added": [], "removed": []})["added"].append(p)
    for channel, subdir, filename in r.removed:
        groups.setdefault((channel, subdir, name_of(filename)), {"added": [], "removed": []})["removed"].append(filename)
    out = []
    current: tuple[str, str] | None = None
    rows: list[str] = []

    def flush() -> None:
        if current is not None:
            out.append(
                f"<h3>{_e(current[0])} / {_e(current[1])}</h3>"
                + _table(["package", "change", "version", "file", "size", "licence"], rows, (4,), "changes")
            )

    for (channel, subdir, name), g in sorted(groups.items()):
        if current != (channel, subdir):
            flush()
            current, rows = (channel, subdir), []
        change = "changed" if g["added"] and g["removed"] else "added" if g["added"] else "removed"
        first = True
        for fn in sorted(g["removed"]):
            rows.append(
                f'<tr class="{change}">{_td(name if first else "")}<td class=change>{"removed" if change == "removed" else "changed: old"}</td>'
                f"{_td(version_of(fn))}<td><code>{_e(fn)}</code></td><td></td><td></td></tr>"
            )
            first = False
        for p in sorted(g["added"], key=lambda p: p.filename):
            label = "changed: new" if change == "changed" else "added"
            rows.append(
                f'<tr class="{change}">{_td(name if first else "")}<td class=change>{label}</td>{_td(p.version)}'
                f"<td><code>{_e(p.filename)}</code></td>{_td(human(p.size), 'num')}{_td(p.license or '')}</tr>"
            )
            first = False
    flush()
    if not out:
        return "<p>No package file crosses and none is removed.</p>"
    counts = Counter("changed" if g["added"] and g["removed"] else "added" if g["added"] else "removed" for g in groups.values())
    if not r.base:
        lead = (
            f"<p>{_count(len(groups), 'package name')}, {_count(len(r.carried), 'file')}: a full archive, "
            "everything is new to an empty destination.</p>"
        )
        return lead + "\n".join(out)
    lead = (
        f"<p>Package names: {counts['added']:,} added, {counts['changed']:,} changed, {counts['removed']:,} removed "
        f"({_count(len(r.carried), 'file')} in, {_count(len(r.removed), 'file')} out).</p>"
    )
    return lead + "\n".join(out)


def _licences(r: Review) -> str:
    counts = Counter(p.family or "unknown" for p in r.carried)
    rows = [f"<tr>{_td(fam)}{_td(n, 'num')}</tr>" for fam, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    unknown = sorted((p for p in r.carried if p.family is None), key=lambda p: (p.channel, p.subdir, p.filename))
    text = _table(["licence family", "package files"], rows, (1,))
    if unknown:
        urows = [
            f"<tr>{_td(p.channel)}{_td(p.subdir)}<td><code>{_e(p.filename)}</code></td>{_td(p.license or '(none given)')}</tr>"
            for p in unknown
        ]
        text += f"<h3>{_count(len(unknown), 'package file')} whose licence is unknown</h3>" + _table(
            ["channel", "subdir", "file", "licence as given"], urows
        )
    else:
        text += "<p>Every package file names a licence of a known family.</p>"
    return text


def _largest(r: Review) -> str:
    top = sorted(r.carried, key=lambda p: (-(p.size or 0), p.filename))[:LARGEST]
    rows = [f"<tr>{_td(human(p.size), 'num')}{_td(p.channel)}{_td(p.subdir)}<td><code>{_e(p.filename)}</code></td></tr>" for p in top]
    return _table(["size", "channel", "subdir", "file"], rows, (0,))


def _excluded(r: Review) -> str:
    by_rule = Counter(reason.split(":", 1)[0] for *_, reason in r.excluded)
    text = "<p>" + ", ".join(f"{n:,} by {_e(rule)}" for rule, n in by_rule.most_common()) + ".</p>"
    rows = [f"<tr>{_td(c)}{_td(s)}<td><code>{_e(fn)}</code></td>{_td(reason)}</tr>" for c, s, fn, reason in sorted(r.excluded)]
    return (
        text
        + f"<details open><summary>{_count(len(rows), 'record')}</summary>"
        + _table(["channel", "subdir", "file", "reason"], rows)
        + "</details>"
    )


def render(r: Review) -> str:
    """The whole page as one string (UTF-8 when written)."""
    what = f"archive {r.archive_id}" if r.stage == "archive" else "export plan (nothing downloaded yet)"
    title = f"Transfer review: {what}"
    sections = [
        ("Approval", _facts(r) + _cards(r)),
        ("Upstream sources", _sources(r)),
        ("Filters in force", _filters(r)),
        ("Changes" if r.base else "Packages", _changes(r)),
        ("Licences", _licences(r)),
        (f"Largest {min(LARGEST, len(r.carried))} packages", _largest(r)),
    ]
    if r.installers:
        rows = [
            f"<tr>{_td(i.get('dir'))}<td><code>{_e(i.get('filename'))}</code></td>{_td(human(i.get('size')), 'num')}"
            f"<td class=hash>{_e(i.get('sha256'))}</td><td><code>{_e(i.get('url'))}</code></td></tr>"
            for i in r.installers
        ]
        sections.append(("Installers", _table(["folder", "file", "size", "sha256", "from"], rows, (2,))))
    if r.stage == "plan":
        sections.append(("Excluded records", _excluded(r) if r.excluded else "<p>The filters exclude no record.</p>"))
    body = "\n".join(f'<section id="{_e(h.split()[0].lower())}"><h2>{_e(h)}</h2>\n{s}</section>' for h, s in sections)
    lead = (
        "What this signed archive carries across the air gap."
        if r.stage == "archive"
        else "What an export with this configuration would carry, computed before any package is downloaded."
    )
    signoff = (
        '<div class="signoff"><div>Reviewed by (name, role)</div><div>Date and signature</div>'
        "<div>Decision: approved / rejected</div><div>Transfer reference</div></div>"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n"
        f'<p class="lead">{_e(lead)}</p>\n{body}\n{signoff}\n</body></html>\n'
    )
