"""The progress seam: operations report work through it; only the CLI draws anything."""

from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def update(self, n: int) -> None: ...  # bytes (or units) done
    def file_done(self) -> None: ...  # one more of ``files`` finished
    def files_done(self, n: int) -> None: ...  # ``n`` more finished at once (a child's report: no call per file)
    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, desc: str, total: int | None, unit: str = "B", files: int | None = None) -> Bar: ...


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def file_done(self) -> None:
        pass

    def files_done(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def null_progress(desc: str, total: int | None, unit: str = "B", files: int | None = None) -> Bar:
    return _NullBar()
