"""Trigger conditions: `{"any": [[clause, ...], ...]}`, OR of ANDs.

A clause reads an item field (after the event's changes) or, as
`event.<name>`, the event's data. Values compare as numbers when both sides
are numbers or numeric strings, otherwise as strings. Nothing here runs code
taken from data: clauses are interpreted, never compiled or evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

EVENT_PREFIX = "event."

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


class ConditionError(ValueError):
    """A condition that is not of the documented shape."""


def as_number(value: Any) -> int | float | None:
    """The value as a number, or None when it is neither a number nor a numeric string."""
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return int(text) if _INTEGER.fullmatch(text) else float(text)
    return None


def as_text(value: Any) -> str:
    """The value as the string it compares as."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


def is_empty(value: Any) -> bool:
    """Missing, null, "", [] and {} are empty; 0 and false are values."""
    return value is None or value == "" or value == [] or value == {}


def compare(left: Any, right: Any) -> int:
    """-1, 0 or 1: numerically when both sides are numeric, else as strings."""
    a, b = as_number(left), as_number(right)
    if a is None or b is None:
        x, y = as_text(left), as_text(right)
        return (x > y) - (x < y)
    return (a > b) - (a < b)


def _elements(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _op_eq(field: Any, value: Any) -> bool:
    if is_empty(field) or is_empty(value):
        return is_empty(field) and is_empty(value)
    return compare(field, value) == 0


def _op_in(field: Any, value: Any) -> bool:
    return any(compare(f, v) == 0 for f in _elements(field) for v in value)


def _op_contain(field: Any, value: Any) -> bool:
    needle = as_text(value).lower()
    return any(needle in as_text(f).lower() for f in _elements(field) if not is_empty(f))


def _op_between(field: Any, value: Any) -> bool:
    low, high = value
    if is_empty(field) or is_empty(low) or is_empty(high):
        return False
    return compare(field, low) >= 0 and compare(field, high) <= 0


def _ordered(test: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def op(field: Any, value: Any) -> bool:
        return not (is_empty(field) or is_empty(value)) and test(compare(field, value))

    return op


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": _op_eq,
    "!=": lambda f, v: not _op_eq(f, v),
    ">": _ordered(lambda c: c > 0),
    ">=": _ordered(lambda c: c >= 0),
    "<": _ordered(lambda c: c < 0),
    "<=": _ordered(lambda c: c <= 0),
    "in": _op_in,
    "!in": lambda f, v: not _op_in(f, v),
    "contain": _op_contain,
    "!contain": lambda f, v: not _op_contain(f, v),
    "empty": lambda f, v: is_empty(f),
    "!empty": lambda f, v: not is_empty(f),
    "between": _op_between,
}
OPERATORS = frozenset(_OPS)
"""A new operator: a line in `_OPS` (and its value's shape in `_parse_clause`, if any)."""


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    op: str
    value: Any = None

    @property
    def reads_event(self) -> bool:
        return self.field.startswith(EVENT_PREFIX)

    def holds(self, fields: Mapping[str, Any], event_data: Mapping[str, Any]) -> bool:
        return _OPS[self.op](self.actual(fields, event_data), self.value)

    def actual(self, fields: Mapping[str, Any], event_data: Mapping[str, Any]) -> Any:
        """The value the clause reads: the item's field, or the event's data for `event.`."""
        if self.field.startswith(EVENT_PREFIX):
            return event_data.get(self.field[len(EVENT_PREFIX) :])
        return fields.get(self.field)


@dataclass(frozen=True, slots=True)
class Condition:
    """OR over `groups`, AND inside each group. No groups means no conditions: it holds."""

    groups: tuple[tuple[Clause, ...], ...]

    def holds(self, fields: Mapping[str, Any], event_data: Mapping[str, Any]) -> bool:
        if not self.groups:
            return True
        return any(
            all(clause.holds(fields, event_data) for clause in group) for group in self.groups
        )

    def failed_clauses(
        self, fields: Mapping[str, Any], event_data: Mapping[str, Any]
    ) -> list[tuple[int, Clause, Any]]:
        """Why the condition does not hold: per group, the first clause that fails (where
        `holds` stops) as (group index, clause, the value it read). Empty when it holds."""
        failed = []
        for index, group in enumerate(self.groups):
            clause = next((c for c in group if not c.holds(fields, event_data)), None)
            if clause is None:
                return []
            failed.append((index, clause, clause.actual(fields, event_data)))
        return failed

    @property
    def item_fields(self) -> frozenset[str]:
        """Item fields the condition reads: the only fields item state must keep."""
        return frozenset(c.field for group in self.groups for c in group if not c.reads_event)


def parse_condition(raw: Any) -> Condition | None:
    """Build a Condition from its JSON form; None (or absent) means "always"."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"any"} or not isinstance(raw["any"], list):
        raise ConditionError('expected {"any": [[clause, ...], ...]}')
    groups = []
    for i, group in enumerate(raw["any"]):
        if not isinstance(group, list):
            raise ConditionError(f"condition.any[{i}]: expected a list of clauses")
        groups.append(
            tuple(_parse_clause(c, f"condition.any[{i}][{j}]") for j, c in enumerate(group))
        )
    return Condition(tuple(groups))


def _parse_clause(raw: Any, where: str) -> Clause:
    if not isinstance(raw, dict):
        raise ConditionError(f"{where}: expected an object with field, op, value")
    name, op, value = raw.get("field"), raw.get("op"), raw.get("value")
    if not isinstance(name, str) or not name or name == EVENT_PREFIX:
        raise ConditionError(f"{where}.field: expected a non-empty string, got {name!r}")
    if not isinstance(op, str) or op not in OPERATORS:
        raise ConditionError(f"{where}.op: expected one of {sorted(OPERATORS)}, got {op!r}")
    if op in ("in", "!in") and not isinstance(value, list):
        raise ConditionError(f"{where}.value: {op} needs a list, got {value!r}")
    if op == "between" and not (isinstance(value, list) and len(value) == 2):
        raise ConditionError(f"{where}.value: between needs [low, high], got {value!r}")
    if op not in ("empty", "!empty", "in", "!in", "between") and isinstance(value, (list, dict)):
        raise ConditionError(f"{where}.value: {op} needs a number or a string, got {value!r}")
    if op not in ("empty", "!empty") and "value" not in raw:
        raise ConditionError(f"{where}.value: missing for {op}")
    return Clause(name, op, value)
