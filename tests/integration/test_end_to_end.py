"""Automation and events through Kafka and the live job: the same transitions as a replay."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, Topics
from tests.conftest import Replay
from tests.integration.conftest import (
    REPO,
    StartJob,
    produce_lines,
    read_json,
)
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.integration


def canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def names_several_items(line: bytes) -> bool:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    items = obj.get("items") if isinstance(obj, dict) else None
    return isinstance(items, list) and len(items) > 1


def run_live(
    kafka: KafkaSettings,
    topics: Topics,
    start_job: StartJob,
    automation: list[bytes],
    events: list[bytes],
    *options: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, events)
    log = start_job(topics, *options, until_end=True).finish()
    return read_json(kafka, topics.transitions), read_json(kafka, topics.dead_letters), log


def test_the_bundled_samples_give_the_replay_transitions(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay
) -> None:
    # Read as bytes: some sample lines are deliberately not UTF-8.
    automation = (REPO / "samples" / "automation.jsonl").read_bytes().splitlines()
    events = (REPO / "samples" / "events.jsonl").read_bytes().splitlines()
    topics = make_topics(partitions=1)

    transitions, dead_letters, log = run_live(kafka, topics, start_job, automation, events)
    reference = replay(automation, events)

    assert len(transitions) == len(reference.transitions) > 0
    assert canonical(transitions) == canonical(reference.transitions)
    assert Counter(d["code"] for d in dead_letters) == Counter(
        d["code"] for d in reference.dead_letters
    )
    origins = [d["origin"] for d in dead_letters if d["origin"]["topic"] == topics.events]
    assert origins and all(o["partition"] == 0 and o["offset"] >= 0 for o in origins)
    assert f"events read:        {len(events)}" in log


def test_several_partitions_and_workers_give_the_replay_transitions(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay
) -> None:
    automation, events = random_scenario(seed=11, n_events=3000, n_items=250)
    # An event naming several items is keyed by its first: only that item's events are
    # ordered with it across partitions, so a replay of one file may order it otherwise.
    events = [line for line in events if not names_several_items(line)]
    topics = make_topics(partitions=3)

    transitions, _, _ = run_live(
        kafka, topics, start_job, automation, events, "--workers", "2", "--key-groups", "16"
    )
    reference = replay(automation, events, key_groups=16)

    assert len(reference.transitions) > 20
    assert canonical(transitions) == canonical(reference.transitions)
