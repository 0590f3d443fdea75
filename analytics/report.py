"""The report of spec 6.3: every figure of 6.2 in the JSON shape of `report --format json`.

The text, CSV and HTML renderings are made from this one object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import duckdb

from analytics import figures
from analytics.automation import AutomationAsOf, automation_as_of
from analytics.figures import Scope
from analytics.load import Skipped, load_history, load_transitions

Report = dict[str, Any]


@dataclass(frozen=True)
class ReportInputs:
    history: Sequence[str]
    transitions: Sequence[str] = ()
    automation: Sequence[str] = ()


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, to the second (or finer when the input was)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    text = value.isoformat() + "Z"
    return text.replace("+00:00", "Z")


def _number(value: Any, digits: int = 3) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return round(value, digits)
    return value


def build_report(
    db: duckdb.DuckDBPyConnection, inputs: ReportInputs, scope: Scope, skipped: Skipped
) -> Report:
    """Load the inputs into `db` and compute every figure.

    Times given in `scope` are naive UTC (the tables hold UTC times without zone)."""
    load_history(db, inputs.history, skipped)
    if inputs.transitions:
        load_transitions(db, inputs.transitions, skipped)
    as_of = figures.keep(db, scope)
    automation: AutomationAsOf | None = None
    if inputs.automation:
        automation = automation_as_of(inputs.automation, as_of)
        skipped.add("automation records the job would reject", automation.rejected)
    figures.derive(db, scope, as_of, automation, bool(inputs.transitions))
    return {
        "as_of": iso(as_of),
        "window": {"from": iso(scope.start), "to": iso(scope.end)},
        "tenant": scope.tenant,
        "stalled_after_s": scope.stalled_s,
        "pipelines": _pipelines(db),
        "triggers": _triggers(db),
        "never_fired": _never_fired(db, automation, scope),
        "stalled": [
            {**row, "since": iso(row["since"]), "age_s": _number(row["age_s"])}
            for row in figures.stalled(db, scope.stalled_s)
        ],
        "cohorts": [
            {
                "tenant": row["tenant"],
                "entity": row["entity"],
                "category": row["category"],
                "week": row["week"].date().isoformat(),
                "items": row["items"],
                "reached_success_share": _number(row["reached_success_share"], 4),
                "on_failure_share": _number(row["on_failure_share"], 4),
                "median_days_to_success": _number(row["median_days_to_success"], 2),
            }
            for row in figures.cohorts(db)
        ],
        "skipped": dict(skipped.counts),
    }


PipelineKey = tuple[str, str, str]


def _by_pipeline(rows: list[dict]) -> dict[PipelineKey, list[dict]]:
    grouped: dict[PipelineKey, list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["tenant"], row["entity"], row["category"]), []).append(row)
    return grouped


def _pipelines(db: duckdb.DuckDBPyConnection) -> list[dict]:
    order = _by_pipeline(
        figures._rows(db, "SELECT * FROM stage_order ORDER BY tenant, entity, category, position")
    )
    entered = {
        (r["tenant"], r["entity"], r["category"], r["stage"]): r["entered"]
        for r in figures.entered(db)
    }
    reached = {
        (r["tenant"], r["entity"], r["category"], r["stage"]): r["reached"]
        for r in figures.reached(db)
    }
    stays = {
        (r["tenant"], r["entity"], r["category"], r["stage"]): r for r in figures.time_in_stage(db)
    }
    moves = _by_pipeline(figures.moves(db))
    rates = {
        (r["tenant"], r["entity"], r["category"]): r["backward_rate"]
        for r in figures.backward_rate(db)
    }
    result = []
    for pipeline in figures.pipelines(db):
        key: PipelineKey = (pipeline["tenant"], pipeline["entity"], pipeline["category"])
        stages = []
        for stage in order.get(key, []):
            name = (*key, stage["stage"])
            time = stays.get(name, {})
            stages.append(
                {
                    "stage": stage["stage"],
                    "semantic": stage["semantic"],
                    "entered": entered.get(name, 0),
                    "reached": None if stage["semantic"] == "failure" else reached.get(name, 0),
                    "conversion_to_next": None,
                    "stays": {
                        "closed": time.get("closed", 0),
                        "mean_s": _number(time.get("mean_s")),
                        "p50_s": _number(time.get("p50_s")),
                        "p90_s": _number(time.get("p90_s")),
                        "open": time.get("open", 0),
                        "open_p50_age_s": _number(time.get("open_p50_age_s")),
                    },
                }
            )
        _conversions(stages)
        result.append(
            {
                **pipeline,
                "stages": stages,
                "moves": [
                    {"from": m["from"], "to": m["to"], "kind": m["kind"], "count": m["count"]}
                    for m in moves.get(key, [])
                ],
                "backward_rate": _number(rates.get(key), 4),
            }
        )
    return result


def _conversions(stages: list[dict]) -> None:
    """Conversion S to next = Reached(next) / Reached(S), over the non-failure stages."""
    funnel = [s for s in stages if s["semantic"] != "failure"]
    for stage, following in pairwise(funnel):
        if stage["reached"]:
            stage["conversion_to_next"] = round(following["reached"] / stage["reached"], 4)


def _triggers(db: duckdb.DuckDBPyConnection) -> list[dict]:
    return [
        {**row, "first_at": iso(row["first_at"]), "last_at": iso(row["last_at"])}
        for row in figures.trigger_effectiveness(db)
    ]


def _never_fired(
    db: duckdb.DuckDBPyConnection, automation: AutomationAsOf | None, scope: Scope
) -> list[dict] | None:
    """With --automation: the triggers in force at as-of that never fired in the window."""
    if automation is None:
        return None
    fired = figures.fired_ids(db)
    return [
        {
            "tenant": t.tenant,
            "id": t.id,
            "code": t.code,
            "entity": t.entity,
            "category": t.category,
            "stage": t.stage,
        }
        for (tenant, trigger_id), t in sorted(automation.triggers.items())
        if (scope.tenant is None or tenant == scope.tenant) and (tenant, trigger_id) not in fired
    ]
