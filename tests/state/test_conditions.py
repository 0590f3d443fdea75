"""Trigger conditions (spec 3, "Conditions"): operators, comparison, OR of ANDs, shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.records import parse_automation
from state.conditions import ConditionError, compare, parse_condition
from state.model import Rejection, Transition


def holds(op: str, field: Any, value: Any = None, *, missing: bool = False) -> bool:
    """Whether one clause `F op value` holds for an item whose F is `field`."""
    clause: dict[str, Any] = {"field": "F", "op": op}
    if op not in ("empty", "!empty"):
        clause["value"] = value
    condition = parse_condition({"any": [[clause]]})
    assert condition is not None
    return condition.holds({} if missing else {"F": field}, {})


@pytest.mark.parametrize(
    ("op", "field", "value", "expected"),
    [
        ("=", "abc", "abc", True),
        ("=", "abc", "abd", False),
        ("=", 10, "10", True),
        ("=", "10.0", 10, True),
        ("!=", "abc", "abd", True),
        ("!=", 10, "10", False),
        (">", 11, 10, True),
        (">", 10, 10, False),
        (">=", 10, 10, True),
        (">=", 9, 10, False),
        ("<", 9, 10, True),
        ("<", 10, 10, False),
        ("<=", 10, 10, True),
        ("<=", 11, 10, False),
        ("in", "b", ["a", "b"], True),
        ("in", "c", ["a", "b"], False),
        ("in", "2", [1, 2], True),
        ("!in", "c", ["a", "b"], True),
        ("!in", "b", ["a", "b"], False),
        ("contain", "Big Deal Inc", "deal", True),
        ("contain", "Big Deal Inc", "DEAL", True),
        ("contain", "Big Deal Inc", "meal", False),
        ("!contain", "Big Deal Inc", "meal", True),
        ("!contain", "Big Deal Inc", "dEaL", False),
        ("empty", "", None, True),
        ("empty", "x", None, False),
        ("empty", 0, None, False),
        ("empty", [], None, True),
        ("!empty", "x", None, True),
        ("!empty", "", None, False),
        ("between", 5, [1, 10], True),
        ("between", 1, [1, 10], True),
        ("between", 10, [1, 10], True),
        ("between", 0, [1, 10], False),
        ("between", 11, [1, 10], False),
        ("between", "5", ["1", "10"], True),
        ("between", "b", ["a", "c"], True),
        ("between", "d", ["a", "c"], False),
    ],
)
def test_operator(op, field, value, expected) -> None:
    assert holds(op, field, value) is expected


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        (">", "10", "9", True),
        ("<", "9", "10", True),
        (">", 10, "9", True),
        (">", "1e3", 999, True),
        ("=", "1e3", 1000, True),
        ("<", "-2", "-1", True),
        ("<", "abc", "abd", True),
        (">", "abd", "abc", True),
        (">", "b", "abc", True),
        ("<", "10", "9x", True),
    ],
)
def test_numbers_compare_as_numbers_and_anything_else_as_strings(op, left, right, expected) -> None:
    assert holds(op, left, right) is expected


@pytest.mark.parametrize("op", [">", ">=", "<", "<="])
@pytest.mark.parametrize("missing", [True, False])
@pytest.mark.parametrize("value", [0, "", "a", -1])
def test_an_empty_field_makes_ordered_comparisons_false(op, missing, value) -> None:
    assert holds(op, None, value, missing=missing) is False
    assert holds(op, "", value) is False


@pytest.mark.parametrize("missing", [True, False])
def test_an_empty_field_is_never_between(missing) -> None:
    assert holds("between", None, ["", "z"], missing=missing) is False
    assert holds("between", "", ["", "z"]) is False


@pytest.mark.parametrize("missing", [True, False])
def test_a_missing_or_null_field_is_empty(missing) -> None:
    assert holds("empty", None, missing=missing) is True
    assert holds("!empty", None, missing=missing) is False
    assert holds("contain", None, "x", missing=missing) is False
    assert holds("!contain", None, "x", missing=missing) is True


def test_a_clause_on_event_reads_the_event_data() -> None:
    condition = parse_condition(
        {"any": [[{"field": "event.answer_time_sec", "op": ">", "value": 60}]]}
    )
    assert condition is not None

    assert condition.holds({"answer_time_sec": 10}, {"answer_time_sec": 61}) is True
    assert condition.holds({"answer_time_sec": 100}, {"answer_time_sec": 60}) is False
    assert condition.item_fields == frozenset()


def test_the_outer_list_is_or_and_each_inner_list_is_and() -> None:
    condition = parse_condition(
        {
            "any": [
                [{"field": "A", "op": "=", "value": 1}, {"field": "B", "op": "=", "value": 2}],
                [{"field": "C", "op": "!empty"}],
            ]
        }
    )
    assert condition is not None

    assert condition.holds({"A": 1, "B": 2}, {}) is True
    assert condition.holds({"A": 1, "B": 3}, {}) is False
    assert condition.holds({"A": 1, "B": 3, "C": "x"}, {}) is True
    assert condition.holds({}, {}) is False
    assert condition.item_fields == {"A", "B", "C"}


def test_no_condition_means_always() -> None:
    assert parse_condition(None) is None


def test_a_condition_on_a_trigger_is_read_after_the_events_changes(
    make_board, trigger, item_on, event, decide
) -> None:
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]}
    board = make_board(trigger("t-1", "PREPARATION", "FIELD_CHANGED", condition=big))
    item_on(board, "NEW", fields={"OPPORTUNITY": 500})

    assert not isinstance(
        decide(board, event("item.updated", {"changes": {"OPPORTUNITY": 900}})), Transition
    )
    outcome = decide(board, event("item.updated", {"changes": {"OPPORTUNITY": "1500"}}))

    assert isinstance(outcome, Transition)
    assert outcome.to_stage == "PREPARATION"


def test_a_condition_reads_fields_set_when_the_item_was_created(
    make_board, trigger, item_on, event, decide
) -> None:
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]}
    board = make_board(trigger("t-1", "PREPARATION", "WEBFORM", condition=big))
    item_on(board, "NEW", fields={"OPPORTUNITY": 5000})

    assert isinstance(decide(board, event("form.submitted", {"form_id": "1"})), Transition)


MALFORMED = [
    "always",
    [],
    {},
    {"all": [[{"field": "A", "op": "=", "value": 1}]]},
    {"any": [[{"field": "A", "op": "=", "value": 1}]], "extra": 1},
    {"any": {"field": "A", "op": "=", "value": 1}},
    {"any": [{"field": "A", "op": "=", "value": 1}]},
    {"any": [["A = 1"]]},
    {"any": [[{"op": "=", "value": 1}]]},
    {"any": [[{"field": "", "op": "=", "value": 1}]]},
    {"any": [[{"field": 7, "op": "=", "value": 1}]]},
    {"any": [[{"field": "event.", "op": "=", "value": 1}]]},
    {"any": [[{"field": "A", "value": 1}]]},
    {"any": [[{"field": "A", "op": "==", "value": 1}]]},
    {"any": [[{"field": "A", "op": "like", "value": "x"}]]},
    {"any": [[{"field": "A", "op": "="}]]},
    {"any": [[{"field": "A", "op": "=", "value": [1]}]]},
    {"any": [[{"field": "A", "op": ">", "value": {"x": 1}}]]},
    {"any": [[{"field": "A", "op": "in", "value": "a"}]]},
    {"any": [[{"field": "A", "op": "!in"}]]},
    {"any": [[{"field": "A", "op": "between", "value": 1}]]},
    {"any": [[{"field": "A", "op": "between", "value": [1]}]]},
    {"any": [[{"field": "A", "op": "between", "value": [1, 2, 3]}]]},
    {"any": [[{"field": "A", "op": "__import__('os')", "value": 1}]]},
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_parse_condition_rejects_a_malformed_condition(raw) -> None:
    with pytest.raises(ConditionError):
        parse_condition(raw)


@pytest.mark.parametrize("raw", MALFORMED)
def test_a_trigger_with_a_malformed_condition_is_invalid_automation(raw, trigger) -> None:
    rejection = parse_automation(trigger("t-1", "PREPARATION", "WEBFORM", condition=raw))

    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert "condition" in rejection.message


@pytest.mark.parametrize(
    "op",
    [["="], {"op": "="}],
    ids=["list", "object"],
)
def test_an_unhashable_operator_is_a_condition_error(op) -> None:
    with pytest.raises(ConditionError):
        parse_condition({"any": [[{"field": "A", "op": op, "value": 1}]]})


def test_a_condition_never_runs_code() -> None:
    condition = parse_condition(
        {"any": [[{"field": "__class__", "op": "=", "value": "__import__('os').system('x')"}]]}
    )
    assert condition is not None

    assert condition.holds({"__class__": "__import__('os').system('x')"}, {}) is True
    assert condition.holds({}, {}) is False


# Properties ----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.from_regex(r"[+-]?\d{1,4}(\.\d{0,3})?([eE][+-]?\d{1,2})?", fullmatch=True),
)


@settings(database=None)
@given(scalars, scalars)
def test_compare_is_antisymmetric(left, right) -> None:
    assert compare(left, right) == -compare(right, left)


@settings(database=None)
@given(scalars)
def test_compare_is_reflexive(value) -> None:
    assert compare(value, value) == 0


@settings(database=None)
@given(st.integers(), st.integers())
def test_numeric_strings_compare_like_their_numbers(left, right) -> None:
    assert compare(str(left), str(right)) == (left > right) - (left < right)
