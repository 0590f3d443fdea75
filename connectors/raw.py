"""What a source hands the dataflow: undecoded records with where they came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connectors.deadletter import Origin

AUTOMATION = "automation"
EVENTS = "events"
AUTOMATION_CAUGHT_UP = "automation_caught_up"
"""The stream of the marker batch a live source sends once the automation topic was read
to its end: no group decides an event before it has seen it."""


def origin_of(source: str, partition: int | None, position: int) -> Origin:
    """A file and line when `partition` is None, else a topic, partition and offset."""
    if partition is None:
        return Origin(file=source, line=position)
    return Origin(topic=source, partition=partition, offset=position)


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Records read together from one input (a file, or a topic partition), by column.

    Record i has sequence number `first_seq + i` (its place in the whole input),
    `positions[i]` (line or offset) and bytes `values[i]` (None: a Kafka tombstone).
    """

    stream: str  # AUTOMATION or EVENTS
    source: str  # file path or topic
    partition: int | None
    first_seq: int
    positions: Sequence[int]
    values: Sequence[bytes | None]
    keys: list[bytes | None] | None = None
    timestamps_ms: list[int] | None = None

    def origin(self, index: int) -> Origin:
        return origin_of(self.source, self.partition, self.positions[index])
