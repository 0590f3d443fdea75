"""The trigger table through time (spec 2.1 and 4): versions, deletions, what-if, rejections."""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import Any

import pytest

from state.board import Board
from state.model import Decided, Rejection, Transition

T0 = "2026-11-01T09:00:00Z"
T1 = "2026-11-10T09:00:00Z"
BEFORE_T0 = "2026-11-01T08:59:59Z"
BETWEEN = "2026-11-05T00:00:00Z"
AFTER_T1 = "2026-11-20T00:00:00Z"
FORM = ("form.submitted", {"form_id": "12"})


def to_stage(outcome: Any) -> str | None:
    return outcome.to_stage if isinstance(outcome, Transition) else None


@pytest.fixture
def fresh_item(item_on, event, decide):
    """The stage a form moves a new item on NEW to, at a time: `fresh_item(board, at)`."""
    ids = iter(range(1000, 2000))

    def run(board: Board, at: str, start: str = "NEW") -> str | None:
        item = {"entity": "deal", "id": str(next(ids))}
        item_on(board, start, item=item)
        return to_stage(decide(board, event(*FORM, item=item, at=at)))

    return run


def test_a_trigger_is_in_force_from_its_updated_at_inclusive(
    make_board, trigger, fresh_item
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0))

    assert fresh_item(board, BEFORE_T0) is None
    assert fresh_item(board, T0) == "PREPARATION"
    assert fresh_item(board, "2026-11-01T10:00:00+01:00") == "PREPARATION"
    assert fresh_item(board, "2026-11-01T09:59:59+01:00") is None


def test_a_record_without_updated_at_is_in_force_from_the_beginning(
    make_board, trigger, fresh_item
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM"))

    assert fresh_item(board, "1970-01-01T00:00:00Z") == "PREPARATION"
    assert fresh_item(board, "0001-01-01T00:00:00Z") == "PREPARATION"


def test_a_trigger_moved_to_another_stage_midway(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
    )

    assert fresh_item(board, BEFORE_T0) is None
    assert fresh_item(board, BETWEEN) == "PREPARATION"
    assert fresh_item(board, T1) == "PROPOSAL"
    assert fresh_item(board, AFTER_T1) == "PROPOSAL"


def test_versions_are_ordered_by_time_not_by_arrival(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
    )

    assert fresh_item(board, BETWEEN) == "PREPARATION"
    assert fresh_item(board, AFTER_T1) == "PROPOSAL"


def test_a_trigger_deleted_midway(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        {"kind": "trigger", "id": "t-1", "deleted": True, "updated_at": T1},
    )

    assert fresh_item(board, BETWEEN) == "PREPARATION"
    assert fresh_item(board, T1) is None
    assert fresh_item(board, AFTER_T1) is None


def test_a_deleted_trigger_can_come_back(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM"),
        {"kind": "trigger", "id": "t-1", "deleted": True, "updated_at": T0},
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
    )

    assert fresh_item(board, BEFORE_T0) == "PREPARATION"
    assert fresh_item(board, BETWEEN) is None
    assert fresh_item(board, AFTER_T1) == "PROPOSAL"


def test_a_new_version_after_a_decision_is_seen_by_later_decisions(
    make_board, trigger, automate, fresh_item
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM"))
    assert fresh_item(board, AFTER_T1) == "PREPARATION"

    assert automate(board.table, trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1)) is None

    assert fresh_item(board, AFTER_T1) == "PROPOSAL"
    assert fresh_item(board, BETWEEN) == "PREPARATION"


def test_a_pipeline_is_versioned_too(
    make_board, pipeline, trigger, item_on, event, decide, fresh_item
) -> None:
    short = (("NEW", "process"), ("PREPARATION", "process"))
    longer = (("NEW", "process"), ("EXTRA", "process"), ("PREPARATION", "process"))
    board = make_board(
        pipeline(stages=short, updated_at=T0),
        pipeline(stages=longer, updated_at=T1),
        trigger("t-extra", "EXTRA", "WEBFORM", updated_at=T1),
        trigger("t-prep", "PREPARATION", "WEBFORM", updated_at=T0),
    )

    assert fresh_item(board, BETWEEN) == "PREPARATION"
    assert fresh_item(board, AFTER_T1) == "EXTRA"
    item = {"entity": "deal", "id": "7"}
    item_on(board, "EXTRA", item=item)
    outcome = decide(board, event(*FORM, item=item, at=BETWEEN))
    assert isinstance(outcome, Rejection)
    assert outcome.code == "unknown_stage"


def test_a_pipeline_deleted_midway_makes_events_no_ops(
    make_board, pipeline, trigger, item_on, event, decide, fresh_item
) -> None:
    board = make_board(
        pipeline(updated_at=T0),
        {"kind": "pipeline", "entity": "deal", "category": "0", "deleted": True, "updated_at": T1},
        trigger("t-1", "PREPARATION", "WEBFORM"),
    )

    assert fresh_item(board, BETWEEN) == "PREPARATION"
    item_on(board, "NEW")
    assert decide(board, event(*FORM, at=AFTER_T1)) == Decided("no_pipeline")
    assert decide(board, event(*FORM, at=BEFORE_T0)) == Decided("no_pipeline")


# What-if -------------------------------------------------------------------------------


def test_what_if_puts_the_latest_version_in_force_from_the_beginning(
    make_board, trigger, fresh_item
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
        what_if=True,
    )

    assert fresh_item(board, "2020-01-01T00:00:00Z") == "PROPOSAL"
    assert fresh_item(board, BETWEEN) == "PROPOSAL"
    assert fresh_item(board, AFTER_T1) == "PROPOSAL"


def test_what_if_keeps_the_latest_by_time_not_by_arrival(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        what_if=True,
    )

    assert fresh_item(board, BEFORE_T0) == "PROPOSAL"


def test_what_if_honours_deletions(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        trigger("t-2", "PROPOSAL", "WEBFORM", updated_at=T0),
        {"kind": "trigger", "id": "t-1", "deleted": True, "updated_at": T1},
        what_if=True,
    )

    assert fresh_item(board, BEFORE_T0) == "PROPOSAL"
    assert fresh_item(board, BETWEEN) == "PROPOSAL"


def test_what_if_puts_a_late_pipeline_in_force_from_the_beginning(
    make_board, pipeline, trigger, fresh_item
) -> None:
    board = make_board(
        pipeline(updated_at=T1),
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T1),
        what_if=True,
    )

    assert fresh_item(board, BEFORE_T0) == "PREPARATION"


def test_what_if_honours_a_deleted_pipeline(
    make_board, pipeline, trigger, item_on, event, decide
) -> None:
    board = make_board(
        pipeline(),
        trigger("t-1", "PREPARATION", "WEBFORM"),
        {"kind": "pipeline", "entity": "deal", "category": "0", "deleted": True, "updated_at": T1},
        what_if=True,
    )
    item_on(board, "NEW")

    assert decide(board, event(*FORM, at=BEFORE_T0)) == Decided("no_pipeline")


def test_the_live_table_differs_from_what_if_on_the_same_records(
    make_table, pipeline, trigger
) -> None:
    records = (
        pipeline(),
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
    )
    live, what_if = make_table(*records), make_table(*records, what_if=True)
    at = datetime.fromisoformat(BETWEEN)

    assert [c.trigger.stage for c in live.view("default", "deal", "0", at).by_code["WEBFORM"]] == [
        "PREPARATION"
    ]
    assert [
        c.trigger.stage for c in what_if.view("default", "deal", "0", at).by_code["WEBFORM"]
    ] == ["PROPOSAL"]


# Invalid versions ----------------------------------------------------------------------


INVALID_VERSIONS: dict[str, dict[str, Any]] = {
    "unknown code": {"code": "FAX_RECEIVED"},
    "stage not in pipeline": {"stage": "NEGOTIATION"},
    "bad condition": {"condition": {"any": [[{"field": "X", "op": "~", "value": 1}]]}},
    "missing stage": {"stage": None},
    "missing entity": {"entity": None},
    "missing code": {"code": None},
    "bad params": {"params": {"form_id": ["12"]}},
    "params not an object": {"params": "12"},
    "sort not an integer": {"sort": "first"},
    "allow_backwards not a bool": {"allow_backwards": "yes"},
    "time without zone": {"updated_at": "2026-11-10T09:00:00"},
}


@pytest.mark.parametrize("change", INVALID_VERSIONS.values(), ids=INVALID_VERSIONS.keys())
def test_an_invalid_new_version_is_rejected_and_the_previous_stays_in_force(
    change, make_board, trigger, automate, fresh_item
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0))
    new_version = trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1)
    new_version.update(change)
    new_version = {name: value for name, value in new_version.items() if value is not None}

    rejection = automate(board.table, new_version)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert rejection.message
    assert fresh_item(board, AFTER_T1) == "PREPARATION"


def test_a_stage_not_in_the_pipeline_is_named_in_the_rejection(
    make_table, pipeline, trigger, automate
) -> None:
    table = make_table(pipeline())

    rejection = automate(table, trigger("t-9", "NEGOTIATION", "WEBFORM"))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert "NEGOTIATION" in rejection.message
    assert "t-9" in rejection.message


def test_a_trigger_stage_is_checked_against_the_pipeline_of_its_time(
    make_table, pipeline, trigger, automate
) -> None:
    short = (("NEW", "process"), ("PREPARATION", "process"))
    longer = (("NEW", "process"), ("EXTRA", "process"), ("PREPARATION", "process"))
    table = make_table(
        pipeline(stages=short, updated_at=T0), pipeline(stages=longer, updated_at=T1)
    )

    assert automate(table, trigger("t-1", "EXTRA", "WEBFORM", updated_at=AFTER_T1)) is None
    rejection = automate(table, trigger("t-2", "EXTRA", "WEBFORM", updated_at=BETWEEN))
    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"


def test_a_trigger_may_arrive_before_its_pipeline(
    make_table, pipeline, trigger, automate, fresh_item
) -> None:
    table = make_table(trigger("t-1", "PREPARATION", "WEBFORM"))

    assert automate(table, pipeline()) is None

    assert fresh_item(Board(table), BETWEEN) == "PREPARATION"


INVALID_PIPELINES: dict[str, Any] = {
    "no stages": [],
    "stages not a list": "NEW,WON",
    "unknown semantic": [{"id": "NEW", "semantic": "maybe"}],
    "repeated stage": [{"id": "NEW"}, {"id": "NEW"}],
    "stage without id": [{"semantic": "process"}],
}


@pytest.mark.parametrize("stages", INVALID_PIPELINES.values(), ids=INVALID_PIPELINES.keys())
def test_an_invalid_pipeline_version_is_rejected_and_the_previous_stays(
    stages, make_board, pipeline, trigger, automate, fresh_item
) -> None:
    board = make_board(pipeline(updated_at=T0), trigger("t-1", "PREPARATION", "WEBFORM"))
    bad = pipeline(updated_at=T1)
    bad["stages"] = stages

    rejection = automate(board.table, bad)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert fresh_item(board, AFTER_T1) == "PREPARATION"


# Tenants and recovery ------------------------------------------------------------------


def test_tenants_have_tables_of_their_own(make_board, pipeline, trigger, fresh_item) -> None:
    board = make_board(
        pipeline(),
        pipeline(tenant="acme"),
        trigger("t-1", "PREPARATION", "WEBFORM", tenant="acme"),
        trigger("t-1", "PROPOSAL", "WEBFORM"),
        {"kind": "trigger", "tenant": "acme", "id": "t-1", "deleted": True, "updated_at": T0},
    )

    assert fresh_item(board, AFTER_T1) == "PROPOSAL"


def test_the_table_survives_a_pickle_round_trip(make_board, trigger, fresh_item) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "WEBFORM", updated_at=T0),
        trigger("t-1", "PROPOSAL", "WEBFORM", updated_at=T1),
    )
    assert fresh_item(board, BETWEEN) == "PREPARATION"

    restored = Board(pickle.loads(pickle.dumps(board.table)))

    assert fresh_item(restored, BETWEEN) == "PREPARATION"
    assert fresh_item(restored, AFTER_T1) == "PROPOSAL"
    assert restored.table.watched_fields == board.table.watched_fields
