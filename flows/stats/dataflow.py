"""The statistics dataflow: the stage-history topic in, window records out.

    Kafka history ─> decode ─┬─> stays ───> windows ────┬─> window records ─┐
                             │ (by Kafka    (by pipeline, ├─> late records ───┴─> Kafka stage-stats
                             │ partition)    event time)  │
                             └─> dead letters ────────────┴───────────────────> Kafka dead-letter

Decoding is in `flows.stats.records`, the stays step in `flows.stats.stays`,
what the windows count and write in `flows.stats.windows`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import KeyedStream
from bytewax.operators.windowing import TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from confluent_kafka import KafkaError as ConfluentKafkaError

from connectors.deadletter import DeadLetter
from flows.stats.records import HistoryRecord, decode
from flows.stats.stays import Fact, StaysLogic
from flows.stats.windows import (
    EPOCH,
    LatenessClock,
    WindowFigures,
    count_fact,
    late_record,
    merge_figures,
    window_record,
)
from state.errors import SourceError

if TYPE_CHECKING:
    from flows.stats.command import StatsSettings

log = logging.getLogger("crm_triggers.stats")


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
