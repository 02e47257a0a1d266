"""The plan of a transfer: what an export (or sync) would carry, decided before any package is downloaded.

``make_plan`` fetches every channel's repodata and runs the filters (or the environments'
solves); ``check_installable`` solves the requested specs against the selection;
``run_plan`` is ``export --plan``: the plan, its fit on a medium, and optionally its review page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..clock import Clock
from ..config import Config
from ..core import environments, installable
from ..core.filters import Filters, Selection, select_channel
from ..core.installable import SolveOutcome
from ..core.repodata import record_hashes
from ..errors import UnsolvableError, UpstreamError
from ..progress import Progress, null_progress
from ..redact import redact
from ..upstream.cache import Expected
from ..upstream.channels import Channel, FetchedRepodata, package_url
from ..upstream.fetch import Fetcher
from ..upstream.upstream_shards import check_upstream, fetch_upstream
from .options import PlanOptions
from .output_check import human
from .sources import InstallerWant, fetcher_for, filters_from_config, installer_wants, resolve_channels

log = logging.getLogger(__name__)


class Want(NamedTuple):
    """One package file the plan selects: where it comes from and the hashes it must have.

    A tuple (a plan holds one per selected record: 300,000 for a conda-forge subdir); the URL
    is made when asked for (only downloads ask), from the folder the packages are under."""

    channel: str
    subdir: str
    filename: str
    base: str  # the URL of the folder the file is in (FetchedRepodata.packages_base), ends with "/"
    sha256: str | None
    md5: str | None
    size: int | None

    @property
    def url(self) -> str:
        return package_url(self.base, self.filename)

    @property
    def expected(self) -> Expected:
        return Expected(self.sha256, self.md5, self.size)


@dataclass
class Plan:
    """What an export would carry: the selection, before any package is downloaded."""

    channels: list[Channel]
    fetched: dict[str, dict[str, FetchedRepodata]]
    selections: dict[str, dict[str, Selection]]  # channel -> subdir -> selection
    wants: list[Want]
    installers: list[InstallerWant] = field(default_factory=list)
    installability: list[SolveOutcome] = field(default_factory=list)
    pulled_by: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)  # file -> environments that need it

    @property
    def total_bytes(self) -> int:
        return sum(w.size or 0 for w in self.wants)

    def to_json(self) -> dict[str, Any]:
        packages: list[dict[str, Any]] = [
            {"channel": w.channel, "subdir": w.subdir, "filename": w.filename, "size": w.size, "sha256": w.sha256} for w in self.wants
        ]
        if self.pulled_by:
            for p, w in zip(packages, self.wants, strict=True):
                p["environments"] = self.pulled_by.get((w.channel, w.subdir, w.filename), [])
        excluded = [
            {"channel": c, "subdir": s, "filename": fn, "reason": reason}
            for c, subs in self.selections.items()
            for s, sel in subs.items()
            for fn, reason in sorted(sel.excluded.items())
        ]
        doc: dict[str, Any] = {"packages": packages, "excluded": excluded, "total_bytes": self.total_bytes}
        if self.installers:
            doc["installers"] = [{"dir": i.dir, "filename": i.filename, "url": redact(i.url), "sha256": i.sha256} for i in self.installers]
        if self.installability:
            doc["installable"] = [o.to_json() for o in self.installability]
        return doc

    def summary(self) -> PlanSummary:
        """Counts and bytes per channel/subdir, and exclusions counted by rule."""
        per: dict[str, dict[str, SubdirTotal]] = {}
        for w in self.wants:
            subs = per.setdefault(w.channel, {})
            slot = subs.get(w.subdir, SubdirTotal(0, 0))
            subs[w.subdir] = SubdirTotal(slot.packages + 1, slot.bytes + (w.size or 0))
        rules: dict[str, int] = {}
        for chosen in self.selections.values():
            for sel in chosen.values():
                for reason in sel.excluded.values():
                    rule = reason.split(":", 1)[0]
                    rules[rule] = rules.get(rule, 0) + 1
        pulled = {f"{w.channel}/{w.subdir}/{w.filename}": self.pulled_by.get((w.channel, w.subdir, w.filename), []) for w in self.wants}
        return PlanSummary(
            channels=per,
            excluded_by_rule=dict(sorted(rules.items(), key=lambda kv: -kv[1])),
            packages=len(self.wants),
            total_bytes=self.total_bytes,
            environments=pulled if self.pulled_by else {},
            installability=tuple(self.installability),
        )


@dataclass(frozen=True)
class SubdirTotal:
    packages: int
    bytes: int


@dataclass(frozen=True)
class PlanSummary:
    """A plan in numbers, as ``export --plan`` prints it."""

    channels: dict[str, dict[str, SubdirTotal]]  # channel -> subdir -> what it carries
    excluded_by_rule: dict[str, int]  # rule -> records it excluded, most first
    packages: int
    total_bytes: int
    environments: dict[str, list[str]]  # channel/subdir/file -> the environments that need it (with environments)
    installability: tuple[SolveOutcome, ...]


def make_plan(config: Config, filters: Filters, fetcher: Fetcher, progress: Progress = null_progress) -> Plan:
    """Fetch every channel's repodata and decide what crosses; no package is downloaded."""
    channels = resolve_channels(config)
    installers = installer_wants(config, fetcher)  # before any repodata: a config mistake fails fast
    envs = environments.load_all(environments.sources(config)) if config.environments else []
    subdirs = filters.subdirs()
    fetched: dict[str, dict[str, FetchedRepodata]] = {}
    selections: dict[str, dict[str, Selection]] = {}
    bar = progress("repodata", len(channels) * len(subdirs), unit="subdir")
    for ch in channels:
        fetched[ch.name] = fetch_upstream(config, filters, fetcher, ch, subdirs)  # only the shards the filters need, when it can
        bar.update(len(subdirs))
        if not envs:
            selections[ch.name] = select_channel({s: fr.repodata for s, fr in fetched[ch.name].items()}, filters)
    bar.close()
    pulled: dict[tuple[str, str, str], list[str]] = {}
    if envs:  # the union of what the environments need (and pkg_list), each file with who pulled it
        selections, pulled = environments.select(config, filters, channels, envs, fetched)
    for cname, subs in selections.items():  # upstream's CEP-16 shards against its repodata.json (conda/infrastructure#1326)
        check_upstream(config, fetcher, fetched[cname], subs)
    wants: list[Want] = []
    for cname, subs in selections.items():
        for subdir, sel in subs.items():
            fr = fetched[cname][subdir]
            wants.extend(_wants(cname, subdir, fr, sel.selected))
    return Plan(channels, fetched, selections, wants, installers, pulled_by=pulled)


def _wants(channel: str, subdir: str, fr: FetchedRepodata, selected: list[str]) -> Iterator[Want]:
    """A :class:`Want` per selected file: the least work per record (a plan makes one per selected record).

    The common record (lower-case hex sha256 and md5, a size) is read inline and its tuple made by
    ``tuple.__new__`` (a NamedTuple's own ``__new__`` is a Python call per record); any other record
    goes through :func:`record_hashes`, which says what it holds."""
    base = fr.packages_base
    tar_bz2, conda = fr.repodata.packages, fr.repodata.packages_conda
    new, str_, int_ = tuple.__new__, str, int
    for filename in selected:
        rec = (conda if filename.endswith(".conda") else tar_bz2)[filename]
        sha, md5, size = rec.get("sha256"), rec.get("md5"), rec.get("size")
        if (
            type(sha) is str_
            and len(sha) == 64
            and type(md5) is str_
            and len(md5) == 32
            and type(size) is int_
            and size >= 0
            and sha.islower()
            and md5.islower()
        ):
            yield new(Want, (channel, subdir, filename, base, sha, md5, size))
            continue
        sha, md5, size = record_hashes(rec)
        if sha is None and md5 is None:
            raise UpstreamError(f"{fr.url}: {filename}: expected a sha256 or md5 in its record, found neither; cannot verify it")
        yield Want(channel, subdir, filename, base, sha, md5, size)


def check_installable(
    plan: Plan,
    filters: Filters,
    specs: list[str],
    allow_unsolvable: bool = False,
    virtual_packages: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """Solve ``specs`` against the plan's records, per platform × python; raise if one fails."""
    if not specs:
        return
    selected = {
        c: {s: plan.fetched[c][s].repodata.subset(set(sel.selected)) for s, sel in subs.items()} for c, subs in plan.selections.items()
    }
    plan.installability = installable.check(selected, specs, list(filters.platforms), list(filters.python_versions), virtual_packages)
    failed = [o for o in plan.installability if not o.ok]
    for o in failed:  # the solver's explanation is a tree: keep its lines
        explanation = "\n".join("    " + line for line in o.message.splitlines() if line.strip())
        log.error("not installable on %s%s; the solver says:\n%s", o.platform, f" with python {o.python}" if o.python else "", explanation)
    if failed and not allow_unsolvable:
        first = failed[0]
        where = f"{first.platform}" + (f" with python {first.python}" if first.python else "")
        raise UnsolvableError(
            f"{', '.join(specs)}: expected to be installable from the selection, but {len(failed)} of "
            f"{len(plan.installability)} solves failed (first: {where}, explained above); widen the filters, "
            f"set with_dependencies, or pass --allow-unsolvable"
        )


def select(config: Config, options: PlanOptions, *, fetcher: Fetcher | None = None, progress: Progress = null_progress) -> Plan:
    """The plan, with the installability of ``options.installable`` (else the config's) checked."""
    filters = filters_from_config(config)
    with fetcher_for(config, fetcher) as f:
        plan = make_plan(config, filters, f, progress)
    check_installable(plan, filters, list(options.installable or config.installable), options.allow_unsolvable, config.virtual_packages)
    return plan


@dataclass
class PlanReport:
    """``export --plan``: the plan, and how it compares with a medium."""

    plan: Plan
    media_size: int | None = None

    @property
    def too_big(self) -> str | None:
        """The failure to report when the selection does not fit the medium."""
        total = self.plan.total_bytes
        if self.media_size is None or total <= self.media_size:
            return None
        return f"--media-size: expected the selection to fit in {human(self.media_size)}, found {human(total)}"

    def to_json(self) -> dict[str, Any]:
        doc = self.plan.to_json()
        if self.media_size is not None:
            doc["media_size"] = self.media_size
            doc["fits"] = self.too_big is None
        return doc


def run_plan(
    config: Config,
    options: PlanOptions | None = None,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress = null_progress,
    clock: Clock = time.time,
) -> PlanReport:
    """Compute the selection (nothing downloaded), and write its review page if asked."""
    options = options or PlanOptions()
    plan = select(config, options, fetcher=fetcher, progress=progress)
    if options.html is not None:
        from ..signing import load_signer
        from .review import plan_page

        signer = load_signer(options.signing_key).keyid if options.signing_key is not None else None
        plan_page(plan, config, options.html, signer, options.since, clock)
    return PlanReport(plan, options.media_size)
