"""The statistics dataflow: the stage-history topic in, window records out.

    Kafka history ──> stays ──────────────────┬─> windows ─────┬─> window records ─┐
    (batches of       (by Kafka partition:    │  (by pipeline,  ├─> late records ───┴─> stage-stats
     raw bytes)        decode, open stays,    │   event time)   │
                       chunks per pipeline    └─> dead letters ─┴──────────────────> dead-letter
                       and window)

The source hands over each partition's records in batches of raw bytes; the
stays step (keyed by partition) decodes a batch (`flows.stats.records`), finds
what each record adds (`flows.stats.stays`) and counts it into chunks per
pipeline and window (`flows.stats.figures`); the windows (`flows.stats.windows`)
merge the chunks, decide lateness with the pipeline's clock and write records.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import KeyedStream
from bytewax.operators.windowing import TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.deadletter import DeadLetter
from connectors.kafka import (
    EventsPartition,
    KafkaSettings,
    Reading,
    admin_client,
    topic_partitions,
)
from connectors.raw import RawBatch
from flows.stats.figures import EPOCH, WindowFigures, merge_figures
from flows.stats.native import NativeStaysLogic
from flows.stats.stays import Chunk, StaysLogic
from flows.stats.windows import LatenessClock, add_chunk, late_record, window_record

if TYPE_CHECKING:
    from flows.stats.command import StatsSettings


@dataclass(frozen=True)
class StatsOutput:
    """One record out: to the stats topic (window, late) or the dead-letter topic."""

    kind: str  # "window", "late" or "dead_letter"
    key: str
    value: bytes


class HistorySource(FixedPartitionedSource[RawBatch, int]):
    """The history topic, one Bytewax partition per Kafka partition, read in batches of raw
    bytes (the main job's partition reader: no message object per record). Each
    partition's snapshot is the next offset to read."""

    def __init__(self, kafka: KafkaSettings, topic: str, reading: Reading) -> None:
        self.kafka, self.topic, self.reading = kafka, topic, reading

    def list_parts(self) -> list[str]:
        partitions = topic_partitions(admin_client(self.kafka), self.topic, self.kafka.brokers)
        return [str(p) for p in partitions]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> EventsPartition:
        return EventsPartition(self.kafka, self.topic, int(for_part), resume_state, self.reading)


def partition_of(batch: RawBatch) -> str:
    return f"{batch.source}:{batch.partition}"


def stays_logic(engine: str) -> type[StaysLogic] | type[NativeStaysLogic]:
    """The stays step of an engine: `native` (compiled, the default) or `python`."""
    if engine == "native":
        return NativeStaysLogic
    if engine == "python":
        return StaysLogic
    raise ValueError(f"engine: expected native or python, got {engine!r}")


def build_stats_flow(
    history: Stream[RawBatch],
    window: timedelta,
    lateness: timedelta,
    engine: str = "native",
) -> tuple[Stream[StatsOutput], Stream[StatsOutput]]:
    """The steps from batches of history records to output records: (stats records, dead
    letters)."""
    logic = stays_logic(engine)
    by_partition = op.key_on("by_partition", history, partition_of)
    stays = op.stateful_batch("stays", by_partition, lambda resume: logic(window, resume, lateness))
    found = op.branch("valid", op.map("unkey", stays, lambda kv: kv[1]), lambda x: type(x) is tuple)
    by_pipeline = cast(KeyedStream[Chunk], found.trues)
    letters = op.map(
        "dead_letter",
        found.falses,
        lambda d: StatsOutput("dead_letter", "", cast(DeadLetter, d).to_json()),
    )
    windows = fold_window(
        "windows",
        by_pipeline,
        LatenessClock(window, lateness),
        TumblingWindower(length=window, align_to=EPOCH),
        WindowFigures,
        add_chunk,
        merge_figures,
        ordered=False,
    )

    def closed(pipeline_window: tuple[str, tuple[int, WindowFigures]]) -> StatsOutput:
        pipeline, (window_id, figures) = pipeline_window
        record = window_record(pipeline, window_id, figures, window)
        return StatsOutput("window", pipeline, orjson.dumps(record))

    def late(pipeline_chunk: tuple[str, tuple[int, Chunk]]) -> list[StatsOutput]:
        pipeline, (window_id, chunk) = pipeline_chunk
        return [
            StatsOutput(
                "late", pipeline, orjson.dumps(late_record(pipeline, window_id, fact, window))
            )
            for fact in chunk.facts
        ]

    out = op.merge(
        "stats_records",
        op.map("window_record", windows.down, closed),
        op.flat_map("late_record", windows.late, late),
    )
    return out, letters


def stats_flow(settings: StatsSettings, progress: Callable[[str], None] | None = None) -> Dataflow:
    """The live statistics job: Kafka in, Kafka out."""
    flow = Dataflow("crm_triggers_stats")
    kafka = settings.kafka
    reading = Reading(
        batch_size=settings.batch_size,
        until_end=settings.until_end,
        start_at_end=settings.start_from == "end",
    )
    source = HistorySource(kafka, settings.history_topic, reading)
    history = op.input("history", flow, source)
    stats, letters = build_stats_flow(
        history, settings.window, settings.allowed_lateness, settings.engine
    )

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
