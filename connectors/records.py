"""Raw JSON into typed records, once, at the edge; and typed records back to JSON.

Every function here returns either a typed value or a `Rejection` naming the
field and what was wrong with it: bad input is data, never an exception.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
import orjson

from state.codes import (
    EVENT_TYPES,
    MAX_DEPTH,
    MAX_ITEMS,
    TRIGGER_CODES,
    id_text,
    normalize_params,
)
from state.conditions import ConditionError, parse_condition
from state.model import (
    BEGINNING,
    SEMANTICS,
    AutomationRecord,
    Deletion,
    Event,
    HistoryEntry,
    ItemRef,
    Pipeline,
    Rejection,
    Stage,
    Transition,
    Trigger,
    is_name,
)

DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_TENANT = "default"
DEFAULT_CATEGORY = "0"


class _InvalidRecordError(Exception):
    """Internal: unwinds a parse to the single place that turns it into a Rejection."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def load_json(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Any:
    """Decoded JSON, or a Rejection (`too_large`, `invalid_json`)."""
    if len(raw) > max_bytes:
        return Rejection("too_large", f"record has {len(raw)} bytes, the limit is {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", f"not valid JSON: {exc}")


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
"""A string (skipped whole; one left open runs to the end, so that no byte is scanned
twice) or a bracket: what the depth of a JSON text is counted on."""


def too_deep(raw: bytes) -> bool:
    """Whether a record nests objects and arrays deeper than `MAX_DEPTH` levels.

    Counted on the bytes, before parsing: parsers recurse, and a crafted line of a
    million brackets must not reach them. Counting brackets first keeps the
    common record (a handful of them) at two C scans.
    """
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return False
    depth = 0
    for token in _TOKEN.finditer(raw):
        bracket = token[0]
        if bracket in (b"{", b"["):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif bracket in (b"}", b"]"):
            depth -= 1
    return False


def _deep(code: str) -> Rejection:
    return Rejection(code, f"record: nested deeper than {MAX_DEPTH} levels of objects and arrays")


def decode_automation(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Any:
    """An automation record from its bytes (`load_json` then `parse_automation`)."""
    if len(raw) <= max_bytes and too_deep(raw):
        return _deep("invalid_automation")
    obj = load_json(raw, max_bytes)
    return obj if type(obj) is Rejection else parse_automation(obj)


_decode_any = msgspec.json.Decoder().decode


def _load_event_json(raw: bytes, max_bytes: int) -> Any:
    """`load_json` that reads an integer exactly, whatever its length, as the fast path does.

    A number beyond a double's range written with a fraction or an exponent (`1e400`)
    and a lone UTF-16 surrogate escape are not JSON this job reads: `invalid_json`.
    """
    try:
        return _decode_any(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return load_json(raw, max_bytes)  # its message (and its reading, should it take it)


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise _InvalidRecordError(
            "invalid_record", f"{name}: expected an RFC 3339 time, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _InvalidRecordError(
            "invalid_record", f"{name}: expected an RFC 3339 time, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise _InvalidRecordError(
            "invalid_record", f"{name}: time {value!r} has no zone (add Z or +hh:mm)"
        )
    return parsed


def _name(obj: dict[str, Any], field: str, where: str = "", default: str | None = None) -> str:
    """A required plain name: a non-empty string without '/' (it is part of keys).

    With a default, absent and null both mean the default.
    """
    value = obj.get(field)
    if value is None:
        value = default
    if not is_name(value):
        raise _InvalidRecordError(
            "invalid_record",
            f"{where}{field}: expected a non-empty string without '/', got {value!r}",
        )
    return value


def _id(obj: dict[str, Any], field: str, where: str = "", default: str | None = None) -> str:
    """A required id: a non-empty string, or an integer read as its decimal string."""
    value = obj.get(field)
    if value is None:
        value = default
    text = id_text(value)
    if text is None or text == "":
        raise _InvalidRecordError(
            "invalid_record", f"{where}{field}: expected a string or integer id, got {value!r}"
        )
    return text


def _optional_id(obj: dict[str, Any], field: str, where: str) -> str | None:
    if obj.get(field) is None:
        return None
    return _id(obj, field, where)


def _object(
    obj: dict[str, Any], field: str, where: str = "", required: bool = False
) -> dict[str, Any]:
    value = obj.get(field)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _InvalidRecordError(
            "invalid_record", f"{where}{field}: expected an object, got {value!r}"
        )
    return value


# Events -------------------------------------------------------------------------------


def parse_event(obj: Any) -> Event | Rejection:
    """An event record (spec 2.2) from decoded JSON, or why it is not one."""
    try:
        return _event(obj)
    except _InvalidRecordError as bad:
        return Rejection(bad.code, bad.message)


def decode_event(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Event | Rejection:
    """An event record from its bytes: `load_json` then `parse_event`, only faster.

    The common well-formed event is decoded and type-checked by msgspec in one C
    pass into a wire struct; anything it does not accept takes the general path,
    which alone decides every error and its message.
    """
    if len(raw) > max_bytes:
        return Rejection("too_large", f"record has {len(raw)} bytes, the limit is {max_bytes}")
    if too_deep(raw):
        return _deep("invalid_record")
    try:
        event = _fast_event(_decode_wire(raw))
    except (msgspec.ValidationError, msgspec.DecodeError, _InvalidRecordError, ValueError):
        event = None
    if event is not None:
        return event
    obj = _load_event_json(raw, max_bytes)
    return obj if type(obj) is Rejection else parse_event(obj)


class _WireRef(msgspec.Struct):
    entity: str
    id: str | int
    category: str | int | None = None
    stage: str | int | None = None


class _WireEvent(msgspec.Struct):
    id: str | int
    type: str
    occurred_at: str
    tenant: str | None = None
    item: _WireRef | None = None
    items: list[_WireRef] | None = None
    data: dict[str, Any] | None = None


_decode_wire = msgspec.json.Decoder(_WireEvent).decode
_fromisoformat = datetime.fromisoformat
_new = tuple.__new__


def _fast_event(wire: _WireEvent) -> Event | None:
    """The Event of a one-item wire event that needs no more checks; None: go the long way."""
    etype, ref, tenant = wire.type, wire.item, wire.tenant
    if ref is None or wire.items is not None or etype not in EVENT_TYPES:
        return None
    if tenant is None:
        tenant = DEFAULT_TENANT
    elif not is_name(tenant):
        return None
    event_id, item_id, entity = wire.id, ref.id, ref.entity
    if type(event_id) is int:
        event_id = str(event_id)
    if type(item_id) is int:
        item_id = str(item_id)
    if not event_id or not item_id or not is_name(entity):
        return None
    at = _fromisoformat(wire.occurred_at)
    if at.tzinfo is None:
        return None
    data = wire.data
    if data is None:
        data = {}
    if etype in _LIFECYCLE_DATA:
        _LIFECYCLE_DATA[etype](data)
    if ref.category is None and ref.stage is None:
        item = _new(ItemRef, (entity, item_id, None, None))
    else:
        item = _item_ref(msgspec.structs.asdict(ref), "item.")
    # tuple.__new__ builds the NamedTuples without their Python-level __new__.
    return _new(Event, (event_id, etype, tenant, wire.occurred_at, at, (item,), data))


def _event(obj: Any) -> Event:
    if type(obj) is not dict:
        raise _InvalidRecordError(
            "invalid_record", f"expected a JSON object, got {type(obj).__name__}"
        )
    event_id = _id(obj, "id")
    etype = obj.get("type")
    if not isinstance(etype, str):
        raise _InvalidRecordError("invalid_record", f"type: expected a string, got {etype!r}")
    occurred_at = obj.get("occurred_at")
    at = parse_time(occurred_at, "occurred_at")
    tenant = _name(obj, "tenant", default=DEFAULT_TENANT)
    items = _items(obj)
    data = _object(obj, "data")
    if etype not in EVENT_TYPES:
        raise _InvalidRecordError(
            "unknown_event_type", f"type: {etype!r} is not an event type this job knows"
        )
    if etype in _LIFECYCLE_DATA:
        _LIFECYCLE_DATA[etype](data)
    return Event(event_id, etype, tenant, occurred_at, at, items, data)  # type: ignore[arg-type]


def _items(obj: dict[str, Any]) -> tuple[ItemRef, ...]:
    if obj.get("items") is not None and obj.get("item") is not None:
        raise _InvalidRecordError(
            "invalid_record", "item, items: an event names `item` or `items`, not both"
        )
    if obj.get("items") is not None:
        refs = obj["items"]
        if not isinstance(refs, list) or not refs:
            raise _InvalidRecordError(
                "invalid_record", f"items: expected a non-empty list of items, got {refs!r}"
            )
        if len(refs) > MAX_ITEMS:
            raise _InvalidRecordError(
                "too_many_items",
                f"items: the event names {len(refs)} items, at most {MAX_ITEMS} are read",
            )
        found = tuple(_item_ref(ref, f"items[{i}].") for i, ref in enumerate(refs))
        if len(found) == 1:
            return found
        # An item named twice is decided once, by its first mention (and that one's hint).
        first: dict[tuple[str, str], ItemRef] = {}
        for ref in found:
            first.setdefault((ref.entity, ref.id), ref)
        return tuple(first.values())
    if obj.get("item") is None:
        raise _InvalidRecordError(
            "invalid_record", "item: missing (an event names `item` or `items`)"
        )
    return (_item_ref(obj["item"], "item."),)


def _item_ref(ref: Any, where: str) -> ItemRef:
    if type(ref) is not dict:
        raise _InvalidRecordError(
            "invalid_record", f"{where[:-1]}: expected an object, got {ref!r}"
        )
    return ItemRef(
        _name(ref, "entity", where),
        _id(ref, "id", where),
        _optional_id(ref, "category", where),
        _optional_id(ref, "stage", where),
    )


def _created(data: dict[str, Any]) -> None:
    data["stage"] = _id(data, "stage", "data.")
    _normalize_category(data)
    _object(data, "fields", "data.")


def _updated(data: dict[str, Any]) -> None:
    _object(data, "changes", "data.", required=True)


def _stage_changed(data: dict[str, Any]) -> None:
    data["stage"] = _id(data, "stage", "data.")
    _normalize_category(data)
    if data.get("transition_id") is not None:
        data["transition_id"] = _id(data, "transition_id", "data.")


def _normalize_category(data: dict[str, Any]) -> None:
    if data.get("category") is not None:
        data["category"] = _id(data, "category", "data.")


_LIFECYCLE_DATA = {
    "item.created": _created,
    "item.updated": _updated,
    "item.stage_changed": _stage_changed,
}


# Automation ---------------------------------------------------------------------------


def parse_automation(obj: Any) -> AutomationRecord | Rejection:
    """A pipeline, trigger or deletion (spec 2.1), or why it is not one."""
    try:
        return _automation(obj)
    except _InvalidRecordError as bad:
        return Rejection("invalid_automation", bad.message)
    except ConditionError as bad:
        return Rejection("invalid_automation", f"condition: {bad}")


def _automation(obj: Any) -> AutomationRecord:
    if type(obj) is not dict:
        raise _InvalidRecordError(
            "invalid_automation", f"expected a JSON object, got {type(obj).__name__}"
        )
    kind = obj.get("kind")
    if kind not in ("pipeline", "trigger"):
        raise _InvalidRecordError(
            "invalid_automation", f"kind: expected 'pipeline' or 'trigger', got {kind!r}"
        )
    tenant = _name(obj, "tenant", default=DEFAULT_TENANT)
    updated_at = (
        BEGINNING if obj.get("updated_at") is None else parse_time(obj["updated_at"], "updated_at")
    )
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise _InvalidRecordError(
            "invalid_automation", f"deleted: expected true or false, got {deleted!r}"
        )
    if kind == "trigger":
        trigger_id = _id(obj, "id")
        if deleted:
            return Deletion("trigger", tenant, (trigger_id,), updated_at)
        return _trigger(obj, tenant, trigger_id, updated_at)
    entity = _name(obj, "entity")
    category = _id(obj, "category", default=DEFAULT_CATEGORY)
    if deleted:
        return Deletion("pipeline", tenant, (entity, category), updated_at)
    return Pipeline(tenant, entity, category, _stages(obj.get("stages")), updated_at)


def _stages(raw: Any) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise _InvalidRecordError(
            "invalid_automation", f"stages: expected a non-empty list, got {raw!r}"
        )
    stages = []
    for i, stage in enumerate(raw):
        if type(stage) is not dict:
            raise _InvalidRecordError(
                "invalid_automation", f"stages[{i}]: expected an object, got {stage!r}"
            )
        stage_id = _id(stage, "id", f"stages[{i}].")
        semantic = stage.get("semantic", "process")
        if not isinstance(semantic, str) or semantic not in SEMANTICS:
            raise _InvalidRecordError(
                "invalid_automation",
                f"stages[{i}].semantic: expected one of {sorted(SEMANTICS)}, got {semantic!r}",
            )
        stages.append(Stage(stage_id, semantic))
    ids = [s.id for s in stages]
    if len(set(ids)) != len(ids):
        raise _InvalidRecordError("invalid_automation", f"stages: stage ids repeat: {ids}")
    return tuple(stages)


def _trigger(obj: dict[str, Any], tenant: str, trigger_id: str, updated_at: Any) -> Trigger:
    code = obj.get("code")
    if not isinstance(code, str) or code not in TRIGGER_CODES:
        raise _InvalidRecordError(
            "invalid_automation", f"code: {code!r} is not a trigger code this job knows"
        )
    params = _object(obj, "params")
    try:
        normalized = normalize_params(code, params)
    except ValueError as bad:
        raise _InvalidRecordError("invalid_automation", str(bad)) from None
    allow_backwards = obj.get("allow_backwards", False)
    if not isinstance(allow_backwards, bool):
        raise _InvalidRecordError(
            "invalid_automation",
            f"allow_backwards: expected true or false, got {allow_backwards!r}",
        )
    sort = obj.get("sort", 0)
    if sort is None:
        sort = 0
    if type(sort) is not int:
        raise _InvalidRecordError("invalid_automation", f"sort: expected an integer, got {sort!r}")
    return Trigger(
        tenant=tenant,
        id=trigger_id,
        entity=_name(obj, "entity"),
        category=_id(obj, "category", default=DEFAULT_CATEGORY),
        stage=_id(obj, "stage"),
        code=code,
        params=normalized,
        allow_backwards=allow_backwards,
        sort=sort,
        condition=parse_condition(obj.get("condition")),
        updated_at=updated_at,
    )


# Output -------------------------------------------------------------------------------


def transition_json(move: Transition) -> bytes:
    """A transition record (spec 2.3)."""
    return orjson.dumps(
        {
            "id": move.id,
            "tenant": move.tenant,
            "item": {"entity": move.entity, "id": move.item_id},
            "category": move.category,
            "from_stage": move.from_stage,
            "to_stage": move.to_stage,
            "direction": move.direction,
            "trigger": {"id": move.trigger_id, "code": move.trigger_code},
            "event": {
                "id": move.event_id,
                "type": move.event_type,
                "occurred_at": move.occurred_at,
            },
        }
    )


def history_json(entry: HistoryEntry) -> bytes:
    """A stage history record (spec 6.1), its keys in the spec's order."""
    trigger = None
    if entry.trigger_id is not None:
        trigger = {"id": entry.trigger_id, "code": entry.trigger_code}
    return orjson.dumps(
        {
            "id": entry.id,
            "tenant": entry.tenant,
            "item": {"entity": entry.entity, "id": entry.item_id},
            "category": entry.category,
            "stage": entry.stage,
            "from_stage": entry.from_stage,
            "semantic": entry.semantic,
            "kind": entry.kind,
            "at": entry.at,
            "event": {"id": entry.event_id, "type": entry.event_type},
            "transition_id": entry.transition_id,
            "trigger": trigger,
        }
    )
