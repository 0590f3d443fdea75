"""Which trigger codes an event can fire, and how a trigger's params match it.

This is the spec's event-type / trigger-code table, as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LIFECYCLE = frozenset({"item.created", "item.updated", "item.stage_changed", "item.deleted"})

NEVER_WATCHED = frozenset({"STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID"})
"""Fields FIELD_CHANGED never watches: moves and reassignment have triggers of their own."""

_CODES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "form.submitted": ("WEBFORM",),
    "document.created": ("DOCUMENT_CREATE",),
    "document.opened": ("DOCUMENT_VIEW",),
    "visit.registered": ("VISIT",),
    "resource.booked": ("RESOURCE_BOOKING",),
    "email.received": ("EMAIL",),
    "email.sent": ("EMAIL_SENT",),
    "email.read": ("EMAIL_READ",),
    "email.link_clicked": ("EMAIL_LINK",),
    "call.incoming": ("CALL",),
    "call.outgoing": ("OUTGOING_CALL",),
    "call.missed": ("MISSED_CALL",),
    "chat.started": ("OPENLINE",),
    "chat.message": ("OPENLINE_MSG",),
    "chat.answered": ("OPENLINE_ANSWER", "OPENLINE_ANSWER_CTRL"),
    "task.status_changed": ("TASK_STATUS",),
    "webhook": ("WEBHOOK",),
    "app.trigger": ("APP",),
    "order.paid": ("ORDER_PAID",),
}

EVENT_TYPES = LIFECYCLE | frozenset(_CODES_BY_TYPE)
_SIMPLE_CODES = {t: codes for t, codes in _CODES_BY_TYPE.items() if t != "form.submitted"}

# Per code: the params it reads and how each matches the event's data.
# "eq": equal as strings; "prefix": data starts with it; "substring": case-insensitive
# substring; "fields": any listed field is among the changes.
PARAMS: dict[str, dict[str, str]] = {
    "RESP_CHANGED": {},
    "FIELD_CHANGED": {"fields": "fields"},
    "WEBFORM": {"form_id": "eq"},
    "CALLBACK": {"form_id": "eq"},
    "DOCUMENT_CREATE": {"template_id": "eq"},
    "DOCUMENT_VIEW": {"template_id": "eq"},
    "VISIT": {},
    "RESOURCE_BOOKING": {},
    "EMAIL": {},
    "EMAIL_SENT": {},
    "EMAIL_READ": {},
    "EMAIL_LINK": {"url": "prefix"},
    "CALL": {"line": "eq"},
    "OUTGOING_CALL": {"line": "eq"},
    "MISSED_CALL": {"line": "eq"},
    "OPENLINE": {"line": "eq"},
    "OPENLINE_MSG": {"line": "eq", "text": "substring"},
    "OPENLINE_ANSWER": {"line": "eq"},
    "OPENLINE_ANSWER_CTRL": {"line": "eq"},
    "TASK_STATUS": {"status": "eq"},
    "WEBHOOK": {"code": "eq"},
    "APP": {"app_id": "eq", "code": "eq"},
    "ORDER_PAID": {},
}
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {"WEBHOOK": ("code",), "APP": ("app_id", "code")}
TRIGGER_CODES = frozenset(PARAMS)

PARAM_RULES = ("eq", "prefix", "substring", "fields", "any_field")
"""How a param matches (`params_match`); "any_field" is FIELD_CHANGED without fields."""

DATA_CHOSEN_CODES = ("RESP_CHANGED", "FIELD_CHANGED", "WEBFORM", "CALLBACK")
"""Codes an event's data chooses between (`codes_for`): the rest map one-to-one."""


def type_table() -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The table the compiled board is handed (`crm_triggers_native.configure`).

    Every event type with the codes it fires one-to-one (none for lifecycle events
    and forms, whose codes their data chooses), and every trigger code.
    """
    types = [(t, list(_SIMPLE_CODES.get(t, ()))) for t in sorted(EVENT_TYPES)]
    return types, list(PARAMS)


def codes_for(event_type: str, data: Mapping[str, Any]) -> tuple[str, ...]:
    """The codes an event can fire, in the order they are tried."""
    simple = _SIMPLE_CODES.get(event_type)
    if simple is not None:
        return simple
    if event_type == "item.updated":
        changes = data.get("changes") or {}
        return (
            ("RESP_CHANGED", "FIELD_CHANGED") if "ASSIGNED_BY_ID" in changes else ("FIELD_CHANGED",)
        )
    if event_type == "form.submitted" and data.get("callback") is True:
        return ("CALLBACK", "WEBFORM")
    return _CODES_BY_TYPE.get(event_type, ())


def id_text(value: Any) -> str | None:
    """An id-like value as its string (an integer as its decimal), or None if it is none."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if kind is float and value.is_integer():
        return str(int(value))
    return None


def params_match(params: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Whether normalized trigger params (see `normalize_params`) hold for event data."""
    for name, (how, expected) in params.items():
        actual = data.get(name)
        if how == "eq":
            if id_text(actual) != expected:
                return False
        elif how == "prefix":
            if not (type(actual) is str and actual.startswith(expected)):
                return False
        elif how == "substring":
            if not (type(actual) is str and expected in actual.lower()):
                return False
        elif how == "fields":
            changes = data.get("changes") or {}
            if not any(f in changes for f in expected):
                return False
        elif not any_field_changed(data):  # "any_field"
            return False
    return True


def normalize_params(code: str, raw: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Params as `{name: (how, expected)}`, empty ones dropped; ValueError names a bad one.

    FIELD_CHANGED with no fields watches every field but the never-watched ones,
    so it is kept as the explicit rule "any change except those".
    """
    out: dict[str, tuple[str, Any]] = {}
    for name, how in PARAMS[code].items():
        value = raw.get(name)
        if value is None or value == "" or value == []:
            if name in REQUIRED_PARAMS.get(code, ()):
                raise ValueError(f"params.{name}: required for {code}")
            continue
        if how == "fields":
            if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
                raise ValueError(f"params.{name}: expected a list of field names, got {value!r}")
            watched = tuple(f for f in value if f not in NEVER_WATCHED)
            out[name] = (how, watched)
        elif how == "eq":
            text = id_text(value)
            if text is None:
                raise ValueError(f"params.{name}: expected a string or integer, got {value!r}")
            out[name] = (how, text)
        else:
            if not isinstance(value, str):
                raise ValueError(f"params.{name}: expected a string, got {value!r}")
            out[name] = (how, value.lower() if how == "substring" else value)
    if code == "FIELD_CHANGED" and "fields" not in out:
        out["fields"] = ("any_field", None)
    return out


def any_field_changed(data: Mapping[str, Any]) -> bool:
    changes = data.get("changes") or {}
    return any(f not in NEVER_WATCHED for f in changes)
