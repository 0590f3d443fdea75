"""The Kafka source and sink on their own: resume, the automation marker, keys, failures."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from connectors.kafka import (
    BEHIND_WAIT,
    AutomationPartition,
    EventsPartition,
    KafkaSettings,
    KafkaSink,
    Producers,
    Reading,
    produce_records,
    trace,
)
from connectors.raw import AUTOMATION, AUTOMATION_CAUGHT_UP, EVENTS, RawBatch
from connectors.tombstones import rfc3339_ms
from state.errors import DeliveryError
from tests.integration.conftest import read_all

pytestmark = pytest.mark.integration


def read_batches(part: Any, want: int, timeout: float = 20.0) -> list[RawBatch]:
    """Batches until `want` records (a marker counts as one); a partition ending first fails."""
    batches: list[RawBatch] = []
    deadline = time.monotonic() + timeout
    while sum(max(1, len(b.values)) for b in batches) < want:
        assert time.monotonic() < deadline, f"read only {batches}"
        try:
            batches.extend(part.next_batch())
        except StopIteration:
            raise AssertionError(f"the partition ended before {want} records: {batches}") from None
        time.sleep(0.01)
    return batches


def read_to_end(part: Any, timeout: float = 20.0) -> list[RawBatch]:
    """Batches until the partition says it has ended (StopIteration); fails on a timeout."""
    batches: list[RawBatch] = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"the partition did not end; read {batches}"
        try:
            batches.extend(part.next_batch())
        except StopIteration:
            return batches
        time.sleep(0.01)


def test_events_partition_resumes_after_the_last_record_it_emitted(
    kafka: KafkaSettings, make_topics: Any
) -> None:
    topics = make_topics(partitions=1)
    produce_records(kafka, topics.events, [(None, b"%d" % n) for n in range(10)])

    first = EventsPartition(kafka, topics.events, 0, None, Reading(batch_size=4))
    read = read_batches(first, 5)
    emitted = [v for b in read for v in b.values]
    resume = first.snapshot()
    first.close()
    assert all(b.stream == EVENTS and b.partition == 0 for b in read)
    assert resume == len(emitted) == [p for b in read for p in b.positions][-1] + 1

    again = EventsPartition(kafka, topics.events, 0, resume, Reading(batch_size=4, until_end=True))
    rest = [v for b in read_batches(again, 10 - resume) for v in b.values]
    assert emitted + rest == [b"%d" % n for n in range(10)]
    assert read_to_end(again, timeout=5) == []
    with pytest.raises(AssertionError, match="ended before 1 records"):
        read_batches(again, 1, timeout=5)
    again.close()


def test_automation_is_read_to_its_end_then_marked_then_followed(
    kafka: KafkaSettings, make_topics: Any
) -> None:
    topics = make_topics()
    pipeline = b'{"kind": "pipeline", "entity": "deal", "stages": [{"id": "NEW"}]}'
    produce_records(kafka, topics.automation, [(b"pipeline/default/deal/0", pipeline)])
    deleted_at = 1_767_225_600_000
    produce_records(
        kafka,
        topics.automation,
        [(b"trigger/acme/t-1", None), (b"not-a-key", None)],
        timestamp_ms=deleted_at,
    )

    part = AutomationPartition(kafka, topics.automation, [0], None, Reading(batch_size=100))
    batches = read_batches(part, 4)
    assert [b.stream for b in batches] == [AUTOMATION] * (len(batches) - 1) + [AUTOMATION_CAUGHT_UP]
    values = [v for b in batches for v in b.values]
    assert values[0] == pipeline
    assert orjson.loads(values[1]) == {
        "kind": "trigger",
        "tenant": "acme",
        "id": "t-1",
        "deleted": True,
        "updated_at": rfc3339_ms(deleted_at),
    }
    assert values[2] is None  # left for the dataflow to dead-letter
    assert part.snapshot() == {0: 3}

    produce_records(kafka, topics.automation, [(b"pipeline/default/deal/0", pipeline)])
    [later] = read_batches(part, 1)
    assert (later.stream, later.positions) == (AUTOMATION, [3])
    part.close()

    resumed = AutomationPartition(kafka, topics.automation, [0], {0: 4}, Reading(batch_size=100))
    assert [b.stream for b in read_batches(resumed, 1)] == [AUTOMATION_CAUGHT_UP]
    resumed.close()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, as the Java client's default partitioner uses it."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def test_sink_keys_records_by_item_like_a_java_producer(
    kafka: KafkaSettings, make_topics: Any
) -> None:
    topics = make_topics(partitions=3)
    sink = KafkaSink(Producers(kafka), topics.transitions)
    parts = sink.list_parts()
    assert parts == [f"{topics.transitions}:{p}" for p in range(3)]
    part = sink.build_part("transitions", parts[0], None)
    items = [(f"acme/deal/{n}", (n, 0), b"%d" % n) for n in range(30)]
    part.write_batch([(order, key, line) for key, order, line in items])
    part.write_batch([((99, 0), "", b"no item")])
    part.close()

    written = {m.value(): (m.key(), m.partition()) for m in read_all(kafka, topics.transitions)}
    assert written[b"no item"][0] is None
    for key, _, line in items:
        assert written[line] == (key.encode(), (murmur2(key.encode()) & 0x7FFFFFFF) % 3)


def test_a_sink_snapshot_returns_once_every_record_written_is_acknowledged(
    kafka: KafkaSettings, make_topics: Any
) -> None:
    topics = make_topics(partitions=1)
    part = KafkaSink(Producers(kafka), topics.transitions).build_part("out", "any", None)
    part.write_batch([((n, 0), f"acme/deal/{n}", b"%d" % n) for n in range(100)])
    part.snapshot()
    assert len(part.producer.producer) == 0
    assert len(read_all(kafka, topics.transitions)) == 100


def test_a_record_that_cannot_be_delivered_fails_the_epoch_loudly(kafka: KafkaSettings) -> None:
    broken = KafkaSettings(kafka.brokers, {"message.timeout.ms": "1500"})
    sink = KafkaSink(Producers(broken), "crm-triggers-no-such-topic")
    part = sink.build_part("out", "crm-triggers-no-such-topic:0", None)
    part.write_batch([((0, 0), "acme/deal/1", b"{}")])
    with pytest.raises(DeliveryError, match="1 records to topic 'crm-triggers-no-such-topic'"):
        part.snapshot()


def test_a_missing_output_topic_fails_at_start(kafka: KafkaSettings) -> None:
    sink = KafkaSink(Producers(kafka), "crm-triggers-no-such-topic")
    with pytest.raises(DeliveryError, match=r"'crm-triggers-no-such-topic'.*topics create"):
        sink.list_parts()


@pytest.mark.parametrize("backoff_ms", [None, 1000])
def test_an_events_partition_read_faster_than_it_fills_never_waits_long_for_a_fetch(
    kafka: KafkaSettings, make_topics: Any, backoff_ms: int | None
) -> None:
    """librdkafka stops fetching a partition whose queue holds queued.min.messages and puts
    the next fetch off by fetch.queue.backoff.ms: its default (1 s) starved a worker that
    drains the queue in less; the job's default does not. With 1 s given, the gap shows."""
    topics = make_topics(partitions=1)
    total = 250_000
    produce_records(kafka, topics.events, ((None, b"{}") for _ in range(total)))
    options = {} if backoff_ms is None else {"fetch.queue.backoff.ms": str(backoff_ms)}
    part = EventsPartition(
        KafkaSettings(kafka.brokers, options),
        topics.events,
        0,
        None,
        Reading(batch_size=4096, until_end=True),
    )
    read, longest, last = 0, 0.0, time.monotonic()
    deadline = last + 60
    try:
        while True:
            assert time.monotonic() < deadline, f"read {read} of {total}"
            try:
                batches = part.next_batch()
            except StopIteration:
                break
            now = time.monotonic()
            if batches:
                if read:  # the first fetch is the consumer's start, not a wait
                    longest = max(longest, now - last)
                read += sum(len(b.values) for b in batches)
                last = now
    finally:
        part.close()
    assert read == total
    if backoff_ms is None:
        assert longest < 0.4, f"waited {longest:.3f} s for records already in the partition"
    else:
        assert longest > 0.4, f"no wait for a fetch put off by {backoff_ms} ms ({longest:.3f} s)"


def test_an_idle_events_partition_polls_again_sooner_while_records_are_past_its_position(
    kafka: KafkaSettings, make_topics: Any
) -> None:
    topics = make_topics(partitions=1)
    produce_records(kafka, topics.events, ((None, b"{}") for _ in range(10)))
    part = EventsPartition(kafka, topics.events, 0, None, Reading(batch_size=4096))
    try:
        assert sum(len(b.values) for b in read_batches(part, 10)) == 10
        assert part.next_batch() == [] and part.idle  # at the end: the full idle wait
        wait = part.next_awake()
        assert wait is not None
        assert wait - datetime.now(UTC) > BEHIND_WAIT
        part.next_offset = 4  # records past the position, known from the last fetch
        wait = part.next_awake()
        assert wait is not None
        assert wait - datetime.now(UTC) <= BEHIND_WAIT
    finally:
        part.close()


def test_with_the_trace_on_reads_writes_and_waits_are_noted_with_their_positions(
    kafka: KafkaSettings, make_topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = io.StringIO()
    monkeypatch.setattr(trace, "_out", timeline)
    monkeypatch.setattr(trace, "ON", True)
    topics = make_topics(partitions=1)
    produce_records(kafka, topics.events, ((None, b"%d" % n) for n in range(10)))
    part = EventsPartition(kafka, topics.events, 0, None, Reading(batch_size=4))
    read = read_batches(part, 10)
    part.close()
    sink = KafkaSink(Producers(kafka), topics.transitions).build_part("out", "any", None)
    sink.write_batch([((n, 0), f"acme/deal/{n}", b"%d" % n) for n in range(3)])
    sink.snapshot()

    lines = [line.split("\t") for line in timeline.getvalue().splitlines()]
    reads = [line for line in lines if line[0] == "read"]
    assert [(int(r[3]), int(r[4])) for r in reads] == [
        (b.positions[0], b.positions[-1]) for b in read
    ]
    assert all(r[2] == "0" for r in reads)
    assert len(reads) >= 3 and all(float(r[5]) >= 10 for r in reads[1:])  # 10 ms sleeps between
    assert [line[2:4] for line in lines if line[0] == "write"] == [[topics.transitions, "3"]]
    assert [line[2] for line in lines if line[0] == "wait"] == [topics.transitions]
