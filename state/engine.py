"""The seam between the dataflow and a decision engine.

Two engines decide the same way: `state.board.Board` (Python, the reference) and
`state.native.NativeBoard` (compiled). The dataflow sees only `Engine`: it routes a
batch of raw records to key groups, applies automation records, decides a parcel
of event records, and is pickled into a snapshot and back.

What an engine decides for a parcel is an `Outputs` of named outputs. A new kind of
output (say, the stage history) is one more field here, filled by both engines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from zlib import crc32

from state.model import AutomationRecord, Event, HistoryEntry, Rejection, Transition

Decoder = Callable[[bytes, int], Event | Rejection]
"""bytes, max record bytes -> the event or why it is not one (`connectors.records.decode_event`)."""

Encoder = Callable[[Transition], bytes]
"""A transition as its JSON line (`connectors.records.transition_json`)."""

HistoryEncoder = Callable[[HistoryEntry], bytes]
"""A stage history record as its JSON line (`connectors.records.history_json`)."""

Routes = tuple[dict[int, list[int]], list[int]]
"""Record indexes by key group (in input order), and the indexes left for the caller."""


class Moved(NamedTuple):
    """A transition: of record `record`, its item `item` (key `key`), as its JSON line."""

    record: int
    item: int
    key: str
    line: bytes


class Began(NamedTuple):
    """A stage history record (spec 6.1) of record `record`, item `item` (key `key`),
    as its JSON line; `step` orders the records of one (record, item): 0, 1."""

    record: int
    item: int
    step: int
    key: str
    line: bytes


class Letter(NamedTuple):
    """A dead letter of record `record` (item `item`, key `key`; None: the whole record)."""

    record: int
    item: int
    key: str | None
    rejection: Rejection


@dataclass(slots=True)
class Outputs:
    """What an engine decided for a parcel of event records, output by output."""

    transitions: list[Moved] = field(default_factory=list)
    dead_letters: list[Letter] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)
    """Outcomes that are not moves, by reason (`state.board.REASONS`), and extra_items."""
    history: list[Began] = field(default_factory=list)
    """Stage history records, when the engine was asked to write them (else empty)."""


class Engine(Protocol):
    """A key group's decision engine, as the dataflow drives it."""

    def route(
        self, keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
    ) -> Routes:
        """Which key groups records go to, as far as the engine can tell from their bytes."""
        ...

    def apply(self, record: AutomationRecord) -> Rejection | None:
        """Apply an automation record to the trigger table."""
        ...

    def write_history(self, encode: HistoryEncoder | None) -> None:
        """Fill `Outputs.history` from now on, lines written as `encode` writes them;
        None: leave it empty (no cost)."""
        ...

    def decide_parcel(
        self,
        raws: Sequence[bytes | None],
        records: Sequence[Any] | None,
        group: int,
        groups: int,
        shared: bool = False,
    ) -> Outputs:
        """Decide event records of key group `group` in order; `records[i]`, when not
        None, is record i already decoded (by the router, in this process).

        `shared`: every worker was handed every record (a replay by several processes);
        this one decides its group's items and skips the others, and a record rejected
        whole before its items are known is reported by group 0 only."""
        ...

    def __len__(self) -> int: ...

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as picklable values (also its `__getstate__`)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Become the engine a snapshot was taken of (also its `__setstate__`)."""
        ...


def key_group(key: str, groups: int) -> int:
    """The key group of an item key: stable across processes, runs and both engines."""
    return crc32(key.encode()) % groups


def route_by_keys(
    keys: Sequence[bytes | None] | None, raws: list[bytes | None], groups: int
) -> Routes:
    """Records keyed by their single item (the Kafka key `tenant/entity/id`, no `"items"`)
    go to their key's group undecoded; every other record is left for the caller."""
    by_group: dict[int, list[int]] = {}
    left: list[int] = []
    if keys is None:
        return by_group, list(range(len(raws)))
    for index, (key, raw) in enumerate(zip(keys, raws, strict=True)):
        if key and raw is not None and b'"items"' not in raw:
            by_group.setdefault(crc32(key) % groups, []).append(index)  # = key_group
        else:
            left.append(index)
    return by_group, left
