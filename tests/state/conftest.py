"""Factory fixtures: records are written as the spec's JSON and parsed at the edge.

Every record goes through `connectors.records.parse_automation` / `parse_event`,
so a test reads like the spec and exercises the same path as the job.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from connectors.records import parse_automation, parse_event
from state.board import Board
from state.model import Decided, Event, Outcome, Rejection
from state.table import TriggerTable

DEAL_STAGES = (
    ("NEW", "process"),
    ("PREPARATION", "process"),
    ("PROPOSAL", "process"),
    ("WON", "success"),
    ("LOSE", "failure"),
)
"""The default pipeline deal/0, in order."""

OCCURRED_AT = "2026-11-25T10:00:00Z"


@pytest.fixture
def pipeline() -> Callable[..., dict[str, Any]]:
    """A pipeline record: deal/0 with DEAL_STAGES unless told otherwise."""

    def make(stages: Any = DEAL_STAGES, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": "pipeline",
            "entity": "deal",
            "category": "0",
            "stages": [{"id": stage, "semantic": semantic} for stage, semantic in stages],
        }
        record.update(fields)
        return record

    return make


@pytest.fixture
def trigger() -> Callable[..., dict[str, Any]]:
    """A trigger record on deal/0: `trigger("t-1", "PREPARATION", "WEBFORM", params=...)`."""

    def make(trigger_id: str, stage: str, code: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": "trigger",
            "id": trigger_id,
            "entity": "deal",
            "category": "0",
            "stage": stage,
            "code": code,
        }
        record.update(fields)
        return record

    return make


@pytest.fixture
def automate() -> Callable[[TriggerTable, dict[str, Any]], Rejection | None]:
    """Parse one automation record and apply it; the Rejection if either refuses it."""

    def apply(table: TriggerTable, raw: dict[str, Any]) -> Rejection | None:
        record = parse_automation(raw)
        if isinstance(record, Rejection):
            return record
        return table.apply(record)

    return apply


@pytest.fixture
def make_table(automate: Callable[..., Rejection | None]) -> Callable[..., TriggerTable]:
    """A table of valid records, applied in order."""

    def make(*records: dict[str, Any], what_if: bool = False) -> TriggerTable:
        table = TriggerTable(what_if=what_if)
        for raw in records:
            rejection = automate(table, raw)
            assert rejection is None, rejection
        return table

    return make


@pytest.fixture
def make_board(
    make_table: Callable[..., TriggerTable], pipeline: Callable[..., dict[str, Any]]
) -> Callable[..., Board]:
    """A Board over the given records; the default pipeline is added when none is given."""

    def make(*records: dict[str, Any], what_if: bool = False, **board: Any) -> Board:
        if not any(r.get("kind") == "pipeline" for r in records):
            records = (pipeline(), *records)
        return Board(make_table(*records, what_if=what_if), **board)

    return make


@pytest.fixture
def event() -> Callable[..., Event]:
    """An event on deal 42 (unless told otherwise), with a fresh id per call."""
    ids = itertools.count(1)

    def make(
        etype: str,
        data: dict[str, Any] | None = None,
        *,
        item: Any = None,
        at: str = OCCURRED_AT,
        **fields: Any,
    ) -> Event:
        raw: dict[str, Any] = {
            "id": f"evt-{next(ids)}",
            "type": etype,
            "occurred_at": at,
        }
        if "items" not in fields:
            raw["item"] = {"entity": "deal", "id": "42"} if item is None else item
        if data is not None:
            raw["data"] = data
        raw.update(fields)
        parsed = parse_event(raw)
        assert isinstance(parsed, Event), parsed
        return parsed

    return make


@pytest.fixture
def decide() -> Callable[[Board, Event], Outcome]:
    """The outcome of a single-item event."""

    def run(board: Board, evt: Event) -> Outcome:
        assert len(evt.items) == 1
        return board.decide(evt, evt.items[0])

    return run


@pytest.fixture
def item_on(
    event: Callable[..., Event], decide: Callable[[Board, Event], Outcome]
) -> Callable[..., None]:
    """Create an item on a stage with `item.created`: `item_on(board, "NEW", fields={...})`."""

    def create(
        board: Board,
        stage: str,
        *,
        fields: dict[str, Any] | None = None,
        category: str = "0",
        item: Any = None,
        at: str = "2026-01-01T00:00:00Z",
        **extra: Any,
    ) -> None:
        data = {"category": category, "stage": stage, "fields": fields or {}}
        outcome = decide(board, event("item.created", data, item=item, at=at, **extra))
        assert outcome == Decided("created")

    return create
