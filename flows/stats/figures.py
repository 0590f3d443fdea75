"""What one pipeline's window counts, and how a fact is counted into it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from analytics import histogram

if TYPE_CHECKING:
    from flows.stats.stays import Fact

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Windows are aligned to the Unix epoch: hourly windows start on the hour (UTC)."""


@dataclass(slots=True)
class StageFigures:
    """One stage in one window: stays opened (entries), their items, stays closed."""

    semantic: str | None = None
    entries: int = 0
    items: set[str] = field(default_factory=set)
    closed: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0
    histogram: histogram.Histogram = field(default_factory=dict)

    def merge(self, other: StageFigures) -> None:
        self.semantic = self.semantic or other.semantic
        self.entries += other.entries
        self.items |= other.items
        self.closed += other.closed
        self.sum_s += other.sum_s
        self.max_s = max(self.max_s, other.max_s)
        # In place: a window's histogram takes many chunks', so no copy of it per chunk.
        counts = self.histogram
        for bucket, count in other.histogram.items():
            counts[bucket] = counts.get(bucket, 0) + count


@dataclass(slots=True)
class WindowFigures:
    """Everything one pipeline's window counts."""

    records: int = 0
    stages: dict[str, StageFigures] = field(default_factory=dict)
    moves: dict[tuple[str | None, str, str], int] = field(default_factory=dict)
    fires: dict[str, tuple[str | None, int, set[str]]] = field(default_factory=dict)

    def stage(self, stage: str) -> StageFigures:
        found = self.stages.get(stage)
        if found is None:
            found = self.stages[stage] = StageFigures()
        return found


def count_fact(figures: WindowFigures, fact: Fact) -> WindowFigures:
    """The folder of the windows: add one fact, in place."""
    if fact.counted:
        figures.records += 1
    stages = figures.stages
    stage = fact.stage
    if stage is not None:
        entered = stages.get(stage)
        if entered is None:
            entered = stages[stage] = StageFigures()
        entered.entries += 1
        entered.items.add(fact.item)
        if fact.semantic is not None:
            entered.semantic = fact.semantic
    stay = fact.stay
    if stay is not None:
        stage, semantic, seconds = stay
        closed = stages.get(stage)
        if closed is None:
            closed = stages[stage] = StageFigures()
        closed.closed += 1
        closed.sum_s += seconds
        if seconds > closed.max_s:
            closed.max_s = seconds
        bucket = histogram.bucket_of(seconds)
        closed.histogram[bucket] = closed.histogram.get(bucket, 0) + 1
        if closed.semantic is None:
            closed.semantic = semantic
    move = fact.move
    if move is not None:
        figures.moves[move] = figures.moves.get(move, 0) + 1
    if fact.trigger is not None:
        trigger_id, code = fact.trigger
        _, fires, items = figures.fires.get(trigger_id) or (code, 0, set())
        items.add(fact.item)
        figures.fires[trigger_id] = (code, fires + 1, items)
    return figures


def merge_figures(a: WindowFigures, b: WindowFigures) -> WindowFigures:
    """The merger of the windows (tumbling windows never merge; kept exact all the same)."""
    a.records += b.records
    for stage, figures in b.stages.items():
        a.stage(stage).merge(figures)
    for move, count in b.moves.items():
        a.moves[move] = a.moves.get(move, 0) + count
    for trigger_id, (code, fires, items) in b.fires.items():
        have_code, have_fires, have_items = a.fires.get(trigger_id) or (code, 0, set())
        a.fires[trigger_id] = (have_code or code, have_fires + fires, have_items | items)
    return a
