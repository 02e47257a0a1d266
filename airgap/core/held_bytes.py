"""A subdir's held files kept as the receipt's own bytes, changes beside them (issue 15). Pure.

A receipt lists every file its destination holds: 300,000 entries (41 MB) for a conda-forge
subdir. A delta import looks up the few hundred files its archive names, holds 60 more and forgets
10; decoding all 300,000 into objects (121 MB), checking each, and encoding them all back was a
quarter of its time. :class:`HeldFiles` keeps the subdir's section as the bytes airgap wrote,
finds an entry by binary search over them, keeps what changed in a small dict and a set, and
writes the next section by splicing those changes between unchanged runs of the old bytes.

Only a section that hashes to the sha256 the receipt recorded when airgap wrote it
(``held_sha256``, see :mod:`airgap.core.receipt_fast`) is kept this way: byte for byte what
airgap encoded from checked entries (sorted by file name, compact, one flat object per entry:
``"name":{"from":"ch","sha256":"<hex>","size":123}``). Anything else is decoded and checked as
ever. Whatever reads every entry (iteration, ``len``) decodes and checks them all first, once.
"""

from __future__ import annotations

import hashlib
import mmap
import uuid
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any

import msgspec

from ..errors import ReceiptError
from .brought import Brought
from .jsonbytes import encode_sorted
from .manifest import all_hex64, is_safe_channel_name
from .receipt_check import REBUILD, Files, Held, plainly_valid

_files = msgspec.json.Decoder(Files).decode
_held = msgspec.json.Decoder(Held).decode
_encode = msgspec.json.Encoder(order="sorted").encode
_SEP = b'},"'  # between two entries, and nowhere inside one (safe names hold no quote or brace)
CHUNK = 8192  # held files encoded at a time when a section is written (Section)
#: lookups answered by bisection before every entry is decoded instead: a bisection costs ~10-70 us here, decoding
#: 300,000 entries 0.35 s; a delta import asks about a few hundred files, a delta export about every selected one
MANY = 2048


class HeldFiles(MutableMapping[str, Held]):
    """``{filename: Held}`` over a trusted section's bytes (see the module docstring)."""

    __slots__ = ("_raw", "_lo", "_end", "_all", "_added", "_gone", "_asked", "_channel", "_subdir", "_where")

    def __init__(self, raw: bytes | mmap.mmap, channel: str, subdir: str, where: str, span: tuple[int, int] | None = None) -> None:
        """``raw``: the section's bytes, which hash to what airgap recorded, or (``span``: where the section starts and
        stops in it) the receipt's own bytes, mapped or read, not copied; ``channel`` and ``subdir``: checked names."""
        self._raw = raw
        self._lo, stop = span if span is not None else (0, len(raw))  # the opening brace, and past the closing one
        self._end = stop - 1  # the closing brace
        self._all: Files | None = None  # every entry, once something read them all
        self._added: dict[str, Held] = {}
        self._gone: set[str] = set()
        self._asked = 0  # lookups by bisection so far
        self._channel, self._subdir, self._where = channel, subdir, where

    # --- one entry ------------------------------------------------------------------------

    def _start_at(self, pos: int) -> int:
        """The first entry's start at or after ``pos`` (the closing brace when none)."""
        if pos <= self._lo + 1:
            return self._lo + 1 if self._end > self._lo + 1 else self._end
        j = self._raw.find(_SEP, pos - 2, self._end + 1)
        return j + 2 if j != -1 else self._end

    def _key_at(self, start: int) -> bytes:
        return self._raw[start + 1 : _index(self._raw, b'"', start + 1)]

    def _seek(self, key: bytes, lo: int = 0) -> int:
        """Where the entry for ``key`` starts, or where it would go (the first entry whose name sorts after it);
        ``lo``: an entry start known to sort before ``key``, or 0."""
        lo, hi = max(lo, self._lo), self._end
        while lo < hi:
            mid = (lo + hi) // 2
            start = self._start_at(mid)
            if start == self._end or self._key_at(start) >= key:
                hi = mid
            else:
                lo = mid + 1
        return self._start_at(lo)

    def _stored(self, filename: str) -> Held | None:
        try:
            key = filename.encode("ascii")
            start = self._seek(key)
            if start == self._end or self._key_at(start) != key:
                return None
            value = start + len(key) + 3
            held = _held(self._raw[value : _index(self._raw, b"}", value) + 1])
        except (ValueError, UnicodeEncodeError, msgspec.DecodeError):
            if not filename.isascii():
                return None  # safe names are ASCII: no such file
            raise ReceiptError(
                f"{self._where}: {filename}: expected an airgap receipt entry, found something unreadable; {REBUILD}"
            ) from None
        if not all_hex64([held.sha256]) or not (held.origin is None or is_safe_channel_name(held.origin)):
            found = f"sha256 {held.sha256[:70]!r}, from {str(held.origin)[:40]!r}"
            raise ReceiptError(
                f"{self._where}: {filename}: expected a sha256 of 64 hex digits and a channel name, found {found}; {REBUILD}"
            )
        return held

    # --- the mapping ----------------------------------------------------------------------

    def __getitem__(self, filename: str) -> Held:
        if self._all is not None:
            return self._all[filename]
        self._asked += 1
        if self._asked > MANY:  # a caller going through many (a delta export asks of every selected file): decode once
            return self.every()[filename]
        if filename in self._added:
            return self._added[filename]
        held = None if filename in self._gone else self._stored(filename)
        if held is None:
            raise KeyError(filename)
        return held

    def get(self, filename: str, default: Any = None) -> Any:
        if self._all is not None:
            return self._all.get(filename, default)
        try:
            return self[filename]
        except KeyError:
            return default

    def __contains__(self, filename: object) -> bool:
        if not isinstance(filename, str):
            return False
        try:
            self[filename]
        except KeyError:
            return False
        return True

    def __setitem__(self, filename: str, held: Held) -> None:
        if self._all is not None:
            self._all[filename] = held
        else:
            self._added[filename] = held
            self._gone.discard(filename)

    def __delitem__(self, filename: str) -> None:
        if self._all is not None:
            del self._all[filename]
            return
        self[filename]  # KeyError when not held
        self._added.pop(filename, None)
        self._gone.add(filename)

    def __bool__(self) -> bool:
        if self._all is None and not self._gone:
            return self._end > self._lo + 1 or bool(self._added)
        return bool(self.every())

    def __len__(self) -> int:
        return len(self.every())

    def __iter__(self) -> Iterator[str]:
        return iter(self.every())

    def keys(self) -> KeysView[str]:
        return self.every().keys()

    def items(self) -> ItemsView[str, Held]:
        return self.every().items()

    def values(self) -> ValuesView[Held]:
        return self.every().values()

    def every(self) -> Files:
        """Every entry as a plain dict: decoded and checked once, the changes applied (changes made through it are this mapping's)."""
        if self._all is None:
            try:
                every = _files(memoryview(self._raw)[self._lo : self._end + 1])
            except msgspec.DecodeError:
                every = None
            if every is None or not plainly_valid(self._channel, self._subdir, every):
                raise ReceiptError(
                    f"{self._where}: expected an airgap receipt's held files, found entries that do not read as such; {REBUILD}"
                )
            for filename in self._gone:
                every.pop(filename, None)
            every.update(self._added)
            self._all, self._added, self._gone = every, {}, set()
            self._raw = b""  # the entries stand for the bytes from now on (41 MB at 300,000 files)
        return self._all

    # --- the next bytes -------------------------------------------------------------------

    def encoded(self) -> bytes | memoryview:
        """The section's next bytes: the bytes ``encode_sorted`` writes for these entries."""
        if self._all is not None:
            return encode_sorted(self._all)
        changes = sorted(self._gone | self._added.keys())
        if not changes:
            return memoryview(self._raw)[self._lo : self._end + 1]
        raw, cursor, lo = self._raw, self._start_at(0), 0
        parts: list[bytes | memoryview] = []
        for filename in changes:
            key = filename.encode("ascii")
            start = self._seek(key, lo)
            _run(parts, raw, cursor, start, self._end)
            cursor = lo = start
            if start != self._end and self._key_at(start) == key:  # replaced or removed: the old entry is left out
                cursor = self._start_at(start + 1)
            if filename in self._added:
                parts.append(_encode({filename: self._added[filename]})[1:-1])
        _run(parts, raw, cursor, self._end, self._end)
        if not parts:
            return b"{}"
        pieces: list[bytes | memoryview] = [b","] * (2 * len(parts) + 1)  # one join: the section is 41 MB at 300,000 files, copied once
        pieces[0], pieces[-1], pieces[1::2] = b"{", b"}", parts
        return b"".join(pieces)


def _index(raw: bytes | mmap.mmap, sub: bytes, start: int) -> int:
    """``raw.index(sub, start)`` (a map has ``find`` only)."""
    at = raw.find(sub, start)
    if at == -1:
        raise ValueError(f"{sub!r} not found")
    return at


def _run(parts: list[bytes | memoryview], raw: bytes | mmap.mmap, start: int, stop: int, end: int) -> None:
    """The unchanged entries from ``start`` to ``stop`` (entry starts) as one part, without the comma after them."""
    if start < stop:
        parts.append(memoryview(raw)[start : stop - 1 if stop != end else stop])


class Section:
    """A subdir's held files as the receipt's bytes (names sorted, compact; :func:`encode_sorted`'s bytes): spliced when
    kept as bytes, else encoded ``CHUNK`` entries at a time, twice (once for ``sha256``, once as written), never whole:
    a full import's 300,000 files are a 41 MB section, and its peak was the moment they were one buffer. The files
    are read again when written: the receipt is written right after (``to_json(encodable=True)``), unchanged."""

    __slots__ = ("_files", "sha256")

    def __init__(self, files: Mapping[str, Held]) -> None:
        self._files = files
        digest = hashlib.sha256()
        for piece in self.pieces():
            digest.update(piece)
        self.sha256 = digest.hexdigest()

    def pieces(self) -> Iterator[bytes | memoryview]:
        files = self._files
        if isinstance(files, HeldFiles):  # spliced from its own bytes (len() would decode every entry)
            yield files.encoded()
            return
        if len(files) <= CHUNK:
            yield encode_sorted(dict(files))
            return
        chunk: Callable[[int, int], Mapping[str, Held]]
        if isinstance(files, Brought) and not files.changed:  # the manifest's entries, sorted: each Held made as encoded
            chunk = files.sorted_chunk
        else:
            names = sorted(files)  # safe names are ASCII: str order is the byte order msgspec sorts by
            chunk = lambda at, stop: {n: files[n] for n in names[at:stop]}  # noqa: E731
        yield b"{"
        for at in range(0, len(files), CHUNK):
            if at:
                yield b","
            yield memoryview(encode_sorted(chunk(at, at + CHUNK)))[1:-1]
        yield b"}"

    def joined(self) -> msgspec.Raw:
        return msgspec.Raw(b"".join(self.pieces()))


def receipt_pieces(doc: dict[str, Any]) -> Iterator[bytes | memoryview]:
    """``receipt_json(doc)`` in pieces, each held section (a ``Raw`` from :meth:`Receipt.to_json(encodable=True)
    <airgap.core.receipt.Receipt.to_json>`) handed on as its own bytes instead of copied into one document: written
    to a file piece by piece, a 300,000-file receipt never exists twice in memory (41 MB of sections, and their copy)."""
    from .receipt import receipt_json

    token = uuid.uuid4().hex  # stands for a section in the encoded rest; a receipt holds no such string
    sections: dict[str, msgspec.Raw | Section] = {}
    marked = dict(doc)
    channels = doc.get("channels")
    if isinstance(channels, dict):
        marked["channels"] = {c: dict(subs) if isinstance(subs, dict) else subs for c, subs in channels.items()}
        for subs in marked["channels"].values():
            for s, raw in subs.items() if isinstance(subs, dict) else ():
                if isinstance(raw, (msgspec.Raw, Section)):
                    mark = f"{token}-{len(sections)}"
                    sections[mark] = raw
                    subs[s] = mark
    rest = receipt_json(marked)
    found = sorted((rest.index(f'"{mark}"'.encode()), mark) for mark in sections)  # each exactly once: a string value
    at = 0
    for pos, mark in found:
        yield memoryview(rest)[at:pos]
        section = sections[mark]
        yield from section.pieces() if isinstance(section, Section) else (memoryview(section),)
        at = pos + len(mark) + 2
    yield memoryview(rest)[at:]


def joined_sections(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with each :class:`Section` as its joined bytes (for a receipt encoded whole: small ones, tests)."""
    channels = doc.get("channels")
    if not isinstance(channels, dict):
        return doc
    joined = {
        c: {s: v.joined() if isinstance(v, Section) else v for s, v in subs.items()} if isinstance(subs, dict) else subs
        for c, subs in channels.items()
    }
    return doc | {"channels": joined}
