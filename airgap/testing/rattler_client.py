"""A real conda client for tests: solve and install with py-rattler (0.28) from channel URLs.

``channel_urls`` may be ``file://`` or ``http://`` URLs of channel roots (the directory that
holds ``noarch/``, ``linux-64/``...). Only those channels are used, with no virtual packages,
so the result depends on nothing outside the test. ``cache`` receives both the repodata cache
(``cache/repodata``) and the package cache (``cache/pkgs``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path


async def rattler_install(channel_urls: list[str], specs: list[str], prefix: Path, cache: Path, platform: str = "linux-64") -> list[str]:
    """Solve ``specs`` against ``channel_urls`` only and install into ``prefix``; return the sorted names."""
    import rattler

    records = await rattler.solve(
        sources=[rattler.Channel(u) for u in channel_urls],
        specs=specs,
        gateway=rattler.Gateway(cache_dir=Path(cache) / "repodata"),
        platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
        virtual_packages=[],
    )
    await rattler.install(records, target_prefix=Path(prefix), cache_dir=Path(cache) / "pkgs", show_progress=False)
    return sorted(r.name.normalized for r in records)


def install(channel_urls: list[str], specs: list[str], prefix: Path, cache: Path, platform: str = "linux-64") -> list[str]:
    """Synchronous :func:`rattler_install` (runs its own event loop)."""
    return asyncio.run(rattler_install(channel_urls, specs, prefix, cache, platform))
