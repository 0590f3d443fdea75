"""Stops and faults of the live job against the real broker: a signal is a clean stop,
and SIGKILL at random points loses no transition (repeats carry the same id)."""

from __future__ import annotations

import random
import signal
import socket
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings
from tests.conftest import Replay
from tests.integration.conftest import StartJob, produce_lines, read_json
from tests.integration.test_crash_resume import generated

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def assert_complete(kafka: KafkaSettings, transitions_topic: str, reference: dict[str, Any]) -> int:
    """Every reference transition written, nothing else, repeats identical; the copies."""
    written: defaultdict[str, list[bytes]] = defaultdict(list)
    for transition in read_json(kafka, transitions_topic):
        written[transition["id"]].append(orjson.dumps(transition))
    assert set(written) == set(reference)
    for transition_id, copies in written.items():
        assert all(c == orjson.dumps(reference[transition_id]) for c in copies)
    return sum(len(c) - 1 for c in written.values())


def test_sigterm_stops_cleanly_and_a_restart_repeats_nothing(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay, tmp_path: Path
) -> None:
    automation, events = generated(tmp_path / "input", 20_000)
    first, rest = events[:14_000], events[14_000:]
    topics = make_topics(partitions=1)  # multi-item events in the order replay decides them
    recovery = ["--recovery-dir", str(tmp_path / "recovery")]
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, first)
    port = free_port()

    job = start_job(topics, *recovery, "--metrics-port", str(port), "--snapshot-interval", "30")
    job.wait_until(lambda c: c["events_read"] >= len(first))
    # Read is counted as events arrive; ready once the automation caught up (soon after).
    deadline = time.monotonic() + 30
    while (status := get(f"http://127.0.0.1:{port}/readyz")[0]) != 200:
        assert time.monotonic() < deadline, f"never ready: {status}\n{job.output()}"
        time.sleep(0.1)
    assert orjson.loads(get(f"http://127.0.0.1:{port}/healthz")[1])["live"] is True
    _, metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert (
        f'crm_triggers_records_read_total{{topic="{topics.events}"}} {len(first)}.0'.encode()
        in (metrics)
    )
    assert b'crm_triggers_consumer_lag{partition="0"' in metrics
    # No snapshot was due (every 30 s): only the stop writes the one that counts.
    assert job.stop() == 0
    output = job.output()
    assert "panicked" not in output and "Traceback" not in output
    assert "SIGTERM: stopping" in output
    assert job.events_read_in_total() == len(first)  # the final summary

    produce_lines(kafka, topics.events, rest)
    resumed = start_job(topics, *recovery, until_end=True)
    resumed.finish()
    assert resumed.events_read_in_total() == len(rest)  # resumed exactly where it stopped
    reference = {t["id"]: t for t in replay(automation, events).transitions}
    assert assert_complete(kafka, topics.transitions, reference) == 0


def test_a_second_signal_stops_at_once_with_130(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, tmp_path: Path
) -> None:
    automation, events = generated(tmp_path / "input", 2_000)
    topics = make_topics(partitions=1)
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, events)
    job = start_job(topics)
    job.wait_until(lambda c: c["events_read"] >= len(events))
    job.process.send_signal(signal.SIGINT)
    job.process.send_signal(signal.SIGTERM)
    assert job.process.wait(30) in (0, 130)  # 0 if the stop was done before the second
    assert "panicked" not in job.output() and "Traceback" not in job.output()


KILLS = 10


def test_sigkill_at_random_points_loses_nothing(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay, tmp_path: Path
) -> None:
    """Ten SIGKILLs at random points (snapshots every second) while events keep coming."""
    automation, events = generated(tmp_path / "input", 60_000)
    chunk = len(events) // (KILLS + 1)
    topics = make_topics(partitions=1)
    recovery = ["--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", "1"]
    produce_lines(kafka, topics.automation, automation)
    rng = random.Random(11)
    for kill in range(KILLS):
        produce_lines(kafka, topics.events, events[kill * chunk : (kill + 1) * chunk])
        job = start_job(topics, *recovery)
        time.sleep(rng.uniform(1.0, 3.5))
        job.kill()
    produce_lines(kafka, topics.events, events[KILLS * chunk :])
    last = start_job(topics, *recovery, until_end=True)
    last.finish()

    reference = {t["id"]: t for t in replay(automation, events).transitions}
    assert len(reference) > 1000
    repeats = assert_complete(kafka, topics.transitions, reference)
    print(f"{KILLS} kills: {len(reference)} transitions, none missing, {repeats} repeated copies")
