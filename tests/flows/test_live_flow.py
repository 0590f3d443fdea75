"""The live flow's wait for automation (the caught-up marker), on in-memory batches."""

from __future__ import annotations

import pickle
import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from connectors.kafka import caught_up_marker
from connectors.raw import AUTOMATION, EVENTS, RawBatch
from flows.dataflow import Decisions, FlowSettings, GroupLogic, Parcel, build_flow, route

PIPELINE = {
    "kind": "pipeline",
    "tenant": "acme",
    "entity": "deal",
    "stages": [{"id": "NEW"}, {"id": "PREPARATION"}],
}
WEBFORM = {
    "kind": "trigger",
    "tenant": "acme",
    "id": "t-17",
    "entity": "deal",
    "stage": "PREPARATION",
    "code": "WEBFORM",
    "params": {"form_id": "12"},
}


def form(event_id: str, item: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "form.submitted",
        "tenant": "acme",
        "occurred_at": "2026-11-25T10:00:00Z",
        "item": {"entity": "deal", "id": item, "category": "0", "stage": "NEW"},
        "data": {"form_id": "12"},
    }


def batch(stream: str, records: list[Any], first: int = 0) -> RawBatch:
    topic = "crm.automation" if stream == AUTOMATION else "crm.events"
    values: list[bytes | None] = [orjson.dumps(r) for r in records]
    positions = list(range(first, first + len(values)))
    return RawBatch(stream, topic, 0, first, positions, values)


def run(
    batches: list[RawBatch], groups: int = 4, engine: str = "native", workers: int = 1
) -> tuple[list[Any], list[Any], Counter[str]]:
    """The live flow on in-memory batches: `run_main`, or `cluster_main` with `workers`."""
    transitions: list[Any] = []
    letters: list[Any] = []
    tallies: list[Any] = []
    flow = build_flow(
        TestingSource(batches),
        TestingSink(transitions),
        TestingSink(letters),
        TestingSink(tallies),
        FlowSettings(key_groups=groups, await_automation=True, engine=engine),
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    total: Counter[str] = Counter()
    for _, tally in tallies:
        total.update(tally)
    return (
        [orjson.loads(line) for _, (_, _, line) in transitions],
        [orjson.loads(line) for _, (_, _, line) in letters],
        total,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_events_that_arrive_before_the_automation_wait_for_the_marker(
    engine: str, workers: int
) -> None:
    events = batch(EVENTS, [form("e1", "1"), form("e2", "2")])
    automation = batch(AUTOMATION, [PIPELINE, WEBFORM])
    marker = caught_up_marker("crm.automation")
    moves, _, tally = run([events, automation, marker], engine=engine, workers=workers)
    assert sorted(m["item"]["id"] for m in moves) == ["1", "2"]
    assert tally["automation_caught_up"] == 1
    assert tally["no_pipeline"] == 0


def test_events_after_the_marker_are_decided_at_once(engine: str) -> None:
    automation = batch(AUTOMATION, [PIPELINE, WEBFORM])
    later = batch(EVENTS, [form("e3", "3")])
    moves, _, _ = run([automation, caught_up_marker("crm.automation"), later], engine=engine)
    assert [m["event"]["id"] for m in moves] == ["e3"]


def test_without_the_marker_no_event_is_decided(engine: str) -> None:
    batches = [batch(AUTOMATION, [PIPELINE, WEBFORM]), batch(EVENTS, [form("e", "1")])]
    moves, _, tally = run(batches, engine=engine)
    assert moves == []
    assert tally["events_read"] == 1 and tally["transition"] == 0


def test_a_tombstone_whose_key_names_nothing_is_an_invalid_automation_dead_letter() -> None:
    tombstone = RawBatch(AUTOMATION, "crm.automation", 2, 7, [7], [None], [b"robot/r1"], [0])
    [rejected] = [x for x in route([tombstone], FlowSettings()) if isinstance(x, Decisions)]
    [(_, letter)] = rejected.dead_letters
    assert letter.code == "invalid_automation"
    assert "robot/r1" in letter.message
    assert letter.origin.as_dict() == {"topic": "crm.automation", "partition": 2, "offset": 7}
    assert rejected.tally == Counter({"automation_read": 1, "automation_dlq.invalid_automation": 1})


def test_waiting_events_are_part_of_the_snapshot_and_a_restart_waits_again(engine: str) -> None:
    settings = FlowSettings(key_groups=1, snapshots=True, await_automation=True, engine=engine)
    routed = route(
        [batch(AUTOMATION, [PIPELINE, WEBFORM]), batch(EVENTS, [form("e1", "1")])], settings
    )
    parcels = [p for x in routed if not isinstance(x, Decisions) for p in [x[1]]]
    logic = GroupLogic(settings, None)
    [decided], _ = logic.on_batch(parcels)
    assert decided.transitions == []

    # As if the process stopped here and a new one resumed from the snapshot.
    snapshot = logic.snapshot()
    assert snapshot is not None
    resumed = GroupLogic(settings, pickle.loads(pickle.dumps(snapshot)))
    assert not resumed.ready
    [again], _ = resumed.on_batch([Parcel(0, EVENTS, "crm.events", 0, [], [], [])])
    assert again.transitions == []
    marker = Parcel(0, caught_up_marker("t").stream, "t", None, [], [], [])
    [released], _ = resumed.on_batch([marker])
    assert [key for key, _ in released.transitions] == ["acme/deal/1"]


def keyed(records: list[dict[str, Any]], keys: list[bytes | None]) -> RawBatch:
    values: list[bytes | None] = [orjson.dumps(r) for r in records]
    return RawBatch(EVENTS, "crm.events", 0, 0, list(range(len(values))), values, keys)


@pytest.mark.parametrize(("workers", "groups"), [(1, 8), (2, 8), (2, 64)])
def test_events_keyed_by_their_item_go_to_its_group_undecoded(
    engine: str, workers: int, groups: int
) -> None:
    items = [str(n) for n in range(12)]
    events = keyed([form(f"e{i}", i) for i in items], [f"acme/deal/{i}".encode() for i in items])
    routed = route([events], FlowSettings(key_groups=groups, engine=engine))
    parcels = [x[1] for x in routed if not isinstance(x, Decisions)]
    assert {len(p.entries) for p in parcels} and all(
        e[3] is None for p in parcels for e in p.entries
    )
    automation = batch(AUTOMATION, [PIPELINE, WEBFORM])
    moves, letters, _ = run(
        [automation, caught_up_marker("crm.automation"), events], groups, engine, workers
    )
    assert sorted(m["item"]["id"] for m in moves) == sorted(items)
    assert letters == []


@pytest.mark.parametrize("workers", [1, 2])
def test_an_event_keyed_by_another_item_is_a_dead_letter_not_a_split_state(
    engine: str, workers: int
) -> None:
    wrong = keyed([form("e1", "1")], [b"acme/deal/999"])
    automation = batch(AUTOMATION, [PIPELINE, WEBFORM])
    marker = caught_up_marker("crm.automation")
    moves, letters, _ = run([automation, marker, wrong], 8, engine, workers)
    assert zlib.crc32(b"acme/deal/999") % 8 != zlib.crc32(b"acme/deal/1") % 8  # other groups
    assert moves == []
    [letter] = letters
    assert letter["code"] == "invalid_record"
    assert "acme/deal/1" in letter["message"]


@pytest.mark.parametrize("workers", [1, 2])
def test_events_without_keys_and_multi_item_events_are_decoded_to_find_their_groups(
    engine: str, workers: int
) -> None:
    """No key, a multi-item event keyed by its first item, an `items` event keyed by another
    item: each is decoded to find its items' groups, and each item decided there, once."""

    def naming(event_id: str, *items: str) -> dict[str, Any]:
        event = form(event_id, items[0])
        del event["item"]
        return event | {"items": [form(event_id, item)["item"] for item in items]}

    events = keyed(
        [form("e1", "1"), naming("m1", "10", "11", "12"), naming("e2", "3")],
        [None, b"acme/deal/10", b"acme/deal/2"],
    )
    automation = batch(AUTOMATION, [PIPELINE, WEBFORM])
    marker = caught_up_marker("crm.automation")
    moves, letters, tally = run([automation, marker, events], 8, engine, workers)
    assert sorted(m["item"]["id"] for m in moves) == ["1", "10", "11", "12", "3"]
    assert letters == []
    assert tally["extra_items"] == 2
