"""The per-record work of a plan and of a delta export, made cheaper without changing what it says.

A plan's :class:`Want` is read inline for the common record (lower-case hex hashes and a size);
every other record still goes through ``record_hashes``. A delta export looks the base's holdings
up once per subdir (``to_fetch``) and groups the selection by name once (``name_change``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from airgap.core import delta_index
from airgap.core.delta import DeltaBase
from airgap.core.filters import Filters, select_channel
from airgap.core.manifest import is_safe_package_filename
from airgap.core.receipt import Receipt
from airgap.core.repodata import Repodata, from_document, record_hashes
from airgap.core.safe_names import safe_names
from airgap.errors import UpstreamError
from airgap.ops.delta_select import name_change, to_fetch
from airgap.ops.output_check import planned_archive_bytes
from airgap.ops.plan import Want, _wants
from airgap.upstream.channels import FetchedRepodata, channel_from_string

SHA = "ab" * 32
MD5 = "cd" * 16


def _fetched(records: dict[str, dict[str, Any]]) -> FetchedRepodata:
    rd = Repodata("linux-64", {"subdir": "linux-64"})
    for fn, rec in records.items():
        rd.put(fn, {"name": fn.rsplit("-", 2)[0], "version": "1", "build": "0", **rec})
    ch = channel_from_string("file:///srv/ch")
    return FetchedRepodata(ch, "linux-64", ch.subdir_url("linux-64") + "repodata.json", "0" * 64, 1, "now", rd)


ODD: dict[str, dict[str, Any]] = {
    "plain-1-0.tar.bz2": {"sha256": SHA, "md5": MD5, "size": 5},
    "upper-1-0.conda": {"sha256": SHA.upper(), "md5": MD5.upper(), "size": 6},
    "boolsize-1-0.tar.bz2": {"sha256": SHA, "md5": MD5, "size": True},
    "negsize-1-0.tar.bz2": {"sha256": SHA, "md5": MD5, "size": -1},
    "nomd5-1-0.tar.bz2": {"sha256": SHA, "size": 7},
    "shortsha-1-0.tar.bz2": {"sha256": SHA[:10], "md5": MD5, "size": 8},
    "digits-1-0.tar.bz2": {"sha256": "1" * 64, "md5": "2" * 32, "size": 9},
    "nosize-1-0.conda": {"sha256": SHA, "md5": MD5},
}


def test_wants_read_every_record_as_record_hashes_does() -> None:
    fr = _fetched(ODD)
    got = list(_wants("ch", "linux-64", fr, sorted(ODD)))
    assert [type(w) for w in got] == [Want] * len(ODD)
    for w in got:
        assert (w.sha256, w.md5, w.size) == record_hashes(fr.repodata.get(w.filename) or {}), w.filename
        assert (w.channel, w.subdir, w.base) == ("ch", "linux-64", "file:///srv/ch/linux-64/")
    assert got[0].url == "file:///srv/ch/linux-64/boolsize-1-0.tar.bz2"
    assert got[0].expected.size is None


def test_wants_refuse_a_record_without_hashes() -> None:
    fr = _fetched({"bare-1-0.tar.bz2": {"size": 3}})
    with pytest.raises(UpstreamError, match="expected a sha256 or md5"):
        list(_wants("ch", "linux-64", fr, ["bare-1-0.tar.bz2"]))


def _base(held: dict[str, str]) -> DeltaBase:
    r = Receipt()
    for fn, sha in held.items():
        r.hold("dest", "linux-64", fn, sha, 1, "ch")
    r.map_channel("ch", "dest")
    return DeltaBase.from_receipt(r, ["ch"], None, "receipt")


def _want(fn: str, sha: str | None, subdir: str = "linux-64") -> Want:
    return Want("ch", subdir, fn, "file:///srv/ch/linux-64/", sha, None, 1)


def test_to_fetch_drops_only_files_the_base_holds_with_the_same_sha256() -> None:
    other = "ef" * 32
    delta = _base({"held-1-0.tar.bz2": SHA, "changed-1-0.tar.bz2": SHA})
    wants = [
        _want("held-1-0.tar.bz2", SHA),
        _want("changed-1-0.tar.bz2", other),
        _want("new-1-0.tar.bz2", SHA),
        _want("held-1-0.tar.bz2", None),  # no sha256 to compare: fetched
        _want("held-1-0.tar.bz2", SHA, "noarch"),  # another subdir: not held there
    ]
    assert [(w.filename, w.subdir) for w in to_fetch(wants, delta)] == [
        ("changed-1-0.tar.bz2", "linux-64"),
        ("new-1-0.tar.bz2", "linux-64"),
        ("held-1-0.tar.bz2", "linux-64"),
        ("held-1-0.tar.bz2", "noarch"),
    ]
    assert to_fetch(wants, None) is wants


def test_name_change_groups_once_and_digests_as_delta_index_does() -> None:
    rd = _fetched({"a-1-0.tar.bz2": {"sha256": SHA}, "a-2-0.conda": {"sha256": SHA}, "b-1-0.tar.bz2": {"sha256": SHA}}).repodata
    digests = delta_index.digests(rd)
    r = Receipt()
    r.map_channel("ch", "dest")
    r.sources = {"ch": {"linux-64": "1" * 64}}
    r.extra[delta_index.KEY] = {"ch": {"linux-64": {"source": "1" * 64, "names": {**digests, "b": "stale", "gone": "x"}}}}
    delta = DeltaBase.from_receipt(r, ["ch"], None, "receipt")
    change, groups = name_change(delta, "ch", "linux-64", hashlib.sha256(b"new").hexdigest(), rd, [], [])
    assert change == delta_index.NameChange(frozenset({"b"}), frozenset({"gone"}))
    assert groups is not None and sorted(groups) == ["a", "b"] and [f for f, _ in groups["a"]] == ["a-1-0.tar.bz2", "a-2-0.conda"]
    # upstream unchanged and nothing new: no name travels, nothing is grouped
    change, groups = name_change(delta, "ch", "linux-64", "1" * 64, rd, [], [])
    assert change == delta_index.NameChange(frozenset(), frozenset()) and groups is None


def test_selection_is_sorted_whatever_order_upstream_lists_its_records() -> None:
    names = ["b-1-0.tar.bz2", "a-1-0.conda", "c-1-0.tar.bz2", "a-1-0.tar.bz2", "a-2-0.conda"]
    fr = _fetched({fn: {"sha256": SHA, "md5": MD5, "size": 1} for fn in names})
    everything = select_channel({"linux-64": fr.repodata}, Filters(platforms=("linux-64",)))["linux-64"]
    assert everything.selected == sorted(names)
    some = select_channel({"linux-64": fr.repodata}, Filters(platforms=("linux-64",), blacklist=("c",)))["linux-64"]
    assert some.selected == sorted(set(names) - {"c-1-0.tar.bz2"}) and list(some.excluded) == ["c-1-0.tar.bz2"]
    rd = Repodata("linux-64")  # a name in both sections (only a hand-made Repodata can): listed once
    rd.packages["x-1-0.tar.bz2"] = rd.packages_conda["x-1-0.tar.bz2"] = {"name": "x", "version": "1", "build": "0"}
    rd.packages["y-1-0.tar.bz2"] = {"name": "y", "version": "1", "build": "0"}
    assert select_channel({"linux-64": rd}, Filters(platforms=("linux-64",)))["linux-64"].selected == ["x-1-0.tar.bz2", "y-1-0.tar.bz2"]


def test_planned_archive_bytes_counts_what_the_base_does_not_hold() -> None:
    other = "ef" * 32
    r = Receipt()
    r.hold("dest", "linux-64", "held-1-0.tar.bz2", SHA, 100)
    r.hold("dest", "linux-64", "changed-1-0.tar.bz2", SHA, 100)
    r.map_channel("ch", "dest")  # the channel went to "dest": held files are looked up there
    wants = [
        Want("ch", "linux-64", "held-1-0.tar.bz2", "file:///x/", SHA, None, 1000),
        Want("ch", "linux-64", "changed-1-0.tar.bz2", "file:///x/", other, None, 2000),
        Want("ch", "linux-64", "twin-1-0.tar.bz2", "file:///x/", other, None, 2000),  # same bytes: counted once
        Want("ch", "noarch", "held-1-0.tar.bz2", "file:///x/", SHA, None, 4000),  # not held in noarch
        Want("ch", "linux-64", "nosha-1-0.tar.bz2", "file:///x/", None, MD5, 8000),
    ]
    overhead = planned_archive_bytes([], 1, None) - 2 * 768  # the allowance for one subdir, and the rest
    assert planned_archive_bytes(wants, 1, r) == 2000 + 4000 + 8000 + 768 * (3 + 2) + overhead
    assert planned_archive_bytes(wants, 1, None) == 2000 + 4000 + 8000 + 768 * (3 + 2) + overhead  # one blob per sha256
    assert planned_archive_bytes(wants[:1], 1, None) == 1000 + 768 * 3 + overhead
    # every file with a sha256 (a full export's fast path): one blob per sha256, its last size, no size as 0
    full = [*wants[:4], Want("ch", "noarch", "nosize-1-0.tar.bz2", "file:///x/", "9f" * 32, None, None)]
    assert planned_archive_bytes(full, 1, None) == 4000 + 2000 + 768 * (3 + 2) + overhead


NAMES = [
    "a-1-0.tar.bz2",
    "a-1-0.conda",
    "_a-1-0.tar.bz2",
    "a..b-1-0.tar.bz2",
    ".a-1-0.tar.bz2",
    "a b-1-0.tar.bz2",
    "é-1-0.tar.bz2",
    "a-1-0.tar.bz2\n",
    "a-1-0.tar.bz2x",
    "a" * 247 + ".tar.bz2",
    "a" * 248 + ".tar.bz2",
    "a" * 249 + ".conda",
    "a" * 250 + ".conda",
    ".tar.bz2",
    "",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("suffix", [".tar.bz2", ".conda"])
def test_a_sections_names_are_checked_at_once_by_the_manifests_rule(name: str, suffix: str) -> None:
    rule = is_safe_package_filename(name) and name.endswith(suffix)
    assert safe_names({name: {}}, suffix) is rule
    assert safe_names({"ok-1-0" + suffix: {}, name: {}, "zz-1-0" + suffix: {}}, suffix) is rule
    assert safe_names({}, suffix) is True and safe_names({1: {}}, suffix) is False


def test_a_record_under_an_unsafe_name_is_still_skipped() -> None:
    doc = {
        "packages": {
            "ok-1-0.tar.bz2": {"name": "ok", "version": "1", "build": "0"},
            "../x-1-0.tar.bz2": {"name": "x", "version": "1", "build": "0"},
        }
    }
    rd = from_document(doc, "linux-64", "test")
    assert list(rd.packages) == ["ok-1-0.tar.bz2"]


def test_names_are_checked_past_the_first_chunk() -> None:
    many: dict[str, Any] = {f"n{i}-1-0.conda": {} for i in range(10_000)}
    assert safe_names(many, ".conda") is True
    many["n9999..x-1-0.conda"] = {}
    assert safe_names(many, ".conda") is False
