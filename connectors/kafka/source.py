"""The events and automation topics as the job's source, and a plain reader of a topic.

One Bytewax partition per partition of the events topic, each with its own
consumer on `assign()`, plus one partition that reads every partition of the
automation topic. Offsets live in Bytewax snapshots (the next offset to read),
never in consumer-group commits. The automation partition reads its topic to
the end, then emits an `AUTOMATION_CAUGHT_UP` marker batch, then follows it:
the decide step holds events back until it has seen the marker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka import trace
from connectors.kafka.admin import admin_client, topic_partitions
from connectors.kafka.client import (
    METADATA_TIMEOUT_S,
    ClientErrors,
    KafkaMessage,
    consume,
    message_error,
)
from connectors.kafka.config import DEFAULT_BATCH_SIZE, KafkaSettings
from connectors.kafka.pacing import DEFAULT_CYCLE_MS, CycleBound
from connectors.raw import AUTOMATION, AUTOMATION_CAUGHT_UP, EVENTS, RawBatch
from connectors.tombstones import tombstone_record

log = logging.getLogger("crm_triggers.kafka")


IDLE_WAIT = timedelta(milliseconds=5)
"""After a poll that found nothing, the wait before polling that partition again."""

BEHIND_WAIT = timedelta(milliseconds=1)
"""The same wait when the partition has records past its position (as of the last fetch):
they are being fetched, and a worker that waited the full IDLE_WAIT would fall behind."""


class SourceObserver(Protocol):
    """Who watches the source (the job's metrics): every cycle, and each partition's lag."""

    def cycle(self) -> None: ...
    def partition_lag(self, topic: str, partition: int, lag: int) -> None: ...


@dataclass(frozen=True)
class Reading:
    """How a job reads its topics: the same for every partition reader it builds."""

    batch_size: int = DEFAULT_BATCH_SIZE
    """Records a partition hands the dataflow at most at once."""
    until_end: bool = False
    """Stop once every partition has been read to its end: catch-up runs, benchmarks, tests."""
    start_at_end: bool = False
    """Without a snapshot, an events partition starts at the end of its topic, not the beginning."""
    cycle_ms: int = 0
    """An events partition's cycle bound in milliseconds (`connectors.kafka.pacing`); 0: by
    count only."""
    observer: SourceObserver | None = None
    """Told of each events partition's cycles and lag (the job's metrics)."""
    stop: Callable[[], bool] | None = None
    """Asked before each batch: true ends the partition as at the end of its input."""


DEFAULT_READING = Reading(cycle_ms=DEFAULT_CYCLE_MS)


def caught_up_marker(topic: str) -> RawBatch:
    """The batch that says: every record of the automation topic up to its end was emitted."""
    return RawBatch(AUTOMATION_CAUGHT_UP, topic, None, 0, [], [])


class KafkaSource(FixedPartitionedSource[RawBatch, Any]):
    """The events topic, one Bytewax partition per Kafka partition, and the automation topic.

    Each partition resumes from its snapshot: the next offset to read (automation:
    one per Kafka partition). Without one, events start at the beginning of the
    topic (or its end, `Reading.start_at_end`) and automation always at the beginning.
    `reading` holds what every partition reader takes alike.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        events_topic: str,
        automation_topic: str,
        reading: Reading = DEFAULT_READING,
    ) -> None:
        self.kafka = kafka
        self.events_topic = events_topic
        self.automation_topic = automation_topic
        self.reading = reading

    def list_parts(self) -> list[str]:
        admin = admin_client(self.kafka)
        events = topic_partitions(admin, self.events_topic, self.kafka.brokers)
        topic_partitions(admin, self.automation_topic, self.kafka.brokers)
        return [f"{self.events_topic}:{p}" for p in events] + [f"{self.automation_topic}:all"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any
    ) -> StatefulSourcePartition[RawBatch, Any]:
        topic, _, which = for_part.rpartition(":")
        if which == "all":
            partitions = topic_partitions(admin_client(self.kafka), topic, self.kafka.brokers)
            return AutomationPartition(self.kafka, topic, partitions, resume_state, self.reading)
        return EventsPartition(self.kafka, topic, int(which), resume_state, self.reading)


class EventsPartition(StatefulSourcePartition[RawBatch, int]):
    """One partition of the events topic; its snapshot is the next offset to read."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partition: int,
        resume: int | None,
        reading: Reading,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.batch_size = reading.batch_size
        self.bound = CycleBound(reading.batch_size, reading.cycle_ms / 1000)
        self.where = f"topic {topic!r} partition {partition}"
        self.errors = ClientErrors(f"consumer of {self.where}")
        config = kafka.consumer_config(partition_eof=reading.until_end)
        self.consumer = Consumer({**config, "error_cb": self.errors})
        if resume is not None:
            start = resume
        elif reading.start_at_end:
            # Resolved now, so a restart before the first record resumes here, not later.
            _, start = self.consumer.get_watermark_offsets(
                KafkaPartition(topic, partition), timeout=METADATA_TIMEOUT_S
            )
        else:
            start = OFFSET_BEGINNING
        self.next_offset = start
        self.consumer.assign([KafkaPartition(topic, partition, start)])
        self.finished = False
        self.idle = False
        self.observer = reading.observer
        self.stop = reading.stop
        self.last_read = 0.0  # wall time of the last consume, for the trace only

    def next_batch(self) -> list[RawBatch]:
        if self.finished or (self.stop is not None and self.stop()):
            raise StopIteration
        if self.observer is not None:
            self.observer.cycle()
        self.errors.raise_permanent()
        messages = consume(self.consumer, self.bound.next_count(self._behind()), 0)
        if trace.ON:
            self._trace(messages)
        self.idle = not messages
        if messages:
            self.errors.recovered()
        for message in messages:
            if message.error() is not None:
                messages = self._without_errors(messages)
                break
        if not messages:
            return []
        # One pass per column: a third less time per record than one loop appending to three.
        positions = [message.offset() for message in messages]
        values = [message.value() for message in messages]
        keys = [message.key() for message in messages]
        self.next_offset = positions[-1] + 1
        first = positions[0]
        return [RawBatch(EVENTS, self.topic, self.partition, first, positions, values, keys)]

    def _trace(self, messages: list[KafkaMessage]) -> None:
        now = time.time()
        if messages:
            gap = round((now - self.last_read) * 1000, 2) if self.last_read else -1
            first, last = messages[0].offset(), messages[-1].offset()
            trace.note("read", self.partition, first, last, gap, at=now)
        self.last_read = now

    def _without_errors(self, messages: list[KafkaMessage]) -> list[KafkaMessage]:
        """The records of a consumed batch; the end of the partition noted (only read with
        until_end), any other error raised or logged (`message_error`)."""
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.finished = True
            else:
                message_error(error, self.where, self.next_offset)
        return records

    def _behind(self) -> int | None:
        """Records from here to the partition's end as of the last fetch (no request)."""
        if self.next_offset < 0:
            return None
        _, high = self.consumer.get_watermark_offsets(
            KafkaPartition(self.topic, self.partition), cached=True
        )
        return high - self.next_offset if high >= 0 else None

    def next_awake(self) -> datetime | None:
        if not self.idle:
            return None
        return datetime.now(UTC) + (BEHIND_WAIT if self._behind() else IDLE_WAIT)

    def snapshot(self) -> int:
        if self.observer is not None:
            self._observe_lag(self.observer)
        return self.next_offset

    def _observe_lag(self, observer: SourceObserver) -> None:
        """Records behind the partition's end, from the last fetch (no call to the broker)."""
        try:
            low, high = self.consumer.get_watermark_offsets(
                KafkaPartition(self.topic, self.partition), cached=True
            )
        except KafkaException:
            return
        if high < 0:
            return
        observer.partition_lag(self.topic, self.partition, high - max(low, self.next_offset))

    def close(self) -> None:
        self.consumer.close()


class AutomationPartition(StatefulSourcePartition[RawBatch, dict[int, int]]):
    """Every partition of the automation topic: read to the end, mark it, then follow.

    Its snapshot maps each Kafka partition to the next offset to read. A tombstone
    becomes the deletion record its key names, at its timestamp; one whose key names
    nothing stays a null value for the dataflow to dead-letter.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partitions: list[int],
        resume: dict[int, int] | None,
        reading: Reading,
    ) -> None:
        self.topic = topic
        self.batch_size = reading.batch_size
        self.until_end = reading.until_end
        self.where = f"automation topic {topic!r}"
        self.errors = ClientErrors(f"consumer of {self.where}")
        self.consumer = Consumer(
            {**kafka.consumer_config(partition_eof=True), "error_cb": self.errors}
        )
        self.next_offsets = dict(resume or {})
        self.behind: set[int] = set()
        for p in partitions:
            low, high = self.consumer.get_watermark_offsets(
                KafkaPartition(topic, p), timeout=METADATA_TIMEOUT_S
            )
            if max(low, self.next_offsets.get(p, low)) < high:
                self.behind.add(p)
        self.consumer.assign(
            [
                KafkaPartition(topic, p, self.next_offsets.get(p, OFFSET_BEGINNING))
                for p in partitions
            ]
        )
        self.marked = False
        self.idle = False
        self.stop = reading.stop

    def next_batch(self) -> list[RawBatch]:
        if (self.marked and self.until_end) or (self.stop is not None and self.stop()):
            raise StopIteration
        self.errors.raise_permanent()
        messages = consume(self.consumer, self.batch_size, 0)
        self.idle = not messages
        if messages:
            self.errors.recovered()
        columns: dict[int, tuple[list[int], list[bytes | None], list[bytes | None], list[int]]] = {}
        for message in messages:
            p = message.partition()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.behind.discard(p)
                else:
                    message_error(error, f"{self.where} partition {p}", self.next_offsets.get(p, 0))
                continue
            offset, key, value = message.offset(), message.key(), message.value()
            timestamp = message.timestamp()[1]
            if value is None:
                deletion = tombstone_record(key, timestamp)
                if type(deletion) is dict:
                    value = orjson.dumps(deletion)
            positions, values, keys, stamps = columns.setdefault(p, ([], [], [], []))
            positions.append(offset)
            values.append(value)
            keys.append(key)
            stamps.append(timestamp)
            self.next_offsets[p] = offset + 1
        out = [
            RawBatch(AUTOMATION, self.topic, p, cols[0][0], *cols) for p, cols in columns.items()
        ]
        if not self.behind and not self.marked:
            self.marked = True
            log.info(
                "%s read to its end: events are decided from now on",
                self.where,
                extra={"event": "caught_up"},
            )
            out.append(caught_up_marker(self.topic))
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + IDLE_WAIT if self.idle else None

    def snapshot(self) -> dict[int, int]:
        return dict(self.next_offsets)

    def close(self) -> None:
        self.consumer.close()


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
    until_end: bool = False,
) -> Iterator[Any]:
    """Messages of every partition of a topic, in arrival order per partition.

    `until_end`: stop once every partition has been read to its current end;
    `idle_timeout`: stop after that many seconds without a new record.
    """
    admin = admin_client(kafka)
    partitions = topic_partitions(admin, topic, kafka.brokers)
    consumer = Consumer(
        {**kafka.consumer_config(partition_eof=until_end), "auto.offset.reset": "earliest"}
    )
    try:
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([KafkaPartition(topic, p, start) for p in partitions])
        open_partitions = set(partitions)
        last = time.monotonic()
        while True:
            messages = consume(consumer, 1000, 0.2)
            if messages:
                last = time.monotonic()
            for message in messages:
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(message.partition())
                else:
                    message_error(error, f"topic {topic!r}", message.offset())
            if until_end and not open_partitions:
                return
            if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return
    finally:
        consumer.close()
