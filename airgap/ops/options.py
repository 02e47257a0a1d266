"""What each operation is asked to do: one frozen options object per command, built once.

The command line parses its flags, builds one of these (``*.from_config`` applies the rules
that combine flags with the configuration: which key signs, where a delta's base is, how big a
volume is, which channels a clean may touch) and hands it to one ``ops.run_*`` call. Tests
and other callers build them directly. Nothing here prints; a bad combination raises
:class:`UsageError` with the message the user sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, parse_size
from ..errors import UsageError

if TYPE_CHECKING:  # not imported at run time: `airgap --help` stays quick
    from ..core.filters import Filters
    from ..destinations.base import Destination
    from ..signing import Signer, TrustedKeys

#: seconds to wait for another import (or clean, or recording verify) to release the destination
LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class PlanOptions:
    """``export --plan``: compute the selection, write nothing but an optional review page."""

    installable: tuple[str, ...] = ()  # specs to solve (empty: the config's installable)
    allow_unsolvable: bool = False
    media_size: int | None = None  # compare the total with a medium of this many bytes
    html: Path | None = None  # write the review page of the transfer here
    signing_key: Path | None = None  # the key whose id the page names as the signer
    since: Path | None = None  # the receipt the page compares with

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        archive: str | None,
        check_specs: tuple[str, ...],
        allow_unsolvable: bool,
        media_size: str | None,
        html: str | None,
        sign_key: str | None,
        unsigned: bool,
        since: str | None,
    ) -> PlanOptions:
        if archive:
            raise UsageError(
                f"--plan: expected no ARCHIVE (a plan writes nothing), found {archive!r}; "
                f"to check several specs, repeat --check-installable SPEC"
            )
        media = parse_size(media_size, "--media-size") if media_size else None
        key = sign_key or (None if unsigned else config.signing_key)
        return cls(
            installable=(*check_specs, *config.installable),
            allow_unsolvable=allow_unsolvable,
            media_size=media,
            html=Path(html) if html else None,
            signing_key=Path(key) if key else None,
            since=Path(since) if since else None,
        )


@dataclass(frozen=True)
class ExportOptions:
    """``export``: the archive to write, who signs it, and what shape it takes."""

    archive: Path
    signer: Signer | None  # None: an unsigned archive, on purpose
    installable: tuple[str, ...] = ()  # specs to solve before downloading (empty: the config's installable)
    allow_unsolvable: bool = False
    volume_size: int | None = None  # split into volumes of at most this many bytes
    since: Path | None = None  # a destination's receipt: write a delta against it
    sbom: bool = True  # put a signed SBOM into the archive

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        archive: str | None,
        sign_key: str | None,
        unsigned: bool,
        since: str | None,
        volume_size: str | None,
        media_size: str | None,
        html: str | None,
        check_specs: tuple[str, ...],
        allow_unsolvable: bool,
        sbom: bool,
    ) -> ExportOptions:
        """The signing, delta and volume rules: flags first, then the config."""
        from ..signing import load_signer

        if media_size:
            raise UsageError("--media-size: expected together with --plan (to split an archive, use --volume-size)")
        if html:
            raise UsageError("--html: expected together with --plan (for an archive, use airgap inspect ARCHIVE --html FILE)")
        volumes = parse_size(volume_size, "--volume-size") if volume_size else config.volume_size
        if since is None and config.delta:
            if not config.delta_dir:
                raise UsageError("delta: expected delta_dir too (the folder holding the destination's receipt.json), found none")
            since = str(Path(config.delta_dir) / "receipt.json")
        if not archive:
            raise UsageError("expected ARCHIVE, the file to write (or --plan to only compute the selection)")
        key = sign_key or config.signing_key
        if unsigned and sign_key:
            raise UsageError("--unsigned and --sign-key: expected one of them, found both")
        if not key and not unsigned:
            raise UsageError(
                "expected --sign-key KEY (or signing_key in the config), found neither; use --unsigned to write an unsigned archive on purpose"
            )
        return cls(
            archive=Path(archive),
            signer=None if unsigned or key is None else load_signer(key),
            installable=(*check_specs, *config.installable),
            allow_unsolvable=allow_unsolvable,
            volume_size=volumes,
            since=Path(since) if since else None,
            sbom=sbom,
        )


@dataclass(frozen=True)
class ImportOptions:
    """``import``: where the archive's channels go and what the import may do."""

    dest_channel: str | None = None  # merge every channel into this one
    channel_map: Mapping[str, str] = field(default_factory=dict)  # source channel -> destination channel
    allow_unsigned: bool = False
    allow_downgrade: bool = False
    lock_timeout: float = LOCK_TIMEOUT
    public_url: str | None = None  # write DEST/downloads/ for clients reaching the mirror here

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        dest_channel: str | None,
        public_url: str | None,
        allow_unsigned: bool,
        allow_downgrade: bool,
        lock_timeout: float,
    ) -> ImportOptions:
        return cls(
            dest_channel=checked_dest_channel(dest_channel, config),
            channel_map=config.channel_map,
            allow_unsigned=allow_unsigned,
            allow_downgrade=allow_downgrade,
            lock_timeout=lock_timeout,
            public_url=public_url or config.public_url,
        )


@dataclass(frozen=True)
class SyncOptions:
    """``sync`` (and ``import`` of file:// trees): publish the selection straight into a destination."""

    dest_channel: str | None = None
    reset: bool = False  # trust no receipt: re-check every file by hash, remove nothing
    allow_downgrade: bool = False
    lock_timeout: float = LOCK_TIMEOUT
    public_url: str | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        dest_channel: str | None,
        public_url: str | None,
        allow_downgrade: bool,
        lock_timeout: float,
        reset: bool = False,
    ) -> SyncOptions:
        return cls(
            dest_channel=checked_dest_channel(dest_channel, config),
            reset=reset,
            allow_downgrade=allow_downgrade,
            lock_timeout=lock_timeout,
            public_url=public_url or config.public_url,
        )


@dataclass(frozen=True)
class CleanOptions:
    """``clean``: the filters a destination's records are judged by, and which channels to touch."""

    filters: Filters
    dry_run: bool = False
    lock_timeout: float = LOCK_TIMEOUT
    channels: frozenset[str] | None = None  # clean only these destination channels; None: all
    shard_grace_days: float = 7.0  # how long a CEP-16 shard no index names is kept (airgap/shards_gc.py)

    @classmethod
    def from_config(cls, config: Config, *, dest_channel: str | None, dry_run: bool, lock_timeout: float) -> CleanOptions:
        from ..core.channel_map import destination_channels
        from .export import filters_from_config, resolve_channels

        scope = destination_channels(config.channel_map, checked_dest_channel(dest_channel, config), resolve_channels(config))
        return cls(
            filters_from_config(config), dry_run, lock_timeout, frozenset(scope) if scope is not None else None, config.shard_grace_days
        )


@dataclass(frozen=True)
class VerifyDestinationOptions:
    """``verify --into``: re-hash every file a destination's indexes list."""

    record_findings: bool = True  # record the damage found in the receipt (under the lock)
    lock_timeout: float = LOCK_TIMEOUT
    workers: int | None = None


def checked_dest_channel(option: str | None, config: Config) -> str | None:
    """``--dest-channel`` (else the config's): one safe path component, or None."""
    from ..core.manifest import is_safe_channel_name

    channel = option or config.dest_channel
    if channel is not None and not is_safe_channel_name(channel):
        raise UsageError(f"dest_channel: expected one path component of letters, digits, . _ + -, found {channel!r}")
    return channel


def trusted_keys_for(keys: tuple[str, ...], config: Config) -> TrustedKeys:
    """The keys ``--trusted-key`` names, and the config's."""
    from ..signing import load_trusted_keys

    return load_trusted_keys(list(keys) + list(config.trusted_keys))


def with_environments(config: Config, env_files: tuple[str, ...]) -> Config:
    """The config with the environments ``--env`` names added to those it lists."""
    from ..core.lockfiles import source_from_option

    added = tuple({"file": s.file, "label": s.label, "environments": list(s.names)} for s in map(source_from_option, env_files))
    return dataclasses.replace(config, environments=config.environments + added) if added else config


def destination_from(into: str | None, config: Config) -> Destination:
    """The destination ``--into`` names (a path or URL; a site name too), else the config's ``into`` / ``dest_site``."""
    from ..destinations import open_destination

    site = None
    if into and "://" not in into and into in config.sites and not Path(into).exists():
        site = config.sites[into]  # --into NAME picks a site of the config
        into = str(site["url"])
    elif not into and not config.into:
        site = config.site()
    dest = into or config.destination()
    if not dest:
        raise UsageError(
            "expected a destination: --into DIR|s3://BUCKET/PREFIX|quetz+http://HOST:PORT/CHANNEL, or into / dest_site in the config; found none"
        )
    return open_destination(dest, site)
