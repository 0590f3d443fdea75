"""`diff` on hand-written transition and history logs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from analytics.diff import DiffInputs, build_diff
from analytics.load import Skipped, connect
from tests.analytics.conftest import Write, at, record, transition_of


def move(item: str, event: str, to: str, trigger: str, day: float, source: str = "NEW") -> dict:
    return transition_of(record(item, "trigger", to, at(day), source, trigger, event=event))


BASE = [
    move("d1", "e1", "A", "t-a", 1),
    move("d2", "e2", "A", "t-a", 1),
    move("d3", "e3", "B", "t-b", 2),
]
OTHER = [
    move("d1", "e1", "A", "t-a", 1),  # unchanged
    move("d2", "e2", "B", "t-new", 1),  # changed: other stage and trigger
    move("d4", "e4", "A", "t-a", 3),  # added
    move("d2", "e5", "WON", "t-new", 4, "B"),  # added, later for d2
]  # d3's move is removed


@pytest.fixture
def diffed(write: Write) -> Any:
    inputs = DiffInputs([write("base.jsonl", BASE)], [write("other.jsonl", OTHER)])
    return build_diff(connect(), inputs, Skipped())


def test_transitions_are_joined_by_id(diffed: Any) -> None:
    assert diffed.summary["transitions"] == {
        "base": 3,
        "other": 4,
        "added": 2,
        "removed": 1,
        "changed": 1,
        "unchanged": 1,
        "items_changed": 3,
    }


def test_fires_gained_and_lost_per_trigger(diffed: Any) -> None:
    changes = {t["id"]: (t["base"], t["other"], t["delta"]) for t in diffed.summary["triggers"]}
    assert changes == {"t-new": (0, 2, 2), "t-b": (1, 0, -1)}


def test_the_move_matrix_change(diffed: Any) -> None:
    cells = {(m["from"], m["to"]): m["delta"] for m in diffed.summary["moves"]}
    assert cells == {("B", "WON"): 1}


def test_changed_items_with_their_first_differing_event(diffed: Any) -> None:
    items = {i["item"]["id"]: i for i in diffed.items}
    assert sorted(items) == ["d2", "d3", "d4"]
    d2 = items["d2"]
    assert (d2["change"], d2["event"]["id"]) == ("changed", "e2")  # e2 comes before e5
    assert d2["base"]["to_stage"] == "A" and d2["other"]["to_stage"] == "B"
    assert items["d3"]["other"] is None and items["d4"]["base"] is None


def test_history_changes(write: Write) -> None:
    base_history = [
        record("d1", "created", "NEW", at(0)),
        record("d1", "trigger", "A", at(1), "NEW", "t-a"),
        record("d2", "created", "NEW", at(0)),
    ]
    other_history = [
        record("d1", "created", "NEW", at(0)),
        record("d1", "trigger", "B", at(1), "NEW", "t-b"),
        record("d2", "created", "NEW", at(0)),
    ]
    inputs = DiffInputs(
        [write("b.jsonl", BASE)],
        [write("o.jsonl", OTHER)],
        [write("bh.jsonl", base_history)],
        [write("oh.jsonl", other_history)],
    )
    history = build_diff(connect(), inputs, Skipped()).summary["history"]
    assert history["items_last_stage_differs"] == 1
    assert history["items"] == [
        {"tenant": "acme", "entity": "deal", "id": "d1", "base": "A", "other": "B"}
    ]
    reached = {s["stage"]: (s["reached_base"], s["reached_other"]) for s in history["stages"]}
    assert reached["B"] == (None, 1) and reached["A"] == (1, None)


def test_items_out_lines_are_json(diffed: Any) -> None:
    from analytics.diff import to_json_line

    for item in diffed.items:
        assert orjson.loads(to_json_line(item)) == item
