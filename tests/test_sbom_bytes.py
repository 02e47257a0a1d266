"""The SBOM's fast paths write what the plain ones wrote: the same bytes, for any text a record may hold.

``sbom.to_bytes`` encodes with msgspec instead of ``json.dumps``, ``sbom.purl`` quotes only
the values that need it, and the manifest's canonical JSON comes from msgspec where it can:
each is compared here with the plain form it replaced.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from airgap.core import jsonbytes, sbom
from airgap.core.manifest import canonical_json

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)  # any code point but lone surrogates
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _plain_purl(name: str, version: str, build: str, channel: str, subdir: str, filename: str) -> str:
    def q(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    kind = "conda" if filename.endswith(".conda") else "tar.bz2"
    qualifiers = [("build", build), ("channel", channel), ("subdir", subdir), ("type", kind)]
    return f"pkg:conda/{q(name.lower())}@{q(version)}?" + "&".join(f"{k}={q(v)}" for k, v in qualifiers if v)


@settings(max_examples=300, deadline=None)
@given(_text, _text, _text, _text, _text, st.sampled_from(["a-1-0.conda", "a-1-0.tar.bz2"]))
def test_purl_is_what_quote_everything_gave(name: str, version: str, build: str, channel: str, subdir: str, filename: str) -> None:
    assert sbom.purl(name, version, build, channel, subdir, filename) == _plain_purl(name, version, build, channel, subdir, filename)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_text, _text, _text, st.sampled_from(["c-f", "a b", ""]), st.sampled_from(["linux-64", "noarch"])), max_size=6))
def test_purls_of_many_files_are_each_files_purl(files: list[tuple[str, str, str, str, str]]) -> None:
    """sbom.purls (the SBOM's fast path, names and qualifiers looked up once) gives each component's own purl."""
    comps = [
        sbom.Component(channel, "https://example.org/c", subdir, f"f{i}-1-0" + (".conda" if i % 2 else ".tar.bz2"), "a" * 64, 1, rec)
        for i, (name, version, build, channel, subdir) in enumerate(files * 2)  # each twice: the second from the caches
        for rec in [{"name": name, "version": version, "build": build}]
    ]
    assert sbom.purls(comps) == [c.purl for c in comps]


def test_purl_of_plain_and_odd_values() -> None:
    for args in [
        ("NumPy", "2.0.0+cpu", "py311_0", "conda-forge", "linux-64", "numpy-2.0.0+cpu-py311_0.conda"),
        ("a b", "1!2.0", "", "", "noarch", "x.tar.bz2"),
        ("é", "1~2", "h/1", "c%", "", "x.conda"),
    ]:
        assert sbom.purl(*args) == _plain_purl(*args)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_sbom_bytes_are_what_json_dumps_gave(doc: Any) -> None:
    assert sbom.to_bytes({"d": doc}) == (json.dumps({"d": doc}, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(_json)
def test_repodata_blob_bytes_are_what_json_dumps_gave(doc: Any) -> None:
    assert jsonbytes.msgspec_safe(doc)
    assert jsonbytes.encode(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(_json | st.dictionaries(_text, st.floats(allow_nan=False, allow_infinity=False) | st.integers(), max_size=4))
def test_canonical_json_is_what_json_dumps_gave(doc: Any) -> None:
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert canonical_json(doc) == plain


def test_canonical_json_keeps_refusing_what_json_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})
    with pytest.raises(UnicodeEncodeError):
        canonical_json({"a": "\ud800"})
    assert canonical_json({"a": 1e16, "b": [1e-7]}) == b'{"a":1e+16,"b":[1e-07]}'  # json's float spelling, not msgspec's
    assert not jsonbytes.msgspec_safe({"a": [1.0]}) and not jsonbytes.msgspec_safe({1: "a"}) and jsonbytes.msgspec_safe({"a": [True, None]})
    # long lists are looked at whole first: a float, a subclass or a nested one among many still shows
    assert jsonbytes.msgspec_safe({"a": ["x", 1, None] * 40}) and not jsonbytes.msgspec_safe({"a": [1] * 100 + [1.0]})
    assert not jsonbytes.msgspec_safe([[1]] * 50 + [[1.5]]) and not jsonbytes.msgspec_safe([True] * 50 + [type("S", (str,), {})("s")])


_record_text = st.one_of(_text, st.sampled_from(["MIT", "Apache 2.0", "GPL-2.0-or-later OR MIT", "  ", 'a "quoted"\\ \x01 licence']))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["main", "c-f"]),
            st.sampled_from(["https://example.org/c/", "file:///srv/c/", 'http://h/"q"/']),
            st.sampled_from(["linux-64", "noarch"]),
            _text,
            _text,
            st.one_of(st.none(), _record_text, st.just(["MIT"]), st.just({"a": 1}), st.integers(0, 1), st.booleans()),
            st.one_of(st.none(), st.just("0" * 32), _text),
        ),
        max_size=7,
    ),
    st.one_of(st.none(), _text),
)
def test_streamed_cyclonedx_is_the_dict_form_byte_for_byte(comps_in: list[tuple[Any, ...]], base: str | None) -> None:
    from airgap.core import sbom_stream

    comps = []
    for n, (channel, url, subdir, name, version, licence, md5) in enumerate(comps_in):
        record: dict[str, Any] = {"name": name, "version": version, "build": "b\\0", "depends": [name]}
        if licence is not None:
            record["license"] = licence
        if md5 is not None:
            record["md5"] = md5
        comps.append(sbom.Component(channel, url, subdir, f"f{n}-{version}-b.conda", "a" * 64, n, record))
    info = sbom.DocumentInfo(
        "0" * 32, "2026-01-01T00:00:00Z", "airgap 0.1.0", None, base, [{"channel": "main", "subdir": "noarch", "url": "u", "source": {}}]
    )
    expected = sbom.to_bytes(sbom.cyclonedx(info, comps))
    old_piece = sbom_stream.PIECE
    try:
        for piece in (old_piece, 2):  # pieces of two components: every seam between pieces
            sbom_stream.PIECE = piece
            assert b"".join(sbom_stream.cyclonedx_pieces(info, comps)) == expected
    finally:
        sbom_stream.PIECE = old_piece


def test_streamed_cyclonedx_with_shared_dependency_lists_and_repeated_licences() -> None:
    """Equal depends share one resolved list and equal licence texts one rendered part: every file still gets its own
    references (never itself) and its licence, as the dict form writes them."""
    from airgap.core import sbom_stream

    comps = []
    for n in range(12):
        record: dict[str, Any] = {"name": f"p{n % 3}", "version": f"1.{n}", "build": "0", "depends": ["p0", "p1"]}
        record["license"] = ["MIT", "Apache 2.0", ["MIT"], 'a "q" \x01'][n % 4]
        comps.append(sbom.Component("main", "https://example.org/c/", "linux-64", f"p{n % 3}-1.{n}-0.conda", "b" * 64, n, record))
    info = sbom.DocumentInfo("0" * 32, "2026-01-01T00:00:00Z", "airgap 0.1.0", None, None, [])
    streamed = b"".join(sbom_stream.cyclonedx_pieces(info, comps))
    assert streamed == sbom.to_bytes(sbom.cyclonedx(info, comps))
    doc = json.loads(streamed)
    refs = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert len(refs) == 12 and all(ref not in deps for ref, deps in refs.items())
    assert sum(1 for c in doc["components"] if "licenses" not in c) == 3  # the list licence: no part
