"""`crm-triggers stats` against the real broker: figures, late records, SIGKILL and resume."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import (
    KafkaSettings,
    TopicPlan,
    create_topics,
    delete_topics,
    produce_records,
)
from tests.flows.test_stats_flow import (
    assert_equal_to_exact,
    exact_windows,
    random_history,
    run_stats,
)
from tests.integration.conftest import REPO, produce_lines, read_json

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class StatsTopics:
    history: str
    stats: str
    dead_letters: str


@pytest.fixture
def stats_topics(kafka: KafkaSettings) -> Iterator[StatsTopics]:
    tag = f"test-{uuid.uuid4().hex[:12]}"
    topics = StatsTopics(f"{tag}.stage-history", f"{tag}.stage-stats", f"{tag}.dead-letter")
    plans = [TopicPlan(name, 1) for name in (topics.history, topics.stats, topics.dead_letters)]
    create_topics(kafka, plans, replication_factor=1)
    yield topics
    delete_topics(kafka, [p.name for p in plans])


@pytest.fixture
def start_stats(brokers: str, tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(topics: StatsTopics, *options: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"stats{len(processes)}.log"
        args = [
            sys.executable,
            "-m",
            "flows",
            "stats",
            "--brokers",
            brokers,
            "--history-topic",
            topics.history,
            "--stats-topic",
            topics.stats,
            "--dead-letter-topic",
            topics.dead_letters,
            "--snapshot-interval",
            "1",
            "--summary-interval",
            "0.2",
            *options,
        ]
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                args, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=stderr
            )
        process.log = log  # type: ignore[attr-defined]
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def finish(process: subprocess.Popen[bytes]) -> str:
    code = process.wait(120)
    output = process.log.read_text(errors="replace")  # type: ignore[attr-defined]
    assert code == 0, output
    return str(output)


def lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def pipeline_of(record: dict[str, Any]) -> str:
    return f"{record['tenant']}/{record['entity']}/{record['category']}"


def test_live_windows_equal_the_exact_figures_and_late_records_are_kept(
    kafka: KafkaSettings, stats_topics: StatsTopics, start_stats: Any
) -> None:
    records = random_history(seed=17, items=600)
    # An item of its own, so that it changes no other item's stays.
    very_late = records[10] | {
        "id": "late-one",
        "item": {"entity": records[10]["item"]["entity"], "id": "late-item"},
        "kind": "created",
        "from_stage": None,
        "trigger": None,
    }
    stream = [*records[: len(records) // 2], very_late, *records[len(records) // 2 :]]
    produce_lines(kafka, stats_topics.history, [*lines(stream), b"{broken"])

    output = finish(start_stats(stats_topics, "--until-end"))

    written = read_json(kafka, stats_topics.stats)
    windows = [w for w in written if w["kind"] == "window"]
    late = [w for w in written if w["kind"] == "late"]
    # `very_late` belongs to a window that had closed: it is a late record, and only that.
    assert [x["history_id"] for x in late] == ["late-one"]
    exact = exact_windows(records, timedelta(hours=1))
    assert {(pipeline_of(w), w["window_start"]) for w in windows} == set(exact)
    for window in windows:
        assert_equal_to_exact(window, exact[(pipeline_of(window), window["window_start"])])
    (letter,) = read_json(kafka, stats_topics.dead_letters)
    assert letter["code"] == "invalid_json" and letter["record"] == "{broken"
    assert letter["origin"]["topic"] == stats_topics.history
    assert f"windows written {len(windows)}" in output and "late 1" in output


def test_sigkill_and_resume_write_every_window_once_or_identically(
    kafka: KafkaSettings, stats_topics: StatsTopics, start_stats: Any, tmp_path: Path
) -> None:
    records = random_history(seed=29, items=3000, hours=48)
    first, second, rest = records[:3000], records[3000:6000], records[6000:]
    recovery = ["--recovery-dir", str(tmp_path / "recovery")]
    produce_lines(kafka, stats_topics.history, lines(first))

    job = start_stats(stats_topics, *recovery)
    deadline = time.monotonic() + 60
    while not read_json(kafka, stats_topics.stats):
        assert job.poll() is None and time.monotonic() < deadline, job.log.read_text()
        time.sleep(0.3)
    time.sleep(2.5)  # a couple of 1 s epochs: their snapshots are committed
    produce_lines(kafka, stats_topics.history, lines(second))
    time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait(30)
    before_restart = len(read_json(kafka, stats_topics.stats))

    produce_lines(kafka, stats_topics.history, lines(rest))
    resumed = finish(start_stats(stats_topics, *recovery, "--until-end"))

    expected, late, _ = run_stats(records)
    assert late == []
    reference = {w["id"]: w for w in expected}
    copies: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in read_json(kafka, stats_topics.stats):
        copies[record["id"]].append(record)
    assert 0 < before_restart < len(reference)
    assert set(copies) == set(reference)
    # The restart resumed from its snapshots: it did not write every window again.
    written_again = int(re.findall(r"windows written (\d+)", resumed)[-1])
    assert 0 < written_again < len(reference)
    for window_id, written in copies.items():
        assert all(copy == reference[window_id] for copy in written), window_id


def test_a_missing_topic_is_a_one_line_error(brokers: str) -> None:
    missing = f"test-{uuid.uuid4().hex[:12]}.stage-history"
    done = subprocess.run(
        [sys.executable, "-m", "flows", "stats", "--brokers", brokers, "--history-topic", missing],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"crm-triggers: error: --history-topic (CRM_TRIGGERS_HISTORY_TOPIC): topic '{missing}'"
    )
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_cluster_of_two_processes_writes_the_windows_of_one(
    kafka: KafkaSettings, start_stats: Any
) -> None:
    tag = f"test-{uuid.uuid4().hex[:12]}"
    topics = StatsTopics(f"{tag}.stage-history", f"{tag}.stage-stats", f"{tag}.dead-letter")
    plans = [TopicPlan(topics.history, 2), TopicPlan(topics.stats, 1)]
    plans.append(TopicPlan(topics.dead_letters, 1))
    create_topics(kafka, plans, replication_factor=1)
    try:
        records = random_history(seed=4, items=300)
        keyed = [
            (f"{r['tenant']}/{r['item']['entity']}/{r['item']['id']}".encode(), orjson.dumps(r))
            for r in records
        ]
        produce_records(kafka, topics.history, keyed)
        # Two partitions are read batch by batch: a lateness of a month makes every
        # record count in its window, whatever the interleaving.
        options = ["--until-end", "--allowed-lateness", "30d"]
        addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
        cluster = ["--addresses", addresses, *options]
        jobs = [start_stats(topics, *cluster, "--process-id", str(i)) for i in (0, 1)]
        for job in jobs:
            finish(job)
        expected, _, _ = run_stats(records, lateness=timedelta(days=30))
        written = read_json(kafka, topics.stats)
        assert sorted(written, key=lambda w: w["id"]) == sorted(expected, key=lambda w: w["id"])
    finally:
        delete_topics(kafka, [p.name for p in plans])


def test_topics_create_makes_the_stats_topic_and_tail_stats_prints_its_windows(
    kafka: KafkaSettings, brokers: str, start_stats: Any
) -> None:
    tag = f"test-{uuid.uuid4().hex[:12]}"
    names = {
        option: f"{tag}.{option}"
        for option in ("events", "automation", "transitions", "history", "dead-letter", "stats")
    }
    history = names["history"]
    made = subprocess.run(
        [sys.executable, "-m", "flows", "topics", "create", "--brokers", brokers]
        + [f"--{option}-topic={name}" for option, name in names.items()]
        + ["--partitions", "1", "--replication-factor", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert made.returncode == 0, made.stderr
        assert names["stats"] in made.stdout
        records = random_history(seed=5, items=80, hours=2)
        topics = StatsTopics(history, names["stats"], names["dead-letter"])
        produce_lines(kafka, history, lines(records))
        finish(start_stats(topics, "--until-end"))
        windows = [w for w in read_json(kafka, topics.stats) if w["kind"] == "window"]

        shown = subprocess.run(
            [
                *(sys.executable, "-m", "flows", "tail", "--brokers", brokers, "--stats"),
                *("--stats-topic", topics.stats, "--from-beginning", "--timeout", "5"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        printed = shown.stdout.splitlines()
        assert printed[1].split()[:3] == ["stage", "semantic", "entries"]
        titles = [line for line in printed if line and not line.startswith(" ")]
        assert len(titles) == len(windows)
        for title, window in zip(titles, windows, strict=True):
            assert title.startswith(window["window_start"][:16].replace("T", " "))
            assert f"{pipeline_of(window)}  {window['records']} record" in title
    finally:
        delete_topics(kafka, list(names.values()))
