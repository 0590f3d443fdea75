"""A partition task (`run --decide-in partitions`) against the real broker: it resumes
exactly after what it read when its snapshot was taken: build, read, snapshot, rebuild,
read on."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, Producers, Reading, per_item_copies, produce_records
from flows.dataflow import FlowSettings
from flows.partitioned import PartitionTask, PartitionTasks
from tests.conftest import Replay
from tests.integration.conftest import produce_lines, read_all
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.integration


def read_until(task: PartitionTask, condition: Any, timeout: float = 60.0) -> Counter[str]:
    """Counts of what the task read until `condition` holds of them or it reached the end,
    the counts it has not handed on yet included."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for tally in task.next_batch():
                seen.update(tally)
        except StopIteration:
            break
        if condition(seen + task.tally):
            break
        time.sleep(0.005)
    else:
        raise AssertionError(f"timed out, read {seen + task.tally}")
    return seen + task.tally


def test_a_task_rebuilt_from_its_snapshot_reads_on_where_it_stopped(
    kafka: KafkaSettings, make_topics: Any, replay: Replay
) -> None:
    automation, events = random_scenario(41, 3000, 300)
    topics = make_topics(partitions=2)
    produce_lines(kafka, topics.automation, automation)
    produce_records(kafka, topics.events, (c for line in events for c in per_item_copies(line)))
    settings = FlowSettings(key_groups=1, history=True, snapshots=True, await_automation=True)
    tasks = PartitionTasks(
        kafka, topics, Producers(kafka), settings, Reading(batch_size=50, until_end=True)
    )
    part = f"{topics.events}:0"

    first = tasks.build_part("read_and_decide", part, None)
    before = read_until(first, lambda seen: seen["events_read"] >= 400)
    snapshot = first.snapshot()
    first.close()
    rebuilt = tasks.build_part("read_and_decide", part, snapshot)
    after = read_until(rebuilt, lambda seen: False)
    rebuilt.close()

    mine = [m.value() for m in read_all(kafka, topics.events) if m.partition() == 0]
    assert before["events_read"] >= 400
    assert before["events_read"] + after["events_read"] == len(mine)
    assert before["automation_caught_up"] == after["automation_caught_up"] == 1
    expected = replay(automation, mine).out.splitlines()
    written = [m.value() for m in read_all(kafka, topics.transitions)]
    assert len(expected) > 20
    assert sorted(written) == sorted(expected)  # each once: nothing lost, nothing repeated
    ids = [orjson.loads(line)["id"] for line in written]
    assert len(set(ids)) == len(ids)
