"""Properties of the decision procedure over random event logs (spec 2.3 and 3)."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.records import parse_automation, parse_event, transition_json
from state.board import Board
from state.model import Decided, Event, Rejection, Transition, transition_id
from state.table import TriggerTable
from tests.reference.oracle import decide as oracle_decide

STAGES = ["NEW", "PREPARATION", "PROPOSAL", "WON", "LOSE"]
AUTOMATION: list[dict[str, Any]] = [
    {
        "kind": "pipeline",
        "entity": "deal",
        "stages": [
            {"id": s, "semantic": sem}
            for s, sem in zip(
                STAGES, ["process", "process", "process", "success", "failure"], strict=True
            )
        ],
    },
    {
        "kind": "trigger",
        "id": "t-web",
        "entity": "deal",
        "stage": "PREPARATION",
        "code": "WEBFORM",
        "params": {"form_id": "1"},
    },
    {"kind": "trigger", "id": "t-cb", "entity": "deal", "stage": "WON", "code": "CALLBACK"},
    {
        "kind": "trigger",
        "id": "t-call",
        "entity": "deal",
        "stage": "PROPOSAL",
        "code": "CALL",
        "updated_at": "2026-11-10T00:00:00Z",
    },
    {
        "kind": "trigger",
        "id": "t-back",
        "entity": "deal",
        "stage": "NEW",
        "code": "CALL",
        "allow_backwards": True,
        "condition": {"any": [[{"field": "OPPORTUNITY", "op": "<", "value": 100}]]},
    },
    {
        "kind": "trigger",
        "id": "t-field",
        "entity": "deal",
        "stage": "LOSE",
        "code": "FIELD_CHANGED",
        "params": {"fields": ["OPPORTUNITY"]},
    },
    {"kind": "trigger", "id": "t-field", "deleted": True, "updated_at": "2026-11-20T00:00:00Z"},
]
REASONS = {
    "created",
    "updated",
    "stage_changed",
    "confirmed",
    "deleted",
    "no_match",
    "duplicate",
    "item_deleted",
    "no_pipeline",
}


def new_board() -> Board:
    table = TriggerTable()
    for raw in AUTOMATION:
        record = parse_automation(raw)
        assert not isinstance(record, Rejection), record
        assert table.apply(record) is None
    return Board(table)


item_refs = st.builds(
    lambda item_id, hint: {"entity": "deal", "id": item_id, **hint},
    st.sampled_from(["1", "2", "3"]),
    st.sampled_from(
        [{}, {"stage": "NEW"}, {"stage": "WON", "category": "0"}, {"stage": "NEW", "category": "5"}]
    ),
)
stages = st.sampled_from([*STAGES, "GHOST"])
payloads = st.one_of(
    st.tuples(
        st.just("item.created"),
        st.builds(
            lambda s, n: {"stage": s, "fields": {"OPPORTUNITY": n}}, stages, st.integers(0, 200)
        ),
    ),
    st.tuples(
        st.just("item.updated"),
        st.builds(lambda n: {"changes": {"OPPORTUNITY": n}}, st.integers(0, 200)),
    ),
    st.tuples(st.just("item.stage_changed"), st.builds(lambda s: {"stage": s}, stages)),
    st.tuples(st.just("item.deleted"), st.just({})),
    st.tuples(
        st.just("form.submitted"),
        st.builds(
            lambda f, cb: {"form_id": f, "callback": cb}, st.sampled_from(["1", "2"]), st.booleans()
        ),
    ),
    st.tuples(st.just("call.incoming"), st.just({"line": "1"})),
)
events = st.builds(
    lambda eid, payload, day, refs: {
        "id": eid,
        "type": payload[0],
        "data": payload[1],
        "items": refs,
        "occurred_at": f"2026-11-{day:02d}T00:00:00Z",
    },
    st.sampled_from([f"e-{n}" for n in range(12)]),
    payloads,
    st.integers(1, 30),
    st.lists(item_refs, min_size=1, max_size=2),
)


def run_each(board: Board, log: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Per event, (item key, outcome) for each item it names."""
    outcomes = []
    for raw in log:
        event = parse_event(raw)
        assert isinstance(event, Event), event
        outcomes.append(
            [(f"default/deal/{ref.id}", board.decide(event, ref)) for ref in event.items]
        )
    return outcomes


def run(board: Board, log: list[dict[str, Any]]) -> list[Any]:
    outcomes = []
    for raw in log:
        event = parse_event(raw)
        assert isinstance(event, Event), event
        outcomes.extend(board.decide(event, ref) for ref in event.items)
    return outcomes


@settings(database=None, max_examples=150, deadline=None)
@given(st.lists(events, max_size=25))
def test_every_decision_is_a_move_a_counted_no_op_or_a_dead_letter(log) -> None:
    board = new_board()
    for raw in log:
        event = parse_event(raw)
        assert isinstance(event, Event)
        for ref in event.items:
            outcome = board.decide(event, ref)
            if isinstance(outcome, Decided):
                assert outcome.reason in REASONS
            elif isinstance(outcome, Rejection):
                assert outcome.code in ("unknown_item", "unknown_stage")
            else:
                assert isinstance(outcome, Transition)
                positions = {s: i for i, s in enumerate(STAGES)}
                assert outcome.from_stage != outcome.to_stage
                forward = positions[outcome.to_stage] > positions[outcome.from_stage]
                assert outcome.direction == ("forward" if forward else "backward")
                assert outcome.id == transition_id("default", "deal", ref.id, event.id)
                assert board.items[f"default/deal/{ref.id}"].stage == outcome.to_stage


@settings(database=None, max_examples=100, deadline=None)
@given(st.lists(events, max_size=25))
def test_the_board_decides_as_the_reference_oracle(log) -> None:
    """Against tests/reference/oracle.py, written from the contract alone: it can disagree.

    An item named twice in one event is named the same way both times here: named with
    other hints, the board decides it twice (tests/reference/test_differential.py,
    test_an_item_named_twice_with_other_hints_is_decided_once).
    """
    for raw in log:
        first: dict[str, Any] = {}
        raw["items"] = [dict(first.setdefault(ref["id"], ref)) for ref in raw["items"]]
    expected, expected_dead = oracle_decide(
        [orjson.dumps(record) for record in AUTOMATION], [orjson.dumps(raw) for raw in log]
    )
    moves, dead = [], set()
    for index, outcome_list in enumerate(run_each(new_board(), log)):
        for key, outcome in outcome_list:
            if isinstance(outcome, Transition):
                moves.append(orjson.loads(transition_json(outcome)))
            elif isinstance(outcome, Rejection):
                dead.add((outcome.code, key, index))
    assert moves == expected
    assert dead == {(d["code"], d["item"], d["index"]) for d in expected_dead}


@settings(database=None, max_examples=100, deadline=None)
@given(st.lists(events, max_size=25))
def test_at_most_one_transition_per_event_and_item(log) -> None:
    moves = [o for o in run(new_board(), log) if isinstance(o, Transition)]

    assert len({(m.item_id, m.event_id) for m in moves}) == len(moves)
    assert len({m.id for m in moves}) == len(moves)


@settings(database=None, max_examples=100, deadline=None)
@given(st.lists(events, max_size=25))
def test_a_replayed_log_is_all_duplicates_but_its_dead_letters(log) -> None:
    board = new_board()
    first = run(board, log)

    again = run(board, log)

    for before, after in zip(first, again, strict=True):
        if not isinstance(before, Rejection):
            assert after == Decided("duplicate")


def test_property_tests_have_no_deadline_under_the_ci_profile() -> None:
    """tests/conftest.py loads the `ci` profile: `@settings(max_examples=...)` without a
    deadline (tests/connectors/test_records.py) must not time examples on a busy machine."""
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci":
        pytest.skip("another Hypothesis profile was chosen")
    assert settings(max_examples=5).deadline is None
    assert settings.default.database is None
