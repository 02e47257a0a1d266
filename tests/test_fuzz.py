"""Fuzzing the parsers that see hostile bytes: only airgap errors escape, never a hang.

Targets: ``parse_manifest``, upstream repodata (``parse_repodata`` and ``decode_repodata``:
zstd, ``base_url``), the receipt loaders (``load_receipt`` for ``--since``, a destination's
``read_receipt``), and the archive reader path (``open_verified`` + ``ArchiveStream.blobs`` +
``copy_verified`` + ``load_repodata_blob``) on mutated bytes of a small real archive, signed
and unsigned. The property is the same for all: the call returns, or raises a subclass of
:class:`airgap.errors.AirgapError`, within ``TIMEOUT`` seconds. Upstream repodata that parses
must also be publishable: its bytes are strict JSON (no NaN, Infinity or lone surrogate), and
its packages may be fetched only over http(s) when it came over http(s).

The default run is short and deterministic (``AIRGAP_FUZZ_EXAMPLES`` examples per target,
200 by default, the same ones every time). For a longer, random run by hand:

    AIRGAP_FUZZ_EXAMPLES=20000 python -m pytest -q tests/test_fuzz.py

Inputs that once broke a target are kept in ``tests/regressions/`` and replayed here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from helpers import build_archive, pax_record, specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgap.archive.reader import copy_verified
from airgap.compress import zstd_compress
from airgap.core.manifest import canonical_json, parse_manifest
from airgap.core.receipt import parse_receipt_bytes
from airgap.core.repodata import parse_repodata
from airgap.destinations.directory import DirectoryDestination
from airgap.errors import AirgapError, ArchiveFormatError, SignatureError, UpstreamError
from airgap.ops._archive import load_repodata_blob, open_verified
from airgap.ops.export import load_receipt
from airgap.signing import TrustedKeys, generate_keypair, load_signer, load_trusted_keys
from airgap.upstream.channels import decode_repodata, packages_base

EXAMPLES = int(os.environ.get("AIRGAP_FUZZ_EXAMPLES", "200"))
TIMEOUT = 10  # seconds per example: more is a hang
REGRESSIONS = Path(__file__).parent / "regressions"
BLOCK = 512

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no example database: the default run is reproducible without one
    derandomize="AIRGAP_FUZZ_EXAMPLES" not in os.environ,  # the default run is the same every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)


class Hang(BaseException):
    """Not an Exception: no ``except Exception`` in the code under test may swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds}s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def only_airgap_errors(call: Callable[[], Any]) -> AirgapError | None:
    """Run ``call``: it may return or raise an AirgapError (returned), nothing else, and not hang."""
    with time_limit(TIMEOUT):
        try:
            call()
        except AirgapError as exc:
            assert str(exc) and "\n" not in str(exc), f"expected a one-line message, found {str(exc)!r}"
            return exc
    return None


def refused_with(kind: type[AirgapError], call: Callable[[], Any], says: str) -> None:
    """``call`` raises ``kind`` (one line, no hang) and its message contains ``says``."""
    exc = only_airgap_errors(call)
    assert isinstance(exc, kind), f"expected {kind.__name__}, found {exc!r}"
    assert says in str(exc), str(exc)


# --- JSON values, nested and mutated --------------------------------------------------------

surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)  # lone ones
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20) | surrogates
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20
)


def nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth) if kind == "list" else (b'{"a":' * depth)


deep = st.builds(nested, st.integers(min_value=1, max_value=3000), st.sampled_from(["list", "dict"]))


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``doc``."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> bytes:
    """``doc`` with a few values replaced by arbitrary JSON, or keys dropped; serialized."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(list(paths(doc))))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return json.dumps(doc).encode()


def bytes_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Byte flips, truncations, insertions and deletions of ``data``."""
    n = len(data)

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
            at = draw(st.integers(min_value=0, max_value=max(0, len(out) - 1)))
            if op == "flip" and out:
                out[at] ^= draw(st.integers(min_value=1, max_value=255))
            elif op == "truncate":
                del out[at:]
            elif op == "insert":
                out[at:at] = draw(st.binary(min_size=1, max_size=BLOCK * 2))
            elif op == "delete":
                del out[at : at + draw(st.integers(min_value=1, max_value=BLOCK * 2))]
            else:
                chunk = draw(st.binary(min_size=1, max_size=32))
                out[at : at + len(chunk)] = chunk
        return bytes(out[: 4 * n])

    return mutate()


# --- parse_manifest ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    """A small real archive's parts: a manifest, a repodata document, the archive bytes."""
    built = build_archive(specs(1), formats=("conda",))
    return {"built": built, "manifest": built.manifest, "repodata": built.repodata["linux-64"]}


def test_the_sample_manifest_parses(sample: dict[str, Any]) -> None:
    assert parse_manifest(canonical_json(sample["manifest"])).archive_id


@fuzz
@given(data=st.data())
def test_fuzz_parse_manifest(sample: dict[str, Any], data: st.DataObject) -> None:
    raw = data.draw(
        st.one_of(
            mutated_json(sample["manifest"]),
            bytes_mutations(canonical_json(sample["manifest"])),
            st.binary(max_size=256),
            json_values.map(lambda v: json.dumps(v).encode()),
            deep,
        )
    )
    only_airgap_errors(lambda: parse_manifest(raw))


# --- parse_repodata ----------------------------------------------------------------------------


@fuzz
@given(data=st.data())
def test_fuzz_parse_repodata(sample: dict[str, Any], data: st.DataObject) -> None:
    raw = data.draw(
        st.one_of(
            mutated_json(sample["repodata"]),
            bytes_mutations(json.dumps(sample["repodata"]).encode()),
            st.binary(max_size=256),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.builds(nested, st.integers(min_value=1, max_value=400), st.sampled_from(["list", "dict"])),  # deeper: see below
        )
    )
    subdir = data.draw(st.sampled_from(["linux-64", "noarch"]))
    only_airgap_errors(lambda: strict_json(parse_repodata(raw, subdir, "fuzz").to_bytes()))


def strict_json(data: bytes) -> None:
    """``data`` is JSON as every client reads it: UTF-8, no NaN or Infinity."""

    def refuse(token: str) -> None:
        raise AssertionError(f"published {token}, which is not JSON")

    json.loads(data.decode("utf-8"), parse_constant=refuse)


base_urls = st.sampled_from(
    [
        "file:///etc/",
        "http://cdn/x/",
        "https://cdn/x/",
        "../x/",
        "//evil/x/",
        "ftp://a/",
        "javascript:alert(1)",
        "FILE:///etc/",
        " file:///etc/",
        "\\\\host\\x",
    ]
) | st.text(max_size=12)


@fuzz
@given(data=st.data())
def test_fuzz_upstream_repodata(sample: dict[str, Any], data: st.DataObject) -> None:
    """What the export does with a fetched subdir: decompress (bounded), parse, follow base_url."""
    doc = json.loads(json.dumps(sample["repodata"]))
    if data.draw(st.booleans()):
        doc["info"]["base_url"] = data.draw(base_urls)
    text = data.draw(st.one_of(mutated_json(doc), st.just(json.dumps(doc).encode()), bytes_mutations(json.dumps(doc).encode())))
    url = data.draw(
        st.sampled_from(
            ["https://up/ch/linux-64/repodata.json", "http://up/ch/linux-64/repodata.json", "file:///srv/ch/linux-64/repodata.json"]
        )
    )
    raw = text
    if data.draw(st.booleans()):
        url += ".zst"
        raw = zstd_compress(text)
        if data.draw(st.booleans()):
            raw = data.draw(bytes_mutations(raw))

    def run() -> None:
        rd = decode_repodata(raw, url, "linux-64", max_bytes=1 << 20)
        strict_json(rd.to_bytes())
        where = packages_base(url, rd, url)
        if url.startswith("http"):
            assert where.startswith(("http://", "https://")), where
        if url.startswith("https"):
            assert where.startswith("https://"), where

    only_airgap_errors(run)


# --- receipts ----------------------------------------------------------------------------------------

RECEIPT = {
    "format": "airgap-receipt/1",
    "archives": [{"archive_id": "a" * 32, "created": "2025-01-01T00:00:00Z", "signer": "b" * 64}],
    "channels": {"main": {"linux-64": {"p-1-0.conda": {"sha256": "c" * 64, "size": 10}}}},
    "sources": {"main": {"linux-64": "d" * 64}},
    "installers": {},
}


@fuzz
@given(data=st.data())
def test_fuzz_receipt(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """The loaders of today's receipts: ``export --since`` and a directory destination's own."""
    raw = data.draw(
        st.one_of(
            mutated_json(RECEIPT),
            bytes_mutations(json.dumps(RECEIPT).encode()),
            st.binary(max_size=128),
            json_values.map(lambda v: json.dumps(v).encode()),
            deep,
        )
    )
    root = tmp_path_factory.mktemp("receipt")
    (root / ".airgap").mkdir()
    (root / ".airgap" / "receipt.json").write_bytes(raw)
    only_airgap_errors(lambda: load_receipt(root / ".airgap" / "receipt.json"))
    only_airgap_errors(lambda: DirectoryDestination(root).read_receipt())


def test_parse_repodata_deeply_nested_is_an_airgap_error() -> None:
    refused_with(UpstreamError, lambda: parse_repodata(b"[" * 100_000, "noarch", "fuzz"), "expected repodata JSON")


# --- manifest.sig ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(sample: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("sig")
    generate_keypair(d / "key")
    manifest = canonical_json(sample["manifest"])
    return {"manifest": manifest, "sig": load_signer(d / "key").sign(manifest), "trusted": load_trusted_keys([str(d / "key.pub")])}


@fuzz
@given(data=st.data())
def test_fuzz_signature_document(signed: dict[str, Any], data: st.DataObject) -> None:
    sig = data.draw(
        st.one_of(
            mutated_json(json.loads(signed["sig"])),
            bytes_mutations(signed["sig"]),
            st.binary(max_size=128),
            deep,
        )
    )
    only_airgap_errors(lambda: signed["trusted"].verify(signed["manifest"], sig))


def test_signature_nested_too_deep_is_a_signature_error(signed: dict[str, Any]) -> None:
    """Found by reading, kept here: 4 KiB of '[' made TrustedKeys.verify raise RecursionError."""
    refused_with(SignatureError, lambda: signed["trusted"].verify(signed["manifest"], b"[" * 4000), "manifest.sig")


# --- the archive reader path -------------------------------------------------------------------


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, sample: dict[str, Any]) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("fuzz")
    generate_keypair(d / "key")
    signer = load_signer(d / "key")
    built = sample["built"]
    out: dict[str, Any] = {"dir": d, "trusted": load_trusted_keys([str(d / "key.pub")])}
    for name, key in (("signed", signer), ("unsigned", None)):
        path = built.write(d / f"{name}.tar", key)
        out[name] = path.read_bytes()
    return out


def read_archive(path: Path, trusted: TrustedKeys, allow_unsigned: bool) -> None:
    """What verify and import do with an archive, short of writing anything."""
    opened = open_verified(path, trusted, allow_unsigned)
    with opened.stream:
        repodata: dict[str, bytes] = {}
        for entry, fh in opened.stream.blobs(opened.manifest):
            buf = io.BytesIO()
            copy_verified(fh, entry, buf if entry.kind == "repodata" else None, "fuzz")
            repodata[entry.sha256] = buf.getvalue()
    for ch in opened.manifest.channels:
        for sub in ch.subdirs:
            if sub.repodata.sha256 in repodata:
                load_repodata_blob(repodata[sub.repodata.sha256], sub, ch.name, "fuzz")


def test_the_sample_archives_read(archives: dict[str, Any]) -> None:
    for name in ("signed", "unsigned"):
        path = archives["dir"] / f"{name}.tar"
        read_archive(path, archives["trusted"], allow_unsigned=name == "unsigned")


def header_offsets(data: bytes) -> list[int]:
    """Where each member's header block starts."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.offset for m in tar.getmembers()]


@st.composite
def header_edits(draw: st.DrawFn, data: bytes) -> bytes:
    """Rewrite one field of one member header and fix its checksum, so tarfile reads on."""
    out = bytearray(data)
    at = draw(st.sampled_from(header_offsets(data)))
    fields = {
        "name": (0, 100),
        "mode": (100, 8),
        "size": (124, 12),
        "type": (156, 1),
        "linkname": (157, 100),
        "magic": (257, 8),
        "prefix": (345, 155),
    }
    start, length = fields[draw(st.sampled_from(sorted(fields)))]
    value = draw(
        st.one_of(
            st.binary(min_size=1, max_size=length),
            st.sampled_from(
                [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"g", b"x", b"L", b"K", b"S", b"X", b"..", b"../x", b"/etc/x"]
            ),
            st.integers(min_value=0, max_value=8**11 - 1).map(lambda n: b"%011o\0" % n),
            st.just(b"\x80" + b"\xff" * 11),  # base-256: a huge size
            st.just(b"\xff" * 12),  # base-256: negative
        )
    )
    out[at + start : at + start + length] = value[:length].ljust(length, b"\0")
    out[at + 148 : at + 156] = b" " * 8
    out[at + 148 : at + 156] = b"%06o\0 " % sum(out[at : at + BLOCK])
    return bytes(out)


@st.composite
def pax_injections(draw: st.DrawFn, data: bytes) -> bytes:
    """Put a pax header with arbitrary records in front of one member."""
    at = draw(st.sampled_from(header_offsets(data)))
    keys = st.sampled_from(
        [
            "path",
            "size",
            "linkpath",
            "mtime",
            "uid",
            "uname",
            "hdrcharset",
            "GNU.sparse.map",
            "GNU.sparse.size",
            "GNU.sparse.major",
            "GNU.sparse.minor",
            "GNU.sparse.realsize",
            "GNU.sparse.name",
            "comment",
        ]
    ) | st.text(min_size=1, max_size=10)
    values = st.sampled_from(["../x", "-1", "1", "0", "99999999999999999999999", "1,2,3", "x", "blobs/sha256/", "BINARY"]) | st.text(
        max_size=20
    )
    records = b"".join(
        pax_record(k, v) for k, v in draw(st.lists(st.tuples(keys.filter(lambda k: "=" not in k), values), min_size=1, max_size=4))
    )
    if draw(st.booleans()):
        records = draw(bytes_mutations(records))
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(records)
    blob = header.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * (-len(records) % BLOCK)
    return data[:at] + blob + data[at:]


@fuzz
@given(data=st.data())
def test_fuzz_archive_reader(archives: dict[str, Any], data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["signed", "unsigned"]))
    original = archives[kind]
    raw = data.draw(st.one_of(bytes_mutations(original), header_edits(original), pax_injections(original)))
    path = archives["dir"] / f"mutated-{os.getpid()}.tar"
    path.write_bytes(raw)
    only_airgap_errors(lambda: read_archive(path, archives["trusted"], allow_unsigned=kind == "unsigned"))


# --- inputs that once escaped (kept as files) -----------------------------------------------------


def regression_files(suffix: str) -> list[Path]:
    return sorted(REGRESSIONS.glob(f"*{suffix}"))


@pytest.mark.parametrize("path", regression_files(".manifest.json"), ids=lambda p: p.name)
def test_manifest_regressions(path: Path) -> None:
    refused_with(ArchiveFormatError, lambda: parse_manifest(path.read_bytes()), "manifest.json: expected")  # each one is damaged


@pytest.mark.parametrize("path", regression_files(".receipt.json"), ids=lambda p: p.name)
def test_receipt_regressions(path: Path, tmp_path: Path) -> None:
    (tmp_path / ".airgap").mkdir()
    (tmp_path / ".airgap" / "receipt.json").write_bytes(path.read_bytes())
    only_airgap_errors(lambda: DirectoryDestination(tmp_path).read_receipt())
    only_airgap_errors(lambda: load_receipt(path))


@pytest.mark.parametrize("path", regression_files(".tar"), ids=lambda p: p.name)
def test_archive_regressions(path: Path, archives: dict[str, Any]) -> None:
    only_airgap_errors(lambda: read_archive(path, archives["trusted"], allow_unsigned=True))
    with pytest.raises(AirgapError):  # every one of them is damaged
        read_archive(path, archives["trusted"], allow_unsigned=True)


# --- parse_receipt_bytes (a destination's receipt, or one carried back for --since) ------------

SAMPLE_RECEIPT = {
    "format": "airgap-receipt/1",
    "channels": {
        "merged": {
            "noarch": {
                "a-1.0-0.conda": {"sha256": "ab" * 32, "size": 10, "from": "main"},
                "b-1.0-0.tar.bz2": {"sha256": "cd" * 32, "size": 20},
            }
        }
    },
    "applied": {
        "merged": [
            {"archive_id": "x1", "created": "2026-01-01T00:00:00Z", "signer": "k" * 64},
            {"archive_id": "x2", "created": "2026-01-02T00:00:00Z", "signer": None, "downgrade": True},
        ]
    },
    "channel_map": {"main": ["merged"], "extra": ["merged"]},
    "archives": [{"archive_id": "x1", "created": "2026-01-01T00:00:00Z"}],
    "sources": {"main": {"noarch": "ef" * 32}},
    "installers": {"installers": {"Miniforge3-Linux-x86_64.sh": {"sha256": "01" * 32, "size": 5}}},
    "cleans": [{"removed": 1}],
}


@fuzz
@given(data=st.data())
def test_fuzz_parse_receipt(data: st.DataObject) -> None:
    raw = data.draw(
        st.one_of(
            mutated_json(SAMPLE_RECEIPT),
            bytes_mutations(json.dumps(SAMPLE_RECEIPT).encode()),
            st.binary(max_size=256),
            json_values.map(lambda v: json.dumps(v).encode()),
            deep,
        )
    )

    def parse_and_round_trip() -> None:
        receipt = parse_receipt_bytes(raw, "fuzz")
        assert parse_receipt_bytes(receipt.to_bytes(), "again").to_json() == receipt.to_json()

    only_airgap_errors(parse_and_round_trip)


def test_the_sample_receipt_parses() -> None:
    receipt = parse_receipt_bytes(json.dumps(SAMPLE_RECEIPT).encode(), "sample")
    newest = receipt.newest("merged")
    assert newest is not None and newest.archive_id == "x1"  # a downgrade is never the newest
    assert receipt.to_json()["cleans"] == [{"removed": 1}]
