"""Items on their stages (spec 3, steps 1-2 and 6-10): the Board's bookkeeping."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from state.board import Board
from state.model import Decided, Rejection, Transition, transition_id

FORM = ("form.submitted", {"form_id": "12"})
KEY = "default/deal/42"


def stage_of(board: Board, key: str = KEY) -> str | None:
    return board.items[key].stage


def rejected(outcome: Any, code: str) -> bool:
    return isinstance(outcome, Rejection) and outcome.code == code


@pytest.fixture
def form_board(make_board, trigger):
    """A board where a form moves deal items from NEW to PREPARATION."""
    return make_board(trigger("t-1", "PREPARATION", "WEBFORM"))


# Duplicates ----------------------------------------------------------------------------


def test_a_repeated_event_id_for_the_same_item_is_ignored(
    form_board, item_on, event, decide
) -> None:
    item_on(form_board, "NEW")
    evt = event(*FORM)

    assert isinstance(decide(form_board, evt), Transition)
    assert decide(form_board, evt) == Decided("duplicate")
    assert stage_of(form_board) == "PREPARATION"


def test_a_retried_event_with_other_content_is_still_a_duplicate(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", params={"form_id": "12"}))
    item_on(board, "NEW")

    assert decide(board, event("form.submitted", {"form_id": "9"}, id="e-1")) == Decided("no_match")
    assert decide(board, event("form.submitted", {"form_id": "12"}, id="e-1")) == Decided(
        "duplicate"
    )
    assert stage_of(board) == "NEW"


@pytest.mark.parametrize(
    ("etype", "data"),
    [
        ("item.created", {"stage": "PROPOSAL"}),
        ("item.updated", {"changes": {"TITLE": "x"}}),
        ("item.stage_changed", {"stage": "WON"}),
        ("item.deleted", {}),
    ],
)
def test_lifecycle_events_are_deduplicated_too(
    etype, data, form_board, item_on, event, decide
) -> None:
    item_on(form_board, "NEW", id="e-created")
    first = decide(form_board, event(etype, data, id="e-1"))
    state = (stage_of(form_board), form_board.items[KEY].deleted)

    assert first != Decided("duplicate")
    assert decide(form_board, event(etype, data, id="e-1")) == Decided("duplicate")
    assert (stage_of(form_board), form_board.items[KEY].deleted) == state


def test_the_same_event_id_on_another_item_or_tenant_is_not_a_duplicate(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    board = make_board(
        pipeline(),
        pipeline(tenant="acme"),
        trigger("t-1", "PREPARATION", "WEBFORM"),
        trigger("t-1", "PREPARATION", "WEBFORM", tenant="acme"),
    )
    other = {"entity": "deal", "id": "43"}
    item_on(board, "NEW")
    item_on(board, "NEW", item=other)
    item_on(board, "NEW", tenant="acme")

    assert isinstance(decide(board, event(*FORM, id="e-1")), Transition)
    assert isinstance(decide(board, event(*FORM, id="e-1", item=other)), Transition)
    assert isinstance(decide(board, event(*FORM, id="e-1", tenant="acme")), Transition)


def test_a_dead_letter_does_not_count_as_seen(form_board, item_on, event, decide) -> None:
    evt = event(*FORM, id="e-1")

    assert rejected(decide(form_board, evt), "unknown_item")
    item_on(form_board, "NEW")
    assert isinstance(decide(form_board, evt), Transition)


def test_the_seen_window_is_bounded(make_board, item_on, event, decide) -> None:
    board = make_board(seen_window=2)
    item_on(board, "NEW", id="e-0")
    for name in ("e-1", "e-2", "e-3"):
        assert decide(board, event(*FORM, id=name)) == Decided("no_match")

    assert decide(board, event(*FORM, id="e-3")) == Decided("duplicate")
    assert decide(board, event(*FORM, id="e-2")) == Decided("duplicate")
    assert decide(board, event(*FORM, id="e-1")) == Decided("no_match")


def test_the_default_seen_window_remembers_32_events(make_board, item_on, event, decide) -> None:
    board = make_board()
    item_on(board, "NEW", id="e-0")
    for n in range(1, 33):
        decide(board, event(*FORM, id=f"e-{n}"))

    assert decide(board, event(*FORM, id="e-1")) == Decided("duplicate")
    assert decide(board, event(*FORM, id="e-0")) == Decided("no_match")


# Echoes of our transitions -------------------------------------------------------------


def test_the_echo_of_our_transition_confirms_it(form_board, item_on, event, decide) -> None:
    item_on(form_board, "NEW")
    move = decide(form_board, event(*FORM))
    assert isinstance(move, Transition)

    echo = event("item.stage_changed", {"stage": "PREPARATION", "transition_id": move.id})

    assert decide(form_board, echo) == Decided("confirmed")
    assert stage_of(form_board) == "PREPARATION"


def test_an_echo_of_an_earlier_move_does_not_undo_a_later_one(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM"),
        trigger("t-2", "PROPOSAL", "WEBFORM"),
    )
    item_on(board, "NEW")
    first, second = decide(board, event(*FORM)), decide(board, event(*FORM))
    assert (first.to_stage, second.to_stage) == ("PREPARATION", "PROPOSAL")

    echo = event("item.stage_changed", {"stage": "PREPARATION", "transition_id": first.id})

    assert decide(board, echo) == Decided("confirmed")
    assert stage_of(board) == "PROPOSAL"


def test_echoes_arriving_after_several_moves_confirm_them_all(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    # The echoes of the last ECHO_WINDOW (16) moves are remembered: docs/decisions.md.
    stages = [f"S{n}" for n in range(5)]
    board = make_board(
        pipeline(stages=[(stage, "process") for stage in stages]),
        *(trigger(f"t-{stage}", stage, "WEBFORM") for stage in stages[1:]),
    )
    item_on(board, "S0")
    moves = [decide(board, event(*FORM)) for _ in range(4)]
    assert [m.to_stage for m in moves] == stages[1:]

    echoes = [
        decide(board, event("item.stage_changed", {"stage": m.to_stage, "transition_id": m.id}))
        for m in moves
    ]

    assert echoes == [Decided("confirmed")] * 4
    assert stage_of(board) == "S4"


def test_an_echo_naming_another_stage_is_adopted(form_board, item_on, event, decide) -> None:
    item_on(form_board, "NEW")
    move = decide(form_board, event(*FORM))

    echo = event("item.stage_changed", {"stage": "LOSE", "transition_id": move.id})

    assert decide(form_board, echo) == Decided("stage_changed")
    assert stage_of(form_board) == "LOSE"


def test_a_stage_change_by_a_person_is_adopted(form_board, item_on, event, decide) -> None:
    item_on(form_board, "PROPOSAL")

    assert decide(form_board, event("item.stage_changed", {"stage": "NEW"})) == Decided(
        "stage_changed"
    )
    assert stage_of(form_board) == "NEW"
    assert isinstance(decide(form_board, event(*FORM)), Transition)


def test_an_unknown_transition_id_is_adopted_not_confirmed(
    form_board, item_on, event, decide
) -> None:
    item_on(form_board, "NEW")

    echo = event("item.stage_changed", {"stage": "WON", "transition_id": "not-ours"})

    assert decide(form_board, echo) == Decided("stage_changed")
    assert stage_of(form_board) == "WON"


def test_a_stage_change_into_another_pipeline_is_adopted(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    board = make_board(
        pipeline(),
        pipeline(category="1", stages=(("C1:NEW", "process"), ("C1:WORK", "process"))),
        trigger("t-c1", "C1:WORK", "WEBFORM", category="1"),
    )
    item_on(board, "PROPOSAL")

    decide(board, event("item.stage_changed", {"stage": "C1:NEW", "category": 1}))

    assert (board.items[KEY].category, stage_of(board)) == ("1", "C1:NEW")
    outcome = decide(board, event(*FORM))
    assert isinstance(outcome, Transition)
    assert (outcome.category, outcome.to_stage) == ("1", "C1:WORK")


# Deleted items -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etype", "data"),
    [
        FORM,
        ("item.updated", {"changes": {"TITLE": "x"}}),
        ("item.stage_changed", {"stage": "NEW"}),
        ("call.incoming", {"line": "1"}),
    ],
)
def test_events_for_a_deleted_item_are_no_ops_until_it_is_created_again(
    etype, data, form_board, item_on, event, decide
) -> None:
    item_on(form_board, "NEW")
    assert decide(form_board, event("item.deleted")) == Decided("deleted")

    assert decide(form_board, event(etype, data)) == Decided("item_deleted")
    hinted = {"entity": "deal", "id": "42", "stage": "NEW"}
    assert decide(form_board, event(*FORM, item=hinted)) == Decided("item_deleted")

    item_on(form_board, "NEW")
    assert isinstance(decide(form_board, event(*FORM)), Transition)


def test_deleting_an_unknown_item_records_it_as_deleted(form_board, event, decide) -> None:
    assert decide(form_board, event("item.deleted")) == Decided("deleted")

    hinted = event(*FORM, item={"entity": "deal", "id": "42", "stage": "NEW"})
    assert decide(form_board, hinted) == Decided("item_deleted")


# Unknown items -------------------------------------------------------------------------


@pytest.mark.parametrize(("etype", "data"), [FORM, ("item.updated", {"changes": {"TITLE": "x"}})])
def test_an_unknown_item_without_a_hint_is_a_dead_letter(
    etype, data, form_board, event, decide
) -> None:
    outcome = decide(form_board, event(etype, data))

    assert rejected(outcome, "unknown_item")
    assert "default/deal/42" in outcome.message
    assert KEY not in form_board.items


def test_a_hint_without_a_stage_is_no_hint(form_board, event, decide) -> None:
    outcome = decide(form_board, event(*FORM, item={"entity": "deal", "id": "42", "category": "0"}))

    assert rejected(outcome, "unknown_item")


def test_an_unknown_item_with_a_hint_is_decided_from_the_hint(form_board, event, decide) -> None:
    outcome = decide(form_board, event(*FORM, item={"entity": "deal", "id": 42, "stage": "NEW"}))

    assert isinstance(outcome, Transition)
    assert (outcome.item_id, outcome.category, outcome.from_stage) == ("42", "0", "NEW")
    assert stage_of(form_board) == "PREPARATION"


def test_a_hint_carries_the_category(make_board, pipeline, trigger, event, decide) -> None:
    board = make_board(
        pipeline(category="1", stages=(("C1:NEW", "process"), ("C1:WORK", "process"))),
        trigger("t-c1", "C1:WORK", "WEBFORM", category="1"),
    )
    hinted = {"entity": "deal", "id": "42", "category": 1, "stage": "C1:NEW"}

    outcome = decide(board, event(*FORM, item=hinted))

    assert isinstance(outcome, Transition)
    assert (outcome.category, outcome.to_stage) == ("1", "C1:WORK")


def test_a_hint_is_ignored_for_a_known_item(form_board, item_on, event, decide) -> None:
    item_on(form_board, "PROPOSAL")

    outcome = decide(form_board, event(*FORM, item={"entity": "deal", "id": "42", "stage": "NEW"}))

    assert outcome == Decided("no_match")
    assert stage_of(form_board) == "PROPOSAL"


def test_a_hinted_item_that_became_a_dead_letter_is_not_remembered(
    form_board, event, decide
) -> None:
    hinted = event(*FORM, item={"entity": "deal", "id": "42", "stage": "GHOST"})

    assert rejected(decide(form_board, hinted), "unknown_stage")
    assert KEY not in form_board.items


@pytest.mark.parametrize(
    ("etype", "data", "reason", "stage"),
    [
        ("item.created", {"stage": "PROPOSAL"}, "created", "PROPOSAL"),
        ("item.stage_changed", {"stage": "PROPOSAL"}, "stage_changed", "PROPOSAL"),
    ],
)
def test_lifecycle_events_record_an_unknown_item(
    etype, data, reason, stage, form_board, event, decide
) -> None:
    assert decide(form_board, event(etype, data)) == Decided(reason)
    assert stage_of(form_board) == stage
    assert form_board.items[KEY].category == "0"


def test_item_created_for_a_known_item_replaces_its_state(
    make_board, trigger, item_on, event, decide
) -> None:
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]}
    board = make_board(trigger("t-1", "PROPOSAL", "WEBFORM", condition=big))
    item_on(board, "NEW", fields={"OPPORTUNITY": 5000})

    item_on(board, "PREPARATION", fields={})

    assert stage_of(board) == "PREPARATION"
    assert board.items[KEY].field_map() == {}
    assert decide(board, event(*FORM)) == Decided("no_match")


# Pipelines and stages ------------------------------------------------------------------


@pytest.mark.parametrize(("etype", "data"), [FORM, ("item.updated", {"changes": {"TITLE": "x"}})])
def test_an_item_whose_pipeline_does_not_exist_is_a_no_op(
    etype, data, form_board, item_on, event, decide
) -> None:
    item_on(form_board, "C7:NEW", category="7")

    assert decide(form_board, event(etype, data)) == Decided("no_pipeline")


def test_an_item_on_a_stage_not_in_its_pipeline_is_unknown_stage(
    form_board, item_on, event, decide
) -> None:
    item_on(form_board, "GHOST")
    evt = event(*FORM)

    outcome = decide(form_board, evt)

    assert rejected(outcome, "unknown_stage")
    assert "GHOST" in outcome.message
    # Not seen: once the item is on a real stage, the same event is decided.
    decide(form_board, event("item.stage_changed", {"stage": "NEW"}))
    assert isinstance(decide(form_board, evt), Transition)


def test_lifecycle_events_on_an_unknown_stage_are_not_dead_letters(
    form_board, item_on, event, decide
) -> None:
    item_on(form_board, "GHOST")

    assert decide(form_board, event("item.stage_changed", {"stage": "PHANTOM"})) == Decided(
        "stage_changed"
    )
    assert decide(form_board, event("item.deleted")) == Decided("deleted")


# Several items, tenants ----------------------------------------------------------------


def test_an_event_naming_several_items_is_decided_for_each(form_board, item_on, event) -> None:
    item_on(form_board, "NEW", item={"entity": "deal", "id": "1"})
    item_on(form_board, "PROPOSAL", item={"entity": "deal", "id": "2"})
    evt = event(
        *FORM,
        items=[
            {"entity": "deal", "id": "1"},
            {"entity": "deal", "id": "2"},
            {"entity": "deal", "id": "3"},
            {"entity": "deal", "id": "4", "stage": "NEW"},
        ],
    )

    outcomes = [form_board.decide(evt, ref) for ref in evt.items]

    assert [type(o).__name__ for o in outcomes] == [
        "Transition",
        "Decided",
        "Rejection",
        "Transition",
    ]
    assert outcomes[0].item_id == "1"
    assert outcomes[1] == Decided("no_match")
    assert rejected(outcomes[2], "unknown_item")
    assert outcomes[3].item_id == "4"
    assert outcomes[0].id != outcomes[3].id
    assert stage_of(form_board, "default/deal/2") == "PROPOSAL"


def test_tenants_are_isolated(make_board, pipeline, trigger, item_on, event, decide) -> None:
    board = make_board(
        pipeline(),
        pipeline(tenant="acme"),
        trigger("t-1", "PREPARATION", "WEBFORM", tenant="acme"),
    )
    item_on(board, "NEW")

    assert decide(board, event(*FORM)) == Decided("no_match")
    assert rejected(decide(board, event(*FORM, tenant="acme")), "unknown_item")

    item_on(board, "NEW", tenant="acme")
    outcome = decide(board, event(*FORM, tenant="acme"))
    assert isinstance(outcome, Transition)
    assert outcome.tenant == "acme"
    assert (stage_of(board), stage_of(board, "acme/deal/42")) == ("NEW", "PREPARATION")


def test_a_tenant_without_the_pipeline_is_a_no_op(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    board = make_board(
        pipeline(tenant="acme"), trigger("t-1", "PREPARATION", "WEBFORM", tenant="acme")
    )
    item_on(board, "NEW")

    assert decide(board, event(*FORM)) == Decided("no_pipeline")


# Transition ids ------------------------------------------------------------------------


def test_transition_ids_are_a_pure_function_of_tenant_entity_item_and_event(
    make_board, trigger, item_on, event, decide
) -> None:
    ids = []
    for _ in range(2):
        board = make_board(trigger("t-1", "PREPARATION", "WEBFORM"))
        item_on(board, "NEW")
        outcome = decide(board, event(*FORM, id="evt-9f2"))
        ids.append(outcome.id)

    assert ids[0] == ids[1] == transition_id("default", "deal", "42", "evt-9f2")
    assert uuid.UUID(ids[0])


@pytest.mark.parametrize(
    "other",
    [
        ("acme", "deal", "42", "evt-9f2"),
        ("default", "lead", "42", "evt-9f2"),
        ("default", "deal", "43", "evt-9f2"),
        ("default", "deal", "42", "evt-9f3"),
        ("default", "deal4", "2", "evt-9f2"),
    ],
)
def test_transition_ids_differ_when_any_input_differs(other) -> None:
    assert transition_id(*other) != transition_id("default", "deal", "42", "evt-9f2")


def test_a_transition_id_does_not_depend_on_the_trigger_or_time(
    make_board, trigger, item_on, event, decide
) -> None:
    one = make_board(trigger("t-1", "PREPARATION", "WEBFORM"))
    two = make_board(trigger("t-2", "PROPOSAL", "WEBFORM"))
    item_on(one, "NEW")
    item_on(two, "NEW")

    a = decide(one, event(*FORM, id="e-1"))
    b = decide(two, event(*FORM, id="e-1", at="2027-01-01T00:00:00Z"))

    assert a.id == b.id


# Item fields ---------------------------------------------------------------------------


def test_item_state_keeps_only_fields_some_condition_reads(
    make_board, trigger, item_on, event, decide
) -> None:
    big = {
        "any": [
            [
                {"field": "OPPORTUNITY", "op": ">", "value": 1000},
                {"field": "event.form_id", "op": "!empty"},
            ]
        ]
    }
    board = make_board(trigger("t-1", "PROPOSAL", "WEBFORM", condition=big))
    item_on(board, "NEW", fields={"OPPORTUNITY": 500, "TITLE": "Big", "form_id": "x"})

    assert board.table.watched_fields == {"OPPORTUNITY"}
    assert board.items[KEY].field_map() == {"OPPORTUNITY": 500}

    decide(board, event("item.updated", {"changes": {"TITLE": "Bigger", "OPPORTUNITY": 900}}))
    assert board.items[KEY].field_map() == {"OPPORTUNITY": 900}


def test_without_conditions_an_item_keeps_no_fields(form_board, item_on, event, decide) -> None:
    item_on(form_board, "NEW", fields={"OPPORTUNITY": 500, "TITLE": "Big"})
    decide(form_board, event("item.updated", {"changes": {"TITLE": "Bigger"}}))

    assert form_board.table.watched_fields == frozenset()
    assert form_board.items[KEY].field_map() == {}


def test_a_condition_added_later_reads_a_field_from_its_next_change(
    make_board, trigger, automate, item_on, event, decide
) -> None:
    board = make_board(trigger("t-0", "WON", "WEBFORM", params={"form_id": "other"}))
    item_on(board, "NEW", fields={"OPPORTUNITY": 5000})
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]}

    assert automate(board.table, trigger("t-1", "PREPARATION", "WEBFORM", condition=big)) is None

    # Item state keeps only fields some condition read when the item's data came
    # (docs/decisions.md): the value from before the new condition is not known.
    assert decide(board, event(*FORM)) == Decided("no_match")
    decide(board, event("item.updated", {"changes": {"OPPORTUNITY": 5000}}))
    outcome = decide(board, event(*FORM))
    assert isinstance(outcome, Transition)
    assert outcome.to_stage == "PREPARATION"
