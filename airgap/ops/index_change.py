"""What an import changes in each subdir's index, so that formats write only that (CEP-16: the changed names' shards).

Used by :mod:`.publish`: for a subdir whose current index is the one airgap published last
(:mod:`airgap.core.published`), the next index differs in the package names whose records the
archive brought or removed; every other name's records are the very objects of the current index
(merging shares them), so comparing by identity finds the change without comparing records.
Then it notes in the receipt what each publish wrote.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Set as AbstractSet

from ..core import published, rawindex
from ..core.receipt import Receipt
from ..core.repodata import Repodata
from ..core.shards import package_name
from ..destinations.base import Change, IndexChange
from ..site import names_file
from ..site.html import Row
from .import_plan import ImportPlan


def changed_names(old: Repodata, new: Repodata, files: AbstractSet[str] | None = None) -> frozenset[str]:
    """The package names whose records (or ``removed`` entries) differ between ``old`` and ``new``: of the record
    before and after (a file whose record moved to another name changes both). ``files``: every file name whose
    record may differ (an import knows them: what it brought and removed); None: look at every file."""
    names: set[str] = set()
    for new_sec, old_sec in ((new.packages, old.packages), (new.packages_conda, old.packages_conda)):
        every = itertools.chain(new_sec, (f for f in old_sec if f not in new_sec))
        for filename in files if files is not None else every:  # by what is stored: bytes are not decoded (core/rawindex.py)
            before, after = rawindex.entry(old_sec, filename), rawindex.entry(new_sec, filename)
            if before is not after:
                if after is not None:
                    names.add(package_name(filename, new_sec[filename]))
                if before is not None:
                    names.add(package_name(filename, rawindex.head(old_sec, filename)))
    for filename in set(new.removed) ^ set(old.removed):
        names.add(package_name(filename, {}))
    return frozenset(names)


class IndexPublisher:
    """Publishes a change's indexes, each with what changed since the last one published there, and records them."""

    def __init__(self, change: Change, plan: ImportPlan, receipt: Receipt, pages: bool = False) -> None:
        """``pages``: the destination holds pages: each index's names table is made and kept (:mod:`airgap.site.names_file`)."""
        self.change, self.plan, self.receipt, self.pages = change, plan, receipt, pages
        self._last: dict[tuple[str, str], tuple[Repodata, dict[str, str]]] = {}
        self._files: dict[tuple[str, str], frozenset[str] | None] = {}  # what each publish was told it touched
        self.rows: dict[tuple[str, str], dict[str, Row]] = {}  # each published index's names table, for the pages

    def publish(self, channel: str, subdir: str, repodata: Repodata, touched: AbstractSet[str] | None = None) -> None:
        """``touched``: every file name whose record may differ from the index published before (None: not known)."""
        key = (channel, subdir)
        now = frozenset(touched) if touched is not None else None
        since: IndexChange | None = None
        if key in self._last or self.plan.trusted(channel, subdir):
            old, recorded = self._last.get(key) or (self.plan.index(channel, subdir), published.recorded(self.receipt, channel, subdir))
            if old is not None and recorded:
                known = now
                if key in self._last:  # against the interim index: what that one dropped differs too
                    before = self._files.get(key)
                    known = known | before if known is not None and before is not None else None
                since = IndexChange(changed_names(old, repodata, known), recorded, known)
        self.change.publish_index(channel, subdir, repodata, since)
        files = self.change.published_files(channel, subdir)
        if self.pages:
            self._keep_rows(key, repodata, files, self.rows.get(key) if key in self._last else self.plan.rows(channel, subdir), since)
        self._last[key] = (repodata, files)
        self._files[key] = now
        published.record(self.receipt, channel, subdir, files)

    def _keep_rows(
        self, key: tuple[str, str], repodata: Repodata, files: dict[str, str], before: dict[str, Row] | None, since: IndexChange | None
    ) -> None:
        """The new index's names table: the changed names' rows made anew when the old table is known, else every row;
        kept beside the index, its sha256 in ``files`` (what the receipt records), when ``files`` names the index."""
        if before is not None and since is not None and since.files is not None:
            rows = names_file.changed_rows(before, repodata, since.names, since.files)
        else:
            rows = names_file.every_row(repodata)
        self.rows[key] = rows
        index_sha256 = files.get("repodata.json")
        data = names_file.render(rows, repodata, index_sha256) if index_sha256 is not None else None
        if data is not None and self.change.put_document(names_file.document(*key), data) is not None:
            files[names_file.KEY] = hashlib.sha256(data).hexdigest()
