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


def progress_line(counts: Counter[str], rate: float) -> str:
    """One line of running counts, for the log of a job that does not end."""
    dead = sum(v for k, v in counts.items() if k.startswith(("dlq.", "automation_dlq.")))
    waiting = "" if counts["automation_caught_up"] else ", waiting for automation to load"
    return (
        f"events read {counts['events_read']} ({rate:,.0f}/s), "
        f"transitions {counts['transition']}, dead letters {dead}, "
        f"automation read {counts['automation_read']} applied {counts['automation_applied']}"
        f"{waiting}"
    )


def print_line(line: str) -> None:
    sys.stderr.write(f"crm-triggers: {line}\n")
    sys.stderr.flush()


class SummarySink(FixedPartitionedSink[Counter[str], None]):
    """Adds up the tallies of the whole cluster; at the end hands a Summary to `report`.

    The replay reports once, at the end, timed from when the flow was built. A live
    job also gives `progress`: a line of running counts at most every `interval`
    seconds while tallies arrive, and at the end of each epoch that changed them;
    its time is its own processing window (first tally to the end), and a run that
    saw no tally reports nothing.
    """

    def __init__(
        self,
        report: Callable[[Summary], None] | None,
        progress: Callable[[str], None] | None = None,
        interval: float = 10.0,
    ) -> None:
        self.report = report
        self.progress = progress
        self.interval = interval
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
        self.first_tally: float | None = None
        self.reported_at = time.monotonic()
        self.reported_events = 0
        self.dirty = False

    def write_batch(self, values: list[Counter[str]]) -> None:
        if self.first_tally is None:
            self.first_tally = time.monotonic()
        for tally in values:
            self.counts.update(tally)
        if self.sink.progress is not None:
            self.dirty = True
            self._report_progress()

    def _report_progress(self, force: bool = False) -> None:
        progress = self.sink.progress
        now = time.monotonic()
        if progress is None or not self.dirty:
            return
        if not force and now - self.reported_at < self.sink.interval:
            return
        rate = (self.counts["events_read"] - self.reported_events) / max(
            now - self.reported_at, 1e-9
        )
        progress(progress_line(self.counts, rate))
        self.reported_at, self.reported_events, self.dirty = now, self.counts["events_read"], False

    def snapshot(self) -> None:
        # Called at the end of each epoch this partition was written in: the last
        # chance to show that epoch's counts if nothing follows them.
        self._report_progress(force=True)

    def close(self) -> None:
        self._report_progress(force=True)
        if self.sink.report is None:
            return
        if self.sink.progress is None:
            self.sink.report(Summary(self.counts, time.monotonic() - self.sink.started))
        elif self.first_tally is not None:
            self.sink.report(Summary(self.counts, time.monotonic() - self.first_tally))
