"""The progress seam: operations report work through it; only the CLI draws anything."""

from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, desc: str, total: int | None, unit: str = "B") -> Bar: ...


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def null_progress(desc: str, total: int | None, unit: str = "B") -> Bar:
    return _NullBar()
