"""Fixtures for tests against a real Apache Kafka broker.

The local broker (scripts/kafka/broker.sh) starts once per session, and stops at
the end if this session started it; with CRM_TRIGGERS_BROKERS set, that cluster
is used instead. Every test makes its own uuid-named topics and removes them.
The job runs as a real process (`python -m flows run ...`), so a test can kill it.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import (
    KafkaSettings,
    Produced,
    Topics,
    create_topics,
    delete_topics,
    is_compacted,
    produce_records,
    read_topic,
    record_key,
    topic_plans,
)

REPO = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = REPO / "scripts" / "kafka" / "broker.sh"
PROGRESS = re.compile(
    r"events read (\d+) .*transitions (\d+), dead letters (\d+), "
    r"automation read (\d+) applied (\d+)"
)
FINAL_EVENTS = re.compile(r"^events read: +(\d+)", re.MULTILINE)


@pytest.fixture(scope="session")
def brokers() -> Iterator[str]:
    given = os.environ.get("CRM_TRIGGERS_BROKERS")
    if given:
        yield given
        return
    if shutil.which("java") is None:
        pytest.skip("no java to run the local Kafka broker; set CRM_TRIGGERS_BROKERS instead")
    env = {**os.environ, "CRM_KAFKA_PYTHON": sys.executable}
    status = subprocess.run(["bash", str(BROKER_SCRIPT), "status"], capture_output=True, env=env)
    started = subprocess.run(
        ["bash", str(BROKER_SCRIPT), "start"], capture_output=True, text=True, env=env
    )
    if started.returncode != 0:
        pytest.fail(f"the local Kafka broker did not start:\n{started.stdout}{started.stderr}")
    yield f"127.0.0.1:{os.environ.get('CRM_KAFKA_PORT', '9092')}"
    if status.returncode != 0:
        subprocess.run(["bash", str(BROKER_SCRIPT), "stop"], capture_output=True, env=env)


@pytest.fixture(scope="session")
def kafka(brokers: str) -> KafkaSettings:
    return KafkaSettings(brokers)


@pytest.fixture
def make_topics(kafka: KafkaSettings) -> Iterator[Callable[..., Topics]]:
    """Makes a fresh set of the job's topics, named after a uuid; removed afterwards."""
    made: list[Topics] = []

    def make(partitions: int = 1) -> Topics:
        tag = f"test-{uuid.uuid4().hex[:12]}"
        topics = Topics(
            f"{tag}.events",
            f"{tag}.automation",
            f"{tag}.transitions",
            f"{tag}.dead-letter",
            f"{tag}.stage-history",
        )
        create_topics(kafka, topic_plans(topics, partitions), replication_factor=1)
        made.append(topics)
        return topics

    yield make
    if made:
        delete_topics(kafka, [name for topics in made for name in topics.all()])


def produce_lines(
    kafka: KafkaSettings, topic: str, lines: Iterable[bytes], timestamp_ms: int | None = None
) -> Produced:
    """JSON Lines records into a topic, keyed as `crm-triggers produce` keys them."""
    compacted = is_compacted(kafka, topic)
    records = ((record_key(line, compacted), line) for line in lines)
    return produce_records(kafka, topic, records, timestamp_ms)


def dumps(records: Iterable[Any]) -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]


def read_all(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic as it is now (confluent-kafka Messages)."""
    return list(read_topic(kafka, topic, until_end=True))


def read_json(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(message.value()) for message in read_all(kafka, topic)]


def assert_written_as_replayed(
    kafka: KafkaSettings, topic: str, reference: list[dict[str, Any]]
) -> None:
    """Every transition of `reference` is on `topic` and nothing else is; a transition
    written more than once (a repeat after a crash) has the reference's bytes each time."""
    by_id = {t["id"]: t for t in reference}
    written: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for transition in read_json(kafka, topic):
        written[transition["id"]].append(transition)
    assert len(by_id) > 100
    assert set(written) == set(by_id)
    for transition_id, copies in written.items():
        assert all(orjson.dumps(c) == orjson.dumps(by_id[transition_id]) for c in copies)


@dataclass
class Job:
    """A `crm-triggers run` process and what it has reported on stderr."""

    process: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def progress(self) -> dict[str, int]:
        """The latest running counts (all zero before the first report)."""
        found = PROGRESS.findall(self.output())
        names = ("events_read", "transitions", "dead_letters", "automation_read", "applied")
        return (
            dict(zip(names, map(int, found[-1]), strict=True)) if found else dict.fromkeys(names, 0)
        )

    def wait_until(
        self, condition: Callable[[dict[str, int]], bool], timeout: float = 60.0
    ) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.progress()
            if condition(counts):
                return counts
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the job exited ({self.process.returncode}):\n{self.output()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out; last counts {self.progress()}:\n{self.output()}")

    def finish(self, timeout: float = 120.0) -> str:
        """Wait for a run with --until-end to end; its stderr."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the job did not finish:\n{self.output()}") from None
        assert code == 0, f"the job failed ({code}):\n{self.output()}"
        return self.output()

    def events_read_in_total(self) -> int:
        """Events read by this run, from its final summary."""
        found = FINAL_EVENTS.findall(self.output())
        assert found, self.output()
        return int(found[-1])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


StartJob = Callable[..., Job]


@pytest.fixture
def start_job(brokers: str, tmp_path: Path) -> Iterator[StartJob]:
    """Starts `python -m flows run` on a set of topics; whatever still runs is killed after."""
    jobs: list[Job] = []

    def start(topics: Topics, *options: str, until_end: bool = False) -> Job:
        log = tmp_path / f"job{len(jobs)}.log"
        args = [
            sys.executable,
            "-m",
            "flows",
            "run",
            "--brokers",
            brokers,
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
            "--summary-interval",
            "0.2",
            "--snapshot-interval",
            "1",
            *(["--until-end"] if until_end else []),
            *options,
        ]
        env = {**os.environ, "RUST_BACKTRACE": "0"}
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        job = Job(process, log, args)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        if job.process.poll() is None:
            job.kill()


def killed_and_resumed(
    kafka: KafkaSettings,
    topics: Topics,
    start_job: StartJob,
    automation: list[bytes],
    events: list[bytes],
    recovery_dir: Path,
    seed: int,
) -> Job:
    """The job run on the first 60% of `events`, killed (SIGKILL) most likely while it
    reads the next 20%, then resumed from its recovery store to the end of all of them:
    the resumed run, finished, which must not have started over."""
    first, second = len(events) * 3 // 5, len(events) * 4 // 5
    recovery = ["--recovery-dir", str(recovery_dir)]
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, events[:first])
    job = start_job(topics, *recovery)
    job.wait_until(lambda c: c["events_read"] >= first)
    time.sleep(2.5)  # a couple of 1 s epochs: their snapshots are committed
    produce_lines(kafka, topics.events, events[first:second])
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    job.kill()
    produce_lines(kafka, topics.events, events[second:])
    resumed = start_job(topics, *recovery, until_end=True)
    resumed.finish()
    assert resumed.events_read_in_total() < len(events), "it started over"
    return resumed
