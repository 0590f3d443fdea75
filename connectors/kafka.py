"""Kafka topics as the job's source and sinks, on confluent-kafka.

Source: one Bytewax partition per partition of the events topic, each with its
own consumer on `assign()`, plus one partition that reads every partition of the
automation topic. Offsets live in Bytewax snapshots (the next offset to read),
never in consumer-group commits. The automation partition reads its topic to
the end, then emits an `AUTOMATION_CAUGHT_UP` marker batch, then follows it:
the decide step holds events back until it has seen the marker.

Sinks: `(item key, (order, item key, line))` items to a topic, keyed by the item
key ("" is a null key), through one idempotent producer per worker, one sink
partition per partition of the topic. A write hands its records to the producer
and returns; at the end of each epoch every sink partition written in it returns
from `snapshot` only once the broker has acknowledged every record, and Bytewax
commits an epoch only after that, so a committed epoch is a delivered one while
no batch waits for the broker.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast
from zlib import crc32

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors.raw import AUTOMATION, AUTOMATION_CAUGHT_UP, EVENTS, RawBatch
from connectors.records import DEFAULT_CATEGORY, DEFAULT_TENANT
from connectors.summary import Summary
from connectors.tombstones import plain_name, tombstone_record
from state.codes import id_text
from state.errors import ConfigError, CrmTriggersError, DeliveryError, SourceError

log = logging.getLogger("crm_triggers.kafka")

DEFAULT_BATCH_SIZE = 4096
"""Records a source partition hands the dataflow at most at once."""

IDLE_WAIT = timedelta(milliseconds=5)
"""After a poll that found nothing, the wait before polling that partition again."""

METADATA_TIMEOUT_S = 15.0
SECRET_MARKERS = ("password", "secret", "key", "token", "sasl")
MASK = "***"

# A consumer never commits: where to resume is in the snapshots.
_FORCED_CONSUMER = {"enable.auto.commit": False, "enable.auto.offset.store": False}
# Settings the delivery guarantee rests on; anything else may be overridden.
_FORCED_PRODUCER = {"enable.idempotence": True, "acks": "all"}
_PRODUCER_DEFAULTS = {
    "client.id": "crm-triggers",
    "partitioner": "murmur2_random",  # the Java client's partitioner: same key, same partition
    "linger.ms": 5,
    "batch.size": 1 << 20,
    "batch.num.messages": 10_000,
}
_CONSUMER_DEFAULTS = {
    "client.id": "crm-triggers",
    "group.id": "crm-triggers",  # required by librdkafka; nothing is committed under it
    "auto.offset.reset": "error",  # a resume offset lost to retention stops the job loudly
}
_PERMANENT_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


class KafkaMessage(Protocol):
    """What the job reads of a confluent-kafka `Message` (which Python code cannot build)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


def consume(consumer: Consumer, count: int, timeout: float) -> list[KafkaMessage]:
    return cast(list[KafkaMessage], consumer.consume(count, timeout))


# Settings -------------------------------------------------------------------------------


def is_secret(option: str) -> bool:
    """Whether a librdkafka option may hold a secret (its value is never shown)."""
    name = option.lower()
    return any(marker in name for marker in SECRET_MARKERS)


def masked(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (MASK if is_secret(k) else v) for k, v in options.items()}


@dataclass(frozen=True)
class KafkaSettings:
    """Where the cluster is, and librdkafka options passed straight through (SASL, TLS, ids).

    `repr` masks every option whose name suggests a secret, so logging this is safe.
    """

    brokers: str
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KafkaSettings(brokers={self.brokers!r}, options={masked(self.options)!r})"

    def client_config(self) -> dict[str, Any]:
        return {**self.options, "bootstrap.servers": self.brokers}

    def consumer_config(self, partition_eof: bool) -> dict[str, Any]:
        return {
            **_CONSUMER_DEFAULTS,
            **self.client_config(),
            **_FORCED_CONSUMER,
            "enable.partition.eof": partition_eof,
        }

    def producer_config(self) -> dict[str, Any]:
        return {**_PRODUCER_DEFAULTS, **self.client_config(), **_FORCED_PRODUCER}


@dataclass(frozen=True)
class Topics:
    events: str = "crm.events"
    automation: str = "crm.automation"
    transitions: str = "crm.stage-transitions"
    dead_letters: str = "crm.dead-letter"

    def all(self) -> tuple[str, str, str, str]:
        return (self.events, self.automation, self.transitions, self.dead_letters)


# Keys and tombstones --------------------------------------------------------------------


def event_key(obj: Any) -> bytes | None:
    """`<tenant>/<entity>/<id>` of an event's (first) item, or None if it names none."""
    if type(obj) is not dict:
        return None
    ref = obj.get("item")
    if ref is None:
        items = obj.get("items")
        ref = items[0] if isinstance(items, list) and items else None
    if type(ref) is not dict:
        return None
    tenant = obj.get("tenant") or DEFAULT_TENANT
    entity, item_id = ref.get("entity"), id_text(ref.get("id"))
    if not plain_name(tenant) or not plain_name(entity) or not item_id:
        return None
    return f"{tenant}/{entity}/{item_id}".encode()


def automation_key(obj: Any) -> bytes | None:
    """`trigger/<tenant>/<id>` or `pipeline/<tenant>/<entity>/<category>`, or None."""
    if type(obj) is not dict:
        return None
    tenant = obj.get("tenant") or DEFAULT_TENANT
    if not plain_name(tenant):
        return None
    kind = obj.get("kind")
    if kind == "trigger":
        trigger_id = id_text(obj.get("id"))
        return f"trigger/{tenant}/{trigger_id}".encode() if trigger_id else None
    if kind == "pipeline":
        entity = obj.get("entity")
        category = id_text(obj.get("category")) or DEFAULT_CATEGORY
        return f"pipeline/{tenant}/{entity}/{category}".encode() if plain_name(entity) else None
    return None


def record_key(line: bytes, compacted: bool = False) -> bytes | None:
    """The Kafka key of a JSON Lines record: automation or event by its shape.

    A record with no usable key gets none (the job dead-letters it), except on a
    compacted topic, which refuses records without a key: there it is keyed
    `unkeyed/<hash of the record>`, and the job dead-letters it all the same.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if type(obj) is dict and obj.get("kind") is not None:
        key = automation_key(obj)
    else:
        key = event_key(obj)
    if key is None and compacted:
        return b"unkeyed/" + hashlib.sha256(line).hexdigest()[:24].encode()
    return key


# Admin ----------------------------------------------------------------------------------


def admin_client(kafka: KafkaSettings) -> AdminClient:
    """An admin client; an unknown or invalid librdkafka option is a ConfigError."""
    try:
        return AdminClient(kafka.client_config())
    except KafkaException as bad:
        raise ConfigError(f"Kafka options {masked(kafka.options)}: {bad.args[0]}") from None


def topic_partitions(
    admin: AdminClient, topic: str, brokers: str, kind: type[CrmTriggersError] = SourceError
) -> list[int]:
    """The partition ids of a topic; `kind` (SourceError) if it does not exist or cannot be seen."""
    try:
        metadata = admin.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    except KafkaException as bad:
        raise kind(f"cannot reach the Kafka cluster at {brokers}: {bad.args[0]}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        why = found.error.str() if found is not None and found.error is not None else "not found"
        raise kind(
            f"topic {topic!r} on {brokers}: {why}; create the topics with "
            f"`crm-triggers topics create --brokers {brokers}`"
        )
    return sorted(found.partitions)


def is_compacted(kafka: KafkaSettings, topic: str) -> bool:
    """Whether a topic keeps the latest record per key (`cleanup.policy` has `compact`)."""
    admin = admin_client(kafka)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(METADATA_TIMEOUT_S)
    except KafkaException as bad:
        raise SourceError(f"topic {topic!r} on {kafka.brokers}: {bad.args[0].str()}") from None
    policy = configs.get("cleanup.policy")
    return policy is not None and "compact" in (policy.value or "")


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_plans(topics: Topics, partitions: int, automation_partitions: int = 1) -> list[TopicPlan]:
    """The job's topics: events and transitions keyed by item, automation compacted.

    The automation topic has one partition by default: a trigger is checked against
    its pipeline when applied, so pipelines must stay ahead of their triggers.
    """
    return [
        TopicPlan(topics.events, partitions),
        TopicPlan(topics.automation, automation_partitions, {"cleanup.policy": "compact"}),
        TopicPlan(topics.transitions, partitions),
        TopicPlan(topics.dead_letters, partitions),
    ]


def create_topics(
    kafka: KafkaSettings, plans: list[TopicPlan], replication_factor: int = -1
) -> list[str]:
    """Create the topics that do not exist yet; one line per topic saying what happened."""
    admin = admin_client(kafka)
    futures = admin.create_topics(
        [NewTopic(p.name, p.partitions, replication_factor, config=dict(p.config)) for p in plans],
        operation_timeout=METADATA_TIMEOUT_S,
    )
    report = []
    for plan in plans:
        try:
            futures[plan.name].result()
            report.append(f"{plan.name}: created, {plan.partitions} partitions")
        except KafkaException as bad:
            error = bad.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"topic {plan.name!r}: {error.str()}") from None
            have = len(topic_partitions(admin, plan.name, kafka.brokers))
            note = "" if have == plan.partitions else f" (asked for {plan.partitions})"
            report.append(f"{plan.name}: exists, {have} partitions{note}")
    return report


def delete_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    admin = admin_client(kafka)  # kept alive until the futures are done
    futures = admin.delete_topics(list(names), operation_timeout=METADATA_TIMEOUT_S)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as bad:
            if bad.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


# Errors of a client ---------------------------------------------------------------------


class ClientErrors:
    """librdkafka's client-level errors: transient ones logged, permanent ones kept to raise."""

    def __init__(self, client: str, kind: type[Exception] = SourceError) -> None:
        self.client = client
        self.kind = kind
        self.permanent: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.fatal() or error.code() in _PERMANENT_ERRORS:
            self.permanent = self.permanent or error
            log.error("%s: %s", self.client, error.str())
        else:
            log.warning("%s: %s (retrying)", self.client, error.str())

    def raise_permanent(self) -> None:
        if self.permanent is not None:
            raise self.kind(f"{self.client}: {self.permanent.str()}")


def _message_error(error: KafkaError, where: str, offset: int) -> None:
    """Raise for a record-level error that retrying will not fix; log the others."""
    if error.code() == KafkaError._AUTO_OFFSET_RESET:
        raise SourceError(
            f"{where}: offset {offset} is out of range ({error.str()}): the records were "
            "deleted by retention before the job read them. To skip to what is left, run "
            "with --kafka-option auto.offset.reset=earliest"
        )
    if error.fatal() or not error.retriable():
        raise SourceError(f"{where}: {error.str()}")
    log.warning("%s: %s (retrying)", where, error.str())


# Source ---------------------------------------------------------------------------------


def caught_up_marker(topic: str) -> RawBatch:
    """The batch that says: every record of the automation topic up to its end was emitted."""
    return RawBatch(AUTOMATION_CAUGHT_UP, topic, None, 0, [], [])


class KafkaSource(FixedPartitionedSource[RawBatch, Any]):
    """The events topic, one Bytewax partition per Kafka partition, and the automation topic.

    Each partition resumes from its snapshot: the next offset to read (automation:
    one per Kafka partition). Without one, events start at the beginning of the
    topic (or its end, `start_at_end`) and automation always at the beginning.
    `until_end`: stop once every partition has been read to its end, for catch-up
    runs, benchmarks and tests.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        events_topic: str,
        automation_topic: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        until_end: bool = False,
        start_at_end: bool = False,
    ) -> None:
        self.kafka = kafka
        self.events_topic = events_topic
        self.automation_topic = automation_topic
        self.batch_size = batch_size
        self.until_end = until_end
        self.start_at_end = start_at_end

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
            return AutomationPartition(
                self.kafka, topic, partitions, resume_state, self.batch_size, self.until_end
            )
        return EventsPartition(
            self.kafka,
            topic,
            int(which),
            resume_state,
            self.batch_size,
            self.until_end,
            self.start_at_end,
        )


class EventsPartition(StatefulSourcePartition[RawBatch, int]):
    """One partition of the events topic; its snapshot is the next offset to read."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partition: int,
        resume: int | None,
        batch_size: int,
        until_end: bool = False,
        start_at_end: bool = False,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.batch_size = batch_size
        self.where = f"topic {topic!r} partition {partition}"
        self.errors = ClientErrors(f"consumer of {self.where}")
        config = kafka.consumer_config(partition_eof=until_end)
        self.consumer = Consumer({**config, "error_cb": self.errors})
        if resume is not None:
            start = resume
        elif start_at_end:
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

    def next_batch(self) -> list[RawBatch]:
        if self.finished:
            raise StopIteration
        self.errors.raise_permanent()
        messages = consume(self.consumer, self.batch_size, 0)
        self.idle = not messages
        positions: list[int] = []
        values: list[bytes | None] = []
        keys: list[bytes | None] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.finished = True  # only read with until_end
                else:
                    _message_error(error, self.where, self.next_offset)
                continue
            positions.append(message.offset())
            values.append(message.value())
            keys.append(message.key())
        if not positions:
            return []
        self.next_offset = positions[-1] + 1
        first = positions[0]
        return [RawBatch(EVENTS, self.topic, self.partition, first, positions, values, keys)]

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + IDLE_WAIT if self.idle else None

    def snapshot(self) -> int:
        return self.next_offset

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
        batch_size: int,
        until_end: bool = False,
    ) -> None:
        self.topic = topic
        self.batch_size = batch_size
        self.until_end = until_end
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

    def next_batch(self) -> list[RawBatch]:
        if self.marked and self.until_end:
            raise StopIteration
        self.errors.raise_permanent()
        messages = consume(self.consumer, self.batch_size, 0)
        self.idle = not messages
        columns: dict[int, tuple[list[int], list[bytes | None], list[bytes | None], list[int]]] = {}
        for message in messages:
            p = message.partition()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.behind.discard(p)
                else:
                    _message_error(
                        error, f"{self.where} partition {p}", self.next_offsets.get(p, 0)
                    )
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
            log.info("%s read to its end: events are decided from now on", self.where)
            out.append(caught_up_marker(self.topic))
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + IDLE_WAIT if self.idle else None

    def snapshot(self) -> dict[int, int]:
        return dict(self.next_offsets)

    def close(self) -> None:
        self.consumer.close()


# Sinks ----------------------------------------------------------------------------------


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

    def __init__(self, producers: Producers, topic: str) -> None:
        self.producers = producers
        self.topic = topic

    def list_parts(self) -> list[str]:
        kafka = self.producers.kafka
        partitions = topic_partitions(admin_client(kafka), self.topic, kafka.brokers, DeliveryError)
        return [f"{self.topic}:{p}" for p in partitions]

    def part_fn(self, item_key: str) -> int:
        return crc32(item_key.encode())

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> KafkaSinkPartition:
        return KafkaSinkPartition(self.producers.for_this_worker(), self.topic)


class KafkaSinkPartition(StatefulSinkPartition[tuple[Any, str, bytes], None]):
    def __init__(self, producer: WorkerProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    def write_batch(self, values: list[tuple[Any, str, bytes]]) -> None:
        produce, topic = self.producer.produce, self.topic
        for _, key, line in values:
            produce(topic, key or None, line)
        self.producer.check(topic)

    def snapshot(self) -> None:
        self.producer.wait(self.topic)

    def close(self) -> None:
        self.producer.wait(self.topic)


# Producing and reading for people and tests ---------------------------------------------


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
                    _message_error(error, f"topic {topic!r}", message.offset())
            if until_end and not open_partitions:
                return
            if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return
    finally:
        consumer.close()


# Summary --------------------------------------------------------------------------------


def progress_line(counts: Counter[str], rate: float) -> str:
    """One line of running counts, for the log of a job that does not end."""
    dead = sum(v for k, v in counts.items() if k.startswith(("dlq.", "automation_dlq.")))
    waiting = "" if counts["automation_caught_up"] else ", waiting for automation to load"
    return (
        f"events read {counts['events_read']} ({rate:,.0f}/s), "
        f"transitions {counts['transition']}, dead letters {dead}, "
        f"automation read {counts['automation_read']} applied {counts['automation_applied']}"
        f"{waiting}"
    )


def print_line(line: str) -> None:
    sys.stderr.write(f"crm-triggers: {line}\n")
    sys.stderr.flush()


class PeriodicSummarySink(FixedPartitionedSink[Counter[str], None]):
    """Adds up the tallies of the whole cluster and reports them as one line to `progress`.

    A line at most every `interval` seconds while tallies arrive, and at the end of
    each epoch that changed the counts; a run that ends hands its Summary to `final`.
    """

    def __init__(
        self,
        interval: float,
        progress: Callable[[str], None] = print_line,
        final: Callable[[Summary], None] | None = None,
    ) -> None:
        self.interval = interval
        self.progress = progress
        self.final = final

    def list_parts(self) -> list[str]:
        return ["summary"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> PeriodicSummaryPartition:
        return PeriodicSummaryPartition(self)


class PeriodicSummaryPartition(StatefulSinkPartition[Counter[str], None]):
    def __init__(self, sink: PeriodicSummarySink) -> None:
        self.sink = sink
        self.counts: Counter[str] = Counter()
        self.started: float | None = None
        self.reported_at = time.monotonic()
        self.reported_events = 0
        self.dirty = False

    def write_batch(self, values: list[Counter[str]]) -> None:
        if self.started is None:
            self.started = time.monotonic()
        for tally in values:
            self.counts.update(tally)
        self.dirty = True
        self._report_if_due()

    def _report_if_due(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.dirty or (not force and now - self.reported_at < self.sink.interval):
            return
        rate = (self.counts["events_read"] - self.reported_events) / max(
            now - self.reported_at, 1e-9
        )
        self.sink.progress(progress_line(self.counts, rate))
        self.reported_at, self.reported_events, self.dirty = now, self.counts["events_read"], False

    def snapshot(self) -> None:
        # Called at the end of each epoch this partition was written in: the last
        # chance to show that epoch's counts if nothing follows them.
        self._report_if_due(force=True)

    def close(self) -> None:
        self._report_if_due(force=True)
        if self.sink.final is not None and self.started is not None:
            self.sink.final(Summary(self.counts, time.monotonic() - self.started))
