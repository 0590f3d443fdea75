"""The spec's event-type / trigger-code table (spec 2.2), through the decision procedure."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.records import parse_automation
from state.codes import EVENT_TYPES, LIFECYCLE, TRIGGER_CODES, codes_for
from state.model import Decided, Rejection, Transition

# code -> (event type, params, data that matches, data that does not)
PARAM_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "WEBFORM": ("form.submitted", {"form_id": "12"}, {"form_id": "12"}, {"form_id": "13"}),
    "CALLBACK": (
        "form.submitted",
        {"form_id": "12"},
        {"form_id": "12", "callback": True},
        {"form_id": "13", "callback": True},
    ),
    "DOCUMENT_CREATE": (
        "document.created",
        {"template_id": "7"},
        {"template_id": "7"},
        {"template_id": "8"},
    ),
    "DOCUMENT_VIEW": (
        "document.opened",
        {"template_id": "7"},
        {"template_id": "7"},
        {"template_id": "70"},
    ),
    "EMAIL_LINK": (
        "email.link_clicked",
        {"url": "https://shop.example/promo"},
        {"url": "https://shop.example/promo?utm_source=mail"},
        {"url": "https://tracker.example/?to=https://shop.example/promo"},
    ),
    "CALL": ("call.incoming", {"line": "3"}, {"line": "3"}, {"line": "4"}),
    "OUTGOING_CALL": ("call.outgoing", {"line": "3"}, {"line": "3"}, {"line": "4"}),
    "MISSED_CALL": ("call.missed", {"line": "3"}, {"line": "3"}, {"line": "4"}),
    "OPENLINE": ("chat.started", {"line": "5"}, {"line": "5"}, {"line": "6"}),
    "OPENLINE_MSG": (
        "chat.message",
        {"line": "5", "text": "Price"},
        {"line": "5", "text": "what is the PRICE of it?"},
        {"line": "5", "text": "what does it cost?"},
    ),
    "OPENLINE_ANSWER": ("chat.answered", {"line": "5"}, {"line": "5"}, {"line": "6"}),
    "OPENLINE_ANSWER_CTRL": ("chat.answered", {"line": "5"}, {"line": "5"}, {"line": "6"}),
    "TASK_STATUS": (
        "task.status_changed",
        {"status": "completed"},
        {"status": "completed"},
        {"status": "deferred"},
    ),
    "WEBHOOK": ("webhook", {"code": "abc"}, {"code": "abc"}, {"code": "abcd"}),
    "APP": (
        "app.trigger",
        {"app_id": "app.1", "code": "paid"},
        {"app_id": "app.1", "code": "paid"},
        {"app_id": "app.1", "code": "refunded"},
    ),
    "FIELD_CHANGED": (
        "item.updated",
        {"fields": ["TITLE"]},
        {"changes": {"TITLE": "x"}},
        {"changes": {"COMMENTS": "y"}},
    ),
}

# The event type each code fires on (spec 2.2 table).
TYPE_OF = {
    "RESP_CHANGED": "item.updated",
    "FIELD_CHANGED": "item.updated",
    "WEBFORM": "form.submitted",
    "CALLBACK": "form.submitted",
    "DOCUMENT_CREATE": "document.created",
    "DOCUMENT_VIEW": "document.opened",
    "VISIT": "visit.registered",
    "RESOURCE_BOOKING": "resource.booked",
    "EMAIL": "email.received",
    "EMAIL_SENT": "email.sent",
    "EMAIL_READ": "email.read",
    "EMAIL_LINK": "email.link_clicked",
    "CALL": "call.incoming",
    "OUTGOING_CALL": "call.outgoing",
    "MISSED_CALL": "call.missed",
    "OPENLINE": "chat.started",
    "OPENLINE_MSG": "chat.message",
    "OPENLINE_ANSWER": "chat.answered",
    "OPENLINE_ANSWER_CTRL": "chat.answered",
    "TASK_STATUS": "task.status_changed",
    "WEBHOOK": "webhook",
    "APP": "app.trigger",
    "ORDER_PAID": "order.paid",
}

# Data of each event type that meets every param-less trigger of the type.
ANY_DATA: dict[str, dict[str, Any]] = {
    "item.created": {"stage": "NEW"},
    "item.updated": {"changes": {"ASSIGNED_BY_ID": "7", "TITLE": "x"}},
    "item.stage_changed": {"stage": "NEW"},
    "item.deleted": {},
    "form.submitted": {"form_id": "12", "callback": True},
    "email.link_clicked": {"url": "https://shop.example/"},
    "chat.message": {"line": "5", "text": "hi"},
    "webhook": {"code": "abc"},
    "app.trigger": {"app_id": "app.1", "code": "paid"},
}
REQUIRED = {"WEBHOOK": {"code": "abc"}, "APP": {"app_id": "app.1", "code": "paid"}}


def moved_by(outcome: Any) -> str | None:
    """The code of the trigger that moved the item, or None."""
    return outcome.trigger_code if isinstance(outcome, Transition) else None


def test_the_table_names_every_code_and_type() -> None:
    assert set(TYPE_OF) == TRIGGER_CODES
    assert set(TYPE_OF.values()) | LIFECYCLE == EVENT_TYPES


@pytest.mark.parametrize("code", sorted(TRIGGER_CODES))
@pytest.mark.parametrize("etype", sorted(EVENT_TYPES))
def test_a_code_fires_only_on_its_event_type(
    code, etype, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", code, params=REQUIRED.get(code, {})))
    item_on(board, "NEW")

    outcome = decide(board, event(etype, ANY_DATA.get(etype, {})))

    assert moved_by(outcome) == (code if TYPE_OF[code] == etype else None)


@pytest.mark.parametrize("code", sorted(PARAM_CASES))
def test_a_code_fires_when_its_params_match(
    code, make_board, trigger, item_on, event, decide
) -> None:
    etype, params, matching, _ = PARAM_CASES[code]
    board = make_board(trigger("t-1", "PREPARATION", code, params=params))
    item_on(board, "NEW")

    outcome = decide(board, event(etype, matching))

    assert isinstance(outcome, Transition)
    assert (outcome.trigger_code, outcome.from_stage, outcome.to_stage) == (
        code,
        "NEW",
        "PREPARATION",
    )


@pytest.mark.parametrize("code", sorted(PARAM_CASES))
def test_a_code_does_not_fire_when_its_params_differ(
    code, make_board, trigger, item_on, event, decide
) -> None:
    etype, params, _, other = PARAM_CASES[code]
    board = make_board(trigger("t-1", "PREPARATION", code, params=params))
    item_on(board, "NEW")

    outcome = decide(board, event(etype, other))

    assert outcome in (Decided("no_match"), Decided("updated"))
    assert board.items["default/deal/42"].stage == "NEW"


@pytest.mark.parametrize("code", sorted(PARAM_CASES))
def test_a_param_missing_from_the_event_does_not_match(
    code, make_board, trigger, item_on, event, decide
) -> None:
    etype, params, _, _ = PARAM_CASES[code]
    board = make_board(trigger("t-1", "PREPARATION", code, params=params))
    item_on(board, "NEW")
    data: dict[str, Any] = {"callback": True} if code == "CALLBACK" else {}
    if etype == "item.updated":
        data = {"changes": {}}

    assert moved_by(decide(board, event(etype, data))) is None


@pytest.mark.parametrize("params", [None, {}, {"form_id": ""}, {"form_id": None}])
def test_absent_or_empty_params_match_any_event(
    params, make_board, trigger, item_on, event, decide
) -> None:
    record = trigger("t-1", "PREPARATION", "WEBFORM")
    if params is not None:
        record["params"] = params
    board = make_board(record)
    item_on(board, "NEW")

    assert moved_by(decide(board, event("form.submitted", {"form_id": "99"}))) == "WEBFORM"


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ({"form_id": 12}, {"form_id": "12"}),
        ({"form_id": "12"}, {"form_id": 12}),
        ({"form_id": 12}, {"form_id": 12}),
    ],
)
def test_integer_ids_match_as_their_decimal_strings(
    params, data, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", params=params))
    item_on(board, "NEW")

    assert moved_by(decide(board, event("form.submitted", data))) == "WEBFORM"


def test_an_integer_line_matches_its_decimal_string(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "CALL", params={"line": 3}))
    item_on(board, "NEW")

    assert moved_by(decide(board, event("call.incoming", {"line": "03"}))) is None
    assert moved_by(decide(board, event("call.incoming", {"line": 3}))) == "CALL"


# CALLBACK and WEBFORM ------------------------------------------------------------------


@pytest.mark.parametrize("callback", [None, False, "true", 1])
def test_callback_fires_only_when_data_callback_is_true(
    callback, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "CALLBACK"))
    item_on(board, "NEW")
    data: dict[str, Any] = {"form_id": "12"}
    if callback is not None:
        data["callback"] = callback

    assert moved_by(decide(board, event("form.submitted", data))) is None
    assert (
        moved_by(decide(board, event("form.submitted", {"form_id": "12", "callback": True})))
        == "CALLBACK"
    )


def test_callback_is_tried_before_webform_whatever_the_stage(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-web", "PREPARATION", "WEBFORM"),
        trigger("t-cb", "PROPOSAL", "CALLBACK"),
    )
    item_on(board, "NEW")

    outcome = decide(board, event("form.submitted", {"form_id": "12", "callback": True}))

    assert isinstance(outcome, Transition)
    assert (outcome.trigger_id, outcome.to_stage) == ("t-cb", "PROPOSAL")


def test_webform_fires_on_a_callback_form_when_no_callback_trigger_moves(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-web", "PREPARATION", "WEBFORM"),
        trigger("t-cb", "PROPOSAL", "CALLBACK", params={"form_id": "99"}),
    )
    item_on(board, "NEW")

    outcome = decide(board, event("form.submitted", {"form_id": "12", "callback": True}))

    assert moved_by(outcome) == "WEBFORM"


def test_a_plain_form_does_not_fire_callback_but_fires_webform(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-web", "PROPOSAL", "WEBFORM"),
        trigger("t-cb", "PREPARATION", "CALLBACK"),
    )
    item_on(board, "NEW")

    assert moved_by(decide(board, event("form.submitted", {"form_id": "12"}))) == "WEBFORM"


# Text and url matching -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fires"),
    [("PRICE", True), ("price", True), ("Price list please", True), ("prize", False), ("", False)],
)
def test_openline_msg_text_is_a_case_insensitive_substring(
    text, fires, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "OPENLINE_MSG", params={"line": "5", "text": "pRiCe"})
    )
    item_on(board, "NEW")

    outcome = decide(board, event("chat.message", {"line": "5", "text": text}))

    assert moved_by(outcome) == ("OPENLINE_MSG" if fires else None)


def test_openline_msg_needs_the_line_as_well_as_the_text(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "OPENLINE_MSG", params={"line": "5", "text": "price"})
    )
    item_on(board, "NEW")

    assert moved_by(decide(board, event("chat.message", {"line": "6", "text": "price"}))) is None


def test_openline_msg_without_text_param_fires_on_any_message(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "OPENLINE_MSG", params={"line": "5"}))
    item_on(board, "NEW")

    outcome = decide(board, event("chat.message", {"line": "5", "text": "anything"}))

    assert moved_by(outcome) == "OPENLINE_MSG"


@pytest.mark.parametrize(
    ("url", "fires"),
    [
        ("https://shop.example/promo", True),
        ("https://shop.example/promo/summer", True),
        ("https://shop.example/pro", False),
        ("http://shop.example/promo", False),
    ],
)
def test_email_link_url_is_a_prefix_of_the_clicked_url(
    url, fires, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "EMAIL_LINK", params={"url": "https://shop.example/promo"})
    )
    item_on(board, "NEW")

    outcome = decide(board, event("email.link_clicked", {"url": url}))

    assert moved_by(outcome) == ("EMAIL_LINK" if fires else None)


# Required params -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "params"),
    [
        ("WEBHOOK", None),
        ("WEBHOOK", {}),
        ("WEBHOOK", {"code": ""}),
        ("APP", {"code": "paid"}),
        ("APP", {"app_id": "app.1"}),
        ("APP", {"app_id": "app.1", "code": ""}),
    ],
)
def test_webhook_and_app_need_their_params(code, params, trigger) -> None:
    record = trigger("t-1", "PREPARATION", code)
    if params is not None:
        record["params"] = params

    rejection = parse_automation(record)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert "params." in rejection.message


@pytest.mark.parametrize(
    "data",
    [{"code": "ABC"}, {"code": "ab"}, {"code": " abc"}, {}],
)
def test_webhook_code_is_compared_for_equality(
    data, make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-1", "PREPARATION", "WEBHOOK", params={"code": "abc"}))
    item_on(board, "NEW")

    assert moved_by(decide(board, event("webhook", data))) is None


def test_app_needs_both_app_id_and_code_equal(make_board, trigger, item_on, event, decide) -> None:
    board = make_board(
        trigger("t-1", "PREPARATION", "APP", params={"app_id": "app.1", "code": "paid"})
    )
    item_on(board, "NEW")

    other_app = event("app.trigger", {"app_id": "app.2", "code": "paid"})
    assert moved_by(decide(board, other_app)) is None
    assert moved_by(decide(board, event("app.trigger", {"code": "paid"}))) is None
    assert (
        moved_by(decide(board, event("app.trigger", {"app_id": "app.1", "code": "paid"}))) == "APP"
    )


# Chat answers --------------------------------------------------------------------------


def test_openline_answer_is_tried_before_openline_answer_ctrl(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-ctrl", "PREPARATION", "OPENLINE_ANSWER_CTRL"),
        trigger("t-ans", "PROPOSAL", "OPENLINE_ANSWER"),
    )
    item_on(board, "NEW")

    outcome = decide(board, event("chat.answered", {"line": "5", "answer_time_sec": 10}))

    assert isinstance(outcome, Transition)
    assert (outcome.trigger_id, outcome.to_stage) == ("t-ans", "PROPOSAL")


@pytest.mark.parametrize(
    ("answer_time_sec", "fires"), [(30, True), (60, True), ("45", True), (61, False), (None, False)]
)
def test_openline_answer_ctrl_condition_reads_the_answer_time(
    answer_time_sec, fires, make_board, trigger, item_on, event, decide
) -> None:
    late = {"any": [[{"field": "event.answer_time_sec", "op": "<=", "value": 60}]]}
    board = make_board(
        trigger("t-ans", "PROPOSAL", "OPENLINE_ANSWER", params={"line": "9"}),
        trigger("t-ctrl", "PREPARATION", "OPENLINE_ANSWER_CTRL", condition=late),
    )
    item_on(board, "NEW")
    data: dict[str, Any] = {"line": "5"}
    if answer_time_sec is not None:
        data["answer_time_sec"] = answer_time_sec

    outcome = decide(board, event("chat.answered", data))

    assert moved_by(outcome) == ("OPENLINE_ANSWER_CTRL" if fires else None)


# Item changes --------------------------------------------------------------------------


def test_resp_changed_is_tried_before_field_changed_whatever_the_stage(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(
        trigger("t-field", "PREPARATION", "FIELD_CHANGED"),
        trigger("t-resp", "PROPOSAL", "RESP_CHANGED"),
    )
    item_on(board, "NEW")

    outcome = decide(board, event("item.updated", {"changes": {"ASSIGNED_BY_ID": 7, "TITLE": "x"}}))

    assert isinstance(outcome, Transition)
    assert (outcome.trigger_id, outcome.to_stage) == ("t-resp", "PROPOSAL")


def test_field_changed_fires_when_resp_changed_moves_nothing(
    make_board, trigger, item_on, event, decide
) -> None:
    never = {"any": [[{"field": "event.nothing", "op": "!empty"}]]}
    board = make_board(
        trigger("t-field", "PREPARATION", "FIELD_CHANGED", params={"fields": ["TITLE"]}),
        trigger("t-resp", "PROPOSAL", "RESP_CHANGED", condition=never),
    )
    item_on(board, "NEW")

    outcome = decide(board, event("item.updated", {"changes": {"ASSIGNED_BY_ID": 7, "TITLE": "x"}}))

    assert moved_by(outcome) == "FIELD_CHANGED"


def test_resp_changed_needs_assigned_by_id_among_the_changes(
    make_board, trigger, item_on, event, decide
) -> None:
    board = make_board(trigger("t-resp", "PREPARATION", "RESP_CHANGED"))
    item_on(board, "NEW")

    assert decide(board, event("item.updated", {"changes": {"TITLE": "x"}})) == Decided("updated")
    assert (
        moved_by(decide(board, event("item.updated", {"changes": {"ASSIGNED_BY_ID": "3"}})))
        == "RESP_CHANGED"
    )


@pytest.mark.parametrize(
    ("fields", "changes", "fires"),
    [
        (["TITLE", "OPPORTUNITY"], {"OPPORTUNITY": 5}, True),
        (["TITLE", "OPPORTUNITY"], {"COMMENTS": "x"}, False),
        (["TITLE"], {}, False),
        (None, {"COMMENTS": "x"}, True),
        ([], {"COMMENTS": "x"}, True),
    ],
)
def test_field_changed_fires_when_a_listed_field_changes(
    fields, changes, fires, make_board, trigger, item_on, event, decide
) -> None:
    params = {} if fields is None else {"fields": fields}
    board = make_board(trigger("t-1", "PREPARATION", "FIELD_CHANGED", params=params))
    item_on(board, "NEW")

    outcome = decide(board, event("item.updated", {"changes": changes}))

    assert moved_by(outcome) == ("FIELD_CHANGED" if fires else None)


@pytest.mark.parametrize("field", ["STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID"])
@pytest.mark.parametrize("listed", [False, True])
def test_field_changed_never_watches_stage_category_or_responsible(
    field, listed, make_board, trigger, item_on, event, decide
) -> None:
    params = {"fields": [field]} if listed else {}
    board = make_board(trigger("t-1", "PREPARATION", "FIELD_CHANGED", params=params))
    item_on(board, "NEW")

    outcome = decide(board, event("item.updated", {"changes": {field: "C1:NEW"}}))

    assert outcome == Decided("updated")


# codes_for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etype", "data", "codes"),
    [
        ("item.updated", {"changes": {"ASSIGNED_BY_ID": 1}}, ("RESP_CHANGED", "FIELD_CHANGED")),
        ("item.updated", {"changes": {"TITLE": 1}}, ("FIELD_CHANGED",)),
        ("form.submitted", {"callback": True}, ("CALLBACK", "WEBFORM")),
        ("form.submitted", {"callback": False}, ("WEBFORM",)),
        ("chat.answered", {}, ("OPENLINE_ANSWER", "OPENLINE_ANSWER_CTRL")),
        ("item.created", {"stage": "NEW"}, ()),
        ("item.stage_changed", {"stage": "NEW"}, ()),
        ("item.deleted", {}, ()),
    ],
)
def test_codes_are_tried_in_the_spec_order(etype, data, codes) -> None:
    assert codes_for(etype, data) == codes
