"""Command-line options with no other test: replay without --dlq, and run --start-from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaSettings
from flows.cli import main
from tests.conftest import jsonl
from tests.flows.test_replay_flow import PIPELINE, WEBFORM, created, form
from tests.integration.conftest import StartJob, dumps, produce_lines, read_json

NOTE = "note: dead letters were counted but not kept; use --dlq FILE\n"


def replay_cli(folder: Path, events: list[Any], *options: str) -> int:
    (folder / "automation.jsonl").write_bytes(jsonl([PIPELINE, WEBFORM]))
    (folder / "events.jsonl").write_bytes(jsonl(events))
    return main(
        [
            "replay",
            "--automation",
            str(folder / "automation.jsonl"),
            "--events",
            str(folder / "events.jsonl"),
            "--out",
            str(folder / "out.jsonl"),
            *options,
        ]
    )


def test_replay_without_dlq_counts_dead_letters_and_says_they_were_not_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [created("42", 5000), b"{not json", form("evt-1", "43"), form("evt-2", "42")]
    assert replay_cli(tmp_path, events) == 0
    err = capsys.readouterr().err
    assert err.endswith(NOTE)
    assert "dead letters:       invalid_json 1, unknown_item 1" in err
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 1

    assert replay_cli(tmp_path, events, "--dlq", str(tmp_path / "dlq.jsonl")) == 0
    assert NOTE not in capsys.readouterr().err
    assert len((tmp_path / "dlq.jsonl").read_bytes().splitlines()) == 2

    assert replay_cli(tmp_path, [created("42", 5000), form("evt-2", "42")]) == 0
    assert NOTE not in capsys.readouterr().err


def wait_for_transitions(kafka: KafkaSettings, topic: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = read_json(kafka, topic)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} transitions expected in {topic}, found {found}")


@pytest.mark.integration
def test_run_start_from_end_skips_the_events_already_in_the_topic(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob
) -> None:
    topics = make_topics(partitions=2)
    produce_lines(kafka, topics.automation, dumps([PIPELINE, WEBFORM]))
    produce_lines(kafka, topics.events, dumps([created("1", 5000), form("e-1", "1")]))

    job = start_job(topics, "--start-from", "end")
    job.wait_until(lambda c: c["applied"] >= 2)
    produce_lines(kafka, topics.events, dumps([created("2", 5000), form("e-2", "2")]))
    [move] = wait_for_transitions(kafka, topics.transitions, 1)
    job.wait_until(lambda c: c["events_read"] >= 2)
    job.stop()
    assert move["item"]["id"] == "2"
    assert job.progress()["events_read"] == 2

    # the default, from the beginning: the same topic gives both items' moves
    again = start_job(topics, until_end=True)
    again.finish()
    moved = [t["item"]["id"] for t in read_json(kafka, topics.transitions)]
    assert sorted(moved) == ["1", "2", "2"]
