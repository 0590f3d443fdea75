"""The stays step: each item's open stay, and what each history record adds to the windows.

A history record (spec 6.1) opens a stay on its stage; the item's next record
closes it (spec 6.2). The step keeps each item's last record. It is keyed by
Kafka partition: the topic is keyed by item, so an item's records are all in
one partition, in order, and a partition's records reach the windows in their
order (a key per item would hand the windows a batch sorted by key, hours of
event time out of order).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from bytewax.operators import StatefulBatchLogic

from flows.stats.records import HistoryRecord

MOVE_KINDS = frozenset({"trigger", "crm"})


class Fact(NamedTuple):
    """What one history record adds to one pipeline's window at time `at`.

    `stage` is the stage a stay opens on (an entry), `stay` the stay the record
    closes `(stage, semantic, seconds)` (in the pipeline of the record that
    opened it), `move` a `(from, to, kind)` move, `trigger` a `(id, code)` fire.
    `counted` is whether the record itself belongs to this pipeline.
    """

    at: datetime
    item: str
    history_id: str
    counted: bool = True
    stage: str | None = None
    semantic: str | None = None
    stay: tuple[str, str | None, float] | None = None
    move: tuple[str | None, str, str] | None = None
    trigger: tuple[str, str | None] | None = None


class OpenStay(NamedTuple):
    """An item's last record: the stay it opened."""

    at: datetime
    stage: str
    semantic: str | None
    pipeline: str


def stay_facts(
    opened: OpenStay | None, record: HistoryRecord, item: str | None = None
) -> tuple[OpenStay | None, list[tuple[str, Fact]]]:
    """The item's open stay after `record`, and the facts `record` adds, keyed by pipeline."""
    at, kind, stage = record.at, record.kind, record.stage
    item = item or record.item
    pipeline = record.pipeline
    closed: tuple[str, str | None, float] | None = None
    facts: list[tuple[str, Fact]] = []
    if opened is not None:
        seconds = (at - opened.at).total_seconds()
        closed = (opened.stage, opened.semantic, seconds if seconds > 0.0 else 0.0)
        if opened.pipeline != pipeline:
            facts.append((opened.pipeline, Fact(at, item, record.id, False, None, None, closed)))
            closed = None
    opens = kind != "deleted" and stage is not None
    move = (record.from_stage, stage, kind) if kind in MOVE_KINDS else None
    fire = (record.trigger_id, record.trigger_code) if kind == "trigger" else None
    facts.append(
        (
            pipeline,
            Fact(
                at,
                item,
                record.id,
                True,
                stage if opens else None,
                record.semantic,
                closed,
                move,  # type: ignore[arg-type]
                fire,  # type: ignore[arg-type]
            ),
        )
    )
    after = OpenStay(at, stage, record.semantic, pipeline) if opens else None  # type: ignore[arg-type]
    return after, facts


class StaysLogic(StatefulBatchLogic[HistoryRecord, tuple[str, Fact], dict[str, OpenStay]]):
    """The open stay of each item of one partition; a batch of its records in one call."""

    def __init__(self, resume: dict[str, OpenStay] | None) -> None:
        self.open: dict[str, OpenStay] = dict(resume or {})

    def on_batch(self, values: list[HistoryRecord]) -> tuple[list[tuple[str, Fact]], bool]:
        out: list[tuple[str, Fact]] = []
        open_stays = self.open
        for record in values:
            item = f"{record.tenant}/{record.entity}/{record.item_id}"
            after, facts = stay_facts(open_stays.get(item), record, item)
            if after is None:
                open_stays.pop(item, None)
            else:
                open_stays[item] = after
            out.extend(facts)
        return out, False

    def snapshot(self) -> dict[str, OpenStay]:
        return dict(self.open)
