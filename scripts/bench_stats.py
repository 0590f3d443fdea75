"""Benchmark the live statistics job against a plain confluent-kafka loop on the same topic.

    python scripts/bench_stats.py [--records 1000000] [--items 300000] [--partitions 1]
                                  [--runs 3] [--engines native,python] [--in-memory]
                                  [--profile]

Generates stage-history records in the shape of spec 6.1 (items created over a few
days, each moving on a few times), loads them into a fresh uuid-named topic on
the broker in CRM_TRIGGERS_BROKERS (default 127.0.0.1:9092), then alternates:

- baseline: one confluent-kafka consumer reads every partition to its end and
  decodes each value (orjson), as the least any consumer of the topic does; its
  configuration is the job's own (`KafkaSettings.consumer_config`), so that the
  ratio compares the work per record, not the fetch settings;
- job: the stats dataflow (`flows.stats.stats_flow`, one worker, `--until-end`)
  reads the same topic and writes its windows to a fresh stats topic, once per
  engine of `--engines` (the compiled stays step, `native`, and the Python
  reference, `python`);
- flow only (`--in-memory`): the same dataflow on the records from memory
  (Bytewax's TestingSource), which leaves Kafka out of the figure.

and prints records/s of each and its ratio to the baseline of the same run, and
the CPU time of each per record (the process's, every thread): on a shared
machine the wall-clock rates follow the load, the CPU ratio much less.
`--profile` runs the job once more under cProfile (the first engine) and prints
where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka import (
    KafkaSettings,
    TopicPlan,
    create_topics,
    delete_topics,
    produce_records,
)
from flows.stats import StatsSettings, batches_of, build_stats_flow, stats_flow

PIPELINES = [
    ("acme", "deal", "0", [("NEW", "process"), ("PREPARATION", "process"),
                           ("PREPAYMENT_INVOICE", "process"), ("EXECUTING", "process"),
                           ("WON", "success"), ("LOSE", "failure")]),
    ("acme", "deal", "3", [("C3:NEW", "process"), ("C3:OFFER", "process"),
                           ("C3:WON", "success"), ("C3:LOSE", "failure")]),
    ("acme", "lead", "0", [("NEW", "process"), ("IN_PROCESS", "process"),
                           ("CONVERTED", "success"), ("JUNK", "failure")]),
    ("globex", "deal", "0", [("NEW", "process"), ("PREPARATION", "process"),
                             ("WON", "success"), ("LOSE", "failure")]),
    ("initech", "quote", "0", [("DRAFT", "process"), ("SENT", "process"),
                               ("APPROVED", "success"), ("DECLINED", "failure")]),
]  # fmt: skip
TRIGGERS = ["WEBFORM", "EMAIL_READ", "CALL", "MISSED_CALL", "OPENLINE", "VISIT"]


def history_records(
    records: int,
    items: int,
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC),
    days: float = 7.0,
    seed: int = 7,
) -> Iterator[tuple[bytes, bytes]]:
    """(Kafka key, value) of about `records` history records of `items` items, by `at`.

    Items are created at random times over `days`; each then moves forward stage by
    stage (70% by a trigger, the rest by a person), with gaps of minutes to a day,
    ending on a final stage or deleted. Records come out sorted by `at`, as the main
    job writes them when it decides events in time order.
    """
    rng = random.Random(seed)
    per_item = max(records / items, 1.0)
    span = days * 86400
    out: list[tuple[float, bytes, bytes]] = []
    for n in range(items):
        tenant, entity, category, stages = PIPELINES[n % len(PIPELINES)]
        moves = min(len(stages) - 1, max(0, round(rng.gauss(per_item - 1, 0.7))))
        t = rng.uniform(0, span)
        item = f"{n}"
        key = f"{tenant}/{entity}/{item}".encode()
        stage, semantic = stages[0]
        previous = None
        for step in range(moves + 1):
            if step == 0:
                kind = "created"
            else:
                t += rng.choice((rng.expovariate(1 / 900), rng.expovariate(1 / 20000)))
                kind = "trigger" if rng.random() < 0.7 else "crm"
                if rng.random() < 0.05:
                    kind = "deleted"
                else:
                    previous = stage
                    index = min(step, len(stages) - 2) if rng.random() < 0.85 else len(stages) - 1
                    stage, semantic = stages[index]
            at = datetime.fromtimestamp(start.timestamp() + t, UTC)
            code = rng.choice(TRIGGERS) if kind == "trigger" else None
            event_id = f"evt-{n}-{step}"
            record = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{key.decode()}/{event_id}/{kind}")),
                "tenant": tenant,
                "item": {"entity": entity, "id": item},
                "category": category,
                "stage": stage,
                "from_stage": None if kind == "created" else previous,
                "semantic": semantic,
                "kind": kind,
                "at": at.isoformat().replace("+00:00", "Z"),
                "event": {"id": event_id, "type": "item.stage_changed"},
                "transition_id": str(uuid.uuid4()) if code else None,
                "trigger": {"id": f"t-{tenant}-{code}", "code": code} if code else None,
            }
            out.append((t, key, orjson.dumps(record)))
            if kind == "deleted":
                break
    out.sort(key=lambda x: x[0])
    for _, key, value in out:
        yield key, value


def baseline(kafka: KafkaSettings, topic: str, partitions: int) -> tuple[int, float]:
    """Records read and seconds: one consumer, every partition to its end, values decoded."""
    consumer = Consumer(kafka.consumer_config(partition_eof=True))
    consumer.assign([KafkaPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    started = time.perf_counter()
    count, open_partitions = 0, set(range(partitions))
    loads = orjson.loads
    while open_partitions:
        for message in consumer.consume(4096, 0.5):
            error = message.error()
            if error is None:
                loads(message.value())
                count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(message.partition())
    elapsed = time.perf_counter() - started
    consumer.close()
    return count, elapsed


def job(kafka: KafkaSettings, topic: str, batch_size: int, engine: str) -> float:
    """Seconds the stats job takes to read the topic to its end (windows to a fresh topic)."""
    out = f"bench-{uuid.uuid4().hex[:8]}.stage-stats"
    create_topics(kafka, [TopicPlan(out, 1), TopicPlan(out + ".dlq", 1)], replication_factor=1)
    settings = StatsSettings.build(
        {
            "brokers": kafka.brokers,
            "history_topic": topic,
            "stats_topic": out,
            "dead_letter_topic": out + ".dlq",
            "until_end": True,
            "batch_size": batch_size,
            "summary_interval": 3600,
            "engine": engine,
        }
    )
    try:
        started = time.perf_counter()
        run_main(stats_flow(settings, progress=lambda line: None))
        return time.perf_counter() - started
    finally:
        delete_topics(kafka, [out, out + ".dlq"])


def in_memory(values: list[bytes], batch_size: int, engine: str) -> float:
    """Seconds the same dataflow takes on the records from memory (no Kafka)."""
    flow = Dataflow("bench_stats")
    stream = op.input("history", flow, TestingSource(batches_of(values, batch_size)))
    out, letters = build_stats_flow(stream, timedelta(hours=1), timedelta(minutes=10), engine)
    op.output("out", out, TestingSink([]))
    op.output("dlq", letters, TestingSink([]))
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--in-memory", action="store_true", help="also time the flow alone")
    parser.add_argument(
        "--engines", default="native,python", help="stays steps to time, comma-separated"
    )
    parser.add_argument("--profile", action="store_true", help="profile one run of the job")
    args = parser.parse_args()

    kafka = KafkaSettings(os.environ.get("CRM_TRIGGERS_BROKERS", "127.0.0.1:9092"))
    print(f"generating about {args.records:,} history records of {args.items:,} items ...")
    pairs = list(history_records(args.records, args.items))
    topic = f"bench-{uuid.uuid4().hex[:8]}.stage-history"
    create_topics(kafka, [TopicPlan(topic, args.partitions)], replication_factor=1)
    try:
        produce_records(kafka, topic, pairs)
        n = len(pairs)
        print(f"{n:,} records in {topic} ({args.partitions} partitions)")
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        rates: dict[str, list[float]] = defaultdict(list)
        cpus: dict[str, list[float]] = defaultdict(list)
        values = [v for _, v in pairs]

        def timed(name: str, run: Callable[[], float]) -> str:
            cpu = time.process_time()
            rates[name].append(n / run())
            cpus[name].append((time.process_time() - cpu) / n * 1e6)
            return f"{name} {rates[name][-1]:,.0f}/s ({cpus[name][-1]:.2f} us CPU)"

        def loop() -> float:
            count, seconds = baseline(kafka, topic, args.partitions)
            assert count == n, (count, n)
            return seconds

        for run in range(args.runs):
            parts = [timed("loop", loop)]
            for engine in engines:
                parts.append(
                    timed(f"job {engine}", lambda e=engine: job(kafka, topic, args.batch_size, e))
                )
                if args.in_memory:
                    parts.append(
                        timed(
                            f"flow from memory {engine}",
                            lambda e=engine: in_memory(values, args.batch_size, e),
                        )
                    )
            print(f"run {run + 1}: " + ", ".join(parts), flush=True)
        base, base_cpu = statistics.median(rates["loop"]), statistics.median(cpus["loop"])
        print(
            f"medians of {args.runs} runs: plain confluent-kafka loop {base:,.0f} records/s, "
            f"{base_cpu:.2f} us CPU per record"
        )
        for name in rates:
            if name == "loop":
                continue
            rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
            print(
                f"  {name}: {rate:,.0f} records/s ({rate / base:.2f} of the loop), "
                f"{cpu:.2f} us CPU per record ({cpu / base_cpu:.2f}x the loop's)"
            )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            job(kafka, topic, args.batch_size, engines[0])
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    finally:
        delete_topics(kafka, [topic])


if __name__ == "__main__":
    main()
