"""Killed in the middle of a stream and restarted: nothing missing, repeats identical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaSettings
from tests.conftest import Replay
from tests.integration.conftest import (
    REPO,
    StartJob,
    assert_written_as_replayed,
    killed_and_resumed,
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
    topics = make_topics(partitions=1)
    killed_and_resumed(kafka, topics, start_job, automation, events, tmp_path / "recovery", seed=7)
    assert_written_as_replayed(kafka, topics.transitions, replay(automation, events).transitions)
