"""Topics as the job's sinks, and a plain producer of records for people and tests.

`(item key, (order, item key, line))` items go to a topic, keyed by the item
key ("" is a null key), through one idempotent producer per worker, one sink
partition per partition of the topic. A write hands its records to the producer
and returns; at the end of each epoch every sink partition written in it returns
from `snapshot` only once the broker has acknowledged every record, and Bytewax
commits an epoch only after that, so a committed epoch is a delivered one while
no batch waits for the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zlib import crc32

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import (
    KafkaError,
    KafkaException,
    Producer,
)

from connectors.kafka import trace
from connectors.kafka.admin import admin_client, topic_partitions
from connectors.kafka.client import ClientErrors
from connectors.kafka.config import KafkaSettings, masked
from state.errors import ConfigError, DeliveryError

log = logging.getLogger("crm_triggers.kafka")


class WorkerProducer:
    """One idempotent producer, shared by the sinks of one worker; counts failed deliveries."""

    def __init__(self, kafka: KafkaSettings, worker: int) -> None:
        self.errors = ClientErrors(f"producer of worker {worker}", DeliveryError)
        self.failures: Counter[str] = Counter()
        self.first_failure: dict[str, str] = {}
        try:
            self.producer = Producer(
                {**kafka.producer_config(), "on_delivery": self._delivered, "error_cb": self.errors}
            )
        except KafkaException as bad:
            raise ConfigError(f"Kafka options {masked(kafka.options)}: {bad.args[0]}") from None

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            topic = message.topic()
            self.failures[topic] += 1
            self.first_failure.setdefault(topic, error.str())

    def produce(self, topic: str, key: str | bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                # The local queue is full (bytewax issue 522): serve delivery reports, retry.
                self.producer.poll(0.1)

    def check(self, topic: str) -> None:
        """Serve the delivery reports that came in; DeliveryError if a record failed."""
        self.producer.poll(0)
        self._raise_failures(topic)

    def wait(self, topic: str) -> None:
        """Return once every record produced so far is acknowledged; DeliveryError if one failed."""
        started = time.monotonic()
        warned = started
        while self.producer.flush(1.0):
            self.errors.raise_permanent()
            now = time.monotonic()
            if now - warned >= 10:
                warned = now
                log.warning(
                    "%d records to %r still unacknowledged after %.0f s (is the broker up?)",
                    len(self.producer),
                    topic,
                    now - started,
                )
        self.errors.recovered()
        self._raise_failures(topic)

    def _raise_failures(self, topic: str) -> None:
        self.errors.raise_permanent()
        if self.failures[topic]:
            raise DeliveryError(
                f"{self.failures[topic]} records to topic {topic!r} were not delivered: "
                f"{self.first_failure[topic]}. The job stops rather than lose them; with "
                "a recovery directory, a restart writes them again"
            )


class Producers:
    """The producer of each worker of this process, made on first use.

    Bytewax runs each worker on a thread of its own and builds its sink partitions
    there, so a worker is known by its thread; only that worker writes through its
    producer, and waiting for it never waits for another worker's records.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._lock = threading.Lock()
        self._by_thread: dict[int, WorkerProducer] = {}

    def for_this_worker(self) -> WorkerProducer:
        thread = threading.get_ident()
        with self._lock:
            found = self._by_thread.get(thread)
            if found is None:
                found = WorkerProducer(self.kafka, len(self._by_thread))
                self._by_thread[thread] = found
            return found


class KafkaSink(FixedPartitionedSink[tuple[Any, str, bytes], None]):
    """Writes `(item key, (order, item key, line))` items to a topic: key = item key, value = line.

    One sink partition per partition of the topic (it must exist), owned by one
    worker: the records of an item always go through the same producer, in order,
    and the Kafka partitioner places them by their key. Writes do not wait for the
    broker; `snapshot`, at the end of each epoch the partition was written in, and
    `close` return once every record is acknowledged (see the module docstring).
    """

    def __init__(
        self,
        producers: Producers,
        topic: str,
        written: Callable[[Iterable[bytes]], None] | None = None,
    ) -> None:
        self.producers = producers
        self.topic = topic
        self.written = written
        """Shown each written batch's lines (the job's latency metric), if given."""

    def list_parts(self) -> list[str]:
        kafka = self.producers.kafka
        partitions = topic_partitions(admin_client(kafka), self.topic, kafka.brokers, DeliveryError)
        return [f"{self.topic}:{p}" for p in partitions]

    def part_fn(self, item_key: str) -> int:
        return crc32(item_key.encode())

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> KafkaSinkPartition:
        return KafkaSinkPartition(self.producers.for_this_worker(), self.topic, self.written)


class KafkaSinkPartition(StatefulSinkPartition[tuple[Any, str, bytes], None]):
    def __init__(
        self,
        producer: WorkerProducer,
        topic: str,
        written: Callable[[Iterable[bytes]], None] | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.written = written

    def write_batch(self, values: list[tuple[Any, str, bytes]]) -> None:
        started = time.time() if trace.ON else 0.0
        produce, topic = self.producer.produce, self.topic
        for _, key, line in values:
            produce(topic, key or None, line)
        self.producer.check(topic)
        if self.written is not None and values:
            self.written([values[-1][2]])
        if trace.ON and values:
            trace.note("write", topic, len(values), round((time.time() - started) * 1000, 2))

    def snapshot(self) -> None:
        self._wait()

    def close(self) -> None:
        self._wait()

    def _wait(self) -> None:
        started = time.time() if trace.ON else 0.0
        self.producer.wait(self.topic)
        if trace.ON:
            trace.note("wait", self.topic, round((time.time() - started) * 1000, 2))


@dataclass
class Produced:
    """What `produce_records` wrote: counts, and where each record landed, in order."""

    topic: str
    records: int = 0
    without_key: int = 0
    positions: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)


def produce_records(
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    timestamp_ms: int | None = None,
) -> Produced:
    """Produce (key, value) records in order through an idempotent producer and wait for all.

    DeliveryError if any was not delivered. `timestamp_ms` sets the Kafka timestamp of
    every record (for a tombstone: the time of the deletion); by default it is now.
    """
    done = Produced(topic)
    positions: dict[int, tuple[int, int]] = {}
    failures: list[str] = []

    def delivered(index: int, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            failures.append(error.str())
        else:
            positions[index] = (message.partition(), message.offset())

    producer = Producer({**kafka.producer_config(), "linger.ms": 20})
    timestamp = 0 if timestamp_ms is None else timestamp_ms  # 0: now
    for index, (key, value) in enumerate(records):
        report = partial(delivered, index)
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        done.records += 1
        done.without_key += key is None
    while producer.flush(1.0):
        pass
    if failures:
        raise DeliveryError(
            f"{len(failures)} of {done.records} records to {topic!r} were not delivered: "
            f"{failures[0]}"
        )
    done.positions = [positions[i] for i in range(done.records)]
    return done
