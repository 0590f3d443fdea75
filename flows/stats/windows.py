"""The windows: what a pipeline's window counts, the event-time clock, the records written.

Facts keyed by pipeline are counted into Bytewax's event-time tumbling windows
(`fold_window`). A window closes when the latest `at` of its pipeline passes
its end plus the allowed lateness (`LatenessClock`); a fact for a closed window
comes out on the late output and is written as a record of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators.windowing import UTC_MAX, UTC_MIN, Clock, ClockLogic

from analytics import histogram
from flows.stats.stays import Fact

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Windows are aligned to the Unix epoch: hourly windows start on the hour (UTC)."""

STATS_ID_NAMESPACE = uuid.UUID("0c6f1f8e-3b2d-5a44-9e1c-7d2b8a5f6e31")
"""Namespace of the deterministic ids of window and late records."""


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
        self.histogram = histogram.merge((self.histogram, other.histogram))


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
    if fact.stage is not None:
        entered = figures.stage(fact.stage)
        entered.entries += 1
        entered.items.add(fact.item)
        if fact.semantic is not None:
            entered.semantic = fact.semantic
    if fact.stay is not None:
        stage, semantic, seconds = fact.stay
        closed = figures.stage(stage)
        closed.closed += 1
        closed.sum_s += seconds
        if seconds > closed.max_s:
            closed.max_s = seconds
        histogram.add(closed.histogram, seconds)
        if closed.semantic is None:
            closed.semantic = semantic
    if fact.move is not None:
        figures.moves[fact.move] = figures.moves.get(fact.move, 0) + 1
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


@dataclass(frozen=True)
class LatenessClock(Clock[Fact, datetime]):
    """Event time from each fact's `at`: a window closes once the latest `at` seen
    reaches its end plus the allowed lateness, and only a record for a closed window
    is late.

    Bytewax's `EventClock` calls a record late as soon as it is older than the
    latest `at` minus the lateness, even while its window is still open, and moves
    its watermark on with the system clock (so a restart after a pause would close
    windows that the first run kept open). This clock keeps the rule of spec 6.4:
    its watermark is the latest `at` minus the lateness, rounded down to the window
    grid, and depends on the records alone.
    """

    length: timedelta
    lateness: timedelta
    align_to: datetime = EPOCH

    def build(self, resume_state: datetime | None) -> LatenessClockLogic:
        return LatenessClockLogic(
            self.length, self.lateness, self.align_to, resume_state or UTC_MIN
        )


class LatenessClockLogic(ClockLogic[Fact, datetime]):
    def __init__(
        self, length: timedelta, lateness: timedelta, align_to: datetime, latest: datetime
    ):
        self.length, self.lateness, self.align_to = length, lateness, align_to
        self.latest = latest
        self._advance()

    def _advance(self) -> None:
        self.watermark = self._watermark()
        # The `at` from which on the watermark moves to the next window boundary.
        self.moves_at = (
            UTC_MIN if self.watermark == UTC_MIN else self.watermark + self.length + self.lateness
        )

    def _watermark(self) -> datetime:
        if self.latest == UTC_MIN:
            return UTC_MIN
        base = self.latest - self.lateness
        return self.align_to + ((base - self.align_to) // self.length) * self.length

    def before_batch(self) -> None:
        pass

    def on_item(self, value: Fact) -> tuple[datetime, datetime]:
        at = value.at
        if at > self.latest:
            self.latest = at
            if at >= self.moves_at:
                self._advance()
        return at, self.watermark

    def on_notify(self) -> datetime:
        return self.watermark

    def on_eof(self) -> datetime:
        return UTC_MAX

    def to_system_utc(self, timestamp: datetime) -> datetime | None:
        return None  # windows close on records (or at the end of the input), not on the wall clock

    def snapshot(self) -> datetime:
        return self.latest


def window_bounds(window_id: int, length: timedelta) -> tuple[datetime, datetime]:
    start = EPOCH + length * window_id
    return start, start + length


def rfc3339(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def window_id_of(pipeline: str, window_start: datetime) -> str:
    """Deterministic id of a window record: (tenant, entity, category, window_start)."""
    tenant, entity, category = pipeline.split("/", 2)
    name = "\x1f".join((tenant, entity, category, rfc3339(window_start)))
    return str(uuid.uuid5(STATS_ID_NAMESPACE, name))


def _seconds(value: float) -> float | int:
    return int(value) if value == int(value) else round(value, 6)


def window_record(
    pipeline: str, window_id: int, figures: WindowFigures, length: timedelta
) -> dict[str, Any]:
    """The JSON record of a closed window (docs/stats.md, "Window record")."""
    tenant, entity, category = pipeline.split("/", 2)
    start, end = window_bounds(window_id, length)
    stages = []
    for stage in sorted(figures.stages):
        f = figures.stages[stage]
        stages.append(
            {
                "stage": stage,
                "semantic": f.semantic,
                "entries": f.entries,
                "entered": len(f.items),
                "stays": {
                    "closed": f.closed,
                    "sum_s": _seconds(f.sum_s),
                    "max_s": _seconds(f.max_s) if f.closed else None,
                    "histogram": histogram.to_pairs(f.histogram),
                },
            }
        )
    moves = [
        {"from": move[0], "to": move[1], "kind": move[2], "count": count}
        for move, count in sorted(
            figures.moves.items(), key=lambda m: (m[0][0] or "", m[0][1], m[0][2])
        )
    ]
    fires = [
        {"trigger": trigger_id, "code": code, "fires": count, "items": len(items)}
        for trigger_id, (code, count, items) in sorted(figures.fires.items())
    ]
    return {
        "kind": "window",
        "id": window_id_of(pipeline, start),
        "tenant": tenant,
        "entity": entity,
        "category": category,
        "window_start": rfc3339(start),
        "window_end": rfc3339(end),
        "records": figures.records,
        "stages": stages,
        "moves": moves,
        "fires": fires,
    }


def late_record(pipeline: str, window_id: int, fact: Fact, length: timedelta) -> dict[str, Any]:
    """The JSON record of one late fact: what it would have added to its (closed) window."""
    tenant, entity, category = pipeline.split("/", 2)
    start, end = window_bounds(window_id, length)
    name = "\x1f".join(("late", pipeline, fact.history_id))
    return {
        "kind": "late",
        "id": str(uuid.uuid5(STATS_ID_NAMESPACE, name)),
        "tenant": tenant,
        "entity": entity,
        "category": category,
        "window_start": rfc3339(start),
        "window_end": rfc3339(end),
        "at": rfc3339(fact.at),
        "history_id": fact.history_id,
        "item": fact.item,
        "entry": fact.stage,
        "stay": None
        if fact.stay is None
        else {"stage": fact.stay[0], "seconds": _seconds(fact.stay[2])},
        "move": None
        if fact.move is None
        else {"from": fact.move[0], "to": fact.move[1], "kind": fact.move[2]},
        "trigger": None
        if fact.trigger is None
        else {"id": fact.trigger[0], "code": fact.trigger[1]},
    }
