"""Stage-history records: from the bytes of a Kafka record to a typed record or a dead letter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, cast

import msgspec

from connectors.deadletter import DeadLetter
from connectors.raw import RawBatch
from connectors.records import too_deep
from state.codes import MAX_DEPTH


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


class WindowRange(NamedTuple):
    """The times a window can hold: windows (and the clock's reach past them: the allowed
    lateness, a window more) within the range of Python's datetime. A record at another
    time is a dead letter, not a crash of the step.

    `first` and `last` are the earliest and latest window starts, in microseconds since
    the epoch; `window` the windows' length in microseconds.
    """

    first: int
    last: int
    window: int

    @classmethod
    def of(cls, window: timedelta, lateness: timedelta) -> WindowRange:
        length, late = window // MICROSECOND, lateness // MICROSECOND
        low = -((-(_EARLIEST + late + length)) // length) * length
        high = (_LATEST - 2 * length - late) // length * length
        return cls(low, high, length)

    def holds(self, at: datetime) -> bool:
        start = micros(at) // self.window * self.window
        return self.first <= start <= self.last

    def describe(self) -> str:
        first = EPOCH + timedelta(microseconds=self.first)
        end = EPOCH + timedelta(microseconds=self.last + self.window)
        return f"from {first.isoformat()} to before {end.isoformat()}"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """Microseconds since the epoch of an aware time."""
    return (at - EPOCH) // MICROSECOND


_EARLIEST = micros(datetime.min.replace(tzinfo=UTC))
_LATEST = micros(datetime.max.replace(tzinfo=UTC))

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


def parse_history(raw: bytes, times: WindowRange | None = None) -> HistoryRecord:
    """A history record from its bytes, or InvalidHistoryError naming the field that is wrong;
    with `times`, also one whose `at` no window can hold."""
    if too_deep(raw):
        # Before the decoder, which recurses: the same limit as for events.
        raise InvalidHistoryError(
            "invalid_record", f"record: nested deeper than {MAX_DEPTH} levels of objects and arrays"
        )
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
    if times is not None and not times.holds(r.at):
        raise InvalidHistoryError(
            "invalid_record",
            f"at: expected a time {times.describe()} (UTC), got {r.at.isoformat()!r}",
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


NULL_VALUE = InvalidHistoryError(
    "invalid_record", "a null value (tombstone) is not a history record"
)


def decode_batch(
    batch: RawBatch, times: WindowRange | None = None
) -> Iterator[HistoryRecord | DeadLetter]:
    """A batch of a history partition as records, in order; the unreadable ones as dead
    letters with their bytes and offset."""
    for index, raw in enumerate(batch.values):
        if raw is None:
            yield DeadLetter(NULL_VALUE.code, str(NULL_VALUE), b"", batch.origin(index))
            continue
        try:
            yield parse_history(raw, times)
        except InvalidHistoryError as bad:
            yield DeadLetter(bad.code, str(bad), raw, batch.origin(index))


def batches_of(
    values: Sequence[bytes | None], size: int, topic: str = "crm.stage-history", partition: int = 0
) -> list[RawBatch]:
    """Records as one history partition hands them over, `size` at a time (offsets from 0):
    the input of `build_stats_flow` from memory (tests, scripts)."""
    return [
        RawBatch(
            "history",
            topic,
            partition,
            start,
            range(start, min(start + size, len(values))),
            values[start : start + size],
        )
        for start in range(0, len(values), size)
    ]
