"""The plain sequential application of `state/` that the dataflow must agree with."""

from __future__ import annotations

from typing import Any

import orjson

from connectors.records import load_json, parse_automation, parse_event, transition_json
from state.board import Board
from state.model import Event, Rejection, Transition
from state.table import TriggerTable


def decide_sequentially(
    automation: list[bytes], events: list[bytes], what_if: bool = False
) -> list[dict[str, Any]]:
    """Transitions of one Board over the whole input, one record after another."""
    table = TriggerTable(what_if)
    for raw in automation:
        obj = load_json(raw)
        record = obj if isinstance(obj, Rejection) else parse_automation(obj)
        if not isinstance(record, Rejection):
            table.apply(record)
    board = Board(table)
    out = []
    for raw in events:
        obj = load_json(raw)
        event = obj if isinstance(obj, Rejection) else parse_event(obj)
        if not isinstance(event, Event):
            continue
        for ref in event.items:
            outcome = board.decide(event, ref)
            if isinstance(outcome, Transition):
                out.append(orjson.loads(transition_json(outcome)))
    return out
