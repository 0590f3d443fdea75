"""Killed over and over while events stream in, on several partitions, workers and processes.

Kill points are drawn over the whole run (one in each slice of the streaming time, seeded:
the seed is printed, and CRM_TRIGGERS_TEST_SEED replays it). Automation and events are
written while the job is down. After the last restart the outputs must be exactly a
replay's: every transition (repeats byte-identical), every dead letter at its topic
position, and the last run's summary must add up.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, Topics
from connectors.records import load_json, parse_automation, parse_event
from state.model import Event, Trigger
from tests.conftest import Replay
from tests.integration.conftest import (
    FINAL_EVENTS,
    PROGRESS,
    Job,
    StartJob,
    produce_lines,
    read_all,
    read_json,
)
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.integration

STREAM_SECONDS = 6.0
SECOND = timedelta(seconds=1)
KILLS = 3


def latest(lines: list[bytes]) -> datetime:
    """The latest readable occurred_at of some events."""
    times = []
    for line in lines:
        try:
            times.append(datetime.fromisoformat(orjson.loads(line)["occurred_at"]))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            continue
    return max(t for t in times if t.tzinfo is not None)


def event_id(line: bytes) -> str | None:
    """The id of an event the job decides, as it reads it; None for a line it rejects."""
    obj = load_json(line)
    event = parse_event(obj) if isinstance(obj, dict) else None
    return event.id if isinstance(event, Event) else None


def single_item(events: list[bytes]) -> list[bytes]:
    """Events naming one item: multi-item events may be ordered otherwise across partitions
    (test_end_to_end compares those), which is not what this test is about."""
    return [line for line in events if b'"items":' not in line]


def late_trigger_candidates(
    automation: list[bytes], moves: list[dict[str, Any]], after: str
) -> Iterator[bytes]:
    """Copies of the triggers that fire most, in force from `after`, tried before them."""
    fires = Counter((t["tenant"], t["trigger"]["id"]) for t in moves)
    valid = {}
    for line in automation:
        record = load_json(line)
        if isinstance(parse_automation(record), Trigger):
            valid[(record.get("tenant") or "default", str(record["id"]))] = record
    for key, _ in fires.most_common():
        if key in valid:
            yield orjson.dumps({**valid[key], "id": "late-copy", "sort": -1, "updated_at": after})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One `crm-triggers run` per process of a cluster (one process: no cluster options)."""

    def __init__(self, start_job: StartJob, topics: Topics, processes: int, *options: str):
        self.start_job, self.topics, self.processes, self.options = (
            start_job,
            topics,
            processes,
            options,
        )
        self.jobs: list[Job] = []

    def start(self, until_end: bool = False) -> None:
        if self.processes == 1:
            self.jobs = [self.start_job(self.topics, *self.options, until_end=until_end)]
            return
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(self.processes))
        self.jobs = [
            self.start_job(
                self.topics,
                *self.options,
                "--process-id",
                str(i),
                "--addresses",
                addresses,
                until_end=until_end,
            )
            for i in range(self.processes)
        ]

    def wait_until_up(self, timeout: float = 60.0) -> None:
        """Until running counts are reported (by one process of a cluster): the dataflow runs."""
        deadline = time.monotonic() + timeout
        while not any(PROGRESS.search(job.output()) for job in self.jobs):
            assert time.monotonic() < deadline, [job.output() for job in self.jobs]
            assert all(job.process.poll() is None for job in self.jobs), [
                job.output() for job in self.jobs
            ]
            time.sleep(0.05)

    def kill(self) -> None:
        for job in self.jobs:
            if job.process.poll() is None:
                job.kill()

    def finish(self) -> list[str]:
        return [job.finish(timeout=180) for job in self.jobs]


class Stream(threading.Thread):
    """Produces events in chunks spread over `seconds`, keeping where each one landed."""

    def __init__(self, kafka: KafkaSettings, topic: str, lines: list[bytes], seconds: float):
        super().__init__(daemon=True)
        self.kafka, self.topic, self.lines, self.seconds = kafka, topic, lines, seconds
        self.positions: list[tuple[int, int]] = []

    def run(self) -> None:
        chunks = 24
        size = -(-len(self.lines) // chunks)
        for at in range(0, len(self.lines), size):
            produced = produce_lines(self.kafka, self.topic, self.lines[at : at + size])
            self.positions.extend(produced.positions)
            time.sleep(self.seconds / chunks)


def is_per_item_prefix(written: list[dict[str, Any]], reference: list[dict[str, Any]]) -> bool:
    """Whether, item by item, what was written is a prefix of the item's reference moves."""
    expected: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)
    for t in reference:
        expected[(t["tenant"], t["item"]["entity"], t["item"]["id"])].append(t["id"])
    got: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)
    for t in written:
        key = (t["tenant"], t["item"]["entity"], t["item"]["id"])
        if t["id"] not in got[key]:
            got[key].append(t["id"])
    return all(ids == expected[key][: len(ids)] for key, ids in got.items())


def dead_letter_keys(letters: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (
            d["code"],
            d["message"],
            d.get("item"),
            d["record"],
            d["origin"]["topic"],
            d["origin"]["partition"],
            d["origin"]["offset"],
        )
        for d in letters
    }


def expected_dead_letters(
    reference: list[dict[str, Any]], where: dict[str, tuple[str, list[tuple[int, int]]]]
) -> set[tuple[Any, ...]]:
    """Replay dead letters at the topic positions their lines were produced to."""
    out = []
    for d in reference:
        file = d["origin"]["file"].rsplit("/", 1)[-1]
        topic, positions = where[file]
        partition, offset = positions[d["origin"]["line"] - 1]
        out.append({**d, "origin": {"topic": topic, "partition": partition, "offset": offset}})
    return dead_letter_keys(out)


@pytest.mark.parametrize(
    "partitions, processes, workers",
    [pytest.param(3, 1, 2, id="3 partitions, 2 workers"), pytest.param(3, 2, 1, id="2 processes")],
)
def test_kills_over_the_whole_run_with_automation_written_while_down(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    replay: Replay,
    tmp_path: Path,
    partitions: int,
    processes: int,
    workers: int,
) -> None:
    seed = int(os.environ.get("CRM_TRIGGERS_TEST_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    automation, events = random_scenario(seed % 10_000, n_events=12_000, n_items=1500)
    events = single_item(events)
    cut = int(len(events) * 0.75)
    streamed, later = events[:cut], events[cut:]
    # the late trigger is in force after every streamed event: a live run can match a replay
    first = replay(automation, events, key_groups=16)
    later_ids = {event_id(line) for line in later} - {None}
    for late in late_trigger_candidates(
        automation,
        [t for t in first.transitions if t["event"]["id"] in later_ids],
        (latest(streamed) + SECOND).isoformat(),
    ):
        reference = replay([*automation, late], events, key_groups=16)
        if any(t["trigger"]["id"] == "late-copy" for t in reference.transitions):
            break
    else:
        raise AssertionError(f"seed {seed}: no copy of a trigger fires after the stream")

    topics = make_topics(partitions=partitions)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery), str(processes * workers)],
        check=True,
        capture_output=True,
    )
    options = [
        "--recovery-dir",
        str(recovery),
        "--workers",
        str(workers),
        "--key-groups",
        "16",
        "--batch-size",
        "100",
    ]
    produced_automation = produce_lines(kafka, topics.automation, automation)
    cluster = Cluster(start_job, topics, processes, *options)

    # one kill in each slice of the streaming time, counted from when the job is up
    slice_seconds = STREAM_SECONDS / KILLS
    delays = [rng.uniform(0.0, slice_seconds) for _ in range(KILLS)]
    print(f"seed {seed}: kills {[round(d, 2) for d in delays]} s after each (re)start is up")
    stream = Stream(kafka, topics.events, streamed, STREAM_SECONDS)
    stream.start()
    written_at_kills = []
    for delay in delays:
        cluster.start()
        cluster.wait_until_up()
        time.sleep(delay)
        cluster.kill()
        written_at_kills.append(read_json(kafka, topics.transitions))
    stream.join()

    # while the job is down: a new trigger, then more events
    produced_late = produce_lines(kafka, topics.automation, [late])
    produced_later = produce_lines(kafka, topics.events, later)
    cluster.start(until_end=True)
    logs = cluster.finish()

    streamed_moves = [t for t in reference.transitions if t["trigger"]["id"] != "late-copy"]
    mid_run = 0
    for written in written_at_kills:
        assert is_per_item_prefix(written, reference.transitions)
        moves = {t["id"] for t in written}
        mid_run += 0 < len(moves) < len({t["id"] for t in streamed_moves})
    print(f"written at each kill: {[len(w) for w in written_at_kills]}")
    assert mid_run > 0, "no kill landed while transitions were being written"

    by_id = {t["id"]: orjson.dumps(t) for t in reference.transitions}
    written = read_all(kafka, topics.transitions)
    assert {orjson.loads(m.value())["id"] for m in written} == set(by_id)
    assert all(m.value() == by_id[orjson.loads(m.value())["id"]] for m in written)
    print(f"{len(written)} transitions written for {len(by_id)} distinct")

    where = {
        "automation.jsonl": (
            topics.automation,
            [*produced_automation.positions, *produced_late.positions],
        ),
        "events.jsonl": (topics.events, [*stream.positions, *produced_later.positions]),
    }
    assert dead_letter_keys(read_json(kafka, topics.dead_letters)) == expected_dead_letters(
        reference.dead_letters, where
    )

    # the last run resumed from its snapshots, and its own counts add up
    summaries = [FINAL_EVENTS.findall(log) for log in logs]
    assert any(summaries), logs
    for log in logs:
        assert "WARNING" not in log
    read_last = sum(int(n) for found in summaries for n in found)
    assert 0 < read_last < len(events)
