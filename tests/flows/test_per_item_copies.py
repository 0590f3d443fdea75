"""Multi-item events written as one copy per item (`produce --per-item`) decide as the
original log does: the same transitions byte for byte, on both engines, in a replay
and live over several partitions."""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, cluster_main

from connectors.kafka import caught_up_marker, event_key, per_item_copies
from connectors.raw import AUTOMATION, EVENTS, RawBatch
from connectors.records import MAX_ITEMS
from flows.dataflow import FlowSettings, build_flow
from tests.conftest import Replay
from tests.reference.randlog import random_scenario

EVENT: dict[str, Any] = {
    "id": "evt-1",
    "type": "email.received",
    "tenant": "acme",
    "occurred_at": "2026-11-25T10:00:00Z",
    "items": [
        {"entity": "deal", "id": "1", "category": "0", "stage": "NEW"},
        {"entity": "deal", "id": 2},
        {"entity": "deal", "id": "1", "stage": "WON"},
    ],
    "data": {"from": "client@example.com"},
}


def test_an_event_naming_several_items_is_one_copy_per_item_keyed_by_it() -> None:
    copies = per_item_copies(orjson.dumps(EVENT))

    assert [key for key, _ in copies] == [b"acme/deal/1", b"acme/deal/2"]
    first, second = (orjson.loads(value) for _, value in copies)
    # the first mention of an item named twice, with its hint; nothing else changes
    assert first["item"] == {"entity": "deal", "id": "1", "category": "0", "stage": "NEW"}
    assert second["item"] == {"entity": "deal", "id": 2}
    for copy in (first, second):
        assert "items" not in copy
        assert {k: v for k, v in copy.items() if k != "item"} == {
            k: v for k, v in EVENT.items() if k != "items"
        }
        assert event_key(copy) is not None
    assert list(first) == ["id", "type", "tenant", "occurred_at", "item", "data"]


@pytest.mark.parametrize(
    "record",
    [
        {**EVENT, "items": [EVENT["items"][0]]},
        {**EVENT, "items": [{"entity": "deal", "id": str(i)} for i in range(MAX_ITEMS + 1)]},
        {**EVENT, "items": [{"entity": "deal", "id": "1"}, {"entity": "deal"}]},
        {**EVENT, "type": "no.such.type"},
        {k: v for k, v in EVENT.items() if k != "occurred_at"},
        {"kind": "trigger", "tenant": "acme", "id": "t-1", "items": [1, 2]},
    ],
    ids=["one item", "too many items", "bad reference", "unknown type", "no time", "automation"],
)
def test_a_record_the_job_would_not_split_stays_one_record(record: dict[str, Any]) -> None:
    line = orjson.dumps(record)
    [(_, value)] = per_item_copies(line)
    assert value == line


def test_a_line_that_is_not_json_stays_as_it_is() -> None:
    assert per_item_copies(b"{not json") == [(None, b"{not json")]


def scenario() -> tuple[list[bytes], list[bytes], list[tuple[bytes | None, bytes]]]:
    automation, events = random_scenario(11, 2500, 250)
    copies = [copy for line in events for copy in per_item_copies(line)]
    assert sum(b'"items"' in line for line in events) > 50
    assert len(copies) > len(events) + 50
    return automation, events, copies


def outcomes(counts: Counter[str]) -> Counter[str]:
    """Every count but the records read (a copy is a record of its own)."""
    return Counter({k: v for k, v in counts.items() if k not in ("events_read", "extra_items")})


def test_a_replay_of_the_copies_writes_what_the_original_log_writes(
    replay: Replay, engine: str, tmp_path: Path
) -> None:
    automation, events, copies = scenario()
    history = [tmp_path / "original.history.jsonl", tmp_path / "copies.history.jsonl"]
    original = replay(automation, events, engine=engine, history=str(history[0]))
    copied = replay(
        automation, [value for _, value in copies], engine=engine, history=str(history[1])
    )

    assert len(original.transitions) > 100
    assert copied.out == original.out
    assert history[1].read_bytes() == history[0].read_bytes()
    assert [d["code"] for d in copied.dead_letters] == [d["code"] for d in original.dead_letters]
    assert outcomes(copied.summary.counts) == outcomes(original.summary.counts)
    assert copied.summary.counts["extra_items"] == 0
    # each item's decision counted once: as many outcomes as items decided
    assert (
        copied.summary.events_read
        == original.summary.events_read + original.summary.counts["extra_items"]
    )


def partitioned(copies: list[tuple[bytes | None, bytes]], partitions: int) -> list[RawBatch]:
    """The copies as a topic of `partitions` partitions would hand them over, in batches."""
    columns: defaultdict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for key, value in copies:
        columns[zlib.crc32(key or b"") % partitions].append((key, value))
    out = []
    for p, records in sorted(columns.items()):
        for start in range(0, len(records), 300):
            chunk = records[start : start + 300]
            out.append(
                RawBatch(
                    EVENTS,
                    "crm.events",
                    p,
                    start,
                    list(range(start, start + len(chunk))),
                    [value for _, value in chunk],
                    [key for key, _ in chunk],
                )
            )
    return out


def test_live_on_four_partitions_decides_the_copies_as_the_replay_of_the_original(
    replay: Replay, engine: str
) -> None:
    automation, events, copies = scenario()
    reference = replay(automation, events, engine=engine)
    automation_batch = RawBatch(
        AUTOMATION, "crm.automation", 0, 0, list(range(len(automation))), list(automation)
    )
    batches = [automation_batch, caught_up_marker("crm.automation"), *partitioned(copies, 4)]
    transitions: list[Any] = []
    flow = build_flow(
        TestingSource(batches),
        TestingSink(transitions),
        TestingSink([]),
        TestingSink([]),
        FlowSettings(key_groups=8, await_automation=True, engine=engine),
    )
    cluster_main(flow, [], 0, worker_count_per_proc=2)

    by_item: defaultdict[str, list[bytes]] = defaultdict(list)
    for key, (_, _, line) in transitions:
        by_item[key].append(line)
    expected: defaultdict[str, list[bytes]] = defaultdict(list)
    for line in reference.out.splitlines():
        move = orjson.loads(line)
        tenant, item = move["tenant"], move["item"]
        expected[f"{tenant}/{item['entity']}/{item['id']}"].append(line)
    assert len(expected) > 50
    assert by_item == expected
