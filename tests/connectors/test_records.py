"""Raw JSON into typed records and back (spec 2): every bad record is a Rejection."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.records import (
    DEFAULT_MAX_RECORD_BYTES,
    decode_automation,
    decode_event,
    load_json,
    parse_automation,
    parse_event,
    too_deep,
    transition_json,
)
from state.codes import MAX_ITEMS
from state.model import (
    BEGINNING,
    Deletion,
    Event,
    ItemRef,
    Pipeline,
    Rejection,
    Transition,
    Trigger,
)

EVENT: dict[str, Any] = {
    "id": "evt-9f2",
    "type": "form.submitted",
    "tenant": "acme",
    "occurred_at": "2026-11-25T10:00:00Z",
    "item": {"entity": "deal", "id": "42"},
    "data": {"form_id": "12"},
}
PIPELINE: dict[str, Any] = {
    "kind": "pipeline",
    "tenant": "acme",
    "entity": "deal",
    "category": "0",
    "stages": [
        {"id": "NEW", "semantic": "process"},
        {"id": "PREPARATION", "semantic": "process"},
        {"id": "WON", "semantic": "success"},
        {"id": "LOSE", "semantic": "failure"},
    ],
    "updated_at": "2026-11-01T09:00:00Z",
}
TRIGGER: dict[str, Any] = {
    "kind": "trigger",
    "tenant": "acme",
    "id": "t-17",
    "entity": "deal",
    "category": "0",
    "stage": "PREPARATION",
    "code": "WEBFORM",
    "params": {"form_id": "12"},
    "allow_backwards": False,
    "sort": 0,
    "condition": {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]},
    "updated_at": "2026-11-01T09:00:00Z",
}
MOVE = Transition(
    id="6f1c-deterministic",
    tenant="acme",
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


def changed(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `record` with fields set (or removed, when the value is `...`)."""
    out = copy.deepcopy(record)
    for name, value in changes.items():
        if value is ...:
            out.pop(name, None)
        else:
            out[name] = value
    return out


# load_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"{'id': 1}", b"\xff\xfe{}", b'{"a": NaN}', b"[1,]", b"{} {}"]
)
def test_bytes_that_are_not_json_are_invalid_json(raw) -> None:
    rejection = load_json(raw)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_json"
    assert rejection.message


def test_a_record_over_the_limit_is_too_large() -> None:
    raw = orjson.dumps(EVENT)

    rejection = load_json(raw, max_bytes=len(raw) - 1)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "too_large"
    assert str(len(raw) - 1) in rejection.message
    assert load_json(raw, max_bytes=len(raw)) == EVENT


def test_the_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_RECORD_BYTES == 1 << 20
    fits = b'"' + b"x" * ((1 << 20) - 2) + b'"'

    assert load_json(fits) == "x" * ((1 << 20) - 2)
    assert load_json(fits + b" ").code == "too_large"


def test_too_large_is_checked_before_parsing() -> None:
    assert load_json(b"{" * 100, max_bytes=10).code == "too_large"


# Events --------------------------------------------------------------------------------


def test_the_spec_event_parses() -> None:
    event = parse_event(copy.deepcopy(EVENT))

    assert isinstance(event, Event)
    assert (event.id, event.type, event.tenant, event.occurred_at) == (
        "evt-9f2",
        "form.submitted",
        "acme",
        "2026-11-25T10:00:00Z",
    )
    assert event.items == (ItemRef("deal", "42"),)
    assert event.data == {"form_id": "12"}
    assert event.at.isoformat() == "2026-11-25T10:00:00+00:00"


def test_tenant_defaults_to_default() -> None:
    event = parse_event(changed(EVENT, tenant=...))

    assert isinstance(event, Event)
    assert event.tenant == "default"


def test_integer_ids_are_read_as_decimal_strings() -> None:
    event = parse_event(
        changed(EVENT, id=7, item={"entity": "deal", "id": 42, "category": 1, "stage": "NEW"})
    )

    assert isinstance(event, Event)
    assert event.id == "7"
    assert event.items == (ItemRef("deal", "42", "1", "NEW"),)


def test_an_event_names_several_items() -> None:
    event = parse_event(
        changed(
            EVENT,
            item=...,
            items=[{"entity": "deal", "id": "1"}, {"entity": "lead", "id": 2, "stage": "NEW"}],
        )
    )

    assert isinstance(event, Event)
    assert event.items == (ItemRef("deal", "1"), ItemRef("lead", "2", None, "NEW"))


def test_an_item_named_twice_is_decided_once() -> None:
    event = parse_event(changed(EVENT, item=..., items=[{"entity": "deal", "id": "1"}] * 2))

    assert isinstance(event, Event)
    assert event.items == (ItemRef("deal", "1"),)


def test_absent_or_null_data_is_empty() -> None:
    assert parse_event(changed(EVENT, data=...)).data == {}
    assert parse_event(changed(EVENT, data=None)).data == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ...}, "id"),
        ({"id": ""}, "id"),
        ({"id": True}, "id"),
        ({"id": 1.5}, "id"),
        ({"id": {"x": 1}}, "id"),
        ({"type": ...}, "type"),
        ({"type": 3}, "type"),
        ({"occurred_at": ...}, "occurred_at"),
        ({"occurred_at": 1764064800}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-25T10:00:00"}, "occurred_at"),
        ({"occurred_at": "2026-11-25"}, "occurred_at"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "a/b"}, "tenant"),
        ({"tenant": 5}, "tenant"),
        ({"item": ...}, "item"),
        ({"item": "deal/42"}, "item"),
        ({"item": {"id": "42"}}, "item.entity"),
        ({"item": {"entity": "deal"}}, "item.id"),
        ({"item": {"entity": "deal", "id": None}}, "item.id"),
        ({"item": {"entity": "deal", "id": "42", "stage": [5]}}, "item.stage"),
        ({"item": {"entity": "deal", "id": "42", "category": True}}, "item.category"),
        ({"item": ..., "items": []}, "items"),
        ({"item": ..., "items": {"entity": "deal", "id": "1"}}, "items"),
        (
            {"item": ..., "items": [{"entity": "deal", "id": "1"}, {"entity": "deal"}]},
            "items[1].id",
        ),
        ({"data": "form_id=12"}, "data"),
        ({"data": [1]}, "data"),
    ],
)
def test_a_missing_or_ill_typed_field_is_invalid_record_naming_it(change, field) -> None:
    rejection = parse_event(changed(EVENT, **change))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_record"
    assert field in rejection.message


@pytest.mark.parametrize(
    ("etype", "data", "field"),
    [
        ("item.created", {}, "data.stage"),
        ("item.created", {"stage": ""}, "data.stage"),
        ("item.created", {"stage": "NEW", "fields": [1]}, "data.fields"),
        ("item.created", {"stage": "NEW", "category": False}, "data.category"),
        ("item.updated", {}, "data.changes"),
        ("item.updated", {"changes": ["TITLE"]}, "data.changes"),
        ("item.stage_changed", {}, "data.stage"),
        ("item.stage_changed", {"stage": "NEW", "transition_id": [5]}, "data.transition_id"),
    ],
)
def test_lifecycle_data_is_checked(etype, data, field) -> None:
    rejection = parse_event(changed(EVENT, type=etype, data=data))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_record"
    assert field in rejection.message


def test_lifecycle_categories_are_read_as_strings() -> None:
    created = changed(EVENT, type="item.created", data={"stage": "C1:NEW", "category": 1})

    event = parse_event(created)

    assert isinstance(event, Event)
    assert event.data["category"] == "1"


def test_integer_stage_ids_are_read_as_decimal_strings() -> None:
    pipeline = parse_automation(changed(PIPELINE, stages=[{"id": 1}, {"id": 2}]))
    trigger = parse_automation(changed(TRIGGER, stage=2))
    hinted = parse_event(changed(EVENT, item={"entity": "deal", "id": "42", "stage": 1}))
    created = parse_event(changed(EVENT, type="item.created", data={"stage": 1}))
    moved = parse_event(changed(EVENT, type="item.stage_changed", data={"stage": 2}))

    assert isinstance(pipeline, Pipeline)
    assert [s.id for s in pipeline.stages] == ["1", "2"]
    assert isinstance(trigger, Trigger)
    assert trigger.stage == "2"
    assert isinstance(hinted, Event)
    assert hinted.items[0].stage == "1"
    assert isinstance(created, Event)
    assert created.data["stage"] == "1"
    assert isinstance(moved, Event)
    assert moved.data["stage"] == "2"


@pytest.mark.parametrize("etype", ["form.sent", "FORM.SUBMITTED", "item.moved", ""])
def test_an_unknown_type_is_unknown_event_type(etype) -> None:
    rejection = parse_event(changed(EVENT, type=etype))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "unknown_event_type"
    assert repr(etype) in rejection.message


@pytest.mark.parametrize("value", [None, [], "event", 42])
def test_a_record_that_is_not_an_object_is_invalid_record(value) -> None:
    rejection = parse_event(value)

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_record"


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-25T10:00:00Z",
        "2026-11-25T11:00:00+01:00",
        "2026-11-25T05:00:00-05:00",
        "2026-11-25T10:00:00.000Z",
    ],
)
def test_times_with_a_zone_are_instants(occurred_at) -> None:
    event = parse_event(changed(EVENT, occurred_at=occurred_at))

    assert isinstance(event, Event)
    assert event.occurred_at == occurred_at
    assert event.at == parse_event(EVENT).at


# Automation ----------------------------------------------------------------------------


def test_the_spec_pipeline_parses() -> None:
    record = parse_automation(copy.deepcopy(PIPELINE))

    assert isinstance(record, Pipeline)
    assert (record.tenant, record.entity, record.category) == ("acme", "deal", "0")
    assert [(s.id, s.semantic) for s in record.stages] == [
        ("NEW", "process"),
        ("PREPARATION", "process"),
        ("WON", "success"),
        ("LOSE", "failure"),
    ]
    assert record.positions == {"NEW": 0, "PREPARATION": 1, "WON": 2, "LOSE": 3}
    assert record.updated_at.isoformat() == "2026-11-01T09:00:00+00:00"


def test_the_spec_trigger_parses() -> None:
    record = parse_automation(copy.deepcopy(TRIGGER))

    assert isinstance(record, Trigger)
    assert (record.tenant, record.id, record.entity) == ("acme", "t-17", "deal")
    assert (record.category, record.stage, record.code) == ("0", "PREPARATION", "WEBFORM")
    assert (record.allow_backwards, record.sort) == (False, 0)
    assert record.condition is not None
    assert record.condition.holds({"OPPORTUNITY": 1001}, {})
    assert not record.condition.holds({"OPPORTUNITY": 1000}, {})


def test_automation_defaults() -> None:
    record = parse_automation(
        changed(
            TRIGGER,
            tenant=...,
            category=...,
            params=...,
            allow_backwards=...,
            sort=...,
            condition=...,
            updated_at=...,
        )
    )

    assert isinstance(record, Trigger)
    assert (record.tenant, record.category, record.allow_backwards, record.sort) == (
        "default",
        "0",
        False,
        0,
    )
    assert (record.condition, record.updated_at) == (None, BEGINNING)
    pipeline = parse_automation(changed(PIPELINE, tenant=..., category=..., updated_at=...))
    assert isinstance(pipeline, Pipeline)
    assert (pipeline.tenant, pipeline.category, pipeline.updated_at) == ("default", "0", BEGINNING)


def test_integer_ids_in_automation_are_read_as_decimal_strings() -> None:
    record = parse_automation(changed(TRIGGER, id=17, category=1, params={"form_id": 12}))

    assert isinstance(record, Trigger)
    assert (record.id, record.category) == ("17", "1")
    pipeline = parse_automation(changed(PIPELINE, category=1))
    assert pipeline.category == "1"


def test_deletions_need_only_their_key() -> None:
    trigger = parse_automation(
        {"kind": "trigger", "id": "t-17", "deleted": True, "updated_at": "2026-11-02T00:00:00Z"}
    )
    pipeline = parse_automation({"kind": "pipeline", "entity": "deal", "deleted": True})

    assert isinstance(trigger, Deletion)
    assert (trigger.kind, trigger.tenant, trigger.key) == ("trigger", "default", ("t-17",))
    assert trigger.updated_at.isoformat() == "2026-11-02T00:00:00+00:00"
    assert pipeline == Deletion("pipeline", "default", ("deal", "0"), BEGINNING)


@pytest.mark.parametrize(
    ("base", "change", "field"),
    [
        (TRIGGER, {"kind": ...}, "kind"),
        (TRIGGER, {"kind": "robot"}, "kind"),
        (TRIGGER, {"id": ...}, "id"),
        (TRIGGER, {"entity": ...}, "entity"),
        (TRIGGER, {"stage": ...}, "stage"),
        (TRIGGER, {"code": ...}, "code"),
        (TRIGGER, {"code": "FAX"}, "code"),
        (TRIGGER, {"code": "webform"}, "code"),
        (TRIGGER, {"params": [1]}, "params"),
        (TRIGGER, {"params": {"form_id": [12]}}, "params.form_id"),
        (TRIGGER, {"sort": 1.5}, "sort"),
        (TRIGGER, {"sort": True}, "sort"),
        (TRIGGER, {"allow_backwards": 1}, "allow_backwards"),
        (TRIGGER, {"deleted": "yes"}, "deleted"),
        (TRIGGER, {"tenant": "a/b"}, "tenant"),
        (TRIGGER, {"updated_at": "2026-11-01T09:00:00"}, "updated_at"),
        (TRIGGER, {"updated_at": "soon"}, "updated_at"),
        (TRIGGER, {"condition": {"any": "x"}}, "condition"),
        (PIPELINE, {"entity": ...}, "entity"),
        (PIPELINE, {"stages": ...}, "stages"),
        (PIPELINE, {"stages": [{"id": "NEW", "semantic": "won"}]}, "stages[0].semantic"),
        (PIPELINE, {"stages": [{"id": "NEW"}, "WON"]}, "stages[1]"),
        (PIPELINE, {"stages": [{"id": "NEW"}, {"id": "NEW"}]}, "stages"),
    ],
)
def test_an_invalid_automation_record_is_invalid_automation_naming_the_field(
    base, change, field
) -> None:
    rejection = parse_automation(changed(base, **change))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert field in rejection.message


@pytest.mark.parametrize("value", [None, [], "trigger", 1])
def test_an_automation_record_that_is_not_an_object_is_invalid_automation(value) -> None:
    assert parse_automation(value).code == "invalid_automation"


@pytest.mark.parametrize(
    ("base", "change"),
    [
        (TRIGGER, {"code": ["WEBFORM"]}),
        (TRIGGER, {"code": {"WEBFORM": 1}}),
        (PIPELINE, {"stages": [{"id": "NEW", "semantic": ["process"]}]}),
        (TRIGGER, {"condition": {"any": [[{"field": "A", "op": ["="], "value": 1}]]}}),
    ],
    ids=["code-list", "code-object", "semantic-list", "op-list"],
)
def test_an_unhashable_name_is_invalid_automation_not_an_exception(base, change) -> None:
    rejection = parse_automation(changed(base, **change))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"


# Transitions ---------------------------------------------------------------------------


def test_a_transition_has_the_spec_shape() -> None:
    assert orjson.loads(transition_json(MOVE)) == {
        "id": "6f1c-deterministic",
        "tenant": "acme",
        "item": {"entity": "deal", "id": "42"},
        "category": "0",
        "from_stage": "NEW",
        "to_stage": "PREPARATION",
        "direction": "forward",
        "trigger": {"id": "t-17", "code": "WEBFORM"},
        "event": {"id": "evt-9f2", "type": "form.submitted", "occurred_at": "2026-11-25T10:00:00Z"},
    }


def test_a_transition_is_one_line_of_utf8() -> None:
    raw = transition_json(dataclasses.replace(MOVE, item_id="Сделка\n№7"))

    assert b"\n" not in raw
    assert orjson.loads(raw.decode("utf-8"))["item"]["id"] == "Сделка\n№7"


# Properties ----------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
items = st.fixed_dictionaries(
    {},
    optional={
        "entity": st.sampled_from(["deal", "lead"]) | json_values,
        "id": st.sampled_from(["42", 42]) | json_values,
        "category": st.sampled_from(["0", 1]) | json_values,
        "stage": st.sampled_from(["NEW"]) | json_values,
    },
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["evt-1", 7]) | json_values,
        "type": st.sampled_from(
            sorted(
                [
                    "form.submitted",
                    "item.created",
                    "item.updated",
                    "item.stage_changed",
                    "item.deleted",
                    "chat.answered",
                    "webhook",
                ]
            )
        )
        | json_values,
        "tenant": st.sampled_from(["acme"]) | json_values,
        "occurred_at": st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00"])
        | json_values,
        "item": items | json_values,
        "items": st.lists(items | json_values, max_size=3) | json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "stage": st.just("NEW") | json_values,
                "category": json_values,
                "changes": json_values,
                "fields": json_values,
                "transition_id": json_values,
            },
        )
        | json_values,
    },
)


@settings(database=None, max_examples=500)
@given(event_like | json_values)
def test_parse_event_never_raises(obj) -> None:
    result = parse_event(obj)

    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert result.code in ("invalid_record", "unknown_event_type")
        assert result.message
    else:
        assert result.items
        assert result.at.tzinfo is not None


@settings(database=None, max_examples=300)
@given(event_like)
def test_item_and_a_single_item_list_parse_alike(obj) -> None:
    if "item" not in obj or "items" in obj:
        return
    as_list = changed(obj, item=..., items=[obj["item"]])

    one, many = parse_event(copy.deepcopy(obj)), parse_event(as_list)

    if isinstance(one, Event):
        assert one == many
    else:
        assert isinstance(many, Rejection)
        assert one.code == many.code


automation_like = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["pipeline", "trigger"]) | json_values,
        "tenant": json_values,
        "id": st.just("t-1") | json_values,
        "entity": st.just("deal") | json_values,
        "category": json_values,
        "stage": st.just("NEW") | json_values,
        "code": st.sampled_from(["WEBFORM", "WEBHOOK", "FIELD_CHANGED"]) | json_values,
        "params": json_values,
        "stages": st.lists(
            st.fixed_dictionaries(
                {"id": st.just("NEW") | json_values}, optional={"semantic": json_values}
            ),
            max_size=3,
        )
        | json_values,
        "condition": json_values,
        "deleted": json_values,
        "sort": json_values,
        "allow_backwards": json_values,
        "updated_at": json_values,
    },
)


@settings(database=None, max_examples=500)
@given(automation_like | json_values)
@example({"kind": "trigger", "id": "t", "entity": "deal", "stage": "A", "code": ["WEBFORM"]})
def test_parse_automation_never_raises(obj) -> None:
    result = parse_automation(obj)

    assert isinstance(result, Pipeline | Trigger | Deletion | Rejection)
    if isinstance(result, Rejection):
        assert result.code == "invalid_automation"


transitions = st.builds(
    Transition,
    id=text,
    tenant=text,
    entity=text,
    item_id=text,
    category=text,
    from_stage=text,
    to_stage=text,
    direction=st.sampled_from(["forward", "backward"]),
    trigger_id=text,
    trigger_code=text,
    event_id=text,
    event_type=text,
    occurred_at=text,
)


@settings(database=None)
@given(transitions)
def test_transition_json_round_trips(move) -> None:
    loaded = orjson.loads(transition_json(move))

    back = Transition(
        id=loaded["id"],
        tenant=loaded["tenant"],
        entity=loaded["item"]["entity"],
        item_id=loaded["item"]["id"],
        category=loaded["category"],
        from_stage=loaded["from_stage"],
        to_stage=loaded["to_stage"],
        direction=loaded["direction"],
        trigger_id=loaded["trigger"]["id"],
        trigger_code=loaded["trigger"]["code"],
        event_id=loaded["event"]["id"],
        event_type=loaded["event"]["type"],
        occurred_at=loaded["event"]["occurred_at"],
    )
    assert back == move
    assert set(loaded) == {
        "id",
        "tenant",
        "item",
        "category",
        "from_stage",
        "to_stage",
        "direction",
        "trigger",
        "event",
    }


# Hostile records: limits on nesting, items and numbers (docs/decisions.md) -------------


def _visit(data: bytes) -> bytes:
    return (
        b'{"id":"v","type":"visit.registered","occurred_at":"2026-11-25T10:00:00Z",'
        b'"item":{"entity":"deal","id":"1"},"data":' + data + b"}"
    )


@pytest.mark.parametrize(
    ("data", "deep"),
    [
        (b'{"x":' + b"[" * 62 + b"]" * 62 + b"}", False),  # 64 levels with the record's own
        (b'{"x":' + b"[" * 63 + b"]" * 63 + b"}", True),
        (b'{"x":"' + b"[" * 500 + b'"}', False),  # brackets in a string
        (b'{"x":"\\"' + b"[" * 500 + b'"}', False),  # after an escaped quote, still inside
        (b'{"x":"\\\\",' + b'"y":' + b"[" * 63 + b"]" * 63 + b"}", True),  # an escaped backslash
        (b'{"x":"' + b"[" * 70, False),  # an open string runs to the end
    ],
)
def test_nesting_is_counted_on_the_bytes_outside_strings(data: bytes, deep: bool) -> None:
    assert too_deep(_visit(data)) is deep
    rejection = decode_event(_visit(data))
    if deep:
        assert rejection == Rejection(
            "invalid_record", "record: nested deeper than 64 levels of objects and arrays"
        )
    else:
        assert type(rejection) is not Rejection or rejection.code == "invalid_json"


def test_a_deep_record_larger_than_the_limit_is_too_large_first() -> None:
    raw = _visit(b'{"x":' + b"[" * 100 + b"]" * 100 + b"}")
    assert decode_event(raw, max_bytes=100).code == "too_large"  # type: ignore[union-attr]
    assert decode_automation(raw, max_bytes=100).code == "too_large"
    assert decode_automation(raw).code == "invalid_automation"


def test_items_beyond_the_limit_are_counted_before_each_is_read() -> None:
    refs = b",".join([b"5"] * (MAX_ITEMS + 1))  # not even objects: the count comes first
    raw = _visit(b"{}").replace(b'"item":{"entity":"deal","id":"1"}', b'"items":[' + refs + b"]")
    assert decode_event(raw) == Rejection(
        "too_many_items", f"items: the event names {MAX_ITEMS + 1} items, at most 100 are read"
    )


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1E999", b"-1.8e308"])
def test_a_number_beyond_a_doubles_range_is_invalid_json(number: bytes) -> None:
    rejection = decode_event(_visit(b'{"x":' + number + b"}"))
    assert type(rejection) is Rejection and rejection.code == "invalid_json"
    assert "infinity" in rejection.message


def test_an_integer_is_read_exactly_at_any_length() -> None:
    digits = b"9" * 400
    event = decode_event(
        _visit(b'{"x":' + digits + b"}")
        .replace(b'"item":{', b'"items":[{')
        .replace(b'"1"}', b"" + digits + b"}]")
    )
    assert type(event) is not Rejection
    assert event.items[0].id == digits.decode()  # type: ignore[union-attr]
    assert event.data["x"] == int(digits)  # type: ignore[union-attr]
