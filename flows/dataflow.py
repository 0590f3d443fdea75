"""The job as one Bytewax dataflow, whatever the source and sinks.

    read ──> route ──> decide (per key group) ──> transitions ──> sink
               │              │                   stage history ─> sink (when asked for)
               │              │                   dead letters ─> sink
               │              └─────────────────> tallies ─────> summary
               └─> dead letters (records that are not JSON, not valid)

Events are keyed by a *key group* of their item (crc32 of the item key modulo
a fixed count), not by the item: one Bytewax key per item costs a state object
and a snapshot entry per item, while a group holds a dict of its items.
Automation records go to every group, so every group holds the whole trigger
table and it is part of every group's snapshot. What crosses between workers
is a `Parcel`: the records of one group from one source batch, which pickles
as raw bytes and is decoded again on the other side.
"""

from __future__ import annotations

import pickle
import time
from bisect import insort
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from connectors.deadletter import DeadLetter
from connectors.raw import AUTOMATION, AUTOMATION_CAUGHT_UP, EVENTS, RawBatch, origin_of
from connectors.records import (
    DEFAULT_MAX_RECORD_BYTES,
    decode_automation,
    decode_event,
    history_json,
    transition_json,
)
from connectors.tombstones import tombstone_record
from flows import metrics
from state.board import DEFAULT_SEEN_WINDOW, Board
from state.engine import Engine, key_group
from state.model import NULL_RECORD, Rejection, item_key
from state.native import NativeBoard, is_lines
from state.table import TriggerTable

DLQ_TALLY = {AUTOMATION: "automation_dlq.", EVENTS: "dlq."}
"""Tally names of dead letters, by input: `<prefix><code>`."""

DEFAULT_KEY_GROUPS = 64
"""Fixed for the life of a recovery store: it decides which group owns an item."""


@dataclass(frozen=True)
class FlowSettings:
    key_groups: int = DEFAULT_KEY_GROUPS
    seen_window: int = DEFAULT_SEEN_WINDOW
    what_if: bool = False
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    snapshots: bool = False  # True when a recovery store keeps them
    await_automation: bool = False  # live: decide no event before the automation caught up
    engine: str = "native"  # "native": state.native.NativeBoard; "python": state.board.Board
    history: bool = False  # write the stage history (spec 6.1)
    process_group: int | None = None
    """A replay by several processes (`flows.workers`): each reads every record and
    decides the items of its own key group, this one of `key_groups`."""


group_of = key_group
"""The key group of an item key (`state.engine.key_group`)."""


Entry = tuple[int, int, bytes | None, Any]
"""(seq, position, raw bytes, decoded record or None) of one record."""


class Parcel:
    """The records of one source batch for one key group, by column.

    Record i has sequence number `seqs[i]`, position `positions[i]` (line or offset),
    bytes `raws[i]` and, when routing decoded it, its record `records[i]`. Within a
    process it is handed over as is; between processes it pickles as raw bytes
    only, and the receiving group decodes them again.
    """

    __slots__ = ("group", "partition", "positions", "raws", "records", "seqs", "source", "stream")

    def __init__(
        self,
        group: int,
        stream: str,
        source: str,
        partition: int | None,
        seqs: Sequence[int],
        positions: Sequence[int],
        raws: Sequence[bytes | None],
        records: list[Any] | None = None,
    ) -> None:
        self.group = group
        self.stream = stream
        self.source = source
        self.partition = partition
        self.seqs = seqs
        self.positions = positions
        self.raws = raws
        self.records = records

    @property
    def entries(self) -> list[Entry]:
        return [self.entry(i) for i in range(len(self.raws))]

    def entry(self, index: int) -> Entry:
        record = None if self.records is None else self.records[index]
        return (self.seqs[index], self.positions[index], self.raws[index], record)

    def __reduce__(self) -> tuple[Any, ...]:
        columns = (self.seqs, list(self.positions), self.raws)
        return (Parcel, (self.group, self.stream, self.source, self.partition, *columns))

    def dead_letter(
        self, entry: Entry, rejection: Rejection, item: str | None = None
    ) -> DeadLetter:
        origin = origin_of(self.source, self.partition, entry[1])
        return DeadLetter(rejection.code, rejection.message, entry[2] or b"", origin, item)


@dataclass(slots=True)
class Decisions:
    """What a step decided for a batch: transitions, dead letters, counts, stage history.

    History records are ordered by (seq, item, step): an event's `created` comes
    before its `trigger`.
    """

    transitions: list[tuple[str, tuple[tuple[int, int], bytes]]]
    dead_letters: list[tuple[tuple[int, int], DeadLetter]]
    tally: Counter[str]
    history: list[tuple[str, tuple[tuple[int, int, int], bytes]]] = field(default_factory=list)


def decode(stream: str, raw: bytes | None, max_bytes: int) -> Any:
    """A record's typed value (automation record or event), or a Rejection."""
    if raw is None:
        return NULL_RECORD
    if stream != AUTOMATION:
        return decode_event(raw, max_bytes)
    return decode_automation(raw, max_bytes)


def route(
    batches: list[RawBatch], settings: FlowSettings, engine: Engine | None = None
) -> list[tuple[str, Parcel] | Decisions]:
    """Send each event to its items' groups and automation to all.

    With one group there is nothing to choose: records go on undecoded and the
    group decodes them. A Kafka event keyed by its item (`tenant/entity/id`, the
    topic's contract) that names a single item goes to its key's group undecoded
    too; the group checks the key against the item. Any other event is decoded
    here to find its items, and the decoded record travels with it (within a
    process).
    """
    groups = settings.key_groups
    if settings.process_group is not None:
        return _route_to_own_group(batches, settings.process_group)
    if engine is None:
        engine = new_board(settings)
    rejected = Decisions([], [], Counter())
    out: list[tuple[str, Parcel] | Decisions] = [rejected]
    for batch in batches:
        stream, first_seq = batch.stream, batch.first_seq
        if stream == AUTOMATION_CAUGHT_UP:
            out.extend(
                (str(g), Parcel(g, stream, batch.source, None, [], [], [])) for g in range(groups)
            )
            continue
        if stream == AUTOMATION and None in batch.values:
            batch = without_bad_tombstones(batch, rejected)
        count = len(batch.values)
        rejected.tally[f"{stream}_read"] += count
        source, partition = batch.source, batch.partition
        if stream == AUTOMATION or groups == 1:
            seqs = range(first_seq, first_seq + count)
            values = _kept_values(batch)
            out.extend(
                (str(g), Parcel(g, stream, source, partition, seqs, batch.positions, values))
                for g in range(groups)
            )
            continue
        out.extend(_route_events(engine, batch, settings, rejected))
    return out


def _route_to_own_group(
    batches: list[RawBatch], group: int
) -> list[tuple[str, Parcel] | Decisions]:
    """`route` in one process of several: every record goes on undecoded to this
    process's group, which skips the items of the others; group 0 counts the reads."""
    rejected = Decisions([], [], Counter())
    out: list[tuple[str, Parcel] | Decisions] = [rejected] if group == 0 else []
    for batch in batches:
        if batch.stream == AUTOMATION and None in batch.values:
            batch = without_bad_tombstones(batch, rejected)
        rejected.tally[f"{batch.stream}_read"] += len(batch.values)
        first, count = batch.first_seq, len(batch.values)
        seqs = range(first, first + count)
        parcel = Parcel(
            group,
            batch.stream,
            batch.source,
            batch.partition,
            seqs,
            batch.positions,
            _kept_values(batch),
        )
        out.append((str(group), parcel))
    return out


def _route_events(
    engine: Engine, batch: RawBatch, settings: FlowSettings, rejected: Decisions
) -> list[tuple[str, Parcel]]:
    """`route` of an events batch: the engine places what it can from the bytes.

    The records it leaves are decoded here and go to their items' groups with
    their decoded record (used within this process); each group's parcel keeps
    its records in input order.
    """
    values = _values(batch)
    groups = settings.key_groups
    by_group, unplaced = engine.route(batch.keys, values, groups)
    records: list[Any] | None = None
    for index in unplaced:
        record = _decode_for_route(batch, index, settings, rejected)
        if record is None:
            continue
        if records is None:
            records = [None] * len(values)
        records[index] = record
        for group in _groups_of(record, groups):
            insort(by_group.setdefault(group, []), index)
    first, positions = batch.first_seq, batch.positions
    return [
        (
            str(g),
            Parcel(
                g,
                batch.stream,
                batch.source,
                batch.partition,
                [first + i for i in picked],
                [positions[i] for i in picked],
                [values[i] for i in picked],
                None if records is None else [records[i] for i in picked],
            ),
        )
        for g, picked in by_group.items()
    ]


def _values(batch: RawBatch) -> list[bytes | None]:
    """The batch's records as the list a parcel keeps (sources mostly hand one over)."""
    values = batch.values
    return values if type(values) is list else list(values)


def _kept_values(batch: RawBatch) -> Sequence[bytes | None]:
    """`_values`, but the lines of a block split by the compiled module stay as they are:
    the board reads them in the block (`state.native.split_lines`)."""
    return batch.values if is_lines(batch.values) else _values(batch)


def _decode_for_route(
    batch: RawBatch, index: int, settings: FlowSettings, rejected: Decisions
) -> Any:
    """The event record `index` of a batch, or None once it is counted a dead letter."""
    raw = batch.values[index]
    record = decode(batch.stream, raw, settings.max_record_bytes)
    if type(record) is not Rejection:
        return record
    letter = DeadLetter(record.code, record.message, raw or b"", batch.origin(index))
    rejected.dead_letters.append(((batch.first_seq + index, 0), letter))
    rejected.tally[f"{DLQ_TALLY[batch.stream]}{record.code}"] += 1
    return None


def _groups_of(record: Any, groups: int) -> set[int]:
    return {group_of(item_key(record.tenant, ref.entity, ref.id), groups) for ref in record.items}


def without_bad_tombstones(batch: RawBatch, rejected: Decisions) -> RawBatch:
    """The batch less the tombstones its source could not read as deletions: dead letters.

    A source turns a tombstone into its deletion record; one left as None has a key
    that names no automation record, and only the batch still knows that key.
    """
    keep = []
    for i, value in enumerate(batch.values):
        if value is not None:
            keep.append(i)
            continue
        key = batch.keys[i] if batch.keys else None
        stamp = batch.timestamps_ms[i] if batch.timestamps_ms else -1
        found = tombstone_record(key, stamp)
        rejection = (
            found
            if type(found) is Rejection
            else Rejection("invalid_automation", f"tombstone with key {key!r} was not read")
        )
        letter = DeadLetter(rejection.code, rejection.message, b"", batch.origin(i))
        rejected.dead_letters.append(((batch.first_seq + i, 0), letter))
        rejected.tally[f"{DLQ_TALLY[AUTOMATION]}{rejection.code}"] += 1
        rejected.tally[f"{AUTOMATION}_read"] += 1

    def pick(column: Sequence[Any] | None) -> list[Any] | None:
        return None if column is None else [column[i] for i in keep]

    return RawBatch(
        batch.stream,
        batch.source,
        batch.partition,
        batch.first_seq,
        [batch.positions[i] for i in keep],
        [batch.values[i] for i in keep],
        pick(batch.keys),
        pick(batch.timestamps_ms),
    )


def new_board(settings: FlowSettings) -> Engine:
    """An empty board of the chosen engine."""
    table = TriggerTable(settings.what_if)
    board: Engine
    if settings.engine == "python":
        board = Board(
            table, settings.seen_window, decode_event, transition_json, settings.max_record_bytes
        )
    else:
        board = NativeBoard(table, decode_event, settings.seen_window, settings.max_record_bytes)
    board.write_history(history_json if settings.history else None)
    return board


class GroupLogic(StatefulBatchLogic[Parcel, Decisions, bytes | None]):
    """The state of one key group: a Board of its items and the whole trigger table.

    With `await_automation`, events wait in `pending` (part of the snapshot), in
    arrival order, until the group sees this execution's automation-caught-up
    marker; automation is applied as it comes. `ready` is not snapshotted: after a
    restart the automation written while the job was down is read before events.
    """

    def __init__(self, settings: FlowSettings, resume: bytes | None) -> None:
        self.settings = settings
        self.pending: list[Parcel] = []
        if resume is None:
            self.board = new_board(settings)
        else:
            self.board, self.pending = pickle.loads(resume)
            # Whether to write it is this run's setting, not the snapshot's.
            self.board.write_history(history_json if settings.history else None)
        self.ready = not settings.await_automation

    def on_batch(self, values: list[Parcel]) -> tuple[Iterable[Decisions], bool]:
        caught_up = False
        if not self.ready or any(p.stream == AUTOMATION_CAUGHT_UP for p in values):
            values, caught_up = self._hold_events(values)
        decisions = decide_parcels(self.board, values, self.settings)
        if caught_up:
            decisions.tally["automation_caught_up"] += 1
        return [decisions], StatefulBatchLogic.RETAIN

    def _hold_events(self, values: list[Parcel]) -> tuple[list[Parcel], bool]:
        """The parcels to decide now; whether this batch brought the marker (to group 0)."""
        now: list[Parcel] = []
        caught_up = False
        for parcel in values:
            if parcel.stream == AUTOMATION_CAUGHT_UP:
                if not self.ready:
                    self.ready = True
                    metrics.JOB.automation_caught_up()  # each process: its readiness
                    now.extend(self.pending)
                    self.pending = []
                    caught_up = parcel.group == 0  # every group sees it; one reports it
            elif self.ready or parcel.stream == AUTOMATION:
                now.append(parcel)
            else:
                self.pending.append(parcel)
        return now, caught_up

    def snapshot(self) -> bytes | None:
        metrics.JOB.group_items(id(self), len(self.board))  # sampled once per epoch
        if not self.settings.snapshots:
            # Bytewax asks for snapshots at every epoch even without recovery.
            return None
        # Pickled now: the board keeps changing after this returns.
        started = time.perf_counter()
        data = pickle.dumps((self.board, self.pending), protocol=pickle.HIGHEST_PROTOCOL)
        metrics.JOB.snapshot_taken(len(data), time.perf_counter() - started)
        return data


def decide_parcels(board: Engine, parcels: list[Parcel], settings: FlowSettings) -> Decisions:
    """Apply automation and decide events, in arrival order, for one group."""
    out = Decisions([], [], Counter())
    dlq = DLQ_TALLY[EVENTS]
    for parcel in parcels:
        if parcel.stream == AUTOMATION:
            _apply_automation(board, parcel, out, settings)
            continue
        decided = board.decide_parcel(
            parcel.raws,
            parcel.records,
            parcel.group,
            settings.key_groups,
            shared=settings.process_group is not None,
        )
        seqs = parcel.seqs
        if decided.transitions:
            out.tally["transition"] += len(decided.transitions)
            out.transitions.extend(
                (key, ((seqs[index], item), line)) for index, item, key, line in decided.transitions
            )
        if decided.history:
            out.tally["history"] += len(decided.history)
            out.history.extend(
                (key, ((seqs[index], item, step), line))
                for index, item, step, key, line in decided.history
            )
        for index, item, key, rejection in decided.dead_letters:
            entry = parcel.entry(index)
            out.tally[f"{dlq}{rejection.code}"] += 1
            out.dead_letters.append(((entry[0], item), parcel.dead_letter(entry, rejection, key)))
        out.tally.update(decided.tally)
    return out


def _apply_automation(
    board: Engine, parcel: Parcel, out: Decisions, settings: FlowSettings
) -> None:
    for entry in parcel.entries:
        record = entry[3]
        if record is None:
            record = decode(AUTOMATION, entry[2], settings.max_record_bytes)
        rejection = record if type(record) is Rejection else board.apply(record)
        if parcel.group != 0:  # every group applies it; one reports it
            continue
        if rejection is None:
            out.tally["automation_applied"] += 1
        else:
            out.tally[f"{DLQ_TALLY[AUTOMATION]}{rejection.code}"] += 1
            out.dead_letters.append(((entry[0], 0), parcel.dead_letter(entry, rejection)))


Output = tuple[str, tuple[tuple[int, ...], str, bytes]]
"""(item key or "", (order, item key or "", JSON line)) of one output record. The key
is in the value too: a partitioned sink (Kafka) is handed the values only."""


def transitions_of(decisions: Decisions) -> list[Output]:
    return [(key, (order, key, line)) for key, (order, line) in decisions.transitions]


def history_of(decisions: Decisions) -> list[Output]:
    return [(key, (order, key, line)) for key, (order, line) in decisions.history]


def dead_letters_of(decisions: Decisions) -> list[Output]:
    out: list[Output] = []
    for order, letter in decisions.dead_letters:
        key = letter.item or ""
        out.append((key, (order, key, letter.to_json())))
    return out


def tally_of(decisions: Decisions) -> tuple[str, Counter[str]]:
    return ("summary", decisions.tally)


def _is_decisions(x: tuple[str, Parcel] | Decisions) -> TypeGuard[Decisions]:
    return isinstance(x, Decisions)


def build_flow(
    source: Source[RawBatch],
    transitions: Sink[Output],
    dead_letters: Sink[Output],
    summary: Sink[tuple[str, Counter[str]]],
    settings: FlowSettings,
    history: Sink[Output] | None = None,
) -> Dataflow:
    """The job: `source` of raw batches in; transitions, dead letters and counts out,
    and the stage history to `history` when `settings.history` asks for it."""
    flow = Dataflow("crm_triggers")
    raw = op.input("read", flow, source)
    router = new_board(settings)  # routes only: its table stays empty
    routed = op.flat_map_batch("route", raw, partial(route, settings=settings, engine=router))
    split = op.branch("split", routed, _is_decisions)
    decided = op.stateful_batch(
        "decide",
        split.falses,  # type: ignore[arg-type]
        lambda resume: GroupLogic(settings, resume),
    )
    all_decisions = op.merge("all_decisions", split.trues, op.key_rm("unkey", decided))
    op.output(
        "transitions", op.flat_map("transitions_of", all_decisions, transitions_of), transitions
    )
    if settings.history:
        if history is None:
            raise ValueError("build_flow: settings.history needs a history sink")
        op.output("history", op.flat_map("history_of", all_decisions, history_of), history)
    op.output(
        "dead_letters", op.flat_map("dead_letters_of", all_decisions, dead_letters_of), dead_letters
    )
    op.output("summary", op.map("tally_of", all_decisions, tally_of), summary)
    return flow
