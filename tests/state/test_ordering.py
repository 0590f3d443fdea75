"""Which candidate moves the item (spec 3, steps 3-5), and in which direction."""

from __future__ import annotations

from typing import Any

import pytest

from state.model import Decided, Transition

FORM = ("form.submitted", {"form_id": "12"})


def moved(outcome: Any) -> tuple[str, str, str]:
    """(trigger id, to stage, direction) of a move."""
    assert isinstance(outcome, Transition), outcome
    return outcome.trigger_id, outcome.to_stage, outcome.direction


def test_the_earliest_stage_wins_whatever_the_sort(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-won", "WON", "WEBFORM", sort=-100),
        trigger("t-prop", "PROPOSAL", "WEBFORM", sort=-5),
        trigger("t-prep", "PREPARATION", "WEBFORM", sort=10),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM))) == ("t-prep", "PREPARATION", "forward")


def test_on_one_stage_the_lowest_sort_wins(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(
        trigger("t-a", "PROPOSAL", "WEBFORM", sort=1),
        trigger("t-z", "PROPOSAL", "WEBFORM", sort=0),
        trigger("t-m", "PROPOSAL", "WEBFORM", sort=2),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM)))[0] == "t-z"


def test_sort_defaults_to_zero(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(
        trigger("t-a", "PROPOSAL", "WEBFORM", sort=1),
        trigger("t-b", "PROPOSAL", "WEBFORM"),
        trigger("t-c", "PROPOSAL", "WEBFORM", sort=None),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM)))[0] == "t-b"


def test_negative_sort_goes_before_the_default(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(
        trigger("t-a", "PROPOSAL", "WEBFORM"),
        trigger("t-b", "PROPOSAL", "WEBFORM", sort=-1),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM)))[0] == "t-b"


def test_on_one_stage_and_sort_the_lowest_id_wins(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-2", "PROPOSAL", "WEBFORM"),
        trigger("t-10", "PROPOSAL", "WEBFORM"),
        trigger("t-3", "PROPOSAL", "WEBFORM"),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM)))[0] == "t-10"


def test_the_first_candidate_whose_params_and_condition_hold_wins(
    make_board, trigger, item_on, event, decide
) -> None:
    never = {"any": [[{"field": "event.form_id", "op": "=", "value": "nope"}]]}
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", params={"form_id": "99"}),
        trigger("t-2", "PROPOSAL", "WEBFORM", condition=never),
        trigger("t-3", "WON", "WEBFORM", params={"form_id": "12"}),
        trigger("t-4", "LOSE", "WEBFORM"),
    )
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM))) == ("t-3", "WON", "forward")


def test_one_event_moves_an_item_at_most_once(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM"),
        trigger("t-2", "PROPOSAL", "WEBFORM"),
    )
    item_on(board, "NEW")

    first = decide(board, event(*FORM))

    assert moved(first) == ("t-1", "PREPARATION", "forward")
    assert board.items["default/deal/42"].stage == "PREPARATION"
    # The next event goes on from where the item now is.
    assert moved(decide(board, event(*FORM))) == ("t-2", "PROPOSAL", "forward")
    assert decide(board, event(*FORM)) == Decided("no_match")


@pytest.mark.parametrize("allow_backwards", [False, True])
def test_a_trigger_on_the_current_stage_never_fires(
    allow_backwards, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PROPOSAL", "WEBFORM", allow_backwards=allow_backwards),
    )
    item_on(board, "PROPOSAL")

    assert decide(board, event(*FORM)) == Decided("no_match")


def test_an_earlier_stage_needs_allow_backwards(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM"))
    item_on(board, "PROPOSAL")

    assert decide(board, event(*FORM)) == Decided("no_match")


def test_allow_backwards_moves_the_item_back(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", allow_backwards=True))
    item_on(board, "PROPOSAL")

    outcome = decide(board, event(*FORM))

    assert moved(outcome) == ("t-1", "PREPARATION", "backward")
    assert (outcome.from_stage, outcome.to_stage) == ("PROPOSAL", "PREPARATION")


def test_a_backward_trigger_is_tried_before_later_stages(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-won", "WON", "WEBFORM", sort=-10),
        trigger("t-back", "NEW", "WEBFORM", allow_backwards=True, sort=10),
    )
    item_on(board, "PROPOSAL")

    assert moved(decide(board, event(*FORM))) == ("t-back", "NEW", "backward")


def test_allow_backwards_also_moves_forward(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(trigger("t-1", "WON", "WEBFORM", allow_backwards=True))
    item_on(board, "NEW")

    assert moved(decide(board, event(*FORM))) == ("t-1", "WON", "forward")


def test_from_success_a_later_failure_stage_is_forward(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-lose", "LOSE", "WEBFORM"))
    item_on(board, "WON")

    outcome = decide(board, event(*FORM))

    assert moved(outcome) == ("t-lose", "LOSE", "forward")
    assert outcome.from_stage == "WON"


def test_from_success_back_to_process_needs_allow_backwards(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM"),
        trigger("t-2", "PROPOSAL", "WEBFORM", allow_backwards=True),
    )
    item_on(board, "WON")

    assert moved(decide(board, event(*FORM))) == ("t-2", "PROPOSAL", "backward")


def test_from_failure_back_to_success_is_backward(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "WON", "WEBFORM"),
    )
    item_on(board, "LOSE")
    assert decide(board, event(*FORM)) == Decided("no_match")

    board = make_board(trigger("t-1", "WON", "WEBFORM", allow_backwards=True))
    item_on(board, "LOSE")
    assert moved(decide(board, event(*FORM))) == ("t-1", "WON", "backward")


def test_the_order_is_the_pipelines_not_the_semantics(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    # A failure stage in the middle is just a position.
    stages = (("NEW", "process"), ("LOSE", "failure"), ("WORK", "process"), ("WON", "success"))
    board = make_board(
        pipeline(stages=stages),
        trigger("t-won", "WON", "WEBFORM"),
        trigger("t-work", "WORK", "WEBFORM"),
    )
    item_on(board, "LOSE")

    assert moved(decide(board, event(*FORM))) == ("t-work", "WORK", "forward")


def test_only_triggers_of_the_items_pipeline_are_candidates(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    board = make_board(
        pipeline(),
        pipeline(category="1", stages=(("C1:NEW", "process"), ("C1:WORK", "process"))),
        pipeline(entity="lead", stages=(("NEW", "process"), ("PREPARATION", "process"))),
        trigger("t-c1", "C1:WORK", "WEBFORM", category="1"),
        trigger("t-lead", "PREPARATION", "WEBFORM", entity="lead"),
    )
    item_on(board, "NEW")

    assert decide(board, event(*FORM)) == Decided("no_match")

    item_on(board, "C1:NEW", category="1", item={"entity": "deal", "id": "43"})
    outcome = decide(board, event(*FORM, item={"entity": "deal", "id": "43"}))
    assert moved(outcome) == ("t-c1", "C1:WORK", "forward")
    assert outcome.category == "1"

    item_on(board, "NEW", item={"entity": "lead", "id": "42"})
    assert moved(decide(board, event(*FORM, item={"entity": "lead", "id": "42"})))[0] == "t-lead"


def test_a_transition_says_what_moved_what(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(trigger("t-17", "PREPARATION", "WEBFORM"))
    item_on(board, "NEW")
    evt = event(*FORM, id="evt-9f2", tenant="default")

    outcome = decide(board, evt)

    assert outcome == Transition(
        id=outcome.id,
        tenant="default",
        entity="deal",
        item_id="42",
        category="0",
        from_stage="NEW",
        to_stage="PREPARATION",
        direction="forward",
        trigger_id="t-17",
        trigger_code="WEBFORM",
        event_id="evt-9f2",
        event_type="form.submitted",
        occurred_at="2026-11-25T10:00:00Z",
    )
