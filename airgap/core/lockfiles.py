"""Read the files that describe a project's environments: what each one asks for.

Four kinds, told apart by their content:

* ``environment.yml`` (``channels`` + ``dependencies``): specs to solve later, per platform;
* explicit spec files (``@EXPLICIT``, one URL a line with ``#md5`` or ``#sha256``);
* ``conda-lock.yml`` (version 1);
* ``pixi.lock`` (read with py-rattler's ``LockFile``): every environment, or the ones named.

Locked files come out as :class:`LockedFile` values (URL, subdir, filename, hashes), exactly as
the lock says; nothing here looks at upstream, solves or downloads (see ``environments``).
PyPI packages in a lock cannot travel in a conda channel: they are counted and skipped.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvSource:
    """One entry of ``environments:`` (or one ``--env``): a file, and for pixi.lock the environments to take."""

    file: str  # resolved path
    label: str  # as the user wrote it: names the environment in the plan and in errors
    names: tuple[str, ...] = ()  # pixi.lock environments; empty: every one


@dataclass(frozen=True)
class LockedFile:
    url: str
    subdir: str
    filename: str
    sha256: str | None
    md5: str | None

    @property
    def channel_url(self) -> str:
        """The channel root the URL names (``.../conda-forge/``), with a trailing slash."""
        return self.url.rsplit("/", 2)[0] + "/"


@dataclass(frozen=True)
class LockedEnv:
    """A lock (or one environment of a pixi.lock): the files it pins, per platform."""

    label: str
    file: str
    platforms: Mapping[str, tuple[LockedFile, ...]]  # the lock's platform -> its files (noarch ones too)


@dataclass(frozen=True)
class SolveEnv:
    """An environment.yml: specs to solve on each platform against the named channels."""

    label: str
    file: str
    channels: tuple[str, ...]  # names or URLs, in priority order; empty: every configured channel
    specs: tuple[str, ...]
    platforms: tuple[str, ...] = ()  # the file's own ``platforms`` (conda-lock's extension); empty: all
    skipped: tuple[str, ...] = field(default=())  # pip dependencies, which a conda mirror cannot carry


Env = LockedEnv | SolveEnv


def check_config(path: str, value: Any) -> tuple[dict[str, Any], ...]:
    """The ``environments`` config value: paths, or ``{file: PATH, environments: [NAME, ...]}``."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of files (environment.yml, pixi.lock, conda-lock.yml, explicit specs), found {value!r}")
    out = []
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"file": item}
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            raise ConfigError(f"{p}: expected a path or a mapping {{file: PATH, environments: [NAME, ...]}}, found {item!r}")
        unknown = set(item) - {"file", "environments"}
        if unknown:
            raise ConfigError(f"{p}: unknown key {sorted(unknown)[0]!r}; expected file, environments")
        names = item.get("environments") or []
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{p}.environments: expected a list of environment names, found {names!r}")
        out.append({"file": item["file"], "environments": list(names)})
    return tuple(out)


def source_from_option(text: str) -> EnvSource:
    """``--env FILE`` or ``--env FILE:NAME[,NAME]`` (a pixi.lock's environments), relative to here."""
    path = text
    names: tuple[str, ...] = ()
    if not os.path.exists(text) and ":" in text:
        head, _, tail = text.rpartition(":")
        if os.path.exists(head):
            path, names = head, tuple(n for n in tail.split(",") if n)
    return EnvSource(os.path.abspath(os.path.expanduser(path)), path, names)


def load(source: EnvSource) -> list[Env]:
    """Parse one file into the environments it describes."""
    try:
        text = Path(source.file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"environments: {source.label}: expected an environment or lock file, found nothing at {source.file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"environments: {source.label}: cannot read it: {exc}") from None
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first == "@EXPLICIT":
        _no_names(source, "an explicit spec file")
        return [_explicit(source, text)]
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"environments: {source.label}: expected YAML (environment.yml, pixi.lock, conda-lock.yml) or @EXPLICIT, cannot parse it: {exc}"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("version"), int) and "environments" in doc:
        return _pixi(source)
    if isinstance(doc, dict) and doc.get("version") == 1 and isinstance(doc.get("package"), list):
        _no_names(source, "a conda-lock file")
        return [_conda_lock(source, doc)]
    if isinstance(doc, dict) and isinstance(doc.get("dependencies"), list):
        _no_names(source, "an environment.yml")
        return [_environment_yml(source, doc)]
    raise ConfigError(
        f"environments: {source.label}: expected an environment.yml (dependencies), a pixi.lock, "
        f"a conda-lock.yml (version 1) or an @EXPLICIT spec file, found none of these"
    )


def _no_names(source: EnvSource, kind: str) -> None:
    if source.names:
        raise ConfigError(
            f"environments: {source.label}: environment names ({', '.join(source.names)}) apply to a pixi.lock; this is {kind}"
        )


def _locked(where: str, url: str, sha256: str | None, md5: str | None, subdir: str | None = None) -> LockedFile:
    parts = urllib.parse.urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    if parts.scheme not in ("http", "https", "file") or len(segments) < 3 or not segments[-1].endswith((".conda", ".tar.bz2")):
        raise ConfigError(f"{where}: expected a package URL such as https://HOST/CHANNEL/SUBDIR/NAME.conda, found {url!r}")
    filename = urllib.parse.unquote(segments[-1])
    return LockedFile(url, subdir or segments[-2], filename, sha256.lower() if sha256 else None, md5.lower() if md5 else None)


_HEX = re.compile(r"(?:(sha256|md5):)?([0-9a-fA-F]+)")


def _explicit(source: EnvSource, text: str) -> LockedEnv:
    from rattler.explicit_environment import ExplicitEnvironmentSpec

    try:
        spec = ExplicitEnvironmentSpec.from_str(text)
    except Exception as exc:
        raise ConfigError(f"environments: {source.label}: expected an explicit spec file, cannot parse it: {exc}") from None
    declared = str(spec.platform) if spec.platform is not None else None
    by_platform: dict[str, list[LockedFile]] = {}
    for entry in spec.packages:
        url, _, fragment = entry.url.partition("#")
        m = _HEX.fullmatch(fragment)
        kind = (m.group(1) or {32: "md5", 64: "sha256"}.get(len(m.group(2)))) if m else None
        if m is None or kind is None or len(m.group(2)) != (64 if kind == "sha256" else 32):
            raise ConfigError(
                f"environments: {source.label}: {url.rsplit('/', 1)[-1]}: expected #<md5> or #sha256:<hex> after the URL, "
                f"found {('#' + fragment) if fragment else 'no hash'}; export it with conda list --explicit --md5 (or --sha256)"
            )
        locked = _locked(
            f"environments: {source.label}", url, m.group(2) if kind == "sha256" else None, m.group(2) if kind == "md5" else None
        )
        platform = declared or (locked.subdir if locked.subdir != "noarch" else "noarch")
        by_platform.setdefault(platform, []).append(locked)
    if "noarch" in by_platform and len(by_platform) > 1:  # no '# platform:' line: noarch files go with the others
        noarch = by_platform.pop("noarch")
        for files in by_platform.values():
            files.extend(noarch)
    return LockedEnv(source.label, source.file, {p: tuple(f) for p, f in by_platform.items()})


def _conda_lock(source: EnvSource, doc: Mapping[str, Any]) -> LockedEnv:
    by_platform: dict[str, list[LockedFile]] = {}
    pip = 0
    for i, pkg in enumerate(doc["package"]):
        where = f"environments: {source.label}: package[{i}]"
        if not isinstance(pkg, dict):
            raise ConfigError(f"{where}: expected a mapping (name, url, hash, platform, manager), found {pkg!r}")
        if pkg.get("manager", "conda") != "conda":
            pip += 1
            continue
        hashes: dict[str, Any] = pkg["hash"] if isinstance(pkg.get("hash"), dict) else {}
        url, platform = pkg.get("url"), pkg.get("platform")
        if not isinstance(url, str) or not isinstance(platform, str):
            raise ConfigError(f"{where}: expected 'url' and 'platform', found {sorted(pkg)}")
        by_platform.setdefault(platform, []).append(_locked(where, url, hashes.get("sha256"), hashes.get("md5")))
    if pip:
        log.warning("%s: %d pip packages skipped: a conda mirror carries conda packages only", source.label, pip)
    return LockedEnv(source.label, source.file, {p: tuple(f) for p, f in by_platform.items()})


def _pixi(source: EnvSource) -> list[Env]:
    import rattler

    try:
        lock = rattler.LockFile.from_path(Path(source.file))
    except Exception as exc:
        raise ConfigError(f"environments: {source.label}: expected a pixi.lock py-rattler can read, cannot parse it: {exc}") from None
    envs = dict(lock.environments())
    for name in source.names:
        if name not in envs:
            raise ConfigError(
                f"environments: {source.label}: expected an environment named {name!r}, found {', '.join(sorted(envs)) or 'none'}"
            )
    out: list[Env] = []
    for name in source.names or tuple(sorted(envs)):
        skipped = 0
        by_platform: dict[str, list[LockedFile]] = {}
        for platform, packages in envs[name].packages_by_platform().items():
            files = by_platform.setdefault(str(platform.subdir), [])
            for pkg in packages:
                if not isinstance(pkg, rattler.CondaLockedBinaryPackage):
                    skipped += 1
                    continue
                hashes = pkg.hashes
                sha = hashes.sha256.hex() if hashes is not None and hashes.sha256 else None
                md5 = hashes.md5.hex() if hashes is not None and hashes.md5 else None
                record = pkg.package_record
                files.append(
                    _locked(f"environments: {source.label}#{name}", pkg.location, sha, md5, record.subdir if record is not None else None)
                )
        if skipped:
            log.warning(
                "%s#%s: %d PyPI or source packages skipped: a conda mirror carries conda packages only", source.label, name, skipped
            )
        out.append(LockedEnv(f"{source.label}#{name}", source.file, {p: tuple(f) for p, f in by_platform.items()}))
    return out


def _environment_yml(source: EnvSource, doc: Mapping[str, Any]) -> SolveEnv:
    where = f"environments: {source.label}"
    channels = doc.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ConfigError(f"{where}: channels: expected a list of channel names or URLs, found {channels!r}")
    specs: list[str] = []
    skipped: list[str] = []
    for i, dep in enumerate(doc["dependencies"]):
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            skipped.extend(str(d) for d in dep["pip"] or [])
            continue
        if not isinstance(dep, str):
            raise ConfigError(f"{where}: dependencies[{i}]: expected a match spec such as 'numpy >=1.26', found {dep!r}")
        specs.append(dep)
    platforms = doc.get("platforms") or []
    if not isinstance(platforms, list):
        raise ConfigError(f"{where}: platforms: expected a list such as [linux-64, osx-arm64], found {platforms!r}")
    if skipped:
        log.warning("%s: %d pip dependencies skipped: a conda mirror carries conda packages only", source.label, len(skipped))
    return SolveEnv(
        source.label,
        source.file,
        tuple(c for c in channels if c != "nodefaults"),
        tuple(specs),
        tuple(str(p) for p in platforms),
        tuple(skipped),
    )
