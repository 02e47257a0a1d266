"""The one exception tree (airgap/errors.py): every error airgap raises on purpose, its family and exit code."""

from __future__ import annotations

import pytest

from airgap import errors
from airgap.errors import (
    AirgapError,
    ArchiveFormatError,
    ConfigError,
    DestinationError,
    DownloadError,
    HashMismatch,
    IntegrityError,
    LockError,
    LockLostError,
    NotFound,
    ReceiptError,
    RollbackError,
    SignatureError,
    StoreUnavailable,
    TransientError,
    UnsolvableError,
    UpstreamError,
    UsageError,
)

TREE: list[tuple[type[AirgapError], type[Exception], int]] = [
    (UsageError, AirgapError, 2),
    (ConfigError, UsageError, 2),
    (UpstreamError, AirgapError, 1),
    (DownloadError, UpstreamError, 1),
    (NotFound, UpstreamError, 1),
    (TransientError, UpstreamError, 1),
    (HashMismatch, UpstreamError, 1),
    (UnsolvableError, AirgapError, 1),
    (DestinationError, AirgapError, 1),
    (LockError, DestinationError, 1),
    (LockLostError, LockError, 1),
    (StoreUnavailable, DestinationError, 1),
    (ReceiptError, DestinationError, 1),
    (IntegrityError, AirgapError, 3),
    (SignatureError, IntegrityError, 3),
    (ArchiveFormatError, IntegrityError, 3),
    (RollbackError, IntegrityError, 3),
]


@pytest.mark.parametrize(("cls", "parent", "code"), TREE, ids=[c.__name__ for c, _, _ in TREE])
def test_each_error_has_its_family_and_exit_code(cls: type[AirgapError], parent: type[Exception], code: int) -> None:
    assert cls.__bases__ == (parent,)
    assert cls.__module__ == "airgap.errors"
    assert cls("x").exit_code == code


def test_the_tree_lists_every_error_class() -> None:
    defined = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception) and v.__module__ == "airgap.errors"}
    assert defined == {AirgapError} | {cls for cls, _, _ in TREE}


def test_a_message_is_redacted_whatever_the_class() -> None:
    err = TransientError("https://user:s3cret@example.com/conda-forge: HTTP 502")
    assert "s3cret" not in str(err)


def test_the_modules_that_raise_them_use_the_same_classes() -> None:
    from airgap.core import receipt, rollback
    from airgap.destinations import lease
    from airgap.upstream import cache, fetch

    assert fetch.NotFound is NotFound and fetch.TransientError is TransientError  # type: ignore[attr-defined]
    assert cache.HashMismatch is HashMismatch  # type: ignore[attr-defined]
    assert receipt.ReceiptError is ReceiptError
    assert rollback.RollbackError is RollbackError  # type: ignore[attr-defined]
    assert lease.LockLostError is LockLostError and lease.StoreUnavailable is StoreUnavailable  # type: ignore[attr-defined]
