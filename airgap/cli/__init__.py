"""The command line. The only package that prints, exits or draws progress.

Each command parses its options, builds one options object (:mod:`airgap.ops.options`), makes
one ``ops`` call and renders the typed result (:mod:`.render`: JSON or text). Errors become one
line and an exit code in :func:`._base._run` alone: 0 ok, 1 failure, 2 usage or configuration,
3 integrity or signature.

The commands, by module::

    transfer.py   export, import, sync      (the archive's way across)
    inspect.py    verify, inspect           (read an archive or a destination; change nothing)
    maintain.py   keygen, clean, receipt    (keys and the destination's upkeep)
    site.py       serve, condarc            (the mirror's clients)
"""

from __future__ import annotations

import click

from .. import __version__
from .inspect import inspect, verify
from .maintain import clean, keygen, receipt
from .site import condarc, serve
from .transfer import export, import_, sync


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="airgap", message="%(prog)s %(version)s")
def main() -> None:
    """Move conda channels across an air gap.

    \b
    On the connected host:   airgap keygen ~/keys/airgap
                             airgap export -f export.yaml --sign-key ~/keys/airgap mirror.tar
    On the isolated host:    airgap verify mirror.tar --trusted-key airgap.pub
                             airgap import mirror.tar --into /srv/conda --trusted-key airgap.pub
    """


for _command in (keygen, export, import_, sync, clean, verify, inspect, receipt, serve, condarc):
    main.add_command(_command)


def run() -> None:
    """The ``airgap`` program: :func:`main`, then the process ends without freeing what commands kept (airgap/leftovers.py)."""
    from .. import leftovers

    leftovers.enable()
    try:
        main(prog_name="airgap")
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message: Python prints it and exits 1, as ever
        leftovers.leave(exc.code or 0)
    leftovers.leave(0)


__all__ = ["main", "run"]
