"""Live statistics: the stage-history topic in, one record per pipeline and hour out.

    Kafka history ─> decode ─┬─> stays ───> windows ────┬─> window records ─┐
                             │ (by Kafka    (by pipeline, ├─> late records ───┴─> Kafka stage-stats
                             │ partition)    event time)  │
                             └─> dead letters ────────────┴───────────────────> Kafka dead-letter

A history record (spec 6.1) opens a stay on its stage; the item's next record
closes it (spec 6.2). The stays step keeps each item's last record. The topic
is keyed by item, so an item's records are all in one partition, in order: the
step is keyed by partition, which keeps each partition's records in their order
(a key per item or per group of items would hand the windows a batch sorted by
key, hours of event time out of order). What it finds (an entry, a closed
stay, a move, a fire) is then keyed by pipeline and counted into Bytewax's
event-time tumbling windows. A
window closes when the latest `at` of its pipeline passes its end plus the
allowed lateness; a record for a closed window comes out on the windows' late
output and is written as a record of its own (`"kind": "late"`).

Run it with the command line (`crm-triggers stats --brokers HOST:PORT ...`) or
with Bytewax's runner, settings from the environment (`-i/-a` for a cluster of
processes; `-r DIR -s SECONDS -b 0` for recovery, the folder made first with
`python -m bytewax.recovery DIR PARTITIONS`):

    CRM_TRIGGERS_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.stats:flow
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import bytewax.operators as op
import msgspec
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import KeyedStream, StatefulBatchLogic
from bytewax.operators.windowing import (
    UTC_MAX,
    UTC_MIN,
    Clock,
    ClockLogic,
    TumblingWindower,
    fold_window,
)
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from confluent_kafka import KafkaError as ConfluentKafkaError

from analytics import histogram
from connectors.deadletter import DeadLetter, Origin
from connectors.kafka import KafkaSettings, TopicPlan
from state.errors import ConfigError, CrmTriggersError, SourceError

log = logging.getLogger("crm_triggers.stats")

HISTORY_TOPIC = "crm.stage-history"
STATS_TOPIC = "crm.stage-stats"
DEAD_LETTER_TOPIC = "crm.dead-letter"

DEFAULT_WINDOW = timedelta(hours=1)
DEFAULT_ALLOWED_LATENESS = timedelta(minutes=10)
DEFAULT_SNAPSHOT_INTERVAL = 10
DEFAULT_BATCH_SIZE = 4096
DEFAULT_SUMMARY_INTERVAL = 10.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Windows are aligned to the Unix epoch: hourly windows start on the hour (UTC)."""

STATS_ID_NAMESPACE = uuid.UUID("0c6f1f8e-3b2d-5a44-9e1c-7d2b8a5f6e31")
"""Namespace of the deterministic ids of window and late records."""

MOVE_KINDS = frozenset({"trigger", "crm"})


def stats_topic_plans(partitions: int, topic: str = STATS_TOPIC) -> list[TopicPlan]:
    """What `topics create` adds for this job: the stats topic, keyed by pipeline."""
    return [TopicPlan(topic, partitions)]


# Records --------------------------------------------------------------------------------


class HistoryRecord(NamedTuple):
    """The fields of a stage-history record (spec 6.1) that the statistics read."""

    id: str
    tenant: str
    entity: str
    item_id: str
    category: str
    stage: str | None
    from_stage: str | None
    semantic: str | None
    kind: str
    at: datetime
    trigger_id: str | None
    trigger_code: str | None

    @property
    def item(self) -> str:
        return f"{self.tenant}/{self.entity}/{self.item_id}"

    @property
    def pipeline(self) -> str:
        return f"{self.tenant}/{self.entity}/{self.category}"


class InvalidHistoryError(ValueError):
    """A history record that cannot be read: the dead letter's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


Id = str | int


class _ItemRef(msgspec.Struct):
    entity: str
    id: Id


class _TriggerRef(msgspec.Struct):
    id: Id
    code: str | None = None


class _RawHistory(msgspec.Struct):
    """The JSON of a history record as it comes; other fields are ignored."""

    id: Id
    item: _ItemRef
    kind: Literal["created", "trigger", "crm", "deleted"]
    at: datetime
    tenant: str | None = None
    category: Id | None = None
    stage: Id | None = None
    from_stage: Id | None = None
    semantic: str | None = None
    trigger: _TriggerRef | None = None


_history_decoder = msgspec.json.Decoder(_RawHistory)


def _id(value: Id | None, name: str) -> str:
    text = str(value) if type(value) is int else value
    if not text:
        raise InvalidHistoryError(
            "invalid_record", f"{name}: expected a non-empty id, got {value!r}"
        )
    return cast(str, text)


def _plain(value: str, name: str) -> str:
    if not value or "/" in value:
        raise InvalidHistoryError(
            "invalid_record", f"{name}: expected a non-empty name without '/', got {value!r}"
        )
    return value


def parse_history(raw: bytes) -> HistoryRecord:
    """A history record from its bytes, or InvalidHistoryError naming the field that is wrong."""
    try:
        r = _history_decoder.decode(raw)
    except msgspec.ValidationError as bad:
        raise InvalidHistoryError("invalid_record", str(bad)) from None
    except msgspec.DecodeError as bad:
        raise InvalidHistoryError("invalid_json", f"not JSON: {bad}") from None
    if r.at.tzinfo is None:
        raise InvalidHistoryError(
            "invalid_record", f"at: expected an RFC 3339 time with a zone, got {r.at.isoformat()!r}"
        )
    kind, trigger = r.kind, r.trigger
    if kind == "trigger" and trigger is None:
        raise InvalidHistoryError(
            "invalid_record", "trigger: expected an object on a trigger record, got null"
        )
    if r.stage is None and kind != "deleted":
        raise InvalidHistoryError("invalid_record", f"stage: required on a {kind} record")
    item, category, stage, from_stage = r.item, r.category, r.stage, r.from_stage
    # The common case, plain string ids, without a call per field.
    return HistoryRecord(
        r.id if type(r.id) is str and r.id else _id(r.id, "id"),
        "default" if r.tenant is None else _plain(r.tenant, "tenant"),
        _plain(item.entity, "item.entity"),
        item.id if type(item.id) is str and item.id else _id(item.id, "item.id"),
        "0"
        if category is None
        else category
        if type(category) is str and category
        else _id(category, "category"),
        stage if stage is None or (type(stage) is str and stage) else _id(stage, "stage"),
        from_stage
        if from_stage is None or (type(from_stage) is str and from_stage)
        else _id(from_stage, "from_stage"),
        r.semantic,
        kind,
        r.at,
        _id(trigger.id, "trigger.id") if kind == "trigger" and trigger else None,
        trigger.code if kind == "trigger" and trigger else None,
    )


def decode(
    message: KafkaSourceMessage[bytes | None, bytes | None],
) -> tuple[str, HistoryRecord] | DeadLetter:
    """A Kafka message as (its partition, the history record), or its dead letter."""
    raw = message.value
    origin = Origin(topic=message.topic, partition=message.partition, offset=message.offset)
    if raw is None:
        return DeadLetter(
            "invalid_record", "a null value (tombstone) is not a history record", b"", origin
        )
    try:
        return f"{message.topic}:{message.partition}", parse_history(raw)
    except InvalidHistoryError as bad:
        return DeadLetter(bad.code, str(bad), raw, origin)


# Stays ----------------------------------------------------------------------------------


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


# Windows --------------------------------------------------------------------------------


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


# The dataflow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsOutput:
    """One record out: to the stats topic (window, late) or the dead-letter topic."""

    kind: str  # "window", "late" or "dead_letter"
    key: str
    value: bytes


def build_stats_flow(
    history: Stream[KafkaSourceMessage[bytes | None, bytes | None]],
    window: timedelta,
    lateness: timedelta,
) -> tuple[Stream[StatsOutput], Stream[StatsOutput]]:
    """The steps from history messages to output records: (stats records, dead letters)."""
    decoded = op.map("decode", history, decode)
    split = op.branch("valid", decoded, lambda x: type(x) is tuple)
    by_partition = cast(KeyedStream[HistoryRecord], split.trues)
    letters = op.map(
        "dead_letter",
        split.falses,
        lambda d: StatsOutput("dead_letter", "", cast(DeadLetter, d).to_json()),
    )
    facts = op.stateful_batch("stays", by_partition, StaysLogic)
    by_pipeline = cast(
        KeyedStream[Fact], op.map("by_pipeline", facts, lambda group_fact: group_fact[1])
    )
    windows = fold_window(
        "windows",
        by_pipeline,
        LatenessClock(window, lateness),
        TumblingWindower(length=window, align_to=EPOCH),
        WindowFigures,
        count_fact,
        merge_figures,
        ordered=False,
    )

    def closed(pipeline_window: tuple[str, tuple[int, WindowFigures]]) -> StatsOutput:
        pipeline, (window_id, figures) = pipeline_window
        record = window_record(pipeline, window_id, figures, window)
        return StatsOutput("window", pipeline, orjson.dumps(record))

    def late(pipeline_fact: tuple[str, tuple[int, Fact]]) -> StatsOutput:
        pipeline, (window_id, fact) = pipeline_fact
        return StatsOutput(
            "late", pipeline, orjson.dumps(late_record(pipeline, window_id, fact, window))
        )

    out = op.merge(
        "stats_records",
        op.map("window_record", windows.down, closed),
        op.map("late_record", windows.late, late),
    )
    return out, letters


def stats_flow(settings: StatsSettings, progress: Callable[[str], None] | None = None) -> Dataflow:
    """The live statistics job: Kafka in, Kafka out."""
    flow = Dataflow("crm_triggers_stats")
    kafka = settings.kafka
    consumer_options = {"auto.offset.reset": "error", **kafka.options}
    history = kop.input(
        "history",
        flow,
        brokers=kafka.brokers.split(","),
        topics=[settings.history_topic],
        tail=not settings.until_end,
        starting_offset=OFFSET_END if settings.start_from == "end" else OFFSET_BEGINNING,
        add_config=consumer_options,
        batch_size=settings.batch_size,
    )
    op.inspect("consumer_error", history.errs, consumer_error)
    stats, letters = build_stats_flow(history.oks, settings.window, settings.allowed_lateness)

    def to_message(topic: str) -> Callable[[StatsOutput], KafkaSinkMessage[bytes, bytes]]:
        def message(out: StatsOutput) -> KafkaSinkMessage[bytes, bytes]:
            return KafkaSinkMessage(out.key.encode() or None, out.value, topic=topic)  # type: ignore[arg-type]

        return message

    written = op.merge(
        "outputs",
        op.map("to_stats_topic", stats, to_message(settings.stats_topic)),
        op.map("to_dead_letter_topic", letters, to_message(settings.dead_letter_topic)),
    )
    op.output(
        "kafka",
        written,
        KafkaSink(
            kafka.brokers.split(","),
            None,
            add_config={
                **kafka.options,
                "enable.idempotence": "true",
                "acks": "all",
                "linger.ms": "5",
            },
        ),
    )
    op.output(
        "summary",
        op.map("tally", op.merge("all_outputs", stats, letters), _tally),
        StatsSummarySink(settings.summary_interval, progress or _print_line, settings.until_end),
    )
    return flow


def _tally(out: StatsOutput) -> tuple[str, int]:
    if out.kind == "window":
        records = orjson.loads(out.value)["records"]
        return out.kind, records
    return out.kind, 1


def consumer_error(step_id: str, error: Any) -> None:
    """Log a transient error of the history consumer; raise SourceError for one that stays.

    A resume offset that retention has deleted is one (`auto.offset.reset` is
    `error`): the job stops rather than skip records silently.
    """
    err = error.err
    where = f"history topic partition {error.msg.partition}"
    if err.code() == ConfluentKafkaError._AUTO_OFFSET_RESET:
        raise SourceError(
            f"{where}: the offset to resume from is out of range ({err.str()}): the records "
            "were deleted by retention before the job read them. To skip to what is left, "
            "run with --kafka-option auto.offset.reset=earliest"
        )
    if err.fatal() or not err.retriable():
        raise SourceError(f"{where}: {err.str()}")
    log.warning("%s: %s (retrying)", where, err.str())


def _print_line(line: str) -> None:
    sys.stderr.write(f"crm-triggers stats: {line}\n")
    sys.stderr.flush()


def summary_line(counts: Mapping[str, int]) -> str:
    return (
        f"windows written {counts.get('window', 0)} "
        f"({counts.get('window_records', 0)} history records in them), "
        f"late {counts.get('late', 0)}, dead letters {counts.get('dead_letter', 0)}"
    )


class StatsSummarySink(DynamicSink[tuple[str, int]]):
    """Running counts of what the job wrote: a line every `interval` seconds and at the end."""

    def __init__(self, interval: float, progress: Callable[[str], None], final: bool) -> None:
        self.interval = interval
        self.progress = progress
        self.final = final

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatsSummaryPartition:
        return StatsSummaryPartition(self)


class StatsSummaryPartition(StatelessSinkPartition[tuple[str, int]]):
    def __init__(self, sink: StatsSummarySink) -> None:
        self.sink = sink
        self.counts: dict[str, int] = {}
        self.reported_at = time.monotonic()
        self.dirty = False

    def write_batch(self, items: list[tuple[str, int]]) -> None:
        for kind, records in items:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "window":
                self.counts["window_records"] = self.counts.get("window_records", 0) + records
        self.dirty = True
        now = time.monotonic()
        if now - self.reported_at >= self.sink.interval:
            self.sink.progress(summary_line(self.counts))
            self.reported_at, self.dirty = now, False

    def close(self) -> None:
        if self.dirty or self.sink.final:
            self.sink.progress(summary_line(self.counts))


# Settings and the command ---------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, value: Any, default: timedelta, minimum: timedelta) -> timedelta:
    """`90s`, `10m`, `1h`, `1d`, `1.5h` or plain seconds; ConfigError naming the setting."""
    if value is None or value == "":
        return default
    if isinstance(value, timedelta):
        duration = value
    else:
        match = _DURATION.fullmatch(str(value))
        if match is None:
            raise ConfigError(f"{name}: expected a duration like 90s, 10m, 1h or 1d, got {value!r}")
        duration = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    if duration < minimum:
        raise ConfigError(f"{name}: must be at least {minimum.total_seconds():g} s, got {value!r}")
    return duration


def _env_name(option: str) -> str:
    return "CRM_TRIGGERS_" + option.upper().replace("-", "_")


@dataclass(frozen=True)
class StatsSettings:
    """Settings of the statistics job; each option also reads `CRM_TRIGGERS_<OPTION>`."""

    kafka: KafkaSettings
    history_topic: str = HISTORY_TOPIC  # CRM_TRIGGERS_HISTORY_TOPIC
    stats_topic: str = STATS_TOPIC  # CRM_TRIGGERS_STATS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC  # CRM_TRIGGERS_DEAD_LETTER_TOPIC
    window: timedelta = DEFAULT_WINDOW  # CRM_TRIGGERS_WINDOW
    allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS  # CRM_TRIGGERS_ALLOWED_LATENESS
    recovery_dir: str | None = None  # CRM_TRIGGERS_STATS_RECOVERY_DIR
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL  # CRM_TRIGGERS_SNAPSHOT_INTERVAL
    workers: int = 1  # CRM_TRIGGERS_WORKERS
    process_id: int | None = None  # CRM_TRIGGERS_PROCESS_ID
    addresses: tuple[str, ...] = ()  # CRM_TRIGGERS_ADDRESSES
    start_from: str = "beginning"  # CRM_TRIGGERS_START_FROM
    until_end: bool = False  # CRM_TRIGGERS_UNTIL_END
    batch_size: int = DEFAULT_BATCH_SIZE  # CRM_TRIGGERS_BATCH_SIZE
    summary_interval: float = DEFAULT_SUMMARY_INTERVAL  # CRM_TRIGGERS_SUMMARY_INTERVAL

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> StatsSettings:
        from flows.settings import KafkaClientSettings, non_negative_number, positive_int

        client = KafkaClientSettings(**KafkaClientSettings.client_fields(values))
        window = parse_duration(
            "--window (CRM_TRIGGERS_WINDOW)",
            values.get("window"),
            DEFAULT_WINDOW,
            timedelta(seconds=1),
        )
        lateness = parse_duration(
            "--allowed-lateness (CRM_TRIGGERS_ALLOWED_LATENESS)",
            values.get("allowed_lateness"),
            DEFAULT_ALLOWED_LATENESS,
            timedelta(0),
        )
        topics = {}
        for name, default in (
            ("history_topic", HISTORY_TOPIC),
            ("stats_topic", STATS_TOPIC),
            ("dead_letter_topic", DEAD_LETTER_TOPIC),
        ):
            topic = values.get(name) or default
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
                raise ConfigError(
                    f"--{name.replace('_', '-')} ({_env_name(name)}): {topic!r} is not a "
                    "Kafka topic name"
                )
            topics[name] = topic
        if topics["history_topic"] in (topics["stats_topic"], topics["dead_letter_topic"]):
            raise ConfigError("--history-topic: must differ from the stats and dead-letter topics")
        start_from = values.get("start_from") or "beginning"
        if start_from not in ("beginning", "end"):
            raise ConfigError(
                f"--start-from ({_env_name('start_from')}): expected beginning or end, "
                f"got {start_from!r}"
            )
        addresses = tuple(values.get("addresses") or ())
        process_id = values.get("process_id")
        if (process_id is None or process_id == "") != (not addresses):
            raise ConfigError(
                "--process-id (CRM_TRIGGERS_PROCESS_ID) and --addresses (CRM_TRIGGERS_ADDRESSES): "
                "give both, for a cluster of processes, or neither"
            )
        if addresses and not str(process_id).isdigit():
            raise ConfigError(
                f"--process-id (CRM_TRIGGERS_PROCESS_ID): expected an integer >= 0, "
                f"got {process_id!r}"
            )

        def number(name: str, default: int) -> int:
            value = values.get(name)
            return (
                default
                if value is None or value == ""
                else positive_int(f"--{name.replace('_', '-')} ({_env_name(name)})", value)
            )

        return cls(
            kafka=client.kafka,
            window=window,
            allowed_lateness=lateness,
            recovery_dir=values.get("recovery_dir") or None,
            snapshot_interval=number("snapshot_interval", DEFAULT_SNAPSHOT_INTERVAL),
            workers=number("workers", 1),
            process_id=None if not addresses else int(str(process_id)),
            addresses=addresses,
            start_from=start_from,
            until_end=bool(values.get("until_end")),
            batch_size=number("batch_size", DEFAULT_BATCH_SIZE),
            summary_interval=non_negative_number(
                f"--summary-interval ({_env_name('summary_interval')})",
                values.get("summary_interval"),
                DEFAULT_SUMMARY_INTERVAL,
            ),
            **topics,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StatsSettings:
        from flows.settings import KafkaClientSettings, flag, split_env_list

        def get(name: str) -> str | None:
            return env.get(_env_name(name))

        return cls.build(
            {
                **KafkaClientSettings.client_env(env),
                "history_topic": get("history_topic"),
                "stats_topic": get("stats_topic"),
                "dead_letter_topic": get("dead_letter_topic"),
                "window": get("window"),
                "allowed_lateness": get("allowed_lateness"),
                "recovery_dir": get("stats_recovery_dir"),
                "snapshot_interval": get("snapshot_interval"),
                "workers": get("workers"),
                "process_id": get("process_id"),
                "addresses": split_env_list(get("addresses")),
                "start_from": get("start_from"),
                "until_end": flag(get("until_end")),
                "batch_size": get("batch_size"),
                "summary_interval": get("summary_interval"),
            }
        )


def add_command(commands: Any) -> None:
    """The `stats` subcommand, on the command line's subparsers."""
    stats = commands.add_parser(
        "stats",
        help="live statistics of the stage-history topic, per pipeline and window",
        description="Read the stage-history topic and write one record per pipeline and closed "
        "event-time window (entries, moves, fires, time in stage with a mergeable histogram) "
        "to the stats topic; records for a closed window as late records. Ctrl-C stops it.",
    )
    env = os.environ.get
    stats.add_argument(
        "--brokers",
        default=env(_env_name("brokers")),
        metavar="HOST:PORT[,...]",
        help=f"Kafka bootstrap servers [{_env_name('brokers')}]",
    )
    stats.add_argument(
        "--kafka-option",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka option passed straight through; repeatable "
        f"[{_env_name('kafka_options')}, ';'-separated]",
    )
    stats.add_argument(
        "--kafka-config",
        default=env(_env_name("kafka_config")),
        metavar="FILE",
        help=f"librdkafka options as KEY=VALUE lines [{_env_name('kafka_config')}]",
    )
    for option, default, what in (
        ("window", "1h", "length of the tumbling windows, aligned to the epoch (90s, 10m, 1h, 1d)"),
        (
            "allowed-lateness",
            "10m",
            "how far behind the latest `at` a record still counts in its window",
        ),
        ("history-topic", HISTORY_TOPIC, "stage-history records in"),
        ("stats-topic", STATS_TOPIC, "window and late records out"),
        ("dead-letter-topic", DEAD_LETTER_TOPIC, "history records that cannot be read"),
        ("snapshot-interval", str(DEFAULT_SNAPSHOT_INTERVAL), "seconds between snapshots"),
        ("workers", "1", "worker threads in this process"),
        ("process-id", None, "this process's index in a cluster of processes"),
        ("addresses", None, "every process of the cluster, ';'-separated, in process-id order"),
        (
            "start-from",
            "beginning",
            "where the history starts without a snapshot: beginning or end",
        ),
        ("batch-size", str(DEFAULT_BATCH_SIZE), "records read from a partition at once"),
        (
            "summary-interval",
            f"{DEFAULT_SUMMARY_INTERVAL:g}",
            "seconds between progress lines on stderr",
        ),
    ):
        shown = f" (default: {default})" if default is not None else ""
        stats.add_argument(
            f"--{option}",
            default=env(_env_name(option)),
            help=f"{what}{shown} [{_env_name(option)}]",
        )
    stats.add_argument(
        "--recovery-dir",
        default=env("CRM_TRIGGERS_STATS_RECOVERY_DIR"),
        metavar="DIR",
        help="keep window state and offsets here and resume from them after a crash; an empty "
        "or missing folder is set up [CRM_TRIGGERS_STATS_RECOVERY_DIR]",
    )
    stats.add_argument(
        "--until-end",
        action="store_true",
        default=None,
        help="stop once the history topic has been read to its end, closing every window "
        f"[{_env_name('until_end')}]",
    )


def command(args: argparse.Namespace) -> int:
    """Run `crm-triggers stats` from parsed arguments."""
    from connectors.kafka import admin_client, masked, topic_partitions
    from flows.settings import flag, split_env_list

    values = dict(vars(args))
    if not values.get("kafka_option"):
        values["kafka_option"] = split_env_list(os.environ.get(_env_name("kafka_options")))
    values["addresses"] = split_env_list(values.get("addresses"))
    if values.get("until_end") is None:
        values["until_end"] = flag(os.environ.get(_env_name("until_end")))
    settings = StatsSettings.build(values)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    admin = admin_client(settings.kafka)
    for option, topic in (
        ("history-topic", settings.history_topic),
        ("stats-topic", settings.stats_topic),
        ("dead-letter-topic", settings.dead_letter_topic),
    ):
        try:
            topic_partitions(admin, topic, settings.kafka.brokers)
        except SourceError as missing:
            raise ConfigError(f"--{option}: {missing}") from None
    options = f" with {masked(settings.kafka.options)}" if settings.kafka.options else ""
    sys.stderr.write(
        f"crm-triggers stats: live on {settings.kafka.brokers}{options}: "
        f"{settings.history_topic} -> {settings.stats_topic}, {settings.dead_letter_topic}; "
        f"window {settings.window}, allowed lateness {settings.allowed_lateness}; "
        f"recovery: {settings.recovery_dir or 'off'}\n"
    )
    run_stats(settings)
    return 0


def recovery_config(settings: StatsSettings) -> RecoveryConfig | None:
    if settings.recovery_dir is None:
        return None
    folder = Path(settings.recovery_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        init_db_dir(folder, 1)
    return RecoveryConfig(str(folder))


def run_stats(settings: StatsSettings) -> None:
    """Run the statistics job in this process (one of a cluster with process_id and addresses)."""
    from bytewax._bytewax import cli_main

    from flows.live import _first_cause, _interrupt

    flow = stats_flow(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli_main(
            flow,
            workers_per_process=settings.workers,
            process_id=settings.process_id,
            addresses=list(settings.addresses) or None,
            epoch_interval=timedelta(seconds=settings.snapshot_interval),
            recovery_config=recovery_config(settings),
        )
    except Exception as failed:
        cause = _first_cause(failed)
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if isinstance(cause, CrmTriggersError):
            raise cause from None
        raise


# Reading the stats topic ----------------------------------------------------------------


def stats_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Closed windows as a compact table for `tail --stats`: a line per window and pipeline,
    then a line per stage (entries, distinct items entered, stays closed with their mean,
    p50, p90 from the histogram, and max). Late records are counted in a last line.
    """
    header = ("stage", "entries", "entered", "closed", "mean", "p50", "p90", "max")
    blocks: list[tuple[str, list[tuple[str, ...]]]] = []
    late = 0
    for record in records:
        if record.get("kind") == "late":
            late += 1
            continue
        if record.get("kind") != "window":
            continue
        start = str(record.get("window_start", ""))[:16].replace("T", " ")
        end = str(record.get("window_end", ""))[11:16]
        moves = sum(m.get("count", 0) for m in record.get("moves", []))
        fires = sum(f.get("fires", 0) for f in record.get("fires", []))
        title = (
            f"{start}-{end}  {record.get('tenant')}/{record.get('entity')}/"
            f"{record.get('category')}: {record.get('records', 0)} records, {moves} moves, "
            f"{fires} fires"
        )
        rows: list[tuple[str, ...]] = []
        for stage in record.get("stages", []):
            stays = stage.get("stays", {})
            counts = histogram.from_pairs(stays.get("histogram", []))
            max_s = stays.get("max_s")
            p50, p90 = (histogram.percentile(counts, q, max_s) for q in (0.5, 0.9))
            closed = stays.get("closed", 0)
            rows.append(
                (
                    str(stage.get("stage")),
                    str(stage.get("entries", 0)),
                    str(stage.get("entered", 0)),
                    str(closed),
                    _duration(stays.get("sum_s", 0) / closed) if closed else "-",
                    _duration(p50.value) if p50 else "-",
                    _duration(p90.value) if p90 else "-",
                    _duration(max_s) if max_s is not None else "-",
                )
            )
        blocks.append((title, rows))
    every = [header] + [row for _, rows in blocks for row in rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = (
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return ("  " + "  ".join(cells)).rstrip()

    lines = [line(header)] if blocks else []
    for title, rows in blocks:
        lines.append(title)
        lines.extend(line(row) for row in rows)
    if late:
        lines.append(f"late records: {late} (counted apart: their windows had closed)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """A stay length for people: 45s, 12m, 3.5h, 2.1d."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.stats:flow` reads `flow`: build it from the environment.
    if name == "flow":
        return stats_flow(StatsSettings.from_env(os.environ))
    raise AttributeError(name)
