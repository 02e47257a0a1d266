"""The mirror's clients: ``serve`` the channels over HTTP, print a ``condarc`` that points at them."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Config
from ._base import State, common_options
from .options import env_option, into_option


@click.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--port", type=int, default=8080, show_default=True, help="TCP port.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option(
    "--access-log", "access_log", type=click.Path(dir_okay=False), help="Append one line per request to FILE (default: log them at INFO)."
)
@common_options(reads_config=False)
def serve(dest: str, port: int, bind: str, access_log: str | None, state: State, config: Config | None) -> None:
    """Serve the channels in DEST over HTTP, inside the air gap.

    \b
    Example:  airgap serve /srv/conda --port 8080 --bind 0.0.0.0
    """
    from ..site.serve import AccessLog, make_server

    access = AccessLog(Path(access_log) if access_log else None)
    server = make_server(Path(dest), bind, port, access_log=access)
    host, real_port = str(server.server_address[0]), int(server.server_address[1])
    base = f"http://{host}:{real_port}"
    channels = sorted(server.channels())
    click.echo(f"serving {dest} at {base}/ (Ctrl-C to stop)")
    for ch in channels:
        click.echo(f"  channel {ch}: {base}/{ch}   (browse {base}/{ch}/index.html)")
    click.echo(f"point conda at it:  airgap condarc {base} --into {dest} > ~/.condarc")
    if (Path(dest) / "downloads" / "index.html").is_file():  # written by the import for public_url (airgap.site.bootstrap)
        click.echo(f"pre-configured installers: {base}/downloads/ (made for the public_url given at import)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        access.close()


@click.command()
@click.argument("url")
@click.argument("channels", nargs=-1)
@into_option("Take the channel names from this destination (a directory or URL).")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Also redirect this upstream channel URL (as lock files name it) to the mirror channel of the same name (repeatable).",
)
@env_option("Also redirect the channels this environment or lock file names (repeatable).", metavar="FILE")
@click.option("--pixi", is_flag=True, help="Print pixi's config.toml [mirrors] table instead of the .condarc.")
@common_options(reads_config=False)
def condarc(
    url: str,
    channels: tuple[str, ...],
    into: str | None,
    upstreams: tuple[str, ...],
    env_files: tuple[str, ...],
    pixi: bool,
    state: State,
    config: Config | None,
) -> None:
    """Print a .condarc (or with --pixi a pixi [mirrors] table) that points clients at the mirror at URL.

    Both redirect the upstream URLs written in lock files (conda.anaconda.org/NAME, repo.anaconda.com/pkgs/NAME,
    and those given with --upstream or found with --env) to the mirror, so lock files work unchanged.

    \b
    Examples:
      airgap condarc http://mirror.internal:8080 main conda-forge > ~/.condarc
      airgap condarc http://mirror.internal:8080 --into /srv/conda
      airgap condarc http://mirror.internal:8080 --into /srv/conda --pixi --env pixi.lock >> ~/.pixi/config.toml
    """
    from ..ops.condarc import CondarcOptions, run_condarc

    options = CondarcOptions(url, channels, into, upstreams, env_files, pixi)
    click.echo(run_condarc(options), nl=False)
