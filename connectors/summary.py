"""The run's counts: what was read, decided, moved and dead-lettered."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

DECIDED_REASONS = (
    "no_match",
    "updated",
    "created",
    "stage_changed",
    "confirmed",
    "deleted",
    "duplicate",
    "item_deleted",
    "no_pipeline",
)


class Summary:
    """Counts of one run, and how to read them."""

    def __init__(self, counts: Counter[str], seconds: float) -> None:
        self.counts = counts
        self.seconds = seconds

    @property
    def events_read(self) -> int:
        return self.counts["events_read"]

    def _by_code(self, prefix: str) -> dict[str, int]:
        return {
            k[len(prefix) :]: v
            for k, v in sorted(self.counts.items())
            if k.startswith(prefix) and v
        }

    @property
    def dead_letters(self) -> dict[str, int]:
        """Dead letters of events and automation records, by code."""
        both = Counter(self._by_code("dlq.")) + Counter(self._by_code("automation_dlq."))
        return dict(sorted(both.items()))

    @property
    def outcomes(self) -> int:
        """(event, item) outcomes plus event dead letters: equals events read + extra items."""
        decided = sum(self.counts[r] for r in DECIDED_REASONS)
        return self.counts["transition"] + decided + sum(self._by_code("dlq.").values())

    def balanced(self) -> bool:
        """Nothing lost: every event record (each item of it) took effect or was dead-lettered."""
        return self.outcomes == self.events_read + self.counts["extra_items"]

    def render(self) -> str:
        c = self.counts
        rate = self.events_read / self.seconds if self.seconds > 0 else 0.0
        no_ops = {r: c[r] for r in DECIDED_REASONS if c[r]}
        lines = [
            f"automation records: {c['automation_read']} read, {c['automation_applied']} applied",
            f"events read:        {self.events_read}"
            + (
                f" (+{c['extra_items']} more items named by multi-item events)"
                if c["extra_items"]
                else ""
            ),
            f"transitions:        {c['transition']}",
            "decided, no move:   "
            + (", ".join(f"{k} {v}" for k, v in no_ops.items()) if no_ops else "0"),
            "dead letters:       "
            + (", ".join(f"{k} {v}" for k, v in self.dead_letters.items()) or "0"),
            f"time:               {self.seconds:.2f} s, {rate:,.0f} events/s",
        ]
        if not self.balanced():
            lines.append(f"WARNING: {self.outcomes} outcomes for {self.events_read} events read")
        return "\n".join(lines)


def print_summary(summary: Summary) -> None:
    """The summary on standard error, where a run's counts go."""
    sys.stderr.write(summary.render() + "\n")


class SummarySink(FixedPartitionedSink[Counter[str], None]):
    """Adds up the tallies of every batch; at the end hands a Summary to `report`."""

    def __init__(self, report: Callable[[Summary], None]) -> None:
        self.report = report
        self.started = time.monotonic()

    def list_parts(self) -> list[str]:
        return ["summary"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _SummaryPartition:
        return _SummaryPartition(self)


class _SummaryPartition(StatefulSinkPartition[Counter[str], None]):
    def __init__(self, sink: SummarySink) -> None:
        self.sink = sink
        self.counts: Counter[str] = Counter()

    def write_batch(self, values: list[Counter[str]]) -> None:
        for tally in values:
            self.counts.update(tally)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self.sink.report(Summary(self.counts, time.monotonic() - self.sink.started))
