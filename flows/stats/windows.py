"""The windows: the event-time clock and the records a window and a late fact write.

Chunks of facts keyed by pipeline are merged into Bytewax's event-time tumbling
windows (`fold_window`). A window closes when the latest `at` of its pipeline
passes its end plus the allowed lateness (`LatenessClock`); a chunk for a closed
window comes out on the late output and each of its facts is written as a
record of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators.windowing import UTC_MAX, UTC_MIN, Clock, ClockLogic

from analytics import histogram
from flows.stats.figures import EPOCH, WindowFigures, merge_figures
from flows.stats.stays import Chunk, Fact

STATS_ID_NAMESPACE = uuid.UUID("0c6f1f8e-3b2d-5a44-9e1c-7d2b8a5f6e31")
"""Namespace of the deterministic ids of window and late records."""


@dataclass(frozen=True)
class LatenessClock(Clock[Chunk, datetime]):
    """Event time from each chunk's latest `at`: a window closes once the latest `at`
    seen reaches its end plus the allowed lateness, and only a record for a closed
    window is late (a chunk holds the facts of one window, see `Chunk`).

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


class LatenessClockLogic(ClockLogic[Chunk, datetime]):
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

    def on_item(self, value: Chunk) -> tuple[datetime, datetime]:
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


def add_chunk(figures: WindowFigures, chunk: Chunk) -> WindowFigures:
    """The folder of the windows: add a chunk's figures, in place."""
    return merge_figures(figures, chunk.figures)
