"""`state.explain`: each verdict of the candidate loop, on plain values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from state.board import Board
from state.explain import (
    BACKWARDS,
    CONDITION,
    DELETED,
    FIRED,
    NOT_IN_FORCE,
    NOT_REACHED,
    OTHER_VERSION,
    PARAMS,
    SAME_STAGE,
    Step,
    explain_decision,
)
from state.model import Event, item_key

MakeBoard = Callable[..., Board]
MakeEvent = Callable[..., Event]


def explain(board: Board, evt: Event) -> Step:
    ref = evt.items[0]
    return explain_decision(board, evt, ref, item_key(evt.tenant, ref.entity, ref.id))


def verdicts(step: Step, code: str) -> list[tuple[str, str]]:
    [trial] = [t for t in step.codes if t.code == code]
    return [(v.trigger.id, v.verdict) for v in trial.verdicts]


@pytest.fixture
def board(make_board: MakeBoard, trigger: Callable[..., dict[str, Any]]) -> Board:
    """deal/0 NEW PREPARATION PROPOSAL WON LOSE, WEBFORM triggers on most stages."""
    return make_board(
        trigger("t-new", "NEW", "WEBFORM"),
        trigger("t-back", "NEW", "WEBFORM", allow_backwards=True, params={"form_id": "9"}),
        trigger("t-prep", "PREPARATION", "WEBFORM", params={"form_id": "12"}),
        trigger(
            "t-prop",
            "PROPOSAL",
            "WEBFORM",
            condition={
                "any": [
                    [{"field": "OPPORTUNITY", "op": ">", "value": 1000}],
                    [{"field": "event.callback", "op": "=", "value": "yes"}],
                ]
            },
        ),
        trigger("t-won", "WON", "WEBFORM"),
        trigger("t-late", "LOSE", "WEBFORM", updated_at="2026-12-01T00:00:00Z"),
    )


def test_every_candidate_in_decision_order_with_why(
    board: Board, event: MakeEvent, item_on: Callable[..., None]
) -> None:
    item_on(board, "PREPARATION", fields={"OPPORTUNITY": 500})
    step = explain(board, event("form.submitted", {"form_id": "12"}))
    assert step.outcome == "moved"
    assert step.transition is not None and step.transition.trigger_id == "t-won"
    assert (step.stage_before, step.stage_after) == ("PREPARATION", "WON")
    assert verdicts(step, "WEBFORM") == [
        ("t-back", PARAMS),
        ("t-new", BACKWARDS),
        ("t-prep", SAME_STAGE),
        ("t-prop", CONDITION),
        ("t-won", FIRED),
        ("t-late", NOT_IN_FORCE),
    ]
    by_id = {v.trigger.id: v for v in step.codes[0].verdicts}
    assert by_id["t-back"].detail == {
        "params": [{"param": "form_id", "expected": "9", "got": "12"}]
    }
    assert by_id["t-prop"].detail == {
        "clauses": [
            {"group": 0, "field": "OPPORTUNITY", "op": ">", "value": 1000, "saw": 500},
            {"group": 1, "field": "event.callback", "op": "=", "value": "yes", "saw": None},
        ]
    }
    assert str(by_id["t-late"].detail["from"]).startswith("2026-12-01")


def test_the_ones_after_the_fired_one_are_not_reached(
    board: Board, event: MakeEvent, item_on: Callable[..., None]
) -> None:
    item_on(board, "NEW", fields={"OPPORTUNITY": 5000})
    step = explain(board, event("form.submitted", {"form_id": "12"}))
    assert step.transition is not None and step.transition.to_stage == "PREPARATION"
    assert verdicts(step, "WEBFORM")[2:5] == [
        ("t-prep", FIRED),
        ("t-prop", NOT_REACHED),
        ("t-won", NOT_REACHED),
    ]


def test_explaining_decides_as_the_board_does(
    board: Board,
    make_board: MakeBoard,
    trigger: Callable[..., dict[str, Any]],
    event: MakeEvent,
    item_on: Callable[..., None],
) -> None:
    """The same events on a plain board and through explain: the same moves and state."""
    plain = make_board(*_records(trigger))
    explained = make_board(*_records(trigger))
    events = [
        event("item.created", {"stage": "NEW", "fields": {"OPPORTUNITY": 10}}),
        event("form.submitted", {"form_id": "1"}),
        event("item.updated", {"changes": {"OPPORTUNITY": 5000}}),
        event("form.submitted", {"form_id": "1"}),
        event("form.submitted", {"form_id": "1"}),
    ]
    for evt in events:
        expected = plain.decide(evt, evt.items[0])
        step = explain(explained, evt)
        assert (step.transition or step.outcome) == (
            expected if step.transition else getattr(expected, "reason", None)
        )
    assert plain.items == explained.items
    assert explained.observer is None


def _records(trigger: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">=", "value": 1000}]]}
    return [
        trigger("a", "PREPARATION", "WEBFORM", condition=big),
        trigger("b", "WON", "WEBFORM", condition=big),
    ]


def test_reasons_nothing_was_tried(
    board: Board, event: MakeEvent, item_on: Callable[..., None]
) -> None:
    item_on(board, "NEW")
    first = event("visit.registered")
    assert explain(board, first).outcome == "no_match"
    assert explain(board, first).outcome == "duplicate"
    lifecycle = explain(board, event("item.stage_changed", {"stage": "PROPOSAL"}))
    assert (lifecycle.outcome, lifecycle.codes) == ("stage_changed", ())
    assert (lifecycle.stage_before, lifecycle.stage_after) == ("NEW", "PROPOSAL")
    assert explain(board, event("item.deleted")).outcome == "deleted"
    assert explain(board, event("form.submitted", {"form_id": "12"})).outcome == "item_deleted"


def test_dead_letters_of_the_decision(board: Board, event: MakeEvent) -> None:
    unknown = explain(board, event("form.submitted", {"form_id": "12"}))
    assert unknown.outcome == "dead_letter"
    assert unknown.rejection is not None and unknown.rejection.code == "unknown_item"
    hinted = event(
        "form.submitted",
        {"form_id": "12"},
        item={"entity": "deal", "id": "7", "category": "0", "stage": "GONE"},
    )
    step = explain(board, hinted)
    assert step.rejection is not None and step.rejection.code == "unknown_stage"
    assert step.stage_before == "GONE"


def test_a_code_with_no_trigger_and_a_code_never_tried(
    make_board: MakeBoard,
    trigger: Callable[..., dict[str, Any]],
    event: MakeEvent,
    item_on: Callable[..., None],
) -> None:
    board = make_board(trigger("cb", "PROPOSAL", "CALLBACK"))
    item_on(board, "NEW")
    step = explain(board, event("form.submitted", {"callback": True}))
    assert [(t.code, t.tried) for t in step.codes] == [("CALLBACK", True), ("WEBFORM", False)]
    item_on(board, "NEW", item={"entity": "deal", "id": "43"})
    other = event("visit.registered", item={"entity": "deal", "id": "43"})
    step = explain(board, other)
    assert [(t.code, t.tried, t.verdicts) for t in step.codes] == [("VISIT", True, ())]


def test_deleted_and_moved_triggers_are_shown_as_such(
    make_board: MakeBoard,
    trigger: Callable[..., dict[str, Any]],
    event: MakeEvent,
    item_on: Callable[..., None],
) -> None:
    board = make_board(
        trigger("gone", "WON", "EMAIL", updated_at="2026-01-01T00:00:00Z"),
        {"kind": "trigger", "id": "gone", "deleted": True, "updated_at": "2026-02-01T00:00:00Z"},
        trigger("moved", "WON", "EMAIL", updated_at="2026-01-01T00:00:00Z"),
        trigger("moved", "WON", "CALL", updated_at="2026-02-01T00:00:00Z"),
    )
    item_on(board, "NEW")
    step = explain(board, event("email.received", at="2026-03-01T00:00:00Z"))
    assert sorted(verdicts(step, "EMAIL")) == [("gone", DELETED), ("moved", OTHER_VERSION)]
    what_if = make_board(
        trigger("gone", "WON", "EMAIL", updated_at="2026-05-01T00:00:00Z"),
        {"kind": "trigger", "id": "gone", "deleted": True, "updated_at": "2026-06-01T00:00:00Z"},
        what_if=True,
    )
    item_on(what_if, "NEW")
    step = explain(what_if, event("email.received", at="2026-03-01T00:00:00Z"))
    assert verdicts(step, "EMAIL") == []  # a what-if table keeps the deletion alone


def test_field_changed_names_the_changes_it_saw(
    make_board: MakeBoard,
    trigger: Callable[..., dict[str, Any]],
    event: MakeEvent,
    item_on: Callable[..., None],
) -> None:
    board = make_board(trigger("f", "WON", "FIELD_CHANGED", params={"fields": ["TITLE"]}))
    item_on(board, "NEW")
    step = explain(board, event("item.updated", {"changes": {"COMMENTS": "x"}}))
    assert step.outcome == "updated"
    [verdict] = step.codes[0].verdicts
    assert verdict.detail == {
        "params": [{"param": "fields", "expected": ["TITLE"], "got": ["COMMENTS"]}]
    }
