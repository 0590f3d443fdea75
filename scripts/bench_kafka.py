"""Kafka to Kafka benchmark: the live job against a plain confluent-kafka loop.

    python scripts/bench_kafka.py [--events 1000000] [--items 100000] [--runs 1]
                                  [--partitions 1] [--brokers HOST:PORT] [--keep-topics]
                                  [--key-groups N]

Generates a realistic log once (scripts/generate.py, cached in .cache/bench/),
loads it into fresh uuid-named topics on the local broker (started with
scripts/kafka/broker.sh unless --brokers or CRM_TRIGGERS_BROKERS names a
cluster), then measures, alternating run by run:

- baseline: one Python process, a plain confluent-kafka loop that reads the
  automation topic into a `state.table.TriggerTable`, consumes the events topic,
  decodes each record with `connectors.records.decode_event`, decides it with one
  `state.board.Board`, and produces transitions and dead letters (keyed, through
  an idempotent producer) to its own topics, flushing at the end;
- job: `python -m flows run --until-end` on the same topics, one process, one
  worker, writing to its own topics.

Both are timed from process start to exit: startup and reading the automation
topic are included. The job's own count of its processing window (first batch to
last, from its final summary) is printed as well. Each line names the command
that reproduces it; the machine may be shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.deadletter import DeadLetter, Origin
from connectors.jsonl import read_lines
from connectors.kafka import (
    KafkaSettings,
    Topics,
    admin_client,
    create_topics,
    delete_topics,
    produce_records,
    read_topic,
    record_key,
    tombstone_record,
    topic_partitions,
    topic_plans,
)
from connectors.records import (
    decode_event,
    load_json,
    parse_automation,
    transition_json,
)
from flows.runtime import tune_gc
from state.board import Board
from state.model import Event, Rejection, Transition
from state.table import TriggerTable

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
BROKER_SCRIPT = ROOT / "scripts" / "kafka" / "broker.sh"
JOB_WINDOW = re.compile(r"time: +([\d.]+) s, ([\d,]+) events/s")


# The baseline ---------------------------------------------------------------------------


def baseline(brokers: str, topics: Topics) -> tuple[int, int, float]:
    """Events read, transitions produced, seconds: the plain loop described above."""
    started = time.perf_counter()
    tune_gc()
    kafka = KafkaSettings(brokers)
    table = TriggerTable()
    for message in read_topic(kafka, topics.automation, until_end=True):
        value = message.value()
        if value is None:
            found = tombstone_record(message.key(), message.timestamp()[1])
            record = found if isinstance(found, Rejection) else parse_automation(found)
        else:
            obj = load_json(value)
            record = obj if isinstance(obj, Rejection) else parse_automation(obj)
        if not isinstance(record, Rejection):
            table.apply(record)
    board = Board(table)
    decide = board.decide

    partitions = topic_partitions(admin_client(kafka), topics.events, brokers)
    consumer = Consumer(kafka.consumer_config(partition_eof=True))
    consumer.assign([KafkaPartition(topics.events, p, OFFSET_BEGINNING) for p in partitions])
    producer = Producer(kafka.producer_config())
    produce = producer.produce
    out, dlq = topics.transitions, topics.dead_letters

    def send(topic: str, value: bytes, key: str | None) -> None:
        while True:
            try:
                produce(topic, value, key)
                return
            except BufferError:
                producer.poll(0.1)

    open_partitions = set(partitions)
    read = moved = 0
    while open_partitions:
        for message in consumer.consume(4096, 0.5):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(f"consumer error: {error.str()}")
                open_partitions.discard(message.partition())
                continue
            read += 1
            raw = message.value()
            event = decode_event(raw) if raw is not None else Rejection("invalid_record", "null")
            if type(event) is not Event:
                rejection: Rejection = event  # type: ignore[assignment]
                origin = Origin(None, None, topics.events, message.partition(), message.offset())
                letter = DeadLetter(rejection.code, rejection.message, raw or b"", origin)
                send(dlq, letter.to_json(), None)
                continue
            for ref in event.items:
                key = f"{event.tenant}/{ref.entity}/{ref.id}"
                outcome = decide(event, ref, key)
                if type(outcome) is Transition:
                    moved += 1
                    send(out, transition_json(outcome), key)
                elif type(outcome) is Rejection:
                    origin = Origin(
                        None, None, topics.events, message.partition(), message.offset()
                    )
                    letter = DeadLetter(outcome.code, outcome.message, raw, origin, key)  # type: ignore[arg-type]
                    send(dlq, letter.to_json(), key)
        producer.poll(0)
    while producer.flush(1.0):
        pass
    consumer.close()
    return read, moved, time.perf_counter() - started


# Orchestration --------------------------------------------------------------------------


def generate(events: int, items: int) -> Path:
    folder = CACHE / f"kafka-{events}-{items}"
    if not (folder / "events.jsonl").exists():
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(ROOT / "scripts" / "generate.py"), "--out", str(folder)]
        command += ["--events", str(events), "--items", str(items)]
        print("generating:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return folder


def broker(given: str | None) -> str:
    if given:
        return given
    env = {**os.environ, "CRM_KAFKA_PYTHON": sys.executable}
    subprocess.run(["bash", str(BROKER_SCRIPT), "start"], check=True, env=env)
    return f"127.0.0.1:{os.environ.get('CRM_KAFKA_PORT', '9092')}"


def topic_options(topics: Topics) -> list[str]:
    return [
        "--events-topic",
        topics.events,
        "--automation-topic",
        topics.automation,
        "--transitions-topic",
        topics.transitions,
        "--dead-letter-topic",
        topics.dead_letters,
    ]


def baseline_command(brokers: str, topics: Topics) -> list[str]:
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "baseline", "--brokers", brokers, *topic_options(topics)]


def job_command(brokers: str, topics: Topics, key_groups: int | None = None) -> list[str]:
    groups = [] if key_groups is None else ["--key-groups", str(key_groups)]
    return [
        sys.executable,
        "-m",
        "flows",
        "run",
        "--brokers",
        brokers,
        *topic_options(topics),
        "--until-end",
        "--summary-interval",
        "3600",
        *groups,
    ]


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr


def count(kafka: KafkaSettings, topic: str) -> int:
    return sum(1 for _ in read_topic(kafka, topic, until_end=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "baseline"))
    parser.add_argument("--events", type=int, default=1_000_000, help="lines of the events log")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=1, help="of the events topic")
    parser.add_argument("--brokers", default=os.environ.get("CRM_TRIGGERS_BROKERS"))
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument(
        "--key-groups", type=int, help="the job's --key-groups (default: the job's default)"
    )
    for option in ("events-topic", "automation-topic", "transitions-topic", "dead-letter-topic"):
        parser.add_argument(f"--{option}")
    args = parser.parse_args()

    if args.mode == "baseline":
        topics = Topics(
            args.events_topic, args.automation_topic, args.transitions_topic, args.dead_letter_topic
        )
        read, moved, seconds = baseline(args.brokers, topics)
        print(read, moved, seconds)
        return 0

    brokers = broker(args.brokers)
    kafka = KafkaSettings(brokers)
    folder = generate(args.events, args.items)
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    inputs = Topics(f"{tag}.events", f"{tag}.automation", f"{tag}.job-out", f"{tag}.job-dlq")
    base_out = Topics(inputs.events, inputs.automation, f"{tag}.base-out", f"{tag}.base-dlq")
    create_topics(kafka, topic_plans(inputs, args.partitions), replication_factor=1)
    create_topics(kafka, topic_plans(base_out, args.partitions), replication_factor=1)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, broker {brokers}")
    try:
        started = time.perf_counter()
        for name, topic in (("automation", inputs.automation), ("events", inputs.events)):
            lines = read_lines([str(folder / f"{name}.jsonl")])
            compacted = name == "automation"
            produce_records(
                kafka, topic, ((record_key(line, compacted), line) for _, _, line in lines)
            )
        loaded = time.perf_counter() - started
        print(
            f"loaded {args.events:,} events ({args.items:,} items, {args.partitions} partitions) "
            f"into {inputs.events} in {loaded:.1f} s ({folder})",
            flush=True,
        )
        base_cmd = baseline_command(brokers, base_out)
        job_cmd = job_command(brokers, inputs, args.key_groups)
        base_rates, job_rates, windows, ratios = [], [], [], []
        for run in range(1, args.runs + 1):
            if run > 1:  # fresh output topics for every run, so the counts stay checkable
                fresh = f"{tag}-{run}"
                base_out = Topics(inputs.events, inputs.automation, f"{fresh}.b", f"{fresh}.bd")
                inputs = Topics(inputs.events, inputs.automation, f"{fresh}.j", f"{fresh}.jd")
                for topics in (base_out, inputs):
                    create_topics(kafka, topic_plans(topics, args.partitions)[2:], 1)
                base_cmd = baseline_command(brokers, base_out)
                job_cmd = job_command(brokers, inputs, args.key_groups)
            base_wall, base_output = timed(base_cmd)
            read_text, moved_text, _ = base_output.split()[:3]
            job_wall, job_output = timed(job_cmd)
            job_moved = count(kafka, inputs.transitions)
            window = JOB_WINDOW.findall(job_output)
            events, base_moved = int(read_text), int(moved_text)
            base_rates.append(events / base_wall)
            job_rates.append(events / job_wall)
            ratios.append(base_wall / job_wall)
            if window:
                windows.append(float(window[-1][1].replace(",", "")))
            check = "" if job_moved == base_moved else f"  MISMATCH: job {job_moved}"
            print(
                f"run {run}: baseline {events / base_wall:,.0f} events/s ({base_wall:.1f} s), "
                f"job {events / job_wall:,.0f} events/s ({job_wall:.1f} s), "
                f"job/baseline {base_wall / job_wall:.2f}, {base_moved:,} transitions{check}",
                flush=True,
            )
        print()
        print(
            f"baseline (plain confluent-kafka loop): {statistics.median(base_rates):,.0f} events/s"
        )
        print("  reproduce: " + " ".join(base_cmd))
        print(f"live job, one process, one worker:    {statistics.median(job_rates):,.0f} events/s")
        print("  reproduce: " + " ".join(job_cmd))
        if windows:
            print(
                f"  (its own processing window, startup excluded: "
                f"{statistics.median(windows):,.0f} events/s)"
            )
        print(f"job / baseline:                       {statistics.median(ratios):.2f}")
        if not args.keep_topics:
            print("(the topics are deleted now: pass --keep-topics to rerun these commands)")
    finally:
        if not args.keep_topics:
            names = {t for topics in (inputs, base_out) for t in topics.all()}
            delete_topics(kafka, sorted(names | _extra_topics(kafka, tag)))
    return 0


def _extra_topics(kafka: KafkaSettings, tag: str) -> set[str]:
    listed = admin_client(kafka).list_topics(timeout=10).topics
    return {name for name in listed if name.startswith(tag)}


if __name__ == "__main__":
    sys.exit(main())
