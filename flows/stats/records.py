"""Stage-history records: from the bytes of a Kafka message to a typed record or a dead letter."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple, cast

import msgspec
from bytewax.connectors.kafka import KafkaSourceMessage

from connectors.deadletter import DeadLetter, Origin


class HistoryRecord(NamedTuple):
    """The fields of a stage-history record (spec 6.1) that the statistics read."""

    id: str
    tenant: str
    entity: str
    item_id: str
    category: str
    stage: str | None
    from_stage: str | None
    semantic: str | None
    kind: str
    at: datetime
    trigger_id: str | None
    trigger_code: str | None

    @property
    def item(self) -> str:
        return f"{self.tenant}/{self.entity}/{self.item_id}"

    @property
    def pipeline(self) -> str:
        return f"{self.tenant}/{self.entity}/{self.category}"


class InvalidHistoryError(ValueError):
    """A history record that cannot be read: the dead letter's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


Id = str | int


class _ItemRef(msgspec.Struct):
    entity: str
    id: Id


class _TriggerRef(msgspec.Struct):
    id: Id
    code: str | None = None


class _RawHistory(msgspec.Struct):
    """The JSON of a history record as it comes; other fields are ignored."""

    id: Id
    item: _ItemRef
    kind: Literal["created", "trigger", "crm", "deleted"]
    at: datetime
    tenant: str | None = None
    category: Id | None = None
    stage: Id | None = None
    from_stage: Id | None = None
    semantic: str | None = None
    trigger: _TriggerRef | None = None


_history_decoder = msgspec.json.Decoder(_RawHistory)


def _id(value: Id | None, name: str) -> str:
    text = str(value) if type(value) is int else value
    if not text:
        raise InvalidHistoryError(
            "invalid_record", f"{name}: expected a non-empty id, got {value!r}"
        )
    return cast(str, text)


def _plain(value: str, name: str) -> str:
    if not value or "/" in value:
        raise InvalidHistoryError(
            "invalid_record", f"{name}: expected a non-empty name without '/', got {value!r}"
        )
    return value


def parse_history(raw: bytes) -> HistoryRecord:
    """A history record from its bytes, or InvalidHistoryError naming the field that is wrong."""
    try:
        r = _history_decoder.decode(raw)
    except msgspec.ValidationError as bad:
        raise InvalidHistoryError("invalid_record", str(bad)) from None
    except msgspec.DecodeError as bad:
        raise InvalidHistoryError("invalid_json", f"not JSON: {bad}") from None
    if r.at.tzinfo is None:
        raise InvalidHistoryError(
            "invalid_record", f"at: expected an RFC 3339 time with a zone, got {r.at.isoformat()!r}"
        )
    kind, trigger = r.kind, r.trigger
    if kind == "trigger" and trigger is None:
        raise InvalidHistoryError(
            "invalid_record", "trigger: expected an object on a trigger record, got null"
        )
    if r.stage is None and kind != "deleted":
        raise InvalidHistoryError("invalid_record", f"stage: required on a {kind} record")
    item, category, stage, from_stage = r.item, r.category, r.stage, r.from_stage
    # The common case, plain string ids, without a call per field.
    return HistoryRecord(
        r.id if type(r.id) is str and r.id else _id(r.id, "id"),
        "default" if r.tenant is None else _plain(r.tenant, "tenant"),
        _plain(item.entity, "item.entity"),
        item.id if type(item.id) is str and item.id else _id(item.id, "item.id"),
        "0"
        if category is None
        else category
        if type(category) is str and category
        else _id(category, "category"),
        stage if stage is None or (type(stage) is str and stage) else _id(stage, "stage"),
        from_stage
        if from_stage is None or (type(from_stage) is str and from_stage)
        else _id(from_stage, "from_stage"),
        r.semantic,
        kind,
        r.at,
        _id(trigger.id, "trigger.id") if kind == "trigger" and trigger else None,
        trigger.code if kind == "trigger" and trigger else None,
    )


def decode(
    message: KafkaSourceMessage[bytes | None, bytes | None],
) -> tuple[str, HistoryRecord] | DeadLetter:
    """A Kafka message as (its partition, the history record), or its dead letter."""
    raw = message.value
    origin = Origin(topic=message.topic, partition=message.partition, offset=message.offset)
    if raw is None:
        return DeadLetter(
            "invalid_record", "a null value (tombstone) is not a history record", b"", origin
        )
    try:
        return f"{message.topic}:{message.partition}", parse_history(raw)
    except InvalidHistoryError as bad:
        return DeadLetter(bad.code, str(bad), raw, origin)
