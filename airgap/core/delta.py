"""What a delta export builds on: a destination's receipt, read for the channels being exported.

Pure. The receipt says where each archive channel was published (``channel_map``; a quetz
receipt: ``fixed_channel``), what each destination channel holds and which archive channel each
file came from. From that, for each exported channel and subdir: which selected files the
destination already holds (``present``: no blob travels), and which held files must go
(``removals``). Nothing is guessed:

* an archive channel the receipt never mapped goes where ``dest_channel`` (config) says, or to
  the channel of its own name;
* a channel the receipt shows published into two destination channels is refused (a delta
  serves one mapping; the import checks it is applied with the same one);
* a held file is removed only by the channel it came from, and only when no channel exported
  into the same destination channel still selects it. A file of unknown origin (a receipt
  written before origins were recorded, or rebuilt) counts as the channel's only when no other
  archive channel is known to publish into that destination channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import UsageError
from .manifest import Base
from .receipt import Held, Receipt


@dataclass
class DeltaBase:
    receipt: Receipt
    targets: dict[str, str]  # archive channel -> destination channel

    @classmethod
    def from_receipt(cls, receipt: Receipt, channels: Sequence[str], dest_channel: str | None, where: str) -> DeltaBase:
        targets: dict[str, str] = {}
        for name in channels:
            known = receipt.targets_of(name)
            if len(known) > 1:
                raise UsageError(
                    f"--since {where}: expected channel {name!r} published into one destination channel, found "
                    f"{', '.join(known)}; export a delta against a receipt of a destination that holds it once"
                )
            targets[name] = known[0] if known else (dest_channel or name)
        return cls(receipt, targets)

    def held(self, channel: str, subdir: str, filename: str) -> Held | None:
        return self.receipt.held(self.targets[channel], subdir, filename)

    def holdings(self, channel: str, subdir: str) -> Mapping[str, Held]:
        """What the base holds in ``channel``'s destination ``subdir``, by file name: one lookup per subdir
        rather than three per file (a delta export asks about every selected file)."""
        return self.receipt.holdings(self.targets[channel], subdir)

    def group(self, channel: str) -> list[str]:
        """The exported channels published into the same destination channel as ``channel`` (in order)."""
        dest = self.targets[channel]
        return [c for c, d in self.targets.items() if d == dest]

    def removals(self, channel: str, subdir: str, selected: Mapping[tuple[str, str], Sequence[str]]) -> list[str]:
        """Files ``channel`` put into its destination's ``subdir`` that no channel of its group selects now."""
        dest = self.targets[channel]
        group = self.group(channel)
        still = {f for c in group for f in selected.get((c, subdir), ())}
        sole = (self.receipt.sources_of(dest) | set(group)) == {channel}
        return sorted(
            f
            for f, h in self.receipt.holdings(dest, subdir).items()
            if f not in still and (h.origin == channel or (h.origin is None and sole))
        )

    def upstream_unchanged(self, channel: str, subdir: str, sha256: str) -> bool:
        return self.receipt.sources.get(channel, {}).get(subdir) == sha256

    def bases(self) -> dict[str, Base]:
        out: dict[str, Base] = {}
        for channel, dest in self.targets.items():
            newest = self.receipt.newest(dest)
            out[channel] = Base(dest, newest.archive_id if newest is not None else None)
        return out
