"""Licence strings of conda records as SPDX expressions, and licence families. Pure.

Conda records carry free text in ``license`` ("MIT", "BSD 3-Clause", "GPL-2.0-or-later OR MIT",
"Apache 2.0", "LGPL-2.1+"...). :func:`to_spdx` turns the text into an SPDX licence expression
when every licence in it is one we recognise (an SPDX identifier, a deprecated one such as
``GPL-3.0``, or a common spelling from the table below), and returns None otherwise: callers
then report the text as a licence *name*. It never guesses: "BSD" alone names no single
licence, so it is not an expression.

:func:`family` gives the coarse family a review counts by (``GPL``, ``LGPL``, ``MIT``, ``BSD``...),
from ``license_family`` when upstream set it, else from the expression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

# SPDX identifiers seen in conda channels, spelled as the SPDX licence list spells them.
_IDS = """
0BSD AFL-2.1 AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-1.0 Artistic-2.0
BSD-1-Clause BSD-2-Clause BSD-3-Clause BSD-4-Clause BSL-1.0 bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-4.0
CC0-1.0 CDDL-1.0 CDDL-1.1 CECILL-2.1 curl ECL-2.0 EPL-1.0 EPL-2.0 EUPL-1.2 FTL GFDL-1.3-only
GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only GPL-3.0-or-later HPND ICU IJG ISC
LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later
Libpng libtiff MIT MIT-0 MPL-1.1 MPL-2.0 MS-PL NCSA OFL-1.1 OpenSSL PostgreSQL PSF-2.0 Python-2.0
Qhull Ruby Sleepycat TCL Unicode-DFS-2016 Unlicense UPL-1.0 Vim W3C WTFPL X11 Zlib ZPL-2.1
"""
_BY_LOWER = {i.lower(): i for i in _IDS.split()}

# SPDX exceptions allowed after WITH
_EXCEPTIONS = {
    e.lower(): e
    for e in (
        "Classpath-exception-2.0",
        "GCC-exception-3.1",
        "LLVM-exception",
        "Autoconf-exception-3.0",
        "Bison-exception-2.2",
        "Font-exception-2.0",
    )
}

# Common spellings in conda records, lower-cased with runs of space, "_" and "-" made one space.
_ALIASES = {
    "apache": None,
    "apache 2": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache v2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "asl 2.0": "Apache-2.0",
    "bsd 2 clause": "BSD-2-Clause",
    "bsd 3 clause": "BSD-3-Clause",
    "bsd 4 clause": "BSD-4-Clause",
    "3 clause bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "bsd new": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause",
    "simplified bsd": "BSD-2-Clause",
    "mit license": "MIT",
    "the mit license": "MIT",
    "expat": "MIT",
    "isc license": "ISC",
    "zlib license": "Zlib",
    "psf": "PSF-2.0",
    "psf 2": "PSF-2.0",
    "python software foundation": "PSF-2.0",
    "boost": "BSL-1.0",
    "boost 1.0": "BSL-1.0",
    "mpl 2": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "mozilla public license 2.0": "MPL-2.0",
    "public domain cc0": "CC0-1.0",
    "cc0": "CC0-1.0",
    "unlicense": "Unlicense",
    "the unlicense": "Unlicense",
    "gplv2": "GPL-2.0-only",
    "gplv2+": "GPL-2.0-or-later",
    "gplv3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later",
    "gpl 2": "GPL-2.0-only",
    "gpl 3": "GPL-3.0-only",
    "lgplv2.1": "LGPL-2.1-only",
    "lgplv3": "LGPL-3.0-only",
    "lgplv2+": "LGPL-2.0-or-later",
    "lgplv2.1+": "LGPL-2.1-or-later",
    "lgplv3+": "LGPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only",
    "eclipse public license 2.0": "EPL-2.0",
    "openssl license": "OpenSSL",
}
# Deprecated SPDX forms: GPL-2.0, GPL-2.0+, LGPL-2.1, AGPL-3.0 (with "+": -or-later)
_DEPRECATED = re.compile(r"(a?gpl|lgpl|gfdl)-(\d\.\d|\d)(\+?)\Z", re.IGNORECASE)
_REF = re.compile(r"(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+\Z")
_TOKEN = re.compile(r"\s*(\(|\)|[^()\s]+)")
_OPS = {"and": "AND", "or": "OR", "with": "WITH", "&": "AND", "|": "OR", "&&": "AND", "||": "OR"}


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower()).removesuffix(" license").strip() if text.strip() else ""


def license_id(text: str) -> str | None:
    """One licence name as an SPDX identifier (or LicenseRef), or None if not recognised."""
    text = text.strip()
    if not text:
        return None
    if _REF.match(text):
        return text
    plus = text.endswith("+") and text[:-1].lower() in _BY_LOWER
    if text.lower() in _BY_LOWER:
        return _BY_LOWER[text.lower()]
    if plus:  # "Apache-2.0+" is a valid simple expression; keep it only for ids SPDX allows it on
        return _BY_LOWER[text[:-1].lower()] + "+"
    m = _DEPRECATED.match(text.replace(" ", "-"))
    if m:
        kind, version, later = m.group(1).upper(), m.group(2), m.group(3)
        if "." not in version:
            version += ".0"
        candidate = f"{kind}-{version}-{'or-later' if later else 'only'}"
        if candidate.lower() in _BY_LOWER:
            return _BY_LOWER[candidate.lower()]
    key = _norm(text)
    if key in _ALIASES:
        return _ALIASES[key]
    return _BY_LOWER.get(key.replace(" ", "-"))


def _tokens(text: str) -> list[str] | None:
    # conda records write "MIT/BSD" and "GPL-2.0, LGPL" too: "/" and "," mean OR and AND there
    text = re.sub(r"\s*/\s*", " OR ", text) if not re.search(r"https?:", text) else text
    text = re.sub(r"\s*[,;]\s*", " AND ", text)
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        out.append(m.group(1))
        pos = m.end()
    return out if text[pos:].strip() == "" else None


def to_spdx(text: Any) -> str | None:
    """The licence text as a normalised SPDX expression, or None when any part is not recognised."""
    if not isinstance(text, str) or not text.strip() or len(text) > 1000:
        return None
    return _parse(text)


@functools.lru_cache(maxsize=8192)  # a channel has a few thousand distinct licence texts for 300,000 records
def _parse(text: str) -> str | None:
    tokens = _tokens(text)
    if not tokens:
        return None
    # Group words between operators and parentheses into licence names ("BSD 3-Clause", "Apache 2.0").
    parts: list[str] = []
    words: list[str] = []

    def flush() -> bool:
        if words:
            lid = license_id(" ".join(words))
            if lid is None:
                return False
            parts.append(lid)
            words.clear()
        return True

    after_with = False
    for tok in tokens:
        op = _OPS.get(tok.lower())
        if tok in ("(", ")") or op is not None:
            if not flush():
                return None
            parts.append(tok if op is None else op)
            after_with = op == "WITH"
        elif after_with:
            exc = _EXCEPTIONS.get(tok.lower())
            if exc is None:
                return None
            parts.append(exc)
            after_with = False
        else:
            words.append(tok)
    if not flush():
        return None
    return _check(parts)


def _check(parts: list[str]) -> str | None:
    """Accept only a well-formed expression: licence (op licence)*, balanced parentheses."""
    depth = 0
    expect_operand = True
    for i, p in enumerate(parts):
        if p == "(":
            if not expect_operand:
                return None
            depth += 1
        elif p == ")":
            if expect_operand:
                return None
            depth -= 1
            if depth < 0:
                return None
        elif p in ("AND", "OR"):
            if expect_operand:
                return None
            expect_operand = True
        elif p == "WITH":
            if expect_operand or i + 1 >= len(parts) or parts[i + 1] not in _EXCEPTIONS.values():
                return None
        elif p in _EXCEPTIONS.values():
            if i == 0 or parts[i - 1] != "WITH":
                return None
            expect_operand = False
        else:
            if not expect_operand:
                return None
            expect_operand = False
    if depth or expect_operand:
        return None
    return " ".join(parts).replace("( ", "(").replace(" )", ")")


_FAMILIES = (
    ("AGPL", "AGPL"),
    ("LGPL", "LGPL"),
    ("GPL-2", "GPL2"),
    ("GPL-3", "GPL3"),
    ("GPL", "GPL"),
    ("BSD", "BSD"),
    ("0BSD", "BSD"),
    ("MIT", "MIT"),
    ("X11", "MIT"),
    ("Apache", "APACHE"),
    ("MPL", "MOZILLA"),
    ("PSF", "PSF"),
    ("Python", "PSF"),
    ("CC0", "PUBLIC-DOMAIN"),
    ("Unlicense", "PUBLIC-DOMAIN"),
    ("CC-", "CC"),
    ("EPL", "ECLIPSE"),
    ("BSL", "BOOST"),
    ("ISC", "ISC"),
    ("Zlib", "ZLIB"),
)


def family(record: Mapping[str, Any]) -> str | None:
    """The licence family a review counts the record under, or None when it is unknown."""
    fam = record.get("license_family")
    upstream = fam.strip().upper() if isinstance(fam, str) and fam.strip().upper() not in ("", "NONE", "UNKNOWN") else None
    if upstream is not None and upstream != "OTHER":
        return upstream
    expr = to_spdx(record.get("license"))
    if expr is None and upstream is not None:  # "OTHER", and the text says no more
        return upstream
    if expr is None:  # not SPDX, but perhaps still clear about its family ("BSD", "GPL v2 or later")
        from .filters import license_families

        parts = {f for alternative in license_families(record) for f in alternative}
        return None if not parts or None in parts else " / ".join(sorted(str(p) for p in parts))
    found = []
    for lid in re.findall(r"[A-Za-z0-9.+-]+", expr):
        if lid in ("AND", "OR", "WITH") or lid in _EXCEPTIONS.values():
            continue
        name = next((f for prefix, f in _FAMILIES if lid.startswith(prefix)), lid.upper())
        if name not in found:
            found.append(name)
    return " / ".join(found) if found else None
