"""Factories for small hand-written history, transition and automation logs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from analytics.figures import Scope
from analytics.load import Skipped, connect
from analytics.report import Report, ReportInputs, build_report
from tests.conftest import jsonl

DAY = 86400.0
HOUR = 3600.0

STAGES = [
    ("NEW", "process"),
    ("A", "process"),
    ("B", "process"),
    ("WON", "success"),
    ("LOSE", "failure"),
]
SEMANTICS = dict(STAGES)


def at(day: float, hour: float = 0.0) -> str:
    """2026-11-02 (a Monday) + days and hours, as RFC 3339."""
    seconds = int(day * DAY + hour * HOUR)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"2026-11-{2 + d:02d}T{h:02d}:{m:02d}:{s:02d}Z"


def record(
    item: str,
    kind: str,
    stage: str,
    when: str,
    from_stage: str | None = None,
    trigger: str | None = None,
    tenant: str = "acme",
    entity: str = "deal",
    category: str = "0",
    event: str | None = None,
) -> dict[str, Any]:
    """One history record of spec 6.1."""
    event_id = event or f"e-{item}-{kind}-{when}"
    return {
        "id": f"h-{tenant}-{item}-{event_id}-{kind}",
        "tenant": tenant,
        "item": {"entity": entity, "id": item},
        "category": category,
        "stage": stage,
        "from_stage": from_stage,
        "semantic": SEMANTICS.get(stage),
        "kind": kind,
        "at": when,
        "event": {"id": event_id, "type": "x"},
        "transition_id": f"t-{event_id}" if kind == "trigger" else None,
        "trigger": None if trigger is None else {"id": trigger, "code": "WEBFORM"},
    }


def transition_of(history: dict[str, Any], direction: str = "forward") -> dict[str, Any]:
    """The transition (spec 2.3) behind a `trigger` history record."""
    return {
        "id": history["transition_id"],
        "tenant": history["tenant"],
        "item": history["item"],
        "category": history["category"],
        "from_stage": history["from_stage"],
        "to_stage": history["stage"],
        "direction": direction,
        "trigger": history["trigger"],
        "event": {"id": history["event"]["id"], "type": "x", "occurred_at": history["at"]},
    }


def pipeline(
    tenant: str = "acme", entity: str = "deal", category: str = "0", stages: Any = None
) -> dict[str, Any]:
    return {
        "kind": "pipeline",
        "tenant": tenant,
        "entity": entity,
        "category": category,
        "stages": [{"id": s, "semantic": m} for s, m in (stages or STAGES)],
        "updated_at": "2026-10-01T00:00:00Z",
    }


def trigger(trigger_id: str, stage: str, tenant: str = "acme", **more: Any) -> dict[str, Any]:
    return {
        "kind": "trigger",
        "tenant": tenant,
        "id": trigger_id,
        "entity": "deal",
        "category": "0",
        "stage": stage,
        "code": "WEBFORM",
        "params": {},
        "updated_at": "2026-10-01T00:00:00Z",
        **more,
    }


Write = Callable[[str, Iterable[Any]], str]
MakeReport = Callable[..., Report]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write records (dicts, or bytes kept as they are) to a JSON Lines file; its path."""

    def run(name: str, lines: Iterable[Any]) -> str:
        path = tmp_path / name
        path.write_bytes(jsonl(lines))
        return str(path)

    return run


@pytest.fixture
def make_report(write: Write) -> MakeReport:
    """The report object over in-memory records."""

    def run(
        history: Iterable[Any],
        transitions: Iterable[Any] | None = None,
        automation: Iterable[Any] | None = None,
        **scope: Any,
    ) -> Report:
        inputs = ReportInputs(
            history=[write("history.jsonl", history)],
            transitions=[] if transitions is None else [write("transitions.jsonl", transitions)],
            automation=[] if automation is None else [write("automation.jsonl", automation)],
        )
        return build_report(connect(), inputs, Scope(**scope), Skipped())

    return run


def stage_of(report: Report, stage: str, index: int = 0) -> dict[str, Any]:
    return next(s for s in report["pipelines"][index]["stages"] if s["stage"] == stage)
