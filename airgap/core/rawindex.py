"""A destination's own ``repodata.json`` with each record kept as its verbatim JSON bytes (decision 0010).

When a subdir's index is, byte for byte, the one airgap published last (:mod:`airgap.core.published`),
its records were checked when they were published. An import changes a few package names; the
others' records only need to be written back as they were. :func:`parse_trusted` therefore keeps
each record as :class:`msgspec.Raw` (a view of its bytes, no dict) plus a *head*: a small dict of
the fields a pass over every record reads (name, version, build, subdir, size, timestamp: the
admission check, the shards' grouping and ``created_at``, the pages' names table).
:class:`LazyRecords` decodes a record only when it is read, once; writing ``repodata.json``
encodes the ``Raw`` values verbatim (msgspec copies their bytes).

Any other index, or anything unusual in this one, goes the strict path (``parse_repodata``): this
module returns None and the caller parses as before. Pure.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from functools import partial
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .manifest import is_safe_package_filename
from .safe_names import safe_names

if TYPE_CHECKING:
    from .repodata import Repodata


class Head(msgspec.Struct, gc=False):
    """The fields of a record that a pass over every record reads; the rest stays in its bytes. Read like a record
    (:meth:`get`). Not tracked by the collector (decoded JSON holds no cycle). Decoding a section into heads checks at C
    speed what admission asks of every record; a section where one fails is read again with :class:`_AnyHead`."""

    name: str
    version: str
    build: str
    subdir: str | None = None
    size: Any = None
    timestamp: Any = None

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in _HEAD_FIELDS else None
        return default if value is None else value


_HEAD_FIELDS = frozenset(Head.__struct_fields__)


def _as_head(h: Any) -> Head:  # a Head of the same fields (an _AnyHead, checked or kept as it is)
    return Head(h.name, h.version, h.build, h.subdir, h.size, h.timestamp)


class _AnyHead(msgspec.Struct, gc=False):
    """:class:`Head` of any types: a section with an odd record is checked one record at a time."""

    name: Any = None
    version: Any = None
    build: Any = None
    subdir: Any = None
    size: Any = None
    timestamp: Any = None


_raws = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode  # the document, and each section: {key: its bytes}
_heads = msgspec.json.Decoder(dict[str, Head]).decode
_head = msgspec.json.Decoder(Head).decode
_any_heads = msgspec.json.Decoder(dict[str, _AnyHead]).decode
_record = msgspec.json.Decoder(dict[str, Any]).decode
_any = msgspec.json.Decoder().decode

SECTIONS = (("packages", ".tar.bz2"), ("packages.conda", ".conda"))


class LazyRecords(MutableMapping[str, dict[str, Any]]):
    """``{filename: record}`` whose records may still be verbatim JSON bytes, decoded when first read.

    Keys, ``len``, ``in``, :meth:`head` and :meth:`peek` decode nothing; ``[]``, ``get``, ``items`` and ``values`` decode
    (each record once, shared by every copy made with :meth:`pick` or :meth:`merged`). :meth:`entry` gives what is
    stored (``Raw`` or dict): identity tells a record an import left alone from one it replaced. The heads of an index
    read on its plain path (:func:`parse_trusted`) are decoded as asked: one by :meth:`head`, all by :meth:`heads`."""

    __slots__ = ("_items", "_heads", "_decoded", "_rest")

    def __init__(
        self,
        items: dict[str, msgspec.Raw | dict[str, Any]],
        heads: dict[str, Head],
        decoded: dict[int, tuple[Any, dict[str, Any]]],
        rest: list[Callable[[], dict[str, Head]]] | None = None,
    ) -> None:
        self._items = items
        self._heads = heads  # for Raw entries
        self._decoded = decoded  # id(Raw) -> (Raw, its record), shared with copies (holding the Raw keeps its id unique)
        self._rest = [] if rest is None else rest  # what decodes the heads not in _heads yet, shared with copies; []: none

    def _every_head(self) -> dict[str, Head]:
        while self._rest:
            self._heads.update(self._rest.pop()())
        return self._heads

    def __getitem__(self, filename: str) -> dict[str, Any]:
        value = self._items[filename]
        if type(value) is dict:
            return value
        assert isinstance(value, msgspec.Raw)
        hit = self._decoded.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        record = _record(value)
        self._decoded[id(value)] = (value, record)
        return record

    def __setitem__(self, filename: str, record: dict[str, Any]) -> None:
        self._items[filename] = record

    def __delitem__(self, filename: str) -> None:
        del self._items[filename]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, filename: object) -> bool:
        return filename in self._items

    def peek(self, filename: str, decode: Callable[[msgspec.Raw], Any] = _record) -> Any:
        """``get``, but a record still kept as bytes is decoded (``decode``: some fields) for the caller alone, not kept."""
        value = self._items.get(filename)
        if value is None or type(value) is dict:
            return value
        hit = self._decoded.get(id(value))
        return hit[1] if hit is not None and hit[0] is value else decode(cast(msgspec.Raw, value))

    def entry(self, filename: str) -> msgspec.Raw | dict[str, Any] | None:
        """What is stored for ``filename`` (its bytes or its dict), not decoded; None if absent."""
        return self._items.get(filename)

    def head(self, filename: str) -> Mapping[str, Any]:
        """The record if decoded or put, else its :class:`Head` (name, version, build, subdir, size, timestamp)."""
        value = self._items[filename]
        if type(value) is dict:
            return value
        hit = self._decoded.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        head = self._heads.get(filename)
        if head is None:  # not decoded yet: this record's alone
            try:
                head = self._heads[filename] = _head(cast(msgspec.Raw, value))
            except msgspec.ValidationError:
                return self[filename]
        return cast(Mapping[str, Any], head)

    def heads(self, fns: list[str] | None = None, values: list[Any] | None = None) -> list[tuple[str, Any]]:
        """``(filename, record or head)`` for every record (or ``fns``, whose entries are ``values``), in order, decoding
        none. Made in C passes: every entry's head, then the few entries that are dicts or were decoded patched in
        (their record stands for them, as :meth:`head` says), rather than a test per record."""
        fns, values = (list(self._items), list(self._items.values())) if fns is None or values is None else (fns, values)
        out: list[tuple[str, Any]] = list(zip(fns, map(self._every_head().get, fns), strict=True))
        for i in _positions(list(map(type, values)), dict):
            out[i] = (fns[i], values[i])
        if self._decoded:
            decoded = self._decoded
            for i in _positions(list(map(decoded.__contains__, map(id, values))), True):
                hit = decoded[id(values[i])]
                if hit[0] is values[i]:
                    out[i] = (fns[i], hit[1])
        return out

    def encodable(self) -> Mapping[str, msgspec.Raw | dict[str, Any]]:
        """``{filename: Raw or record}`` for msgspec to encode (Raw bytes verbatim): the entries themselves, read only."""
        return self._items

    def pick(self, filenames: AbstractSet[str]) -> LazyRecords:
        """A copy holding only ``filenames`` (in this one's order), sharing entries and decoded records."""
        return LazyRecords({f: v for f, v in self._items.items() if f in filenames}, self._heads, self._decoded, self._rest)

    def omit(self, filenames: AbstractSet[str]) -> LazyRecords:
        """A copy without ``filenames``, sharing entries and decoded records."""
        items = dict(self._items)
        for filename in filenames & items.keys():
            del items[filename]
        return LazyRecords(items, self._heads, self._decoded, self._rest)

    def merged(self, other: Mapping[str, dict[str, Any]]) -> LazyRecords:
        """A copy with ``other``'s records added (``other`` wins), sharing entries and decoded records."""
        items = dict(self._items)
        if isinstance(other, LazyRecords):
            items.update(other._items)
            decoded = self._decoded if other._decoded is self._decoded else {**self._decoded, **other._decoded}
            if other._heads is self._heads:
                return LazyRecords(items, self._heads, decoded, self._rest)
            heads = {**self._heads, **other._every_head()}  # an archive's heads are decoded; this index's may wait
            rest: list[Callable[[], dict[str, Head]]] = [partial(_unless, self._every_head, set(other._items))] if self._rest else []
            return LazyRecords(items, heads, decoded, rest)
        items.update(other)
        return LazyRecords(items, self._heads, self._decoded, self._rest)


def _unless(every: Callable[[], dict[str, Head]], taken: AbstractSet[str]) -> dict[str, Head]:
    """The heads ``every`` gives, less those of the files another index's records replaced."""
    return {f: h for f, h in every().items() if f not in taken}


def decode_record(value: msgspec.Raw) -> dict[str, Any]:
    """A record kept as bytes, decoded and not kept (a pass over every record must not hold them all decoded)."""
    return _record(value)


def peek(section: Mapping[str, dict[str, Any]], filename: str, decode: Callable[[msgspec.Raw], Any] = _record) -> Any:
    """The record of ``filename`` (None if absent), as ``get`` gives it, but decoded only for the caller when still bytes."""
    return section.peek(filename, decode) if isinstance(section, LazyRecords) else section.get(filename)


def entries(section: Mapping[str, dict[str, Any]]) -> Mapping[str, Any]:
    """A section as msgspec should encode it: Raw bytes where a record was never decoded."""
    return section.encodable() if isinstance(section, LazyRecords) else section


def heads(section: Mapping[str, dict[str, Any]], chunk: int = 8192) -> Iterator[tuple[str, Any]]:
    """``(filename, record or its head)`` for every record of a section, decoding none, made ``chunk`` at a time (a list
    of every pair, held for a whole pass, was 19 MB at 300,000 records). The section must not change meanwhile."""
    if not isinstance(section, LazyRecords):
        return iter(list(section.items()))
    keys, values = iter(section.encodable()), iter(section.encodable().values())
    return chain.from_iterable(section.heads(fns, list(islice(values, chunk))) for fns in iter(lambda: list(islice(keys, chunk)), []))


def _positions(marks: list[Any], value: Any) -> Iterator[int]:
    """Where ``value`` is in ``marks``, found at C speed (``list.index``): for the few among many."""
    i = -1
    with contextlib.suppress(ValueError):  # past the last one
        while True:
            i = marks.index(value, i + 1)
            yield i


def head(section: Mapping[str, Any], filename: str) -> Mapping[str, Any]:
    """The record of ``filename``, or its head when it is still bytes (its name, version, size without decoding it)."""
    return section.head(filename) if isinstance(section, LazyRecords) else section[filename]


def entry(section: Mapping[str, dict[str, Any]], filename: str) -> Any:
    """The stored object for ``filename`` (identity compares records without decoding them); None if absent."""
    return section.entry(filename) if isinstance(section, LazyRecords) else section.get(filename)


def pick(section: Mapping[str, dict[str, Any]], filenames: AbstractSet[str]) -> MutableMapping[str, dict[str, Any]]:
    if isinstance(section, LazyRecords):
        return section.pick(filenames)
    return {k: v for k, v in section.items() if k in filenames}


def omit(section: Mapping[str, dict[str, Any]], filenames: AbstractSet[str]) -> MutableMapping[str, dict[str, Any]]:
    """A copy of ``section`` without ``filenames`` (copied whole, then each name taken out)."""
    if isinstance(section, LazyRecords):
        return section.omit(filenames)
    out = dict(section)
    for filename in filenames & out.keys():
        del out[filename]
    return out


def merged(a: Mapping[str, dict[str, Any]], b: Mapping[str, dict[str, Any]]) -> MutableMapping[str, dict[str, Any]]:
    if isinstance(a, LazyRecords):
        return a.merged(b)
    if isinstance(b, LazyRecords):
        return LazyRecords(dict(a), {}, {}).merged(b)
    return {**a, **b}


def admits(filename: str, suffix: str, head: _AnyHead | Head, subdir: str, named_safely: bool) -> bool:
    """The check ``from_document`` makes on its common path, on a record's head (``named_safely``: the section's
    names all passed :func:`~airgap.core.safe_names.safe_names`)."""
    rec_subdir = head.subdir
    return (
        type(head.name) is str
        and type(head.version) is str
        and type(head.build) is str
        and (rec_subdir is None or rec_subdir == subdir)
        and (named_safely or (filename.endswith(suffix) and is_safe_package_filename(filename)))
    )


class _Top(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The keys airgap writes into an index, each section decoded to ``{filename: its bytes}`` in the same pass."""

    info: Any = msgspec.UNSET
    packages: dict[str, msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET
    packages_conda: dict[str, msgspec.Raw] | msgspec.UnsetType = msgspec.field(name="packages.conda", default=msgspec.UNSET)
    removed: Any = msgspec.UNSET
    repodata_version: Any = msgspec.UNSET
    metadata: Any = msgspec.UNSET  # conda-forge's; any other key: read as usual (the order of extra keys is kept there)


_top = msgspec.json.Decoder(_Top).decode
Parsed = tuple[dict[str, Any], dict[str, LazyRecords], dict[str, dict[str, Any]]]


def read_top(data: bytes | mmap.mmap) -> tuple[dict[str, Any], dict[str, dict[str, msgspec.Raw]]]:
    """``(envelope, {section: {filename: its bytes}})`` in one pass; msgspec's ValidationError if it holds another key."""
    top = _top(data)
    envelope = {k: v for k in ("info", "removed", "repodata_version", "metadata") if (v := getattr(top, k)) is not msgspec.UNSET}
    found = zip(SECTIONS, (top.packages, top.packages_conda), strict=True)
    return envelope, {section: raws for (section, _), raws in found if isinstance(raws, dict)}


def _plain_index(data: bytes | mmap.mmap) -> Parsed | None:
    """:func:`parse_trusted` of an index of plain records only: one pass, no head decoded (each as asked); None: another key."""
    try:
        envelope, raws = read_top(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return envelope, {s: LazyRecords(cast(dict[str, Any], r), {}, {}, [partial(_section_heads, data, s)]) for s, r in raws.items()}, {}


def _section_heads(data: bytes | mmap.mmap, section: str) -> dict[str, Head]:
    """Every head of a section of a plain index (:func:`_plain_index`), when something asks for all of them."""
    raw = _raws(data)[section]
    try:
        return _heads(raw)
    except msgspec.ValidationError:  # not plain after all: each as it is
        return {f: _as_head(h) for f, h in _any_heads(raw).items()}


def parse_trusted(data: bytes | mmap.mmap, subdir: str, plain: bool = False) -> Parsed | None:
    """``(envelope, {section: records}, {section: {filename: record}} of records to admit one by one)``, or
    None when the document is anything but an object of the usual shape (the caller parses it strictly).

    The envelope is every top-level key but the two sections, decoded. A record whose head fails the
    common-path check is decoded and handed back for the careful path (kept opaque, as the strict parse would).
    ``plain``: every record of this index passed that check when airgap published it (its names file says so:
    :mod:`airgap.site.names_file`); none is checked again, and heads are decoded only as asked."""
    if data[:3] == b"\xef\xbb\xbf":
        return None
    if plain and (parsed := _plain_index(data)) is not None:
        return parsed
    try:
        top = _raws(data)
        envelope = {k: _any(v) for k, v in top.items() if k not in ("packages", "packages.conda")}
        sections: dict[str, LazyRecords] = {}
        odd: dict[str, dict[str, Any]] = {}
        for section, suffix in SECTIONS:
            raw = top.get(section)
            if raw is None:
                continue
            raws = _raws(raw)
            named_safely = safe_names(raws, suffix)  # every name in one scan, as from_document does
            try:
                hs = _heads(raw)  # string name, version and build checked for every record by the decoder
            except msgspec.ValidationError:
                hs = None
            if hs is not None and named_safely and {h.subdir for h in hs.values()} <= {None, subdir}:
                # every record plain: no check per record; the heads keyed by the same file name strings (one copy, not two)
                sections[section] = LazyRecords(cast(dict[str, Any], raws), dict(zip(raws, hs.values(), strict=True)), {})
                continue
            loose = _any_heads(raw)
            items: dict[str, msgspec.Raw | dict[str, Any]] = {}
            checked: dict[str, Head] = {}
            for filename, value in raws.items():
                head = loose[filename]
                if admits(filename, suffix, head, subdir, named_safely):
                    items[filename] = value
                    checked[filename] = _as_head(head)
                else:
                    odd.setdefault(section, {})[filename] = _any(value)
            sections[section] = LazyRecords(items, checked, {})
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return envelope, sections, odd


def trusted_repodata(data: bytes | mmap.mmap, subdir: str, source: str, plain: bool = False) -> Repodata | None:
    """A destination's own index (see :mod:`airgap.core.published`) with its records as bytes; None: parse it strictly.
    ``plain``: as :func:`parse_trusted` says."""
    from .repodata import _admit, from_document

    parsed = parse_trusted(data, subdir, plain)
    if parsed is None:
        return None
    envelope, sections, odd = parsed
    rd = from_document(envelope, subdir, source, keep_unreadable=True, strict=True)
    for section, suffix in SECTIONS:
        target = sections.get(section) or LazyRecords({}, {}, {})
        for filename, record in odd.get(section, {}).items():
            _admit(rd, target, section, suffix, filename, record, source, True, False, True)
        if section == "packages":
            rd.packages = target
        else:
            rd.packages_conda = target
    return rd
