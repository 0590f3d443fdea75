"""The compiled Board: the same decisions as `state.board.Board`, several times faster.

`crm_triggers_native.NativeBoard` (Rust, in `native/`) keeps a key group's items as
flat records, decodes the common well-formed event itself and decides it. What it
does not own it asks of this module, so that each rule keeps a single source:

- a record it does not take (anything to reject, an unusual shape) is decoded here
  by the `decode` function the board was given, then handed back in a canonical form;
- the trigger table stays the Python `TriggerTable`: the native board asks for a
  pipeline's view with the interval of time in which it holds, and keeps it until
  the table changes;
- params it cannot read natively and trigger conditions are evaluated here;
- the table of event types and codes is `state.codes`': it is handed to the module
  at import, which must also know the same operators, param rules, reasons and note
  kinds, or the compiled engine is unavailable (`problem()` says why).

`Board` in `state.board` stays the reference: the tests hold both to the same
outputs, record by record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson

from state.board import DEFAULT_SEEN_WINDOW, ECHO_WINDOW, REASONS, Board
from state.codes import (
    DATA_CHOSEN_CODES,
    LIFECYCLE,
    MAX_DEPTH,
    MAX_ITEMS,
    NEVER_WATCHED,
    PARAM_RULES,
    params_match,
    type_table,
)
from state.conditions import OPERATORS
from state.engine import Began, Decoder, HistoryEncoder, Letter, Moved, Outputs, Routes
from state.model import NULL_RECORD, AutomationRecord, Event, Rejection, Trigger, misrouted
from state.table import PipelineView, TriggerTable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)

NOTE_KINDS = ("transition", "rejected", "unknown_item", "unknown_stage", "misrouted", "history")
"""Kinds of the notes `decide_batch` returns, by their number."""
TRANSITION, REJECTED, UNKNOWN_ITEM, UNKNOWN_STAGE, MISROUTED, HISTORY = range(len(NOTE_KINDS))


def _mismatch(module: Any) -> str | None:
    """Why the compiled module does not know our vocabulary, or None when it does."""
    ours: dict[str, Any] = {
        "OPERATORS": sorted(OPERATORS),
        "PARAM_RULES": list(PARAM_RULES),
        "REASONS": list(REASONS),
        "NOTE_KINDS": list(NOTE_KINDS),
        "SPECIAL_TYPES": sorted(LIFECYCLE | {"form.submitted"}),
        "SPECIAL_CODES": sorted(DATA_CHOSEN_CODES),
        "NEVER_WATCHED": sorted(NEVER_WATCHED),
    }
    for name, expected in ours.items():
        theirs = getattr(module, name, None)
        if theirs is None:
            return f"it has no {name}"
        known = list(theirs) if name in ("PARAM_RULES", "REASONS", "NOTE_KINDS") else sorted(theirs)
        if known != expected:
            return f"its {name} {known} differ from Python's {expected}"
    for name, limit in (("MAX_DEPTH", MAX_DEPTH), ("MAX_ITEMS", MAX_ITEMS)):
        if getattr(module, name, None) != limit:
            return f"its {name} {getattr(module, name, None)} differs from Python's {limit}"
    try:
        module.configure(*type_table())
    except ValueError as error:
        return f"it refused the table of event types and codes: {error}"
    return None


_PROBLEM: str | None
try:
    import crm_triggers_native
except ImportError:  # pragma: no cover - reported by `available()` and the settings check
    _PROBLEM = "crm_triggers_native is not installed: run `make install` (needs cargo)"
else:
    _PROBLEM = _mismatch(crm_triggers_native)
    if _PROBLEM is not None:
        _PROBLEM = (
            f"crm_triggers_native does not match this Python code ({_PROBLEM}): "
            "rebuild it with `make install`"
        )


def rejection_of(kind: int, key: str, payload: Any) -> Rejection:
    """The dead letter's reason of a note that is not a transition."""
    if kind == REJECTED:
        return Rejection(*payload)
    if kind == UNKNOWN_ITEM:
        return Board.unknown_item(key)
    if kind == UNKNOWN_STAGE:
        return Board.unknown_stage(key, *payload)
    if kind == MISROUTED:
        return misrouted(key)
    raise ValueError(f"not a note of a rejection: kind {kind}")


def route_batch(
    keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
) -> Routes:
    """Record indexes by key group, and those left for Python to place.

    A record keyed by its single item goes to its key's group undecoded; any other
    is decoded natively to find its items' groups; a record that does not decode
    natively (or has no bytes) is left over.
    """
    assert _PROBLEM is None, _PROBLEM
    return crm_triggers_native.route_batch(
        keys if keys is None or type(keys) is list else list(keys), raws, groups
    )


def split_lines(data: bytes, end: int, first: int) -> tuple[Sequence[bytes], list[int] | None, int]:
    """The non-blank lines of `data[:end]` as `connectors.jsonl.read_line_blocks` keeps them,
    split by the compiled module: a sequence of bytes that the compiled board reads in
    the block, with no bytes object per line; the numbers of the lines kept (None when
    they are `first`, `first + 1`, ...), and how many lines there were."""
    assert _PROBLEM is None, _PROBLEM
    return crm_triggers_native.split_lines(data, end, first)


def is_lines(values: object) -> bool:
    """Whether `values` are the lines of a block made by `split_lines`."""
    return _PROBLEM is None and type(values) is crm_triggers_native.Lines


def available() -> bool:
    """Whether the compiled module is installed (`make install` builds it) and matches."""
    return _PROBLEM is None


def problem() -> str | None:
    """Why the compiled engine is not available, or None."""
    return _PROBLEM


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
        if _PROBLEM is not None:
            raise ImportError(f"{_PROBLEM}; or choose the Python engine")
        self.table = table
        self.decode = decode
        self.seen_window = seen_window
        self.max_record_bytes = max_record_bytes
        self.core = crm_triggers_native.NativeBoard(seen_window, ECHO_WINDOW, self)
        self.core.set_watched(sorted(table.watched_fields))
        self._last: tuple[bytes, Event] | None = None
        self.history = False

    def write_history(self, encode: HistoryEncoder | None) -> None:
        """Write the stage history from now on (None: do not); the compiled board writes
        the same bytes as `encode` (`connectors.records.history_json`) itself."""
        self.history = encode is not None
        self.core.set_history(self.history)

    def apply(self, record: AutomationRecord) -> Rejection | None:
        """Apply an automation record to the table; the board forgets its views."""
        rejection = self.table.apply(record)
        if rejection is None:
            self.core.clear_views()
            self.core.set_watched(sorted(self.table.watched_fields))
        return rejection

    def route(
        self, keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
    ) -> Routes:
        """`route_batch`: the records the compiled decoder does not take are left over."""
        return route_batch(keys, raws, groups)

    def decide_parcel(
        self,
        raws: Sequence[bytes | None],
        records: Sequence[Any] | None,
        group: int,
        groups: int,
        shared: bool = False,
    ) -> Outputs:
        """Decide event records in order (`state.engine.Engine`); `records` are not needed."""
        counts, extra, notes = self.decide_batch(raws, group, groups, shared)
        out = Outputs()
        for index, item, key_or_none, kind, payload in notes:
            if kind == TRANSITION:
                out.transitions.append(Moved(index, item, key_or_none or "", payload))
            elif kind == HISTORY:
                out.history.append(Began(index, item, payload[0], key_or_none or "", payload[1]))
            else:
                rejection = rejection_of(kind, key_or_none or "", payload)
                out.dead_letters.append(Letter(index, item, key_or_none, rejection))
        out.tally.update({r: n for r, n in zip(REASONS, counts, strict=True) if n})
        if extra:
            out.tally["extra_items"] += extra
        return out

    def decide_batch(
        self, raws: Sequence[bytes | None], group: int = 0, groups: int = 1, shared: bool = False
    ) -> tuple[tuple[int, ...], int, list[tuple[int, int, str | None, int, Any]]]:
        """Decide event records in order: (counts by `REASONS`, extra items, notes).

        A record without bytes (a Kafka tombstone) is rejected whole, as `NULL_RECORD`.

        A note is (record index, item index, item key, kind, payload) of a transition
        (payload: its JSON), a stage history record (payload: (step, its JSON)), a record
        rejected whole (payload: (code, message)), an
        unknown item, an item on an unknown stage (payload: (stage, entity, category))
        or an event keyed to another group.
        """
        return self.core.decide_batch(raws, group, groups, self.max_record_bytes, shared)

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
    ) -> tuple[int, int, tuple[list[str], list[tuple[Any, ...]], list[str]] | None]:
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
        # msgspec, as the event decoder: an integer beyond 64 bits is read exactly.
        return trigger.condition.holds(_decode_fields(fields) if fields else {}, data)

    # Snapshots --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "decode": self.decode,
            "seen_window": self.seen_window,
            "max_record_bytes": self.max_record_bytes,
            "items": self.core.dump(),
            "history": self.history,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["table"], state["decode"], state["seen_window"], state["max_record_bytes"]
        )
        self.core.load(state["items"])
        self.history = state.get("history", False)
        self.core.set_history(self.history)

    __getstate__ = snapshot
    __setstate__ = restore


_decode_fields = msgspec.json.Decoder(dict).decode


def _plain(view: PipelineView) -> tuple[list[str], list[tuple[Any, ...]], list[str]]:
    """A view as the compiled board reads it: stage ids, candidates by code in order, and
    the stages' semantics."""
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
    return stages, candidates, [stage.semantic for stage in view.pipeline.stages]
