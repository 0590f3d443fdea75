"""The live stage history (topic crm.stage-history) against a replay's `--history` file."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, Topics
from tests.conftest import Replay
from tests.integration.conftest import (
    REPO,
    StartJob,
    killed_and_resumed,
    produce_lines,
    read_all,
)
from tests.integration.test_crash_resume import generated
from tests.integration.test_end_to_end import names_several_items
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.integration


def replayed_history(
    replay: Replay, folder: Path, automation: list[bytes], events: list[bytes], **options: Any
) -> list[bytes]:
    path = folder / "history.jsonl"
    replay(automation, events, history=str(path), **options)
    return path.read_bytes().splitlines()


def item_key(line: bytes) -> str:
    record = orjson.loads(line)
    item = record["item"]
    return f"{record['tenant']}/{item['entity']}/{item['id']}"


def by_item(lines: list[bytes]) -> dict[str, list[bytes]]:
    """History lines by item key, each item's in order."""
    out: defaultdict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        out[item_key(line)].append(line)
    return dict(out)


def live_history(kafka: KafkaSettings, topics: Topics) -> list[tuple[str, bytes]]:
    """(key, value) of every record of the history topic."""
    return [(m.key().decode(), m.value()) for m in read_all(kafka, topics.history)]


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_live_run_writes_the_history_of_a_replay(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    replay: Replay,
    tmp_path: Path,
    partitions: int,
) -> None:
    if partitions == 1:
        # Read as bytes: some sample lines are deliberately not UTF-8.
        automation = (REPO / "samples" / "automation.jsonl").read_bytes().splitlines()
        events = (REPO / "samples" / "events.jsonl").read_bytes().splitlines()
        options: list[str] = []
    else:
        automation, events = random_scenario(seed=5, n_events=3000, n_items=250)
        # Events naming several items are ordered with only their first item across
        # partitions (see test_end_to_end).
        events = [line for line in events if not names_several_items(line)]
        options = ["--workers", "2", "--key-groups", "16"]
    topics = make_topics(partitions=partitions)
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, events)
    log = start_job(topics, *options, until_end=True).finish()

    reference = replayed_history(replay, tmp_path, automation, events)
    written = live_history(kafka, topics)
    assert len(reference) > 100
    assert f"stage history:      {len(reference)}" in log
    # Keyed like events, each item's records in decision order, the same bytes.
    assert [key for key, _ in written] == [item_key(value) for _, value in written]
    assert by_item([value for _, value in written]) == by_item(reference)


def test_sigkill_and_restart_repeat_history_records_identically(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay, tmp_path: Path
) -> None:
    automation, events = generated(tmp_path / "input", 40_000)
    topics = make_topics(partitions=1)
    killed_and_resumed(kafka, topics, start_job, automation, events, tmp_path / "recovery", seed=3)

    reference = {
        orjson.loads(line)["id"]: line
        for line in replayed_history(replay, tmp_path, automation, events)
    }
    written: defaultdict[str, list[bytes]] = defaultdict(list)
    for _, value in live_history(kafka, topics):
        written[orjson.loads(value)["id"]].append(value)
    assert len(reference) > 100
    assert set(written) == set(reference)
    for record_id, copies in written.items():
        assert all(copy == reference[record_id] for copy in copies)
