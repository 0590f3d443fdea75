"""Kafka to Kafka benchmark: the live job against a plain loop, a cluster, recovery, latency.

    python scripts/bench_kafka.py [bench|cluster|recovery|latency|metrics|all]
                                  [--events 1000000] [--items 100000] [--runs 1]
                                  [--partitions N] [--brokers HOST:PORT] [--keep-topics]
                                  [--key-groups N] [--rate EVENTS_PER_S] [--warmup 10]
                                  [--duration 40] [--latency-intervals default,1]
                                  [--decide-in groups|partitions] [--per-item]
                                  [--shares 0.5,0.25] [--cycles default,0] [--breakdown]

Generates a realistic log once (scripts/generate.py, cached in .cache/bench/),
loads it into fresh uuid-named topics on the local broker (started with
scripts/kafka/broker.sh unless --brokers or CRM_TRIGGERS_BROKERS names a
cluster; events topic of 1 partition for `bench`, 4 for the other modes), then
measures, alternating run by run, each job writing to fresh output topics:

- bench (the default): a plain confluent-kafka loop in one Python process that
  reads the automation topic into a `state.table.TriggerTable`, consumes the
  events topic and hands each consumed batch of raw records to one compiled board
  (`state.native.NativeBoard`, the job's default engine), and produces transitions
  and dead letters (keyed, through an idempotent producer), against
  `python -m flows run --until-end`, one process, one worker;
- cluster: that job in one process against two processes of one worker each as
  one Bytewax cluster (`--process-id 0/1 --addresses ...`), with the CPU time of
  the job processes and how busy the whole machine was;
- recovery: the one-process job without a recovery folder, with a fresh one at
  the default snapshot interval and with `--snapshot-interval 1`;
- latency: the job live (no --until-end) while this script produces the events
  at a steady rate (default: half the one-process maximum, measured first);
  afterwards both topics are read back and each transition's Kafka timestamp
  (the job's produce call) is joined by event id to its event's (this script's
  produce call). Transitions of events produced in the first --warmup seconds
  are left out. --shares offers several shares of the maximum, alternated;
  --cycles compares --cycle-ms values (the maximum and the latency of each);
  --breakdown splits each run's latency: the job writes its timeline
  (CRM_TRIGGERS_TRACE, connectors/kafka/trace.py: each batch read, write, wait
  for acknowledgements and collection) and this script notes when the broker
  acknowledged one offered event in 50; joined by partition and offset, each
  sampled transition's time is split into offered to acknowledged, acknowledged
  to read by the job, and read to the transition's produce call;
- metrics: the one-process job without metrics against `--metrics-port`, its
  /metrics read every second meanwhile (the cost of the metrics, target 3%);
- all: the five in that order, on one set of input topics.

Throughput is timed from process start to exit: startup and reading the
automation topic are included. The job's own count of its processing window
(first batch to last, from its final summary) is printed as well. Each figure
names the command that reproduces it (with --keep-topics the topics stay); the
machine may be shared and noisy, so quote medians of --runs.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from benchdata import ROOT, generated_log
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
    per_item_copies,
    produce_records,
    read_topic,
    record_key,
    tombstone_record,
    topic_partitions,
    topic_plans,
    trace,
)
from connectors.records import (
    decode_event,
    load_json,
    parse_automation,
)
from flows.runtime import tune_gc
from state import native
from state.model import Rejection
from state.native import NativeBoard
from state.table import TriggerTable

BROKER_SCRIPT = ROOT / "scripts" / "kafka" / "broker.sh"
FRESH_DIR = "FRESH-RECOVERY-DIR"  # a new, missing folder in the reproduce lines
JOB_WINDOW = re.compile(r"time: +([\d.]+) s, ([\d,]+) events/s")
ACK_SAMPLE = 50  # latency --breakdown: one offered record in this many is followed


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
    board = NativeBoard(table, decode_event)

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
        messages = []
        for message in consumer.consume(4096, 0.5):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(f"consumer error: {error.str()}")
                open_partitions.discard(message.partition())
            elif message.value() is None:
                origin = Origin(None, None, topics.events, message.partition(), message.offset())
                send(dlq, DeadLetter("invalid_record", "null", b"", origin).to_json(), None)
            else:
                messages.append(message)
        read += len(messages)
        _, _, notes = board.decide_batch([m.value() for m in messages])
        for index, _, key, kind, payload in notes:
            if kind == native.TRANSITION:
                moved += 1
                send(out, payload, key)
                continue
            message = messages[index]
            origin = Origin(None, None, topics.events, message.partition(), message.offset())
            rejection = native.rejection_of(kind, key, payload)
            send(
                dlq,
                DeadLetter(
                    rejection.code, rejection.message, message.value(), origin, key
                ).to_json(),
                key,
            )
        producer.poll(0)
    while producer.flush(1.0):
        pass
    consumer.close()
    return read, moved, time.perf_counter() - started


# Orchestration --------------------------------------------------------------------------


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
        "--history-topic",
        topics.history,
    ]


def baseline_command(brokers: str, topics: Topics) -> list[str]:
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "baseline", "--brokers", brokers, *topic_options(topics)]


def job_command(
    brokers: str,
    topics: Topics,
    key_groups: int | None = None,
    extra: Sequence[str] = (),
    until_end: bool = True,
) -> list[str]:
    groups = [] if key_groups is None else ["--key-groups", str(key_groups)]
    return [
        sys.executable,
        "-m",
        "flows",
        "run",
        "--brokers",
        brokers,
        *topic_options(topics),
        *(["--until-end"] if until_end else []),
        "--summary-interval",
        "3600",
        *groups,
        *extra,
    ]


def placement(args: argparse.Namespace) -> list[str]:
    """The job's --decide-in option, when not the default."""
    return [] if args.decide_in == "groups" else ["--decide-in", args.decide_in]


def cluster_commands(
    brokers: str,
    topics: Topics,
    key_groups: int | None,
    ports: Sequence[int],
    extra: Sequence[str] = (),
) -> list[list[str]]:
    """Two processes of one worker each, as one Bytewax cluster."""
    addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
    return [
        job_command(
            brokers,
            topics,
            key_groups,
            ["--workers", "1", "--process-id", str(index), "--addresses", addresses, *extra],
        )
        for index in range(2)
    ]


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr


def timed_together(commands: list[list[str]], timeout: float = 3600) -> tuple[float, str]:
    """Start the commands at once; seconds until the last one exits, and their output."""
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in commands
    ]
    outputs = [process.communicate(timeout=timeout)[0] for process in running]
    wall = time.perf_counter() - started
    for command, process, output in zip(commands, running, outputs, strict=True):
        if process.returncode != 0:
            for other in running:
                if other.poll() is None:
                    other.terminate()
            raise SystemExit(f"failed ({process.returncode}): {quoted(command)}\n{output[-3000:]}")
    return wall, "\n".join(outputs)


def free_ports(count: int) -> tuple[int, ...]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = tuple(sock.getsockname()[1] for sock in sockets)
    for sock in sockets:
        sock.close()
    return ports


def quoted(command: Sequence[str]) -> str:
    return shlex.join(command)


def count(kafka: KafkaSettings, topic: str) -> int:
    return sum(1 for _ in read_topic(kafka, topic, until_end=True))


def window_rate(output: str) -> float | None:
    """The job's own events/s over its processing window, from its final summary."""
    found = JOB_WINDOW.findall(output)
    return float(found[-1][1].replace(",", "")) if found else None


class CpuUse:
    """CPU seconds of the job processes (children) and of the whole machine over a block.

    On 2 cores with the broker on the same machine, whether the cores were saturated
    says how much a second process could add.
    """

    def __enter__(self) -> CpuUse:
        self.children = _children_cpu()
        self.machine = _machine_busy()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.children = _children_cpu() - self.children
        self.machine = _machine_busy() - self.machine

    def __str__(self) -> str:
        return (
            f"job CPU {self.children:.1f} s, whole machine busy {self.machine / self.wall:.2f} "
            f"of {os.cpu_count()} cores (job {self.children / self.wall:.2f}, "
            f"broker and the rest {(self.machine - self.children) / self.wall:.2f})"
        )


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Bench:
    """What every mode shares: the broker, the loaded input topics and the options."""

    args: argparse.Namespace
    brokers: str
    kafka: KafkaSettings
    inputs: Topics
    tag: str
    folder: Path
    events: int = 0
    outputs: int = 0
    one_process_rate: float | None = None  # the job's own window, for the latency mode

    def fresh(self, name: str) -> Topics:
        """The input topics with new, empty output topics of their own."""
        self.outputs += 1
        prefix = f"{self.tag}.{self.outputs}-{name}"
        topics = Topics(
            self.inputs.events,
            self.inputs.automation,
            f"{prefix}",
            f"{prefix}-dlq",
            f"{prefix}-history",
        )
        create_topics(self.kafka, topic_plans(topics, self.args.partitions)[2:], 1)
        return topics


def load_inputs(kafka: KafkaSettings, folder: Path, topics: Topics, per_item: bool = False) -> int:
    """Produce the generated automation and events logs into their topics; events loaded
    (`per_item`: multi-item events as one copy per item, as `produce --per-item` writes)."""
    loaded = 0
    for name, topic in (("automation", topics.automation), ("events", topics.events)):
        lines = read_lines([str(folder / f"{name}.jsonl")])
        compacted = name == "automation"
        if per_item and not compacted:
            records = (copy for _, _, line in lines for copy in per_item_copies(line))
        else:
            records = ((record_key(line, compacted), line) for _, _, line in lines)
        produced = produce_records(kafka, topic, records)
        loaded = produced.records
    return loaded


# Mode: the job against the plain loop (one process) --------------------------------------


def bench_baseline(bench: Bench) -> None:
    args, brokers, kafka = bench.args, bench.brokers, bench.kafka
    base_rates, job_rates, windows, ratios = [], [], [], []
    base_cmd: list[str] = []
    job_cmd: list[str] = []
    for run in range(1, args.runs + 1):
        base_out, job_out = bench.fresh("base"), bench.fresh("job")
        base_cmd = baseline_command(brokers, base_out)
        job_cmd = job_command(brokers, job_out, args.key_groups)
        base_wall, base_output = timed(base_cmd)
        read_text, moved_text, _ = base_output.split()[:3]
        job_wall, job_output = timed(job_cmd)
        job_moved = count(kafka, job_out.transitions)
        events, base_moved = int(read_text), int(moved_text)
        base_rates.append(events / base_wall)
        job_rates.append(events / job_wall)
        ratios.append(base_wall / job_wall)
        window = window_rate(job_output)
        if window is not None:
            windows.append(window)
        check = ""
        if job_moved != base_moved:
            # Across partitions, an event naming several items is ordered differently.
            check = (
                f"  MISMATCH: job {job_moved:,}"
                if args.partitions == 1
                else f" (job: {job_moved:,})"
            )
        print(
            f"run {run}: baseline {events / base_wall:,.0f} events/s ({base_wall:.1f} s), "
            f"job {events / job_wall:,.0f} events/s ({job_wall:.1f} s), "
            f"job/baseline {base_wall / job_wall:.2f}, {base_moved:,} transitions{check}",
            flush=True,
        )
    print()
    print(f"baseline (plain confluent-kafka loop): {statistics.median(base_rates):,.0f} events/s")
    print("  reproduce: " + quoted(base_cmd))
    print(f"live job, one process, one worker:    {statistics.median(job_rates):,.0f} events/s")
    print("  reproduce: " + quoted(job_cmd))
    if windows:
        bench.one_process_rate = statistics.median(windows)
        print(
            f"  (its own processing window, startup excluded: "
            f"{statistics.median(windows):,.0f} events/s)"
        )
    print(f"job / baseline:                       {statistics.median(ratios):.2f}")
    print(flush=True)


# Mode: two processes as a Bytewax cluster against one -------------------------------------


def bench_cluster(bench: Bench) -> None:
    """The same job, one process against two processes of one worker each, alternating."""
    args, brokers, kafka, events = bench.args, bench.brokers, bench.kafka, bench.events
    if args.partitions < 2:
        print(f"note: the events topic has {args.partitions} partition: one process reads it all")
    one_rates, two_rates, ratios, windows, cpu_ratios = [], [], [], [], []
    two_windows, window_ratios = [], []
    one_cmd: list[str] = []
    two_cmds: list[list[str]] = []
    for run in range(1, args.runs + 1):
        one_out, two_out = bench.fresh("one"), bench.fresh("two")
        placement = ["--decide-in", args.decide_in]
        one_cmd = job_command(brokers, one_out, args.key_groups, placement)
        two_cmds = cluster_commands(brokers, two_out, args.key_groups, free_ports(2), placement)
        with CpuUse() as one_cpu:
            one_wall, one_output = timed(one_cmd)
        with CpuUse() as two_cpu:
            two_wall, two_output = timed_together(two_cmds)
        one_moved, two_moved = count(kafka, one_out.transitions), count(kafka, two_out.transitions)
        one_rates.append(events / one_wall)
        two_rates.append(events / two_wall)
        ratios.append(one_wall / two_wall)
        window, two_window = window_rate(one_output), window_rate(two_output)
        if window is not None:
            windows.append(window)
        if two_window is not None:
            two_windows.append(two_window)
        if window is not None and two_window is not None:
            window_ratios.append(two_window / window)
            print(
                f"  own processing windows (the summary's, start excluded): one process "
                f"{window:,.0f} events/s, two processes {two_window:,.0f}, two/one "
                f"{two_window / window:.2f}",
                flush=True,
            )
        check = "" if one_moved == two_moved else f" (two processes: {two_moved:,})"
        print(
            f"run {run}: one process {events / one_wall:,.0f} events/s ({one_wall:.1f} s), "
            f"two processes {events / two_wall:,.0f} events/s ({two_wall:.1f} s), "
            f"two/one {one_wall / two_wall:.2f}, {one_moved:,} transitions{check}",
            flush=True,
        )
        per_million = [cpu.children / events * 1e6 for cpu in (one_cpu, two_cpu)]
        cpu_ratios.append(per_million[1] / per_million[0])
        print(
            f"  one process: {one_cpu}, {per_million[0]:.1f} CPU s per million events\n"
            f"  two processes: {two_cpu}, {per_million[1]:.1f} CPU s per million events",
            flush=True,
        )
    if windows:
        bench.one_process_rate = statistics.median(windows)
    print()
    print(
        f"cluster, {events:,} events, {args.partitions} partitions, "
        f"key groups {args.key_groups or 'default'}, --decide-in {args.decide_in}"
        f"{', per-item copies' if args.per_item else ''}, process start to exit:"
    )
    print(f"  one process, one worker:         {statistics.median(one_rates):,.0f} events/s")
    print("    reproduce: " + quoted(one_cmd))
    if windows:
        print(f"    (its own processing window: {statistics.median(windows):,.0f} events/s)")
    print(f"  two processes, one worker each:  {statistics.median(two_rates):,.0f} events/s")
    for command in two_cmds:
        print("    reproduce (together): " + quoted(command))
    if two_windows:
        print(
            f"    (the cluster's processing window: {statistics.median(two_windows):,.0f} events/s)"
        )
    print(f"  two / one:                       {statistics.median(ratios):.2f} (target >= 1.5)")
    if window_ratios:
        print(f"  two / one, processing windows:   {statistics.median(window_ratios):.2f}")
    print(f"  CPU per event, two / one:        {statistics.median(cpu_ratios):.2f} (target <= 1.1)")
    print(flush=True)


# Mode: recovery snapshots on against off -----------------------------------------------------


def bench_recovery(bench: Bench) -> None:
    """The one-process job without recovery, with it at the default and a 1 s interval."""
    args, brokers, events = bench.args, bench.brokers, bench.events
    variants = {
        "recovery off": [],
        "recovery on, default snapshot interval": ["--recovery-dir", "{dir}"],
        "recovery on, --snapshot-interval 1": [
            "--recovery-dir",
            "{dir}",
            "--snapshot-interval",
            "1",
        ],
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    windows: dict[str, list[float]] = {name: [] for name in variants}
    commands: dict[str, list[str]] = {}
    base = "recovery off"
    for run in range(1, args.runs + 1):
        walls = {}
        for name, extra in variants.items():
            with tempfile.TemporaryDirectory(prefix="crm-recovery-") as folder:
                store = str(Path(folder) / "store")  # fresh and missing: the job sets it up
                options = [store if part == "{dir}" else part for part in extra]
                command = job_command(brokers, bench.fresh("rec"), args.key_groups, options)
                walls[name], output = timed(command)
                size = _folder_bytes(Path(store))
            commands[name] = [FRESH_DIR if part == store else part for part in command]
            rates[name].append(events / walls[name])
            window = window_rate(output)
            if window is not None:
                windows[name].append(window)
            store_size = f", store {size / 1e6:.0f} MB" if size else ""
            print(
                f"run {run}: {name}: {events / walls[name]:,.0f} events/s "
                f"({walls[name]:.1f} s{store_size}), on/off {walls[base] / walls[name]:.2f}",
                flush=True,
            )
    print()
    print(f"recovery snapshots, {events:,} events, one process, process start to exit:")
    off = statistics.median(rates[base])
    for name in variants:
        median = statistics.median(rates[name])
        ratio = statistics.median(
            [on / off_rate for on, off_rate in zip(rates[name], rates[base], strict=True)]
        )
        own = (
            f", own window {statistics.median(windows[name]):,.0f} events/s"
            if windows[name]
            else ""
        )
        cost = "" if name == base else f", on/off {ratio:.2f} (cost {1 - ratio:.0%})"
        print(f"  {name}: {median:,.0f} events/s{cost}{own}")
        shown = quoted(commands[name]).replace(FRESH_DIR, '"$(mktemp -d)/store"')
        print("    reproduce: " + shown)
    print(f"  (median of off: {off:,.0f} events/s; target: cost at most 15%)")
    print(flush=True)


def _folder_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# Mode: metrics on against off ---------------------------------------------------------------


def bench_metrics(bench: Bench) -> None:
    """The one-process job without metrics and with `--metrics-port`, scraped every second."""
    args, brokers, events = bench.args, bench.brokers, bench.events
    rates: dict[str, list[float]] = {"metrics off": [], "metrics on": []}
    commands: dict[str, list[str]] = {}
    for run in range(1, args.runs + 1):
        walls = {}
        for name in rates:
            (port,) = free_ports(1)
            extra = ["--metrics-port", str(port)] if name == "metrics on" else []
            command = job_command(brokers, bench.fresh("met"), args.key_groups, extra)
            scraping = threading.Event()
            scraper = threading.Thread(target=_scrape, args=(port, scraping), daemon=True)
            if extra:
                scraper.start()
            walls[name], _ = timed(command)
            scraping.set()
            commands[name] = command
            rates[name].append(events / walls[name])
            print(
                f"run {run}: {name}: {events / walls[name]:,.0f} events/s ({walls[name]:.1f} s)",
                flush=True,
            )
    ratios = [on / off for on, off in zip(rates["metrics on"], rates["metrics off"], strict=True)]
    print()
    print(f"metrics, {events:,} events, one process, process start to exit, alternated:")
    for name, measured in rates.items():
        print(f"  {name}: {statistics.median(measured):,.0f} events/s")
        print("    reproduce: " + quoted(commands[name]))
    ratio = statistics.median(ratios)
    print(
        f"  on/off {ratio:.3f} (cost {1 - ratio:.1%}; runs {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    print("  (target: cost at most 3%)", flush=True)


def _scrape(port: int, done: threading.Event) -> None:
    """Read /metrics every second while the job runs, as Prometheus would."""
    while not done.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
                page.read()
        except OSError:
            continue


# Mode: end-to-end latency at a fixed offered rate ---------------------------------------


def bench_latency(bench: Bench) -> None:
    """Latency at a steady offered rate, once per --latency-intervals setting; with
    --cycles, the maximum and the latency of each --cycle-ms value instead, alternated."""
    args = bench.args
    if args.cycles:
        bench_cycles(bench, args.cycles.split(","))
        return
    rates = [args.rate] if args.rate is not None else []
    if not rates:
        if bench.one_process_rate is None:
            measure = job_command(
                bench.brokers, bench.fresh("max"), args.key_groups, placement(args)
            )
            wall, output = timed(measure)
            bench.one_process_rate = window_rate(output) or bench.events / wall
            print(
                f"one-process maximum (its own processing window): "
                f"{bench.one_process_rate:,.0f} events/s"
            )
            print("  reproduce: " + quoted(measure), flush=True)
        rates = [bench.one_process_rate * float(share) for share in args.shares.split(",")]
    intervals = args.latency_intervals.split(",")
    found: dict[tuple[float, str], list[tuple[float, float]]] = {
        (rate, interval): [] for rate in rates for interval in intervals
    }
    for run in range(1, args.runs + 1):
        for rate in rates if run % 2 else rates[::-1]:
            for interval in intervals:
                setting = None if interval == "default" else interval
                measured = latency_at(bench, rate, setting, run)
                if measured is not None:
                    found[rate, interval].append(measured)
    print()
    print(f"latency, medians of {args.runs} run(s):")
    for (rate, interval), pairs in found.items():
        if pairs:
            p50 = statistics.median(p for p, _ in pairs)
            p99 = statistics.median(p for _, p in pairs)
            runs = ", ".join(f"{p:.0f}" for _, p in pairs)
            print(
                f"  {rate:,.0f} events/s offered, snapshot interval {interval}: p50 {p50:.0f} ms, "
                f"p99 {p99:.0f} ms (runs: {runs}; target p99 <= 200 ms)"
            )
    print(
        f"  reproduce: {quoted(['python', 'scripts/bench_kafka.py', 'latency'])} "
        f"--rate {rates[0]:.0f} --latency-intervals {args.latency_intervals} --runs {args.runs}"
    )
    print(flush=True)


def bench_cycles(bench: Bench, cycles: list[str]) -> None:
    """Per --cycle-ms value, alternated run by run: the one-process maximum, then the
    latency at half of the first value's maximum (the same rate for every value)."""
    args = bench.args
    maxima: dict[str, list[float]] = {cycle: [] for cycle in cycles}
    found: dict[str, list[tuple[float, float]]] = {cycle: [] for cycle in cycles}
    for run in range(1, args.runs + 1):
        order = cycles if run % 2 else cycles[::-1]
        for cycle in order:
            extra = placement(args) + ([] if cycle == "default" else ["--cycle-ms", cycle])
            measure = job_command(bench.brokers, bench.fresh("max"), args.key_groups, extra)
            wall, output = timed(measure)
            maxima[cycle].append(window_rate(output) or bench.events / wall)
            print(f"run {run}: --cycle-ms {cycle}: maximum {maxima[cycle][-1]:,.0f} events/s")
            print("  reproduce: " + quoted(measure), flush=True)
        rate = args.rate or statistics.median(maxima[cycles[0]]) / 2
        for cycle in order:
            extra = [] if cycle == "default" else ["--cycle-ms", cycle]
            print(f"run {run}: --cycle-ms {cycle}:")
            measured = latency_at(bench, rate, None, run, extra)
            if measured is not None:
                found[cycle].append(measured)
    print()
    print(f"medians of {args.runs} run(s), latency at half the maximum of --cycle-ms {cycles[0]}:")
    for cycle in cycles:
        line = f"  --cycle-ms {cycle}: maximum {statistics.median(maxima[cycle]):,.0f} events/s"
        if found[cycle]:
            p50 = statistics.median(p for p, _ in found[cycle])
            p99 = statistics.median(p for _, p in found[cycle])
            runs = ", ".join(f"{p:.0f}" for _, p in found[cycle])
            line += f"; p50 {p50:.0f} ms, p99 {p99:.0f} ms (runs: {runs})"
        print(line)
    print(flush=True)


def latency_at(
    bench: Bench, rate: float, interval: str | None, run: int, job_extra: Sequence[str] = ()
) -> tuple[float, float] | None:
    """p50 and p99 in ms of one live run at the offered rate (None: no transitions)."""
    args, kafka = bench.args, bench.kafka
    needed = int(rate * (args.warmup + args.duration)) + 1
    lines = read_lines([str(bench.folder / "events.jsonl")])
    records = [(record_key(line), line) for _, _, line in islice(lines, needed)]
    if len(records) < 0.99 * needed:
        print(
            f"note: {len(records):,} events last {len(records) / rate:.0f} s at "
            f"{rate:,.0f} events/s, not the {args.warmup + args.duration:.0f} s asked: "
            "pass more --events for a longer run"
        )
    bench.outputs += 1
    prefix = f"{bench.tag}.lat{bench.outputs}"
    topics = Topics(
        f"{prefix}.events",
        bench.inputs.automation,
        f"{prefix}.out",
        f"{prefix}.dlq",
        f"{prefix}.history",
    )
    plans = topic_plans(topics, args.partitions)
    create_topics(kafka, [plans[0], *plans[2:]], 1)
    extra = [
        *placement(args),
        *job_extra,
        *([] if interval is None else ["--snapshot-interval", interval]),
    ]
    command = job_command(bench.brokers, topics, args.key_groups, extra, until_end=False)
    env = dict(os.environ)
    traced = Path(tempfile.mkdtemp(prefix="crm-trace-")) / "job" if args.breakdown else None
    acked: dict[tuple[int, int], float] | None = {} if args.breakdown else None
    if traced is not None:
        env[trace.ENV] = str(traced)
    job = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        time.sleep(args.startup)  # the job reads the automation topic before any event
        if job.poll() is not None:
            raise SystemExit(f"the job stopped: {quoted(command)}\n{job.communicate()[0][-3000:]}")
        load_before = os.getloadavg()[0]
        cpu_before = (_process_cpu(job.pid), time.process_time(), time.perf_counter())
        busy_before = _machine_busy()
        started_ms = time.time() * 1000
        produced, seconds = offer(kafka, topics.events, records, rate, acked)
        cpu_after = (_process_cpu(job.pid), time.process_time(), time.perf_counter())
        busy_after = _machine_busy()
        load_after = os.getloadavg()[0]
        drain(kafka, topics.transitions)
    finally:
        job.send_signal(signal.SIGTERM)
        try:
            job.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            job.kill()
            job.communicate()
    begin = started_ms + args.warmup * 1000
    end = started_ms + (args.warmup + args.duration) * 1000
    timed_latencies, offered, joined = latencies_ms(kafka, topics, begin, end, acked is not None)
    latencies = [latency for _, latency in timed_latencies]
    window = min(end, started_ms + seconds * 1000) - begin
    setting = "default" if interval is None else f"{interval} s"
    print(
        f"run {run}: latency, snapshot interval {setting}: offered {rate:,.0f} events/s for "
        f"{seconds:.0f} s ({produced:,} events), measured after {args.warmup:.0f} s of warm-up "
        f"over {window / 1000:.0f} s ({offered / (window / 1000):,.0f} events/s offered there)"
    )
    if not latencies:
        print("  no transitions in the measured window", flush=True)
        return None
    latencies.sort()
    print(
        f"  event produced to transition produced: p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, max {latencies[-1]:.0f} ms, "
        f"{len(latencies):,} transitions (target p99 <= 200 ms)"
    )
    slices: dict[int, list[float]] = {}
    for stamp, latency in timed_latencies:
        slices.setdefault(int((stamp - begin) // 5000), []).append(latency)
    print(
        "  p99 by 5 s slice of the window (ms): "
        + " ".join(f"{percentile(sorted(found), 99):.0f}" for _, found in sorted(slices.items()))
    )
    wall = cpu_after[2] - cpu_before[2]
    print(
        f"  machine: load {load_before:.1f} -> {load_after:.1f} (1 min); cores busy while "
        f"offering: job {(cpu_after[0] - cpu_before[0]) / wall:.2f}, offering process "
        f"{(cpu_after[1] - cpu_before[1]) / wall:.2f}, whole machine "
        f"{(busy_after - busy_before) / wall:.2f} of {os.cpu_count()}"
    )
    if traced is not None and acked is not None:
        print_breakdown(joined, acked, traced, begin, end)
    print(
        "  reproduce: the job "
        + quoted(command)
        + f" with events of {bench.folder / 'events.jsonl'} produced at {rate:,.0f}/s"
        + f" (python {Path(__file__).name} latency --rate {rate:.0f})",
        flush=True,
    )
    return percentile(latencies, 50), percentile(latencies, 99)


def offer(
    kafka: KafkaSettings,
    topic: str,
    records: list[tuple[bytes | None, bytes]],
    rate: float,
    acked: dict[tuple[int, int], float] | None = None,
) -> tuple[int, float]:
    """Produce the records at a steady rate; records produced and seconds taken.

    Each record's Kafka timestamp is the moment of its `produce` call (CreateTime).
    `acked`: filled with the wall time in ms at which this process saw the broker's
    acknowledgement of every `ACK_SAMPLE`th record, by (partition, offset).
    """
    producer = Producer(kafka.producer_config())
    produce = producer.produce

    def seen(error: KafkaError | None, message: Any) -> None:
        if error is None and acked is not None:
            acked[(message.partition(), message.offset())] = time.time() * 1000

    started = time.perf_counter()
    sent = 0
    total = len(records)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate))
        while sent < due:
            key, value = records[sent]
            try:
                if acked is not None and sent % ACK_SAMPLE == 0:
                    produce(topic, value, key, on_delivery=seen)
                else:
                    produce(topic, value, key)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    seconds = time.perf_counter() - started
    while producer.flush(1.0):
        pass
    return sent, seconds


def drain(kafka: KafkaSettings, topic: str, quiet: float = 3.0, limit: float = 120.0) -> None:
    """Return once the topic has not grown for `quiet` seconds (the job caught up)."""
    admin = admin_client(kafka)
    partitions = topic_partitions(admin, topic, kafka.brokers)
    consumer = Consumer(kafka.consumer_config(partition_eof=False))
    try:
        last, since, started = -1, time.monotonic(), time.monotonic()
        while time.monotonic() - started < limit:
            total = sum(
                consumer.get_watermark_offsets(KafkaPartition(topic, p), timeout=10)[1]
                for p in partitions
            )
            if total != last:
                last, since = total, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.5)
    finally:
        consumer.close()


def latencies_ms(
    kafka: KafkaSettings, topics: Topics, begin_ms: float, end_ms: float, where: bool = False
) -> tuple[list[tuple[int, float]], int, list[Joined]]:
    """Per transition of an event produced in [begin, end): the event's timestamp and the
    latency in ms; the number of events produced there; with `where`, each transition's
    event's partition and offset, its produce time and the transition's."""
    produced_at: dict[str, tuple[int, int, int]] = {}
    offered = 0
    for message in read_topic(kafka, topics.events, until_end=True):
        stamp = message.timestamp()[1]
        if begin_ms <= stamp < end_ms:
            offered += 1
            found = event_id_of(message.value())
            if found is not None:
                produced_at[found] = (stamp, message.partition(), message.offset())
    latencies = []
    joined = []
    for message in read_topic(kafka, topics.transitions, until_end=True):
        event_id = orjson.loads(message.value())["event"]["id"]
        event = produced_at.get(event_id)
        if event is not None:
            stamp, written = event[0], message.timestamp()[1]
            latencies.append((stamp, float(written - stamp)))
            if where:
                joined.append(Joined(event[1], event[2], stamp, written))
    return latencies, offered, joined


@dataclass(frozen=True)
class Joined:
    """A transition joined to its event: where the event is, when each was produced (ms)."""

    partition: int
    offset: int
    produced: int
    written: int


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_breakdown(
    joined: list[Joined],
    acked: dict[tuple[int, int], float],
    traced: Path,
    begin_ms: float,
    end_ms: float,
) -> None:
    """Where the sampled events' time went, from the offering process's acknowledgements
    and the job's timeline (connectors/kafka/trace.py); the timeline is deleted after."""
    reads: dict[int, list[tuple[int, int, float, float]]] = {}
    pauses: dict[str, list[float]] = {"gc": [], "write": [], "wait": []}
    for path in traced.parent.glob(f"{traced.name}.*"):
        for line in path.read_text().splitlines():
            kind, stamp, *fields = line.split("\t")
            at = float(stamp)
            if not begin_ms <= at < end_ms:
                continue
            if kind == "read":
                partition, first, last, since = fields
                reads.setdefault(int(partition), []).append(
                    (int(first), int(last), at, float(since))
                )
            elif kind in pauses:
                pauses[kind].append(float(fields[-1]))
        path.unlink()
    traced.parent.rmdir()
    for batches in reads.values():
        batches.sort()
    rows: list[tuple[float, float, float, float, float]] = []
    for one in joined:
        ack = acked.get((one.partition, one.offset))
        ranges = reads.get(one.partition)
        if ack is None or not ranges:
            continue
        at = bisect.bisect_right(ranges, (one.offset, math.inf)) - 1
        if at < 0 or ranges[at][1] < one.offset:
            continue
        _, _, read, gap = ranges[at]
        rows.append(
            (
                one.written - one.produced,
                ack - one.produced,
                read - ack,
                gap,
                one.written - read,
            )
        )
    if not rows:
        print("  breakdown: no sampled event joined to the job's timeline")
        return
    names = (
        "total (event produced to transition produced)",
        "event produced to its acknowledgement seen by the offering process",
        "acknowledged to read by the job (fetch, consumer queue, the worker's cycle)",
        "  the partition's read before that, ms earlier (one worker cycle, wall clock)",
        "read by the job to the transition's produce call (route, decide, sink)",
    )
    rows.sort()
    slowest = rows[-max(1, len(rows) // 100) :]
    print(
        f"  breakdown of {len(rows):,} sampled transitions (1 event in {ACK_SAMPLE}), ms: "
        "p50 / p99 / max; mean over the slowest 1%"
    )
    for column, name in enumerate(names):
        values = sorted(row[column] for row in rows)
        tail = statistics.fmean(row[column] for row in slowest)
        print(
            f"    {percentile(values, 50):7.1f} / {percentile(values, 99):7.1f} / "
            f"{values[-1]:7.1f}; {tail:7.1f}  {name}"
        )

    def behind(row: tuple[float, float, float, float, float]) -> bool:
        return row[3] >= 0 and row[2] > row[3]

    print(
        f"    acknowledged before the partition's read before: {_share(rows, behind):.0%} of "
        f"them, {_share(slowest, behind):.0%} of the slowest 1% (the job behind: a backlog)"
    )
    for kind, label in (
        ("gc", "garbage collections"),
        ("write", "sink writes"),
        ("wait", "waits for acknowledgements (epoch ends)"),
    ):
        took = sorted(pauses[kind])
        if took:
            print(
                f"    job's {label} in the window: {len(took):,}, p99 "
                f"{percentile(took, 99):.1f} ms, max {took[-1]:.1f} ms, "
                f"sum {sum(took) / 1000:.2f} s"
            )


def event_id_of(value: bytes | None) -> str | None:
    """The id of an event record; None for the malformed ones the generator mixes in."""
    try:
        found = orjson.loads(value or b"").get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _share(rows: Sequence[Any], test: Any) -> float:
    return sum(1 for row in rows if test(row)) / len(rows)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


# Entry ----------------------------------------------------------------------------------------


MODES = {
    "bench": (bench_baseline,),
    "cluster": (bench_cluster,),
    "recovery": (bench_recovery,),
    "latency": (bench_latency,),
    "metrics": (bench_metrics,),
    "all": (bench_baseline, bench_cluster, bench_recovery, bench_latency, bench_metrics),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=(*MODES, "baseline"))
    parser.add_argument("--events", type=int, default=1_000_000, help="lines of the events log")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--partitions",
        type=int,
        help="of the events topic (default: 1 for bench, 4 for the other modes)",
    )
    parser.add_argument("--brokers", default=os.environ.get("CRM_TRIGGERS_BROKERS"))
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument(
        "--key-groups", type=int, help="the job's --key-groups (default: the job's default)"
    )
    parser.add_argument(
        "--decide-in",
        choices=("groups", "partitions"),
        default="groups",
        help="cluster and latency: the job's --decide-in (default: groups)",
    )
    parser.add_argument(
        "--per-item",
        action="store_true",
        help="load multi-item events as one copy per item (produce --per-item)",
    )
    parser.add_argument(
        "--rate", type=float, help="latency: events/s offered (default: half the measured maximum)"
    )
    parser.add_argument(
        "--shares",
        default="0.5",
        help="latency: without --rate, the rates to offer as shares of the measured maximum, "
        "comma-separated and alternated run by run, e.g. 0.5,0.25 (default: 0.5)",
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="latency: seconds not measured")
    parser.add_argument("--duration", type=float, default=40.0, help="latency: seconds measured")
    parser.add_argument(
        "--startup", type=float, default=5.0, help="latency: seconds the job gets before any event"
    )
    parser.add_argument(
        "--latency-intervals",
        default="default",
        help="latency: the job's --snapshot-interval values to measure at, comma-separated "
        "('default' for the job's default), e.g. default,1",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="latency: also break each run's latency down (the job's timeline, "
        "CRM_TRIGGERS_TRACE, joined with the offered events' acknowledgements)",
    )
    parser.add_argument(
        "--cycles",
        help="latency: the job's --cycle-ms values to compare, comma-separated ('default' "
        "for the job's default), e.g. default,0: the maximum and the latency of each",
    )
    for option in (
        "events-topic",
        "automation-topic",
        "transitions-topic",
        "dead-letter-topic",
        "history-topic",
    ):
        parser.add_argument(f"--{option}")
    args = parser.parse_args()

    if args.mode == "baseline":
        topics = Topics(
            args.events_topic,
            args.automation_topic,
            args.transitions_topic,
            args.dead_letter_topic,
            args.history_topic,
        )
        read, moved, seconds = baseline(args.brokers, topics)
        print(read, moved, seconds)
        return 0

    if args.partitions is None:
        args.partitions = 1 if args.mode == "bench" else 4
    brokers = broker(args.brokers)
    kafka = KafkaSettings(brokers)
    folder = generated_log(args.events, args.items)
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    inputs = Topics(f"{tag}.events", f"{tag}.automation", f"{tag}.job-out", f"{tag}.job-dlq")
    create_topics(kafka, topic_plans(inputs, args.partitions)[:2], replication_factor=1)
    bench = Bench(args, brokers, kafka, inputs, tag, folder)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, broker {brokers}")
    try:
        started = time.perf_counter()
        bench.events = load_inputs(kafka, folder, inputs, args.per_item)
        print(
            f"loaded {bench.events:,} events ({args.items:,} items, {args.partitions} partitions) "
            f"into {inputs.events} in {time.perf_counter() - started:.1f} s ({folder})",
            flush=True,
        )
        print(f"command: {quoted([Path(sys.executable).name, *sys.argv])}\n", flush=True)
        for measure in MODES[args.mode]:
            measure(bench)
        if args.keep_topics:
            print(f"(topics kept: {tag}.*)")
        else:
            print("(the topics are deleted now: pass --keep-topics to rerun these commands)")
    finally:
        if not args.keep_topics:
            delete_topics(kafka, sorted(_extra_topics(kafka, tag)))
    return 0


def _extra_topics(kafka: KafkaSettings, tag: str) -> set[str]:
    listed = admin_client(kafka).list_topics(timeout=10).topics
    return {name for name in listed if name.startswith(tag)}


if __name__ == "__main__":
    sys.exit(main())
