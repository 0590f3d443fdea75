"""The stays step: each item's open stay, and what each history record adds to the windows.

One step per batch of a partition: decode the batch, find each record's facts
(an entry, a closed stay, a move, a fire) and count them, per pipeline and
window, into chunks: the windows receive a chunk where they would receive a
fact per record (see `Chunk`).

A history record (spec 6.1) opens a stay on its stage; the item's next record
closes it (spec 6.2). The step keeps each item's last record. It is keyed by
Kafka partition: the topic is keyed by item, so an item's records are all in
one partition, in order, and a partition's records reach the windows in their
order (a key per item would hand the windows a batch sorted by key, hours of
event time out of order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from bytewax.operators import StatefulBatchLogic

from connectors.deadletter import DeadLetter
from connectors.raw import RawBatch
from flows.stats.figures import EPOCH, WindowFigures, count_fact
from flows.stats.records import HistoryRecord, WindowRange, decode_batch

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


@dataclass(slots=True)
class Chunk:
    """The facts of one pipeline in one window that follow each other in a partition's batch,
    counted together: what the windows receive as one item instead of one per fact.

    `at` is the latest `at` among them. Facts of one window cannot close that window (its
    end is after each of them), so a chunk is late or on time as a whole, as each of its
    facts would be on its own; `facts` are kept for the late records (the native step
    keeps them compiled until a late chunk reads them: `flows.stats.native.NativeFacts`).
    """

    at: datetime
    figures: WindowFigures
    facts: Sequence[Fact]


Out = tuple[str, Chunk] | DeadLetter

OpenStays = dict[str, OpenStay]
"""The step's snapshot: each item's open stay (the native step's is bytes, see
`flows.stats.native`; either engine resumes from either)."""


class StaysLogic(StatefulBatchLogic[RawBatch, Out, OpenStays | bytes]):
    """One partition of the history topic: decodes its batches, keeps the open stay of each
    of its items, and counts what each record adds into chunks by pipeline and window.

    The reference of the compiled step (`flows.stats.native.NativeStaysLogic`)."""

    def __init__(
        self,
        window: timedelta,
        resume: OpenStays | bytes | None,
        lateness: timedelta = timedelta(0),
    ) -> None:
        self.window = window
        self.times = WindowRange.of(window, lateness)
        if isinstance(resume, bytes):
            from flows.stats.native import open_stays_of

            resume = open_stays_of(resume)
        self.open: OpenStays = dict(resume or {})

    def on_batch(self, values: list[RawBatch]) -> tuple[list[Out], bool]:
        out: list[Out] = []
        open_stays = self.open
        window = self.window
        # Per pipeline, the chunk being filled and its window's bounds; a fact of another
        # window closes it, so that a pipeline's chunks keep its facts' order.
        filling: dict[str, tuple[datetime, datetime, Chunk, list[Fact]]] = {}
        for batch in values:
            for record in decode_batch(batch, self.times):
                if type(record) is DeadLetter:
                    out.append(record)
                    continue
                assert type(record) is HistoryRecord
                item = f"{record.tenant}/{record.entity}/{record.item_id}"
                after, facts = stay_facts(open_stays.get(item), record, item)
                if after is None:
                    open_stays.pop(item, None)
                else:
                    open_stays[item] = after
                for pipeline, fact in facts:
                    at = fact.at
                    found = filling.get(pipeline)
                    if found is not None and found[0] <= at < found[1]:
                        chunk, kept = found[2], found[3]
                        if at > chunk.at:
                            chunk.at = at
                    else:
                        if found is not None:
                            out.append((pipeline, found[2]))
                        start = EPOCH + ((at - EPOCH) // window) * window
                        kept = []
                        chunk = Chunk(at, WindowFigures(), kept)
                        filling[pipeline] = (start, start + window, chunk, kept)
                    count_fact(chunk.figures, fact)
                    kept.append(fact)
        out.extend((pipeline, chunk) for pipeline, (_, _, chunk, _) in filling.items())
        return out, False

    def snapshot(self) -> OpenStays | bytes:
        return dict(self.open)
