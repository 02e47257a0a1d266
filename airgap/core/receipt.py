"""The receipt: what a destination holds, by hash, which archives made it so, and where channels went.

Pure: parse (strictly, like the manifest), query, update, serialize. Destinations store the
JSON document (``DEST/.airgap/receipt.json``); the operations read it through
:func:`parse_receipt` and write :meth:`Receipt.to_json`.

The document (format ``airgap-receipt/1``; every key but ``format`` may be absent)::

    channels     {dest channel: {subdir: {filename: {sha256, size, from?}}}}   what is held;
                 ``from`` names the archive channel the file came from (absent: unknown)
    applied      {dest channel: [{archive_id, created, signer, downgrade?}]}   archives applied
                 there, for rollback protection; a channel absent here has an unknown history
                 (a receipt written before airgap recorded it): no order can be checked there
    channel_map  {archive channel: [dest channel, ...]}   where each archive channel was published
    fixed_channel  every archive channel goes to this one (a quetz destination)
    archives     every archive imported, in order (a log: id, created, imported, signer, base)
    sources      {archive channel: {subdir: sha256 of the upstream repodata last imported}} (written
                 by airgap before 0.x keyed by destination channel: the same when not merged)
    installers   {dir: {filename: {sha256, size}}}
    other keys (``cleans``, ``rebuilt``...) are kept as they are.

What it does not do: read or write storage, or decide what an import may change (see
``airgap.ops.import_``). Files a verification finds damaged are dropped with :meth:`Receipt.forget`.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import re
import reprlib
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import ReceiptError as ReceiptError  # ops/export.py imports it from here
from .brought import Brought
from .held_bytes import HeldFiles, Section, joined_sections
from .jsonbytes import encode_sorted
from .manifest import Manifest, is_safe_channel_name, is_safe_installer_filename, is_safe_package_filename, is_safe_subdir
from .receipt_check import REBUILD as REBUILD  # engine.py imports it from here
from .receipt_check import Held as Held  # the type a receipt holds per file; imported from here
from .receipt_check import plainly_valid, typed_files

RECEIPT_FORMAT = "airgap-receipt/1"
#: {channel: {subdir: sha256 of its held files' bytes}}, written with them: a section that still hashes to it is
#: airgap's own, read as bytes (airgap.core.held_bytes); one another writer changed is checked entry by entry
HELD_SHA256 = "held_sha256"
MAX_HISTORY = 200  # archives remembered per destination channel (the newest is always kept)

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother = 2, 40, 40


@dataclass(frozen=True)
class Applied:
    """One archive applied to a destination channel."""

    archive_id: str
    created: str
    signer: str | None
    downgrade: bool = False  # applied with --allow-downgrade: additions only

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"archive_id": self.archive_id, "created": self.created, "signer": self.signer}
        if self.downgrade:
            doc["downgrade"] = True
        return doc

    def describe(self) -> str:
        return f"{self.archive_id} (created {self.created})"


def created_order(created: str) -> datetime | None:
    """An archive's ``created`` time as a comparable value; None when it cannot be read."""
    try:
        value = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class Receipt:
    channels: dict[str, dict[str, MutableMapping[str, Held]]] = field(default_factory=dict)
    applied: dict[str, list[Applied]] = field(default_factory=dict)
    channel_map: dict[str, list[str]] = field(default_factory=dict)
    fixed_channel: str | None = None
    archives: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    installers: dict[str, dict[str, Held]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # --- what is held ---------------------------------------------------------------------

    def held(self, channel: str, subdir: str, filename: str) -> Held | None:
        return self.channels.get(channel, {}).get(subdir, {}).get(filename)

    def holdings(self, channel: str, subdir: str) -> Mapping[str, Held]:
        """Every file held there, for a caller that goes through many (a dict: one lookup is :meth:`held`)."""
        files = self.channels.get(channel, {}).get(subdir, {})
        return files.every() if isinstance(files, HeldFiles) else files

    def hold(self, channel: str, subdir: str, filename: str, sha256: str, size: int | None, origin: str | None = None) -> None:
        self.channels.setdefault(channel, {}).setdefault(subdir, {})[filename] = Held(sha256, size, origin)

    def forget(self, channel: str, subdir: str, filename: str) -> None:
        """The destination no longer holds this file (removed, or found damaged): the next import that carries it puts it back."""
        self.channels.get(channel, {}).get(subdir, {}).pop(filename, None)

    def state_id(self) -> str:
        """A hash of what the receipt says is held (the ``base`` an export --since it records)."""
        doc = {
            c: {s: {f: {"sha256": h.sha256, "size": h.size} for f, h in files.items()} for s, files in subs.items()}
            for c, subs in self.channels.items()
        }
        # canonical_json's bytes (names, hex digests and sizes only), by msgspec: a tenth of the time
        return hashlib.sha256(encode_sorted(doc)).hexdigest()  # names are ASCII (safe names): no escapes differ

    # --- history and channel mapping ------------------------------------------------------

    def history_known(self, channel: str) -> bool:
        return channel in self.applied

    def newest(self, channel: str) -> Applied | None:
        """The newest archive applied in full to ``channel`` (by created time; of equal times, the last
        applied); None: none, or unknown history. An archive applied as a downgrade never becomes the newest."""
        history = self.applied.get(channel, [])
        best: Applied | None = None
        for entry in [a for a in history if not a.downgrade] or history:
            if best is None or not _later(best.created, entry.created):
                best = entry
        return best

    def record_applied(self, channel: str, entry: Applied) -> None:
        history = self.applied.setdefault(channel, [])
        history.append(entry)
        if len(history) > MAX_HISTORY:
            newest = self.newest(channel)
            del history[: len(history) - MAX_HISTORY]
            if newest is not None and newest not in history:
                history.insert(0, newest)

    def map_channel(self, archive_channel: str, dest_channel: str) -> None:
        targets = self.channel_map.setdefault(archive_channel, [])
        if dest_channel not in targets:
            targets.append(dest_channel)

    def targets_of(self, archive_channel: str) -> list[str]:
        """Where ``archive_channel`` was published, per this receipt ([]: never, or not recorded)."""
        if self.fixed_channel is not None:
            return [self.fixed_channel]
        return list(self.channel_map.get(archive_channel, []))

    def sources_of(self, dest_channel: str) -> set[str]:
        """The archive channels known to have been published into ``dest_channel``."""
        return {a for a, ds in self.channel_map.items() if dest_channel in ds}

    # --- serialization --------------------------------------------------------------------

    def to_json(self, encodable: bool = False) -> dict[str, Any]:
        """The receipt as a JSON document; ``encodable``: for :func:`receipt_json` only, each subdir's held files as
        their encoded bytes (300,000 files are not first copied; a section read as bytes is spliced,
        :mod:`airgap.core.held_bytes`) and the sha256 of each (``held_sha256``)."""
        doc: dict[str, Any] = dict(self.extra)  # never holds held_sha256: the readers take it out
        if encodable:
            sections = {c: {s: Section(files) for s, files in subs.items()} for c, subs in self.channels.items()}
            doc[HELD_SHA256] = {c: {s: raw.sha256 for s, raw in subs.items()} for c, subs in sections.items()}
            channels: dict[str, Any] = sections
        else:
            channels = {
                c: {s: {f: h.to_json() for f, h in files.items()} for s, files in subs.items()} for c, subs in self.channels.items()
            }
        doc.update(
            {
                "format": RECEIPT_FORMAT,
                "channels": channels,
                "archives": list(self.archives),
                "applied": {c: [a.to_json() for a in hist] for c, hist in self.applied.items()},
                "channel_map": {a: list(ds) for a, ds in self.channel_map.items()},
                "sources": {c: dict(s) for c, s in self.sources.items()},
                "installers": {d: {f: h.to_json() for f, h in files.items()} for d, files in self.installers.items()},
            }
        )
        if self.fixed_channel is not None:
            doc["fixed_channel"] = self.fixed_channel
        return doc

    def to_bytes(self) -> bytes:
        return receipt_json(self.to_json())


def _later(a: str, b: str) -> bool:
    ka, kb = created_order(a), created_order(b)
    if ka is None or kb is None:
        return False
    return ka > kb


# --- parsing --------------------------------------------------------------------------------


def _fail(where: str, path: str, expected: str, found: Any) -> ReceiptError:
    shown = _SHOW.repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ReceiptError(f"{where}: {path}: expected {expected}, found {shown}; {REBUILD}")


_decode = msgspec.json.Decoder().decode


def receipt_json(doc: dict[str, Any]) -> bytes:
    """The receipt's bytes: JSON with sorted keys, no spaces, non-ASCII escaped (``json.dumps(sort_keys=True)``'s
    bytes, written by msgspec: a receipt holds a line per file, 40 MB at 300,000 files)."""
    raw = encode_sorted(joined_sections(doc))
    if raw.isascii():
        return raw
    plain = json.loads(raw)  # held files as their bytes (Receipt.to_json(encodable=True)): read back as plain JSON
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode("utf-8")  # the same escapes as ever


def load_receipt_json(data: bytes | mmap.mmap) -> Any:
    """A receipt's JSON, decoded by msgspec; what it refuses is a ValueError. ``json`` only says where: it accepts NaN,
    Infinity and lone surrogates, which airgap cannot write back (``"\\ud800"`` became a UnicodeEncodeError later)."""
    try:
        return _decode(data)
    except (msgspec.DecodeError, RecursionError) as refused:
        json.loads(bytes(data).decode("utf-8"))  # its message names the line and column
        deep = isinstance(refused, RecursionError)  # json read it: too deep for msgspec, not malformed
        raise (refused if deep else ValueError(f"JSON that strict readers refuse ({refused})")) from None


def parse_receipt_bytes(data: bytes | mmap.mmap, where: str) -> Receipt:
    try:
        doc = load_receipt_json(data)
    except RecursionError:
        raise ReceiptError(f"{where}: expected an airgap receipt, found JSON nested too deeply to read; {REBUILD}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReceiptError(
            f"{where}: expected an airgap receipt (JSON), found something unreadable ({str(exc)[:100]}); {REBUILD}"
        ) from None
    return parse_receipt(doc, where)


def parse_receipt(doc: Any, where: str) -> Receipt:
    """Validate a decoded receipt document; ``where`` names it in messages."""
    if not isinstance(doc, dict):
        raise _fail(where, "(top)", "an object", doc)
    if doc.get("format") != RECEIPT_FORMAT:
        raise _fail(where, "format", repr(RECEIPT_FORMAT), doc.get("format"))
    r = Receipt()
    r.channels = {
        c: {s: _held_files(where, c, s, files) for s, files in _subdirs(where, c, subs).items()}
        for c, subs in _channels(where, "channels", doc.get("channels", {})).items()
    }
    for c, hist in _channels(where, "applied", doc.get("applied", {})).items():
        r.applied[c] = [_applied(where, f"applied.{c}[{i}]", a) for i, a in enumerate(_list(where, f"applied.{c}", hist))]
    for a, ds in _channels(where, "channel_map", doc.get("channel_map", {})).items():
        targets = _list(where, f"channel_map.{a}", ds)
        if not all(is_safe_channel_name(d) for d in targets):
            raise _fail(where, f"channel_map.{a}", "a list of channel names", targets)
        r.channel_map[a] = list(dict.fromkeys(targets))
    fixed = doc.get("fixed_channel")
    if fixed is not None and not is_safe_channel_name(fixed):
        raise _fail(where, "fixed_channel", "a channel name", fixed)
    r.fixed_channel = fixed
    r.archives = [a for a in _list(where, "archives", doc.get("archives", [])) if isinstance(a, dict)]
    for c, subs in _channels(where, "sources", doc.get("sources", {})).items():
        if not isinstance(subs, dict) or not all(is_safe_subdir(s) and isinstance(v, str) for s, v in subs.items()):
            raise _fail(where, f"sources.{c}", "{subdir: sha256}", subs)
        r.sources[c] = dict(subs)
    for d, files in _channels(where, "installers", doc.get("installers", {})).items():
        r.installers[d] = _files(where, f"installers.{d}", files, package=False)
    known = {"format", "channels", "applied", "channel_map", "fixed_channel", "archives", "sources", "installers", HELD_SHA256}
    r.extra = {k: v for k, v in doc.items() if k not in known}
    return r


def _list(where: str, path: str, v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(where, path, "a list", v)
    return v


def _channels(where: str, path: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(where, path, "an object keyed by channel name", v)
    for name in v:
        if not is_safe_channel_name(name):
            raise _fail(where, path, "channel names as keys", name)
    return v


def _subdirs(where: str, channel: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(where, f"channels.{channel}", "an object keyed by subdir", v)
    for name in v:
        if not is_safe_subdir(name):
            raise _fail(where, f"channels.{channel}", "subdir names as keys", name)
    return v


def _held_files(where: str, channel: str, subdir: str, v: Any) -> dict[str, Held]:
    """A subdir's held files: checked by msgspec a subdir at a time (a tenth of the time), else one by one, which says what is wrong."""
    typed = typed_files(v)
    if typed is None or not plainly_valid(channel, subdir, typed):
        return _files(where, f"channels.{channel}.{subdir}", v, package=True)
    return typed  # the decoder's entries are the Held structs themselves


def _files(where: str, path: str, v: Any, *, package: bool) -> dict[str, Held]:
    if not isinstance(v, dict):
        raise _fail(where, path, "an object keyed by file name", v)
    out: dict[str, Held] = {}
    origins: set[str] = set()  # checked once each: a receipt names few channels and many files
    for fn, rec in v.items():
        ok_name = is_safe_package_filename(fn) if package else is_safe_installer_filename(fn)
        if not ok_name:
            raise _fail(where, path, "file names as keys", fn)
        if not isinstance(rec, dict):
            raise _fail(where, f"{path}.{fn}", "{sha256, size}", rec)
        sha, size, origin = rec.get("sha256"), rec.get("size"), rec.get("from")
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise _fail(where, f"{path}.{fn}.sha256", "64 lower-case hex digits", sha)
        if size is not None and (type(size) is not int or size < 0):  # bool is not int here
            raise _fail(where, f"{path}.{fn}.size", "a non-negative integer", size)
        if origin is not None and not (isinstance(origin, str) and origin in origins):  # a list or object is refused, not hashed
            if not is_safe_channel_name(origin):
                raise _fail(where, f"{path}.{fn}.from", "a channel name", origin)
            origins.add(origin)
        out[fn] = Held(sha, size, origin)
    return out


def _applied(where: str, path: str, v: Any) -> Applied:
    if not isinstance(v, dict):
        raise _fail(where, path, "{archive_id, created, signer}", v)
    aid, created, signer = v.get("archive_id"), v.get("created"), v.get("signer")
    if not isinstance(aid, str) or not isinstance(created, str) or not (signer is None or isinstance(signer, str)):
        raise _fail(where, path, "{archive_id, created, signer} as strings", v)
    if created_order(created) is None:
        raise _fail(where, path + ".created", "a time like 2026-01-31T12:00:00Z", created)
    return Applied(aid, created, signer, bool(v.get("downgrade", False)))


def apply_archive(
    receipt: Receipt,
    manifest: Manifest,
    target: Callable[[str], str],
    *,
    skipped: Mapping[tuple[str, str], set[str]],
    downgrade: bool,
    signer: str | None,
    imported: str,
) -> None:
    """Record in ``receipt`` that ``manifest`` was published (after its files are in place).

    ``target`` maps archive channels to destination channels; ``skipped`` lists, per (archive
    channel, subdir), files this import left out (shadowed by an earlier channel, or kept back by a
    downgrade); a downgrade records additions only: no removal, no upstream state.
    """
    provided: set[tuple[str, str, str]] = set()  # only where a channel removes files: 300,000 tuples otherwise
    removing = not downgrade and any(sub.removals for ch in manifest.channels for sub in ch.subdirs)
    for ch in manifest.channels:
        dest = target(ch.name)
        for sub in ch.subdirs:
            skip = skipped.get((ch.name, sub.subdir), set())
            entries = [p for p in (*sub.packages, *sub.present) if p.filename not in skip]
            held = receipt.channels.setdefault(dest, {})
            if sub.subdir not in held:  # nothing held there yet: the manifest's entries, not a Held each
                held[sub.subdir] = Brought(entries, ch.name)
            else:
                for p in entries:
                    receipt.hold(dest, sub.subdir, p.filename, p.sha256, p.size, ch.name)
            if removing:
                provided.update((dest, sub.subdir, p.filename) for p in entries)
    for ch in manifest.channels if not downgrade else ():
        dest = target(ch.name)
        for sub in ch.subdirs:
            for filename in sub.removals:
                if (dest, sub.subdir, filename) not in provided:  # another channel merged here still carries it
                    receipt.forget(dest, sub.subdir, filename)
            sha = sub.source.get("sha256")
            if isinstance(sha, str) and sha:
                receipt.sources.setdefault(ch.name, {})[sub.subdir] = sha  # by archive channel: what a delta compares
    entry = Applied(manifest.archive_id, manifest.created, signer, downgrade)
    for ch in manifest.channels:
        receipt.map_channel(ch.name, target(ch.name))
    for dest in dict.fromkeys(target(ch.name) for ch in manifest.channels):
        receipt.record_applied(dest, entry)
    log_entry = dict(archive_id=manifest.archive_id, created=manifest.created, imported=imported, signer=signer, base=manifest.base)
    receipt.archives.append(log_entry | ({"downgrade": True} if downgrade else {}))
