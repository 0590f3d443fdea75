"""Killed in the middle of a stream and restarted: nothing missing, repeats identical."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaSettings
from tests.conftest import Replay
from tests.integration.conftest import (
    REPO,
    StartJob,
    assert_written_as_replayed,
    produce_lines,
)

pytestmark = pytest.mark.integration


def generated(folder: Path, events: int) -> tuple[list[bytes], list[bytes]]:
    script = REPO / "scripts" / "generate.py"
    options = ["--events", str(events), "--items", "3000", "--seed", "23"]
    subprocess.run(
        [sys.executable, str(script), "--out", str(folder), *options],
        check=True,
        capture_output=True,
    )
    return (
        (folder / "automation.jsonl").read_bytes().splitlines(),
        (folder / "events.jsonl").read_bytes().splitlines(),
    )


def test_sigkill_and_restart_lose_nothing(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay, tmp_path: Path
) -> None:
    automation, events = generated(tmp_path / "input", 60_000)
    first, second, rest = events[:36_000], events[36_000:48_000], events[48_000:]
    topics = make_topics(partitions=1)
    recovery = ["--recovery-dir", str(tmp_path / "recovery")]
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, first)

    job = start_job(topics, *recovery)
    job.wait_until(lambda c: c["events_read"] >= len(first))
    time.sleep(2.5)  # a couple of 1 s epochs: their snapshots are committed
    produce_lines(kafka, topics.events, second)
    time.sleep(random.Random(7).uniform(0.0, 0.3))
    job.kill()  # most likely while it reads `second`

    produce_lines(kafka, topics.events, rest)
    resumed = start_job(topics, *recovery, until_end=True)
    resumed.finish()

    # It resumed from its snapshots rather than starting over.
    assert resumed.events_read_in_total() < len(events)
    assert_written_as_replayed(kafka, topics.transitions, replay(automation, events).transitions)
