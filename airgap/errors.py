"""One exception tree for airgap.

Every error is raised with its whole message: what was expected, what was found and,
where it helps, what to do. The CLI maps each family to an exit code in one place:

* ``AirgapError``            exit 1 (generic failure: network, destination, I/O)
* ``ConfigError``/``UsageError``  exit 2 (the user's words or files are off)
* ``IntegrityError``         exit 3 (signature, hash, size, hostile or damaged archive)

The whole tree (exit code in brackets)::

    AirgapError [1]
    ├── UsageError [2]
    │   └── ConfigError
    ├── UpstreamError                 an upstream channel could not be read
    │   ├── DownloadError             downloads failed (one line each)
    │   ├── NotFound                  404/410 or no such file (not retried)
    │   ├── TransientError            5xx, 429, reset, timeout, short body (retried)
    │   └── HashMismatch              upstream served other bytes than its repodata says
    ├── UnsolvableError
    ├── DestinationError
    │   ├── LockError                 another process holds the lock
    │   │   └── LockLostError         this process lost the lock it held
    │   ├── StoreUnavailable          the store answered 5xx or not at all (asked again)
    │   └── ReceiptError              a malformed receipt (says how to rebuild it)
    └── IntegrityError [3]
        ├── SignatureError
        ├── ArchiveFormatError
        └── RollbackError             an archive older than, or not built on, what was applied

A few exceptions stay out of the tree on purpose: they never leave the code that catches
them (``archive/tarheader.py``'s ``Damaged``, made an ``ArchiveFormatError`` by the archive
reader; ``serve.py``'s ``_BadPath``, made an HTTP answer), or they must not be caught as an error
(``destinations/memory.py``'s ``StoreKilled`` simulates a killed process: a ``BaseException``).
See docs/decisions/0005-errors-and-capabilities.md.
"""

from __future__ import annotations

import reprlib
from typing import Any

from .redact import redact

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 4
_SHORT.maxlevel = 2


def quoted(value: Any) -> str:
    """``value`` as an error message quotes it: its repr, cut to a short prefix whatever its size or nesting."""
    return _SHORT.repr(value)


class AirgapError(Exception):
    """Root of every error airgap raises on purpose.

    The message is redacted as the error is made (:func:`airgap.redact.redact`): a URL's
    password or token never reaches whoever prints, logs or stores it.
    """

    exit_code = 1

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(redact(message) if isinstance(message, str) else message, *args)


class UsageError(AirgapError):
    """The command line asks for something impossible or contradictory."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or value is invalid."""


class UpstreamError(AirgapError):
    """An upstream channel could not be read."""


class DownloadError(UpstreamError):
    """One or more package downloads failed; ``failures`` lists them, one line each."""

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = [redact(f) for f in failures or []]


class NotFound(UpstreamError):
    """The URL does not exist (HTTP 404/410, or no such file)."""


class TransientError(UpstreamError):
    """A fault worth retrying: 5xx, 429, reset, timeout, truncated body."""


class HashMismatch(UpstreamError):
    """The bytes upstream served are not the ones its repodata describes.

    An upstream fault (exit 1), not the archive's integrity: export collects it per file and
    writes no archive; nothing the user holds is damaged.
    """


class UnsolvableError(AirgapError):
    """The selection cannot satisfy a spec that must be installable."""


class DestinationError(AirgapError):
    """The destination could not be read or changed."""


class LockError(DestinationError):
    """Another airgap process holds the destination lock."""


class LockLostError(LockError):
    """This process no longer holds the destination's lock (taken over, or not renewed in time)."""


class StoreUnavailable(DestinationError):
    """The store answered with a server error or not at all (it may be restarting): worth asking again."""


class ReceiptError(DestinationError):
    """A receipt that is not a well-formed airgap receipt."""


class IntegrityError(AirgapError):
    """The archive is damaged, forged, or not what its manifest says."""

    exit_code = 3


class SignatureError(IntegrityError):
    """The manifest signature is missing, invalid, or made by an untrusted key."""


class ArchiveFormatError(IntegrityError):
    """The archive does not follow the airgap/1 layout (member names, order, types, version)."""


class RollbackError(IntegrityError):
    """An archive older than, or built on another state than, what the destination already applied."""
