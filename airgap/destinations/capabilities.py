"""What a destination can do, as one value the operations ask (decision 0005).

Every store destination (directory, S3, ``memory://``: one engine, ``destinations/engine.py``)
has the default. A server that indexes on its own (quetz, decision 0002) declares what it
cannot do, and the operations read it here rather than ask the backend's type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """The answers the operations need from a destination; the default is a store's."""

    #: publishes the archive's repodata as given (False: the server rebuilds it from the packages)
    keeps_repodata: bool = True
    #: can hold files that are not conda packages (installers, index.html pages)
    holds_other_files: bool = True
    #: keeps airgap's receipt (False: the server's own index is the inventory, e.g. quetz)
    keeps_receipt: bool = True
    #: every channel imported goes to this one channel (a quetz URL names it); None: any channel
    fixed_channel: str | None = None


#: a store's capabilities: everything the engine provides
STORE = Capabilities()
