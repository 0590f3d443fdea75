"""Items on their stages, and the decision "which trigger moves this item".

A `Board` holds the state of a set of items (one key group of the dataflow)
and decides each (event, item) pair against a `TriggerTable`, following the
spec's decision procedure step by step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from struct import Struct
from sys import intern
from typing import Any, Protocol
from zlib import crc32

import msgspec

from state.codes import LIFECYCLE, codes_for, params_match
from state.engine import (
    Began,
    Decoder,
    Encoder,
    HistoryEncoder,
    Letter,
    Moved,
    Outputs,
    Routes,
    key_group,
    route_by_keys,
)
from state.model import (
    NULL_RECORD,
    AutomationRecord,
    Decided,
    Event,
    HistoryEntry,
    ItemRef,
    Outcome,
    Rejection,
    Transition,
    history_id,
    item_key,
    misrouted,
    transition_id,
)
from state.table import Candidate, PipelineView, TriggerTable

DEFAULT_SEEN_WINDOW = 32
"""Event ids remembered per item to drop producer retries (8 bytes each)."""

ECHO_WINDOW = 16
"""Transitions remembered per item: their echoes from the CRM, and retries that repeat them."""

# Reasons of `Decided`, the outcomes that are not moves.
CREATED = Decided("created")
UPDATED = Decided("updated")
STAGE_CHANGED = Decided("stage_changed")
CONFIRMED = Decided("confirmed")
DELETED = Decided("deleted")
NO_MATCH = Decided("no_match")
DUPLICATE = Decided("duplicate")
ITEM_DELETED = Decided("item_deleted")
NO_PIPELINE = Decided("no_pipeline")
REASONS = tuple(
    d.reason
    for d in (
        CREATED,
        UPDATED,
        STAGE_CHANGED,
        CONFIRMED,
        DELETED,
        NO_MATCH,
        DUPLICATE,
        ITEM_DELETED,
        NO_PIPELINE,
    )
)
"""Every reason of `Decided`, in the order the compiled board counts them."""

# Why a candidate trigger did not apply, as told to a `DecisionObserver`.
SAME_STAGE = "same_stage"
BACKWARDS = "backwards"
PARAMS = "params"
CONDITION = "condition"

_pack = Struct("<II").pack
_LIFECYCLE_ONLY = LIFECYCLE - {"item.updated"}
"""Lifecycle events that fire no trigger."""


def fingerprint(text: str) -> bytes:
    """8 stable bytes for an id (Python's own hash changes between processes).

    Two CRC-32s, of the id and of its reverse: a cryptographic hash costs three
    times as much here, and ids that differ within any 4 bytes never collide.
    """
    raw = text.encode()
    return _pack(crc32(raw), crc32(raw[::-1]))


class ItemState(msgspec.Struct, gc=False):
    """What decisions need to know of one item, and nothing more.

    `stage` is None once the item is deleted. `fields` holds only fields some
    condition reads: a tuple of their names (shared between items) followed by
    their values; `seen` the fingerprints of the last event ids; `echoes` the
    fingerprint of each of our last moves' transition id followed by its
    to_stage, flattened: (fingerprint, stage, fingerprint, stage, ...).

    A msgspec Struct without GC tracking: a million of them hold no reference
    cycles, and the collector need not walk them (16 bytes less each, too).
    """

    category: str
    stage: str | None
    fields: tuple[Any, ...] | None = None
    seen: bytes = b""
    echoes: tuple[bytes | str, ...] | None = None

    @property
    def deleted(self) -> bool:
        return self.stage is None

    def has_seen(self, mark: bytes) -> bool:
        seen = self.seen
        at = seen.find(mark)
        while at != -1:
            if at % 8 == 0:
                return True
            at = seen.find(mark, at + 1)
        return False

    def remember(self, mark: bytes, window: int) -> None:
        seen = self.seen + mark
        self.seen = seen if len(seen) <= 8 * window else seen[-8 * window :]

    def field_map(self) -> dict[str, Any]:
        f = self.fields
        return dict(zip(f[0], f[1:], strict=True)) if f else {}

    def set_fields(self, values: Mapping[str, Any], watched: frozenset[str]) -> None:
        names = tuple(name for name in sorted(values) if name in watched)
        if not names:
            self.fields = None
            return
        names = _FIELD_NAMES.setdefault(names, names)
        self.fields = (names, *(_shared(values[name]) for name in names))


_FIELD_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
"""One tuple object per set of watched field names, shared by the items that have it."""


def _shared(value: Any) -> Any:
    """Short strings interned: field values repeat across items (sources, statuses)."""
    return intern(value) if type(value) is str and len(value) <= 32 else value


class DecisionObserver(Protocol):
    """Told each step of a decision's candidate loop (`explain`); None on the hot path."""

    def trying(self, code: str, view: PipelineView, position: int) -> None:
        """The candidates of `code` are tried next, the item on stage `position`."""

    def skipped(self, candidate: Candidate, reason: str, fields: Mapping[str, Any] | None) -> None:
        """`candidate` did not apply for `reason`; `fields`: what its condition read."""


class Board:
    """The items of one key group and the trigger table they are decided against.

    As an `Engine` (`decide_parcel`) it decodes records with `decode` and writes
    transitions with `encode`, both handed in by the dataflow (`connectors.records`).
    """

    observer: DecisionObserver | None = None
    """Set only to explain decisions: the same loop, reporting each candidate."""

    def __init__(
        self,
        table: TriggerTable,
        seen_window: int = DEFAULT_SEEN_WINDOW,
        decode: Decoder | None = None,
        encode: Encoder | None = None,
        max_record_bytes: int = 1 << 20,
    ) -> None:
        self.table = table
        self.items: dict[str, ItemState] = {}
        self.seen_window = seen_window
        self.decode = decode
        self.encode = encode
        self.max_record_bytes = max_record_bytes
        self.encode_history: HistoryEncoder | None = None
        self._began: list[HistoryEntry] | None = None

    def write_history(self, encode: HistoryEncoder | None) -> None:
        """Write the stage history (spec 6.1) with `encode` from now on; None: do not."""
        self.encode_history = encode
        self._began = None if encode is None else []

    def __len__(self) -> int:
        return len(self.items)

    def apply(self, record: AutomationRecord) -> Rejection | None:
        """Apply an automation record to the table (`TriggerTable.apply`)."""
        return self.table.apply(record)

    def snapshot(self) -> dict[str, Any]:
        """The board's state (`state.engine.Engine`); its pickled form."""
        return dict(self.__dict__)

    def restore(self, state: dict[str, Any]) -> None:
        self.__init__(state["table"], state["seen_window"])  # type: ignore[misc]
        self.__dict__.update(state)
        self.write_history(state.get("encode_history"))

    __getstate__ = snapshot
    __setstate__ = restore

    def route(
        self, keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
    ) -> Routes:
        """Keyed single-item records by their key; the caller decodes the others."""
        return route_by_keys(keys, raws, groups)

    def decide_parcel(
        self,
        raws: Sequence[bytes | None],
        records: Sequence[Any] | None,
        group: int,
        groups: int,
        shared: bool = False,
    ) -> Outputs:
        """Decide event records of key group `group` in order (`state.engine.Engine`)."""
        shared = shared and groups > 1
        decode, encode = self.decode, self.encode
        if decode is None or encode is None:
            raise TypeError("Board.decide_parcel needs the decode and encode functions")
        out = Outputs()
        reasons: list[str] = []  # counted once at the end: cheaper than a Counter per event
        add_reason = reasons.append
        began = self._began
        decide = self.decide if began is None else self._decide_recording
        max_bytes = self.max_record_bytes
        extra = 0
        event: Any
        for index, raw in enumerate(raws):
            event = None if records is None else records[index]
            decoded_here = event is None
            if decoded_here:
                event = NULL_RECORD if raw is None else decode(raw, max_bytes)
                if type(event) is Rejection:
                    if not shared or group == 0:  # every worker rejects it; one reports it
                        out.dead_letters.append(Letter(index, 0, None, event))
                    continue
            items = event.items
            if len(items) == 1:  # the common case, without the loop
                ref = items[0]
                key = item_key(event.tenant, ref.entity, ref.id)
                # Routed by its Kafka key, undecoded: the key may name another item.
                if decoded_here and groups > 1 and key_group(key, groups) != group:
                    if not shared:
                        out.dead_letters.append(Letter(index, 0, key, misrouted(key)))
                    continue
                outcome = decide(event, ref, key)
                if type(outcome) is Decided:
                    add_reason(outcome.reason)
                else:
                    self._note(out, encode, index, 0, key, outcome)
                if began:
                    self._write_history(out, index, 0, key)
                continue
            for item, ref in enumerate(items):
                key = item_key(event.tenant, ref.entity, ref.id)
                if groups > 1 and key_group(key, groups) != group:
                    continue
                if item == 0:  # the group of the first item counts the others once
                    extra += len(items) - 1
                outcome = decide(event, ref, key)
                if type(outcome) is Decided:
                    add_reason(outcome.reason)
                else:
                    self._note(out, encode, index, item, key, outcome)
                if began:
                    self._write_history(out, index, item, key)
        out.tally.update(reasons)
        if extra:
            out.tally["extra_items"] += extra
        return out

    @staticmethod
    def _note(
        out: Outputs, encode: Encoder, index: int, item: int, key: str, outcome: Outcome
    ) -> None:
        """A transition or a dead letter of one (event, item)."""
        if type(outcome) is Transition:
            out.transitions.append(Moved(index, item, key, encode(outcome)))
        else:
            out.dead_letters.append(Letter(index, item, key, outcome))  # type: ignore[arg-type]

    def _write_history(self, out: Outputs, index: int, item: int, key: str) -> None:
        """Move the history records of one (event, item) into the parcel's outputs."""
        began, encode = self._began, self.encode_history
        assert began is not None and encode is not None
        out.history.extend(Began(index, item, step, key, encode(e)) for step, e in enumerate(began))
        began.clear()

    def _decide_recording(self, event: Event, ref: ItemRef, key: str) -> Outcome:
        """`decide`, and the stage history records it makes, in order, into `_began`.

        Read from the item's state before and after the decision, so that `decide`
        (and `explain`, which shares it) stays as it is.
        """
        before = self.items.get(key)
        was = None if before is None else (before.category, before.stage)
        outcome = self.decide(event, ref, key)
        if type(outcome) is Rejection or outcome is DUPLICATE:
            return outcome
        began = self._began
        assert began is not None
        etype = event.type
        after = self.items[key]
        if etype == "item.created":
            began.append(self._began_entry(event, ref, "created", after.category, after.stage))
        elif etype == "item.deleted":
            if was is not None and was[1] is not None:
                began.append(self._began_entry(event, ref, "deleted", was[0], was[1], was[1]))
        elif etype == "item.stage_changed":
            if was is None:
                began.append(self._began_entry(event, ref, "created", after.category, after.stage))
            elif (
                was[1] is not None
                and outcome is STAGE_CHANGED
                and (after.category, after.stage) != was
            ):
                began.append(
                    self._began_entry(event, ref, "crm", after.category, after.stage, was[1])
                )
        else:
            if was is None:  # the hint made the item known, on the hinted stage
                stage = ref.stage if type(outcome) is Transition else after.stage
                began.append(self._began_entry(event, ref, "created", after.category, stage))
            if type(outcome) is Transition:
                began.append(
                    self._began_entry(
                        event,
                        ref,
                        "trigger",
                        outcome.category,
                        outcome.to_stage,
                        outcome.from_stage,
                        outcome,
                    )
                )
        return outcome

    def _began_entry(
        self,
        event: Event,
        ref: ItemRef,
        kind: str,
        category: str,
        stage: str | None,
        from_stage: str | None = None,
        move: Transition | None = None,
    ) -> HistoryEntry:
        assert stage is not None
        view = self.table.view(event.tenant, ref.entity, category, event.at)
        semantic = None
        if view is not None:
            position = view.positions.get(stage)
            if position is not None:
                semantic = view.pipeline.stages[position].semantic
        return HistoryEntry(
            id=history_id(event.tenant, ref.entity, ref.id, event.id, kind),
            tenant=event.tenant,
            entity=ref.entity,
            item_id=ref.id,
            category=category,
            stage=stage,
            from_stage=from_stage,
            semantic=semantic,
            kind=kind,
            at=event.occurred_at,
            event_id=event.id,
            event_type=event.type,
            transition_id=None if move is None else move.id,
            trigger_id=None if move is None else move.trigger_id,
            trigger_code=None if move is None else move.trigger_code,
        )

    def decide(self, event: Event, ref: ItemRef, key: str | None = None) -> Outcome:
        """Apply one event to one item it names (`key`: its item key); at most one move."""
        if key is None:
            key = item_key(event.tenant, ref.entity, ref.id)
        state = self.items.get(key)
        mark = fingerprint(event.id)
        etype = event.type
        if state is not None:
            if mark in state.seen and state.has_seen(mark):
                return DUPLICATE
            if not state.deleted and etype not in _LIFECYCLE_ONLY:
                # The hot path: an activity event or a field change for a live item.
                outcome = self._fire(event, ref, state)
                if type(outcome) is not Rejection:
                    state.remember(mark, self.seen_window)
                return outcome
        if etype in _LIFECYCLE_ONLY:
            outcome, state = self._lifecycle(event, ref, state)
        elif state is not None:
            outcome = ITEM_DELETED
        elif ref.stage is None:
            return self.unknown_item(key)
        else:
            state = ItemState(intern(ref.category or "0"), intern(ref.stage))
            outcome = self._fire(event, ref, state)
            if type(outcome) is Rejection:
                return outcome
        state.remember(mark, self.seen_window)
        self.items[key] = state
        return outcome

    @staticmethod
    def unknown_item(key: str) -> Rejection:
        return Rejection(
            "unknown_item",
            f"item {key} is not known and the event carries no stage hint "
            "(item.category and item.stage)",
        )

    @staticmethod
    def unknown_stage(key: str, stage: str, entity: str, category: str) -> Rejection:
        return Rejection(
            "unknown_stage",
            f"item {key} is on stage {stage!r}, which is not in pipeline {entity}/{category}",
        )

    def _lifecycle(
        self, event: Event, ref: ItemRef, state: ItemState | None
    ) -> tuple[Outcome, ItemState]:
        data = event.data
        etype = event.type
        if etype == "item.created":
            fresh = ItemState(
                intern(data.get("category") or ref.category or "0"), intern(data["stage"])
            )
            fresh.set_fields(data.get("fields") or {}, self.table.watched_fields)
            if state is not None:  # still the same item: its retries and echoes are known
                fresh.seen, fresh.echoes = state.seen, state.echoes
            return CREATED, fresh
        if etype == "item.deleted":
            if state is None:
                return DELETED, ItemState(intern(ref.category or "0"), None)
            state.stage, state.fields = None, None
            return DELETED, state
        # item.stage_changed
        if state is None:
            category = data.get("category") or ref.category or "0"
            return STAGE_CHANGED, ItemState(intern(category), intern(data["stage"]))
        if state.deleted:
            return ITEM_DELETED, state
        stage, category = data["stage"], data.get("category")
        echoed = data.get("transition_id")
        if echoed is not None and state.echoes:
            mark = fingerprint(echoed)
            echoes = state.echoes
            for at in range(0, len(echoes), 2):
                if echoes[at] == mark and echoes[at + 1] == stage:
                    return CONFIRMED, state
            if len(echoes) >= 2 * ECHO_WINDOW and mark not in echoes:
                # One of ours older than the memory: later moves of ours supersede it.
                return CONFIRMED, state
        state.stage = intern(stage)
        if category is not None:
            state.category = intern(category)
        return STAGE_CHANGED, state

    def _fire(self, event: Event, ref: ItemRef, state: ItemState) -> Outcome:
        """Steps 2-4: field changes of item.updated, then the first trigger that holds."""
        data = event.data
        etype = event.type
        view = self.table.view(event.tenant, ref.entity, state.category, event.at)
        changes = data.get("changes") if etype == "item.updated" else None
        if view is None:
            if changes:
                self._apply_changes(state, changes)
            return NO_PIPELINE
        position = view.positions.get(state.stage)  # type: ignore[arg-type]
        if position is None:
            key = item_key(event.tenant, ref.entity, ref.id)
            return self.unknown_stage(key, state.stage, ref.entity, state.category)  # type: ignore[arg-type]
        if changes:
            self._apply_changes(state, changes)
        by_code = view.by_code
        observer = self.observer
        if by_code or observer is not None:
            fields: dict[str, Any] | None = None
            for code in codes_for(etype, data):
                if observer is not None:
                    observer.trying(code, view, position)
                for candidate in by_code.get(code, ()):
                    if candidate.position == position or (
                        candidate.position < position and not candidate.trigger.allow_backwards
                    ):
                        if observer is not None:
                            same = candidate.position == position
                            observer.skipped(candidate, SAME_STAGE if same else BACKWARDS, None)
                        continue
                    trigger = candidate.trigger
                    if trigger.params and not params_match(trigger.params, data):
                        if observer is not None:
                            observer.skipped(candidate, PARAMS, None)
                        continue
                    if trigger.condition is not None:
                        if fields is None:
                            fields = state.field_map()
                        if not trigger.condition.holds(fields, data):
                            if observer is not None:
                                observer.skipped(candidate, CONDITION, fields)
                            continue
                    return self._move(event, ref, state, position, candidate)
        return UPDATED if changes is not None else NO_MATCH

    def _move(
        self,
        event: Event,
        ref: ItemRef,
        state: ItemState,
        position: int,
        candidate: Candidate,
    ) -> Transition | Decided:
        trigger = candidate.trigger
        tid = transition_id(event.tenant, ref.entity, ref.id, event.id)
        moved = fingerprint(tid)
        if state.echoes and moved in state.echoes:
            return DUPLICATE  # an old retry of an event that moved the item: never a second move
        move = Transition(
            id=tid,
            tenant=event.tenant,
            entity=ref.entity,
            item_id=ref.id,
            category=state.category,
            from_stage=state.stage,  # type: ignore[arg-type]
            to_stage=trigger.stage,
            direction="forward" if candidate.position > position else "backward",
            trigger_id=trigger.id,
            trigger_code=trigger.code,
            event_id=event.id,
            event_type=event.type,
            occurred_at=event.occurred_at,
        )
        state.stage = trigger.stage
        echoes = (*(state.echoes or ()), moved, trigger.stage)
        state.echoes = echoes[-2 * ECHO_WINDOW :]
        return move

    def _apply_changes(self, state: ItemState, changes: Mapping[str, Any]) -> None:
        watched = self.table.watched_fields
        if not any(name in watched for name in changes):
            return
        values = state.field_map()
        values.update(changes)
        state.set_fields(values, watched)
