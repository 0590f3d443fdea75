"""Domain values: stages, pipelines, triggers, events, transitions.

Everything here is a plain immutable value, built once at the edge
(`connectors`) and read by the decision procedure (`state.board`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from state.conditions import Condition

BEGINNING = datetime.min.replace(tzinfo=UTC)
"""The `updated_at` of an automation record that has none: in force from the start."""

END = datetime.max.replace(tzinfo=UTC)

SEMANTICS = frozenset({"process", "success", "failure"})

TRANSITION_NAMESPACE = uuid.UUID("5b1f3c2e-8d4a-4f0e-9c6b-2a7e1d9f4b30")
"""uuid5 namespace of transition ids; changing it changes every id ever emitted."""


@dataclass(frozen=True, slots=True)
class Stage:
    id: str
    semantic: str


@dataclass(frozen=True, slots=True)
class Pipeline:
    """An ordered list of stages of one (tenant, entity, category)."""

    tenant: str
    entity: str
    category: str
    stages: tuple[Stage, ...]
    updated_at: datetime = BEGINNING
    positions: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", {s.id: i for i, s in enumerate(self.stages)})


@dataclass(frozen=True, slots=True)
class Trigger:
    """A condition on one stage: when an event meets it, the item moves there."""

    tenant: str
    id: str
    entity: str
    category: str
    stage: str
    code: str
    params: Mapping[str, Any]
    allow_backwards: bool = False
    sort: int = 0
    condition: Condition | None = None
    updated_at: datetime = BEGINNING


@dataclass(frozen=True, slots=True)
class Deletion:
    """A deleted trigger or pipeline: from `updated_at` on, it does not exist."""

    kind: str  # "trigger" or "pipeline"
    tenant: str
    key: tuple[str, ...]  # (id,) for a trigger, (entity, category) for a pipeline
    updated_at: datetime = BEGINNING


AutomationRecord = Pipeline | Trigger | Deletion


class ItemRef(NamedTuple):
    """An item an event names; `category` and `stage` are a hint for unknown items."""

    entity: str
    id: str
    category: str | None = None
    stage: str | None = None


class Event(NamedTuple):
    """One CRM event. A NamedTuple, not a dataclass: it is built once per record on
    the hot path, where a frozen dataclass costs several times as much."""

    id: str
    type: str
    tenant: str
    occurred_at: str  # as received, echoed in transitions
    at: datetime
    items: tuple[ItemRef, ...]
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Transition:
    """One move of one item, decided by one trigger for one event."""

    id: str
    tenant: str
    entity: str
    item_id: str
    category: str
    from_stage: str
    to_stage: str
    direction: str
    trigger_id: str
    trigger_code: str
    event_id: str
    event_type: str
    occurred_at: str


@dataclass(frozen=True, slots=True)
class Decided:
    """An (event, item) that took effect without a move; `reason` names how."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """An (event, item) or automation record that cannot take effect: a dead letter."""

    code: str
    message: str


Outcome = Transition | Decided | Rejection

NULL_RECORD = Rejection("invalid_record", "empty record (a null value)")
"""What a record without bytes (a Kafka tombstone on the events topic) is."""


def item_key(tenant: str, entity: str, item_id: str) -> str:
    """The item's key: also the Kafka key of its events and transitions."""
    return f"{tenant}/{entity}/{item_id}"


def misrouted(key: str) -> Rejection:
    """Why an event keyed to one key group names an item of another."""
    return Rejection(
        "invalid_record",
        f"Kafka key: the record's key does not name its item {key} (expected the key "
        f"{key!r}: events are keyed tenant/entity/id of their item)",
    )


def transition_id(tenant: str, entity: str, item_id: str, event_id: str) -> str:
    """A pure function of (tenant, entity, item id, event id), so replays repeat it."""
    return str(uuid.uuid5(TRANSITION_NAMESPACE, f"{tenant}\x1f{entity}\x1f{item_id}\x1f{event_id}"))
