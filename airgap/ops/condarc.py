"""``airgap condarc``: the client configuration that points conda (or pixi) at the mirror.

Checks the mirror URL and every channel name, and redirects the upstream URLs lock files name
(conda.anaconda.org/NAME, repo.anaconda.com/pkgs/NAME, those given or found in environment
files) to the mirror. Returns the text; prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class CondarcOptions:
    url: str  # where clients reach the mirror
    channels: tuple[str, ...] = ()  # channel names (besides those of ``into``)
    into: str | None = None  # take the channel names from this destination
    upstreams: tuple[str, ...] = ()  # upstream channel URLs to redirect as well
    env_files: tuple[str, ...] = ()  # environment or lock files naming more upstream channels
    pixi: bool = False  # pixi's [mirrors] table instead of a .condarc


def run_condarc(options: CondarcOptions) -> str:
    """The .condarc (or pixi [mirrors] table) for ``options``."""
    from ..core.lockfiles import source_from_option
    from ..core.manifest import is_safe_channel_name
    from ..destinations import open_destination
    from ..site.serve import condarc as render
    from ..upstream import mirrors
    from ..upstream.urlsafety import check_under

    url = options.url
    if not url.startswith(("http://", "https://", "file://")):
        raise UsageError(f"URL: expected http://HOST:PORT (or https://, file://), found {url!r}")
    names = list(options.channels) + (sorted(open_destination(options.into).inventory()) if options.into else [])
    if not names:
        raise UsageError("expected channel names (CHANNELS... or --into DEST), found none")
    names = list(dict.fromkeys(names))
    for name in names:
        if not is_safe_channel_name(name):
            raise UsageError(f"channel: expected one path component of letters, digits, . _ + -, found {name!r}")
        check_under(url, f"{url.rstrip('/')}/{name}")  # never print a URL that leaves the mirror's prefix
    found = mirrors.upstreams_in([source_from_option(f) for f in options.env_files])
    pairs = mirrors.redirects(url, names, [*options.upstreams, *found])
    if options.pixi:
        return mirrors.pixi_mirrors(pairs)
    return render(url, names, mirrors.conda_redirects(pairs))
