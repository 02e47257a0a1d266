"""Select what a set of environments needs: the union of their files, checked against upstream.

Given the parsed environments (``lockfiles``), the fetched upstream repodata and the filters:

* the site's policy (every filter but ``pkg_list``/``include``, which limit names and are added
  as one more "environment") decides which records may cross at all;
* a locked file is taken exactly: it must be upstream, in a configured channel and platform,
  with the same sha256 (md5 where the lock has only md5), and no filter may exclude it — the
  site's policy wins and the user is told which rule;
* an ``environment.yml`` is solved with py-rattler, per platform in ``platforms``, against the
  records the policy allows, with the configured virtual packages;
* the selection is the union; each file remembers which environments pulled it.

Every problem is one line naming the environment file, the lock's platform and the file;
all are logged, and the first is raised. Nothing is downloaded here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, UsageError
from ..upstream.channels import Channel, FetchedRepodata
from .filters import Filters, Selection, select_channel
from .lockfiles import Env, EnvSource, LockedEnv, LockedFile, SolveEnv, load
from .repodata import record_hashes
from .virtual_packages import for_platform

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # channel, subdir, filename
NOT_PULLED = "environments: not needed by any environment"


def sources(config: Config) -> list[EnvSource]:
    """The ``environments`` entries of the config (paths resolved when it was loaded)."""
    return [EnvSource(str(e["file"]), str(e.get("label") or e["file"]), tuple(e.get("environments") or ())) for e in config.environments]


def manifest_filters(filters: Filters, pulled: Mapping[Key, Sequence[str]]) -> dict[str, Any]:
    """The filters as the manifest records them, plus the environments the selection was made for."""
    doc = filters.to_json()
    if pulled:
        doc["environments"] = sorted({label for labels in pulled.values() for label in labels})
    return doc


def load_all(srcs: Sequence[EnvSource]) -> list[Env]:
    envs = [env for s in srcs for env in load(s)]
    seen: set[str] = set()
    for env in envs:
        if env.label in seen:
            raise ConfigError(f"environments: expected each environment once, found {env.label} twice")
        seen.add(env.label)
    return envs


def _norm(url: str) -> str:
    parts = urllib.parse.urlsplit(url.rstrip("/") + "/")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


class _Channels:
    """Finds the configured channel a lock's URL or an environment.yml's channel name means."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)
        self.by_url = {_norm(c.url): c for c in channels}

    def known(self) -> str:
        return ", ".join(c.url for c in self.channels)

    def for_url(self, channel_url: str) -> Channel | None:
        hit = self.by_url.get(_norm(channel_url))
        if hit is not None:
            return hit
        name = _norm(channel_url).rstrip("/").rsplit("/", 1)[-1]
        same = [c for c in self.channels if c.name == name]
        return same[0] if len(same) == 1 else None  # the same channel through another host (a proxy)

    def for_name(self, text: str) -> list[Channel]:
        if "://" in text:
            hit = self.for_url(text)
            return [hit] if hit else []
        if text == "defaults":
            return [c for c in self.channels if "/pkgs/" in c.url]
        return [c for c in self.channels if c.name == text.rstrip("/").rsplit("/", 1)[-1]]


def select(
    config: Config, filters: Filters, channels: Sequence[Channel], envs: Sequence[Env], fetched: Mapping[str, Mapping[str, FetchedRepodata]]
) -> tuple[dict[str, dict[str, Selection]], dict[Key, list[str]]]:
    """The selections (per channel and subdir) and, per selected file, the environments that pulled it."""
    policy_filters = dataclasses.replace(filters, pkg_list=(), include=(), with_dependencies=False)
    policy: dict[str, dict[str, Selection]] = {}
    named: dict[str, dict[str, Selection]] = {}
    for ch in channels:
        reps = {s: fr.repodata for s, fr in fetched[ch.name].items()}
        policy[ch.name] = select_channel(reps, policy_filters)
        if filters.pkg_list or filters.include:
            named[ch.name] = select_channel(reps, filters)
    pulled: dict[Key, set[str]] = {}
    problems: list[str] = []
    finder = _Channels(channels)
    with tempfile.TemporaryDirectory(prefix="airgap-envs-") as tmp:
        index = _Index(Path(tmp), fetched, policy)
        for env in envs:
            if isinstance(env, LockedEnv):
                _take_locked(env, finder, filters, fetched, policy, pulled, problems)
            else:
                _solve(env, finder, filters, config, index, pulled, problems)
    if problems:  # the first is the error; the others are logged before it
        for line in problems[1:]:
            log.error("%s", line)
        more = f" (and {len(problems) - 1} more problems, logged above)" if len(problems) > 1 else ""
        raise UsageError(problems[0] + more)
    for cname, subs in named.items():
        for subdir, sel in subs.items():
            for fn in sel.selected:
                pulled.setdefault((cname, subdir, fn), set()).add("pkg_list")
    selections: dict[str, dict[str, Selection]] = {}
    for cname, subs in policy.items():
        selections[cname] = {}
        for subdir, sel in subs.items():
            chosen = sorted(fn for fn in sel.selected if (cname, subdir, fn) in pulled)
            excluded = dict(sel.excluded)
            reason = NOT_PULLED + (" nor in pkg_list" if named else "")
            for fn in sel.selected:
                if (cname, subdir, fn) not in pulled:
                    excluded[fn] = reason
            selections[cname][subdir] = Selection(chosen, excluded)
    return selections, {k: sorted(v) for k, v in sorted(pulled.items())}


def _take_locked(
    env: LockedEnv,
    finder: _Channels,
    filters: Filters,
    fetched: Mapping[str, Mapping[str, FetchedRepodata]],
    policy: Mapping[str, Mapping[str, Selection]],
    pulled: dict[Key, set[str]],
    problems: list[str],
) -> None:
    for platform, files in sorted(env.platforms.items()):
        if platform != "noarch" and platform not in filters.platforms:
            log.warning("%s: its platform %s is skipped: not in platforms (%s)", env.label, platform, ", ".join(filters.platforms))
            continue
        for f in files:
            where = f"{env.label} ({platform}): {f.filename}"
            problem = _check_locked(where, f, finder, fetched, policy)
            if problem is not None:
                problems.append(problem)
                continue
            ch = finder.for_url(f.channel_url)
            assert ch is not None
            pulled.setdefault((ch.name, f.subdir, f.filename), set()).add(env.label)


def _check_locked(
    where: str,
    f: LockedFile,
    finder: _Channels,
    fetched: Mapping[str, Mapping[str, FetchedRepodata]],
    policy: Mapping[str, Mapping[str, Selection]],
) -> str | None:
    ch = finder.for_url(f.channel_url)
    if ch is None:
        return f"{where}: expected its channel among channels ({finder.known()}), found {f.channel_url}; add that channel to the config"
    fr = fetched[ch.name].get(f.subdir)
    if fr is None:
        return f"{where}: expected subdir {f.subdir} among the mirrored platforms, found it missing; add it to platforms"
    record = fr.repodata.get(f.filename)
    if record is None:
        return (
            f"{where}: expected it upstream in {ch.url}{f.subdir}/, found no such file (removed or never there); "
            f"re-lock the environment against the channel as it is now"
        )
    sha, md5, _ = record_hashes(record)
    if f.sha256 and sha:
        if sha != f.sha256:
            return (
                f"{where}: expected sha256 {f.sha256} as locked, found {sha} upstream in {ch.url}{f.subdir}/; "
                f"the file was rebuilt or the lock is damaged: re-lock the environment"
            )
    elif f.md5 and md5:
        if md5 != f.md5:
            return (
                f"{where}: expected md5 {f.md5} as locked, found {md5} upstream in {ch.url}{f.subdir}/; "
                f"the file was rebuilt or the lock is damaged: re-lock the environment"
            )
    else:
        return f"{where}: expected a sha256 or md5 both in the lock and upstream to compare, found none in common"
    reason = policy[ch.name][f.subdir].excluded.get(f.filename)
    if reason is not None:
        return (
            f"{where}: locked, but excluded by the site's filters ({reason}); the filters win: "
            f"change the environment, or the filter (e.g. whitelist it)"
        )
    return None


class _Index:
    """Throw-away channels holding the records the policy allows, each written once (when a solve first
    needs it) and read through one gateway by every environment.yml solve of the export."""

    def __init__(
        self, root: Path, fetched: Mapping[str, Mapping[str, FetchedRepodata]], policy: Mapping[str, Mapping[str, Selection]]
    ) -> None:
        self.root, self.fetched, self.policy = root, fetched, policy
        self.urls: dict[str, str] = {}
        self._gateway: Any = None

    def url(self, channel: Channel) -> str:
        if channel.name not in self.urls:
            for subdir, sel in self.policy[channel.name].items():
                d = self.root / "c" / channel.name / subdir
                d.mkdir(parents=True)
                doc = self.fetched[channel.name][subdir].repodata.subset(set(sel.selected)).to_document()
                (d / "repodata.json").write_text(json.dumps(doc))
            self.urls[channel.name] = (self.root / "c" / channel.name).as_uri()
        return self.urls[channel.name]

    def gateway(self) -> Any:
        if self._gateway is None:
            import rattler

            self._gateway = rattler.Gateway(cache_dir=self.root / "cache")
        return self._gateway

    def key(self, url: str) -> Key:
        """The (channel, subdir, filename) a solved record's URL points at."""
        from urllib.request import url2pathname  # lazily: it imports http.client and ssl

        parts = Path(url2pathname(urllib.parse.urlsplit(url).path)).relative_to(self.root / "c").parts
        return parts[0], parts[1], parts[2]


def _solve(
    env: SolveEnv,
    finder: _Channels,
    filters: Filters,
    config: Config,
    index: _Index,
    pulled: dict[Key, set[str]],
    problems: list[str],
) -> None:
    import rattler

    chosen: list[Channel] = []
    for text in env.channels or [c.name for c in finder.channels]:
        hits = finder.for_name(text)
        if not hits:
            problems.append(
                f"{env.label}: channel {text}: expected one of the configured channels ({finder.known()}), "
                f"found none by that name or URL; add it to channels"
            )
        chosen.extend(h for h in hits if h not in chosen)
    if not chosen:
        return
    specs = [s.split("::", 1)[1] if "::" in s.split(" ", 1)[0] else s for s in env.specs]
    platforms = [p for p in filters.platforms if not env.platforms or p in env.platforms]
    if not platforms:
        log.warning(
            "%s: nothing to solve: its platforms (%s) are not in platforms (%s)",
            env.label,
            ", ".join(env.platforms),
            ", ".join(filters.platforms),
        )
    import asyncio  # lazily, with rattler: only environments solve

    sources = [rattler.Channel(index.url(c)) for c in chosen]
    for platform in platforms:
        try:
            records = asyncio.run(
                rattler.solve(
                    sources=sources,
                    specs=specs,
                    gateway=index.gateway(),
                    platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                    virtual_packages=for_platform(platform, config.virtual_packages),
                )
            )
        except Exception as exc:  # rattler's solver error carries the explanation
            problems.append(
                f"{env.label} ({platform}): expected to solve against the filtered upstream records, "
                f"found: {' '.join(str(exc).split())}; widen the filters or change the environment"
            )
            continue
        for r in records:
            pulled.setdefault(index.key(r.url), set()).add(env.label)
