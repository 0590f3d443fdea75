"""`crm-triggers diff`: what changed between two transition logs (spec 6.3).

Transitions are joined by `id` (the same event for the same item has the same
id in both): added, removed, changed (same id, other stage or trigger),
unchanged. Then fires gained and lost per trigger, the change of the from/to
matrix, and, with both histories, the items whose last stage differs and the
change in Reached and time in stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from analytics.figures import Scope, _rows
from analytics.load import Skipped, connect, load_history, load_transitions
from analytics.render import count, pipeline_cell, stage_change_cells, table, trigger_change_cells
from analytics.report import ReportInputs, build_report, iso

ITEMS_SHOWN = 20


@dataclass(frozen=True)
class DiffInputs:
    base: Sequence[str]
    other: Sequence[str]
    base_history: Sequence[str] | None = None
    other_history: Sequence[str] | None = None


@dataclass
class Diff:
    summary: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)


def to_json_line(record: dict[str, Any]) -> str:
    return orjson.dumps(record).decode() + "\n"


def build_diff(db: duckdb.DuckDBPyConnection, inputs: DiffInputs, skipped: Skipped) -> Diff:
    for side, paths in (("base", inputs.base), ("other", inputs.other)):
        load_transitions(db, paths, skipped, table=f"{side}_log")
        db.execute(f"CREATE VIEW {side} AS SELECT rowid AS seq, * FROM {side}_log WHERE valid")
    _joined(db)
    summary: dict[str, Any] = {
        "transitions": _counts(db),
        "triggers": _trigger_changes(db),
        "moves": _move_changes(db),
        "stage_order": _stage_order(db),
        "history": None,
    }
    items = _changed_items(db)
    summary["transitions"]["items_changed"] = len(items)
    if inputs.base_history is not None and inputs.other_history is not None:
        summary["history"] = _history_changes(
            db, inputs.base_history, inputs.other_history, skipped
        )
    return Diff(summary, items)


def _joined(db: duckdb.DuckDBPyConnection) -> None:
    """Table `joined`: one row per transition id of either log, with its status."""
    db.execute(
        """
        CREATE OR REPLACE TABLE joined AS
        SELECT coalesce(o.id, b.id) AS id,
               coalesce(o.tenant, b.tenant) AS tenant,
               coalesce(o.entity, b.entity) AS entity,
               coalesce(o.item_id, b.item_id) AS item_id,
               coalesce(o.event_id, b.event_id) AS event_id,
               coalesce(o."at", b."at") AS "at",
               b.category AS base_category, b.from_stage AS base_from, b.to_stage AS base_to,
               b.trigger_id AS base_trigger, b.trigger_code AS base_code,
               o.category AS other_category, o.from_stage AS other_from, o.to_stage AS other_to,
               o.trigger_id AS other_trigger, o.trigger_code AS other_code,
               CASE WHEN b.id IS NULL THEN 'added'
                    WHEN o.id IS NULL THEN 'removed'
                    WHEN b.to_stage IS DISTINCT FROM o.to_stage
                      OR b.trigger_id IS DISTINCT FROM o.trigger_id THEN 'changed'
                    ELSE 'unchanged' END AS status,
               coalesce(b.seq, o.seq) AS seq
        FROM (SELECT DISTINCT ON (id) * FROM base ORDER BY id, seq) b
        FULL OUTER JOIN (SELECT DISTINCT ON (id) * FROM other ORDER BY id, seq) o
             ON b.id = o.id
        """
    )


def _counts(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = _rows(
        db,
        """
        SELECT (SELECT count(*) FROM base) AS base, (SELECT count(*) FROM other) AS other,
               count(*) FILTER (WHERE status = 'added') AS added,
               count(*) FILTER (WHERE status = 'removed') AS removed,
               count(*) FILTER (WHERE status = 'changed') AS changed,
               count(*) FILTER (WHERE status = 'unchanged') AS unchanged
        FROM joined
        """,
    )[0]
    return dict(row)


def _trigger_changes(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Fires gained and lost per trigger (triggers whose count changed)."""
    return _rows(
        db,
        """
        WITH fires AS (
            SELECT tenant, trigger_id, trigger_code, 1 AS base, 0 AS other FROM base
            UNION ALL
            SELECT tenant, trigger_id, trigger_code, 0, 1 FROM other
        )
        SELECT tenant, trigger_id AS id, any_value(trigger_code) AS code,
               sum(base)::BIGINT AS base, sum(other)::BIGINT AS other,
               (sum(other) - sum(base))::BIGINT AS delta
        FROM fires GROUP BY tenant, trigger_id
        HAVING sum(other) <> sum(base)
        ORDER BY abs(sum(other) - sum(base)) DESC, tenant, id
        """,
    )


def _move_changes(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """The change of the from/to matrix of transitions, per pipeline."""
    return _rows(
        db,
        """
        WITH cells AS (
            SELECT tenant, entity, category, from_stage, to_stage, 1 AS base, 0 AS other
            FROM base
            UNION ALL
            SELECT tenant, entity, category, from_stage, to_stage, 0, 1 FROM other
        )
        SELECT tenant, entity, category, from_stage AS "from", to_stage AS "to",
               sum(base)::BIGINT AS base, sum(other)::BIGINT AS other,
               (sum(other) - sum(base))::BIGINT AS delta
        FROM cells GROUP BY ALL
        HAVING sum(other) <> sum(base)
        ORDER BY tenant, entity, category, abs(sum(other) - sum(base)) DESC, "from", "to"
        """,
    )


def _stage_order(db: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Per pipeline (`tenant/entity/category`), its stages by first appearance in the logs."""
    rows = _rows(
        db,
        """
        WITH named AS (
            SELECT tenant, entity, category, from_stage AS stage, seq FROM base
            UNION ALL SELECT tenant, entity, category, to_stage, seq FROM base
            UNION ALL SELECT tenant, entity, category, from_stage, seq FROM other
            UNION ALL SELECT tenant, entity, category, to_stage, seq FROM other
        )
        SELECT tenant || '/' || entity || '/' || category AS pipeline, stage, min(seq) AS first
        FROM named WHERE stage IS NOT NULL GROUP BY ALL ORDER BY pipeline, first, stage
        """,
    )
    order: dict[str, list[str]] = {}
    for row in rows:
        order.setdefault(row["pipeline"], []).append(row["stage"])
    return order


def _changed_items(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Each item with a transition that is not in both logs alike, and its first
    differing event (earliest `occurred_at`, then input order)."""
    rows = _rows(
        db,
        """
        SELECT DISTINCT ON (tenant, entity, item_id)
               tenant, entity, item_id, event_id, "at", status,
               base_from, base_to, base_trigger, base_code,
               other_from, other_to, other_trigger, other_code
        FROM joined WHERE status <> 'unchanged'
        ORDER BY tenant, entity, item_id, "at", seq
        """,
    )
    return [
        {
            "tenant": r["tenant"],
            "item": {"entity": r["entity"], "id": r["item_id"]},
            "change": r["status"],
            "event": {"id": r["event_id"], "occurred_at": iso(r["at"])},
            "base": _move(r, "base"),
            "other": _move(r, "other"),
        }
        for r in rows
    ]


def _move(row: dict, side: str) -> dict | None:
    if row[f"{side}_to"] is None:
        return None
    return {
        "from_stage": row[f"{side}_from"],
        "to_stage": row[f"{side}_to"],
        "trigger": {"id": row[f"{side}_trigger"], "code": row[f"{side}_code"]},
    }


def _history_changes(
    db: duckdb.DuckDBPyConnection, base: Sequence[str], other: Sequence[str], skipped: Skipped
) -> dict[str, Any]:
    for side, paths in (("base", base), ("other", other)):
        load_history(db, paths, skipped, table=f"{side}_history_log")
        db.execute(
            f"CREATE VIEW {side}_history AS "
            f"SELECT rowid AS seq, * FROM {side}_history_log WHERE valid"
        )
    last = _rows(
        db,
        """
        WITH last_base AS (
            SELECT tenant, entity, item_id,
                   arg_max(CASE WHEN kind = 'deleted' THEN '(deleted)' ELSE stage END, seq)
                       AS stage
            FROM base_history GROUP BY ALL
        ),
        last_other AS (
            SELECT tenant, entity, item_id,
                   arg_max(CASE WHEN kind = 'deleted' THEN '(deleted)' ELSE stage END, seq)
                       AS stage
            FROM other_history GROUP BY ALL
        )
        SELECT tenant, entity, item_id AS id, b.stage AS base, o.stage AS other
        FROM last_base b FULL OUTER JOIN last_other o USING (tenant, entity, item_id)
        WHERE b.stage IS DISTINCT FROM o.stage
        ORDER BY tenant, entity, id
        """,
    )
    return {
        "items_last_stage_differs": len(last),
        "items": last,
        "stages": _stage_changes(base, other),
    }


def _stage_changes(base: Sequence[str], other: Sequence[str]) -> list[dict]:
    """Reached and time in stage of each history, side by side, per pipeline stage."""
    sides = [
        build_report(connect(), ReportInputs(history=paths), Scope(), Skipped())
        for paths in (base, other)
    ]
    figures: dict[tuple[str, ...], dict[str, Any]] = {}
    for side, report in zip(("base", "other"), sides, strict=True):
        for p in report["pipelines"]:
            for s in p["stages"]:
                key = (p["tenant"], p["entity"], p["category"], s["stage"])
                row = figures.setdefault(
                    key,
                    {
                        "tenant": key[0],
                        "entity": key[1],
                        "category": key[2],
                        "stage": key[3],
                        "reached_base": None,
                        "reached_other": None,
                        "p50_s_base": None,
                        "p50_s_other": None,
                    },
                )
                row[f"reached_{side}"] = s["reached"]
                row[f"p50_s_{side}"] = s["stays"]["p50_s"]
    return [
        r
        for r in figures.values()
        if r["reached_base"] != r["reached_other"] or r["p50_s_base"] != r["p50_s_other"]
    ]


def diff_text(summary: dict[str, Any]) -> str:
    t = summary["transitions"]
    out = [
        f"Transitions: base {t['base']:,}, other {t['other']:,}: added {t['added']:,}, "
        f"removed {t['removed']:,}, changed {t['changed']:,}, unchanged {t['unchanged']:,}; "
        f"{t['items_changed']:,} items affected",
    ]
    if summary["triggers"]:
        out += ["", "Fires per trigger (only those that changed)"]
        out.append(
            table(
                ["tenant", "trigger", "code", "base", "other", "change"],
                [trigger_change_cells(r) for r in summary["triggers"]],
                numeric_from=3,
            )
        )
    if summary["moves"]:
        out += ["", "Moves that changed (from -> to, per pipeline)"]
        out.append(
            table(
                ["pipeline", "from", "to", "base", "other", "change"],
                [
                    [
                        pipeline_cell(r),
                        r["from"] or "-",
                        r["to"],
                        count(r["base"]),
                        count(r["other"]),
                        f"{r['delta']:+,}",
                    ]
                    for r in summary["moves"]
                ],
                numeric_from=3,
            )
        )
    history = summary["history"]
    if history is not None:
        out += ["", f"Items whose last stage differs: {history['items_last_stage_differs']:,}"]
        if history["items"]:
            out.append(
                table(
                    ["tenant", "item", "base", "other"],
                    [
                        [
                            r["tenant"],
                            f"{r['entity']}/{r['id']}",
                            r["base"] or "-",
                            r["other"] or "-",
                        ]
                        for r in history["items"][:ITEMS_SHOWN]
                    ],
                    numeric_from=4,
                )
            )
            if len(history["items"]) > ITEMS_SHOWN:
                out.append(f"... and {len(history['items']) - ITEMS_SHOWN} more (--format json)")
        if history["stages"]:
            out += ["", "Reached and median time in stage that changed"]
            out.append(
                table(
                    ["pipeline", "stage", "reached base", "other", "p50 base", "other"],
                    [stage_change_cells(r) for r in history["stages"]],
                    numeric_from=2,
                )
            )
    if not (t["added"] or t["removed"] or t["changed"]):
        out += ["", "The two logs hold the same transitions."]
    return "\n".join(out) + "\n"
