"""The compiled Board: the same decisions as `state.board.Board`, several times faster.

`crm_triggers_native.NativeBoard` (Rust, in `native/`) keeps a key group's items as
flat records, decodes the common well-formed event itself and decides it. What it
does not own it asks of this module, so that each rule keeps a single source:

- a record it does not take (anything to reject, an unusual shape) is decoded here
  by the `decode` function the board was given, then handed back in a canonical form;
- the trigger table stays the Python `TriggerTable`: the native board asks for a
  pipeline's view with the interval of time in which it holds, and keeps it until
  the table changes;
- params it cannot read natively and trigger conditions are evaluated here.

`Board` in `state.board` stays the reference: the tests hold both to the same
outputs, record by record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from state.board import DEFAULT_SEEN_WINDOW, ECHO_WINDOW, Board
from state.codes import params_match
from state.model import NULL_RECORD, AutomationRecord, Event, Rejection, Trigger
from state.table import PipelineView, TriggerTable

try:
    from crm_triggers_native import NativeBoard as _Core
    from crm_triggers_native import route_batch as _route_batch
except ImportError:  # pragma: no cover - reported by `available()` and the settings check
    _Core = _route_batch = None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)

Decoder = Callable[[bytes, int], Event | Rejection]
"""bytes, max record bytes -> the event or why it is not one (`connectors.records.decode_event`)."""

REASONS = (
    "created",
    "updated",
    "stage_changed",
    "confirmed",
    "deleted",
    "no_match",
    "duplicate",
    "item_deleted",
    "no_pipeline",
)
"""Reasons of the counts `decide_batch` returns, in their order."""

# Kinds of the notes `decide_batch` returns.
TRANSITION, REJECTED, UNKNOWN_ITEM, UNKNOWN_STAGE, MISROUTED = range(5)


def rejection_of(kind: int, key: str, payload: Any) -> Rejection:
    """The dead letter's reason of a note that is not a transition (nor MISROUTED)."""
    if kind == REJECTED:
        return Rejection(*payload)
    if kind == UNKNOWN_ITEM:
        return Board.unknown_item(key)
    if kind == UNKNOWN_STAGE:
        return Board.unknown_stage(key, *payload)
    raise ValueError(f"not a note of a rejection: kind {kind}")


def route_batch(
    keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
) -> tuple[dict[int, list[int]], list[int]]:
    """Record indexes by key group, and those left for Python to place.

    A record keyed by its single item goes to its key's group undecoded; any other
    is decoded natively to find its items' groups; a record that does not decode
    natively (or has no bytes) is left over.
    """
    return _route_batch(keys if keys is None or type(keys) is list else list(keys), raws, groups)


def available() -> bool:
    """Whether the compiled module is installed (`make install` builds it)."""
    return _Core is not None


def micros(at: datetime) -> int:
    """Microseconds since the epoch of an aware time."""
    return (at - EPOCH) // _MICROSECOND


def _time(at: int) -> datetime:
    """The instant `at` as an aware datetime, also just beyond datetime's UTC range.

    An event at 0001-01-01T00:00:00+05:00 is earlier than `datetime.min` in UTC: it
    is written as datetime's first (or last) local time with the offset that makes it
    that instant, as the event itself was.
    """
    try:
        return EPOCH + timedelta(microseconds=at)
    except OverflowError:
        edge = _FIRST if at < 0 else _LAST
        offset = timedelta(microseconds=micros(edge) - at)
        return edge.replace(tzinfo=timezone(offset))


class NativeBoard:
    """A Board whose hot path is compiled; see the module docstring."""

    def __init__(
        self,
        table: TriggerTable,
        decode: Decoder,
        seen_window: int = DEFAULT_SEEN_WINDOW,
        max_record_bytes: int = 1 << 20,
    ) -> None:
        if _Core is None:
            raise ImportError(
                "crm_triggers_native is not installed: run `make install` (needs cargo), "
                "or choose the Python engine"
            )
        self.table = table
        self.decode = decode
        self.seen_window = seen_window
        self.max_record_bytes = max_record_bytes
        self.core = _Core(seen_window, ECHO_WINDOW, self)
        self.core.set_watched(sorted(table.watched_fields))
        self._last: tuple[bytes, Event] | None = None

    def apply(self, record: AutomationRecord) -> Rejection | None:
        """Apply an automation record to the table; the board forgets its views."""
        rejection = self.table.apply(record)
        if rejection is None:
            self.core.clear_views()
            self.core.set_watched(sorted(self.table.watched_fields))
        return rejection

    def decide_batch(
        self, raws: list[bytes | None], group: int = 0, groups: int = 1
    ) -> tuple[tuple[int, ...], int, list[tuple[int, int, str | None, int, Any]]]:
        """Decide event records in order: (counts by `REASONS`, extra items, notes).

        A record without bytes (a Kafka tombstone) is rejected whole, as `NULL_RECORD`.

        A note is (record index, item index, item key, kind, payload) of a transition
        (payload: its JSON), a record rejected whole (payload: (code, message)), an
        unknown item, an item on an unknown stage (payload: (stage, entity, category))
        or an event keyed to another group.
        """
        return self.core.decide_batch(raws, group, groups, self.max_record_bytes)

    def __len__(self) -> int:
        return len(self.core)

    # Asked by the compiled board ----------------------------------------------------

    def slow(self, raw: bytes | None) -> tuple[bytes, int] | tuple[str, str]:
        """A record the compiled decoder did not take: canonical JSON and time, or why not."""
        if raw is None:
            return (NULL_RECORD.code, NULL_RECORD.message)
        event = self.decode(raw, self.max_record_bytes)
        if type(event) is Rejection:
            return (event.code, event.message)
        assert isinstance(event, Event)
        self._last = (raw, event)
        canonical = {
            "id": event.id,
            "type": event.type,
            "tenant": event.tenant,
            "occurred_at": event.occurred_at,
            "items": [
                {"entity": r.entity, "id": r.id, "category": r.category, "stage": r.stage}
                for r in event.items
            ],
            "data": event.data,
        }
        try:
            text = orjson.dumps(canonical)
        except TypeError:
            # An integer beyond 64 bits, which msgspec decodes and orjson cannot write.
            text = json.dumps(canonical, ensure_ascii=False).encode()
        return text, micros(event.at)

    def view(
        self, tenant: str, entity: str, category: str, at: int
    ) -> tuple[int, int, tuple[list[str], list[tuple[Any, ...]]] | None]:
        """The view in force at `at` and its interval, as plain values."""
        start, end, view = self.table.view_span(tenant, entity, category, _time(at))
        return micros(start), micros(end), None if view is None else _plain(view)

    def holds(self, trigger: Trigger, fields: bytes | None, raw: bytes) -> bool:
        """Whether a trigger's params and condition hold for an event and the item's fields."""
        last = self._last
        if last is not None and last[0] is raw:
            event = last[1]
        else:
            decoded = self.decode(raw, self.max_record_bytes)
            assert isinstance(decoded, Event)
            event = decoded
            self._last = (raw, event)
        data = event.data
        if trigger.params and not params_match(trigger.params, data):
            return False
        if trigger.condition is None:
            return True
        return trigger.condition.holds(orjson.loads(fields) if fields else {}, data)

    # Snapshots --------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "decode": self.decode,
            "seen_window": self.seen_window,
            "max_record_bytes": self.max_record_bytes,
            "items": self.core.dump(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["table"], state["decode"], state["seen_window"], state["max_record_bytes"]
        )
        self.core.load(state["items"])


def _plain(view: PipelineView) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A view as the compiled board reads it: stage ids, then candidates by code in order."""
    stages = [stage.id for stage in view.pipeline.stages]
    candidates = []
    for code, ordered in view.by_code.items():
        for candidate in ordered:
            trigger = candidate.trigger
            params = [(name, how, expected) for name, (how, expected) in trigger.params.items()]
            condition = None
            if trigger.condition is not None:
                condition = [
                    [(c.field, c.op, orjson.dumps(c.value).decode()) for c in group]
                    for group in trigger.condition.groups
                ]
            candidates.append(
                (
                    code,
                    candidate.position,
                    trigger.allow_backwards,
                    trigger.id,
                    trigger.stage,
                    params,
                    condition,
                    trigger,
                )
            )
    return stages, candidates
