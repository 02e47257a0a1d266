"""A real conda client for tests: solve and install with py-rattler from channel URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path


async def rattler_install(channel_urls: list[str], specs: list[str], prefix: Path, cache: Path,
                          platform: str = "linux-64") -> list[str]:
    """Solve ``specs`` against ``channel_urls`` only and install into ``prefix``; return the names."""
    import rattler

    records = await rattler.solve(
        sources=[rattler.Channel(u) for u in channel_urls],
        specs=specs,
        gateway=rattler.Gateway(cache_dir=cache / "repodata"),
        platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
        virtual_packages=[],
    )
    await rattler.install(records, target_prefix=prefix, cache_dir=cache / "pkgs")
    return sorted(r.name.normalized for r in records)


def install(channel_urls: list[str], specs: list[str], prefix: Path, cache: Path, platform: str = "linux-64") -> list[str]:
    return asyncio.run(rattler_install(channel_urls, specs, prefix, cache, platform))
