"""The figures of spec 6.2, one named query each, over the tables of `analytics.load`.

`Scope` holds what every figure shares: the window `[from, to)`, as-of, the
tenant filter and the stalled threshold. `prepare` builds the derived tables
(`kept`, `stays`, `stage_order`, `ours`) once; each figure is then one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from analytics.automation import AutomationAsOf


@dataclass(frozen=True)
class Scope:
    start: datetime | None = None  # --from
    end: datetime | None = None  # --to
    as_of: datetime | None = None  # default: the latest `at` kept
    stalled_s: float = 7 * 86400.0
    tenant: str | None = None


def _rows(
    db: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict]:
    cursor = db.execute(sql, params or {})
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _literal(value: str | datetime | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return "'" + value.replace("'", "''") + "'"


def keep(db: duckdb.DuckDBPyConnection, scope: Scope) -> datetime | None:
    """View `kept`: the valid history of the tenant asked for, with `seq` (input order)
    and `in_window` when `from <= at < to`. Returns the as-of in use (default: the
    latest `at` in the window)."""
    tenant_ok = "TRUE" if scope.tenant is None else f"tenant = {_literal(scope.tenant)}"
    start, end = _literal(scope.start), _literal(scope.end)
    db.execute(
        f"""
        CREATE OR REPLACE VIEW kept AS
        SELECT rowid AS seq, *,
               ({start} IS NULL OR "at" >= {start}) AND ({end} IS NULL OR "at" < {end})
                   AS in_window
        FROM history WHERE valid AND {tenant_ok}
        """
    )
    if scope.as_of is not None:
        return scope.as_of
    row = db.execute('SELECT max("at") FROM kept WHERE in_window').fetchone()
    return row[0] if row else None


def derive(
    db: duckdb.DuckDBPyConnection,
    scope: Scope,
    as_of: datetime | None,
    automation: AutomationAsOf | None,
    with_transitions: bool,
) -> None:
    """Tables `stays`, `stage_order` and `ours`, which the figures read."""
    stays(db, "kept", as_of)
    _stage_order(db, automation)
    _ours(db, scope, with_transitions)


def stays(db: duckdb.DuckDBPyConnection, history: str, as_of: datetime | None) -> None:
    """Table `stays`: every stay (6.2), with the window flags of its two ends.

    A history record opens a stay on its stage; the item's next record (input
    order) closes it; the length is the difference of their `at`, never negative.
    `deleted` opens no stay. Ages of open stays are measured at `as_of`.
    """
    db.execute(
        f"""
        CREATE OR REPLACE TABLE stays AS
        WITH ordered AS (
            SELECT *,
                   lead("at") OVER item AS closed_at,
                   lead(in_window) OVER item AS closed_in_window,
                   lead(seq) OVER item AS closed_seq
            FROM {history}
            WINDOW item AS (PARTITION BY tenant, entity, item_id ORDER BY seq)
        )
        SELECT seq, tenant, entity, category, item_id, stage, semantic, kind,
               "at" AS opened_at, in_window AS opened_in_window,
               closed_at, coalesce(closed_in_window, FALSE) AS closed_in_window,
               greatest(epoch(closed_at) - epoch("at"), 0) AS length_s,
               greatest(epoch($as_of::TIMESTAMP) - epoch("at"), 0) AS age_s
        FROM ordered
        WHERE kind <> 'deleted'
        """,
        {"as_of": as_of},
    )


def _stage_order(db: duckdb.DuckDBPyConnection, automation: AutomationAsOf | None) -> None:
    """Table `stage_order`: the pipeline's order at as-of, then stages by first appearance."""
    db.execute(
        "CREATE OR REPLACE TABLE automation_stages (tenant VARCHAR, entity VARCHAR, "
        "category VARCHAR, stage VARCHAR, position INTEGER, semantic VARCHAR)"
    )
    if automation is not None and automation.stage_rows:
        db.executemany(
            "INSERT INTO automation_stages VALUES (?, ?, ?, ?, ?, ?)", automation.stage_rows
        )
    db.execute(
        """
        CREATE OR REPLACE TABLE stage_order AS
        WITH seen AS (
            SELECT tenant, entity, category, stage, min(seq) AS first_seq,
                   arg_max(semantic, seq) FILTER (WHERE semantic IS NOT NULL) AS semantic
            FROM (SELECT tenant, entity, category, stage, seq, semantic FROM kept
                  UNION ALL
                  SELECT tenant, entity, category, from_stage, seq, NULL FROM kept
                  WHERE from_stage IS NOT NULL AND kind = 'trigger')
            GROUP BY ALL
        ),
        pipelines AS (SELECT DISTINCT tenant, entity, category FROM kept),
        known AS (
            SELECT a.* FROM automation_stages a JOIN pipelines USING (tenant, entity, category)
        ),
        extra AS (
            SELECT s.tenant, s.entity, s.category, s.stage, s.semantic, s.first_seq
            FROM seen s ANTI JOIN known k USING (tenant, entity, category, stage)
        ),
        counts AS (
            SELECT tenant, entity, category, count(*) AS n FROM known GROUP BY ALL
        )
        SELECT tenant, entity, category, stage, position, semantic FROM known
        UNION ALL
        SELECT e.tenant, e.entity, e.category, e.stage,
               coalesce(c.n, 0) + row_number() OVER (
                   PARTITION BY e.tenant, e.entity, e.category ORDER BY e.first_seq) - 1,
               e.semantic
        FROM extra e LEFT JOIN counts c USING (tenant, entity, category)
        """
    )


def _ours(db: duckdb.DuckDBPyConnection, scope: Scope, with_transitions: bool) -> None:
    """Table `ours`: the job's own moves in the window, from --transitions or else from
    the `trigger` records of the history (direction then read off the stage order)."""
    if with_transitions:
        tenant_ok = "TRUE" if scope.tenant is None else f"tenant = {_literal(scope.tenant)}"
        start, end = _literal(scope.start), _literal(scope.end)
        db.execute(
            f"""
            CREATE OR REPLACE TABLE ours AS
            SELECT tenant, entity, item_id, category, from_stage, to_stage,
                   direction = 'backward' AS backward, trigger_id, trigger_code, "at"
            FROM transitions
            WHERE valid AND {tenant_ok}
              AND ({start} IS NULL OR "at" >= {start}) AND ({end} IS NULL OR "at" < {end})
            """
        )
        return
    db.execute(
        """
        CREATE OR REPLACE TABLE ours AS
        SELECT k.tenant, k.entity, k.item_id, k.category, k.from_stage, k.stage AS to_stage,
               coalesce(t.position < f.position, FALSE) AS backward,
               k.trigger_id, k.trigger_code, k."at"
        FROM kept k
        LEFT JOIN stage_order t ON t.tenant = k.tenant AND t.entity = k.entity
             AND t.category = k.category AND t.stage = k.stage
        LEFT JOIN stage_order f ON f.tenant = k.tenant AND f.entity = k.entity
             AND f.category = k.category AND f.stage = k.from_stage
        WHERE k.in_window AND k.kind = 'trigger'
        """
    )


# The figures -------------------------------------------------------------------------


def pipelines(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """The pipelines (tenant, entity, category) with history in the window."""
    return _rows(
        db,
        "SELECT DISTINCT tenant, entity, category FROM kept WHERE in_window ORDER BY ALL",
    )


def entered(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Entered(S): distinct items with at least one stay on S (opened in the window)."""
    return _rows(
        db,
        """
        SELECT tenant, entity, category, stage, count(DISTINCT item_id) AS entered
        FROM stays WHERE opened_in_window GROUP BY ALL
        """,
    )


def reached(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Reached(S): distinct items that entered S or any later stage of the pipeline's
    order whose semantic is not `failure` (only for non-failure S)."""
    return _rows(
        db,
        """
        WITH furthest AS (
            SELECT s.tenant, s.entity, s.category, s.item_id, max(o.position) AS position
            FROM stays s JOIN stage_order o USING (tenant, entity, category, stage)
            WHERE s.opened_in_window AND o.semantic IS DISTINCT FROM 'failure'
            GROUP BY ALL
        )
        SELECT o.tenant, o.entity, o.category, o.stage, count(f.item_id) AS reached
        FROM stage_order o
        LEFT JOIN furthest f ON f.tenant = o.tenant AND f.entity = o.entity
             AND f.category = o.category AND f.position >= o.position
        WHERE o.semantic IS DISTINCT FROM 'failure'
        GROUP BY ALL
        """,
    )


def time_in_stage(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Closed stays (count, mean, p50, p90 in seconds, closed in the window) and open
    stays (opened in the window, not closed in it) with their p50 age at as-of."""
    return _rows(
        db,
        """
        SELECT tenant, entity, category, stage,
               count(*) FILTER (WHERE closed_in_window) AS closed,
               avg(length_s) FILTER (WHERE closed_in_window) AS mean_s,
               quantile_cont(length_s, 0.5) FILTER (WHERE closed_in_window) AS p50_s,
               quantile_cont(length_s, 0.9) FILTER (WHERE closed_in_window) AS p90_s,
               count(*) FILTER (WHERE opened_in_window AND NOT closed_in_window) AS open,
               quantile_cont(age_s, 0.5) FILTER (WHERE opened_in_window AND NOT closed_in_window)
                   AS open_p50_age_s
        FROM stays WHERE opened_in_window OR closed_in_window
        GROUP BY ALL
        """,
    )


def moves(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Moves: counts of (from_stage, stage, kind) over `trigger` and `crm` records."""
    return _rows(
        db,
        """
        SELECT tenant, entity, category, from_stage AS "from", stage AS "to", kind,
               count(*) AS count
        FROM kept WHERE in_window AND kind IN ('trigger', 'crm')
        GROUP BY ALL ORDER BY tenant, entity, category, count DESC, "from", "to", kind
        """,
    )


def backward_rate(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Backward rate: backward transitions / all transitions (ours only), per pipeline."""
    return _rows(
        db,
        """
        SELECT tenant, entity, category,
               count(*) FILTER (WHERE backward) / count(*) AS backward_rate
        FROM ours GROUP BY ALL
        """,
    )


def trigger_effectiveness(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per trigger id: fires, distinct items moved, backward fires, first and last `at`."""
    return _rows(
        db,
        """
        SELECT tenant, trigger_id AS id, arg_max(trigger_code, "at") AS code,
               count(*) AS fires, count(DISTINCT (entity, item_id)) AS items,
               count(*) FILTER (WHERE backward) AS backward,
               min("at") AS first_at, max("at") AS last_at
        FROM ours GROUP BY tenant, trigger_id
        ORDER BY fires DESC, tenant, id
        """,
    )


def fired_ids(db: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {
        (r["tenant"], r["id"])
        for r in _rows(db, "SELECT DISTINCT tenant, trigger_id AS id FROM ours")
    }


def stalled(db: duckdb.DuckDBPyConnection, stalled_s: float) -> list[dict]:
    """Items whose open stay is on a `process` stage and strictly older than the
    threshold at as-of."""
    return _rows(
        db,
        """
        SELECT s.tenant, s.entity, s.category, s.item_id AS id, s.stage,
               s.opened_at AS since, s.age_s
        FROM stays s
        LEFT JOIN stage_order o USING (tenant, entity, category, stage)
        WHERE s.opened_in_window AND NOT s.closed_in_window
          AND coalesce(s.semantic, o.semantic) = 'process' AND s.age_s > $threshold
        ORDER BY s.age_s DESC, s.tenant, s.entity, s.item_id
        """,
        {"threshold": stalled_s},
    )


def cohorts(db: duckdb.DuckDBPyConnection) -> list[dict]:
    """Items by the ISO week (Monday, UTC) of their first `created` record: items, share
    that reached a `success` stage, share on a `failure` stage, median days from created
    to first success."""
    return _rows(
        db,
        """
        WITH outcome AS (
            -- One pass over the window, per item. A success recorded at creation counts
            -- (0 days); a success before the item's first `created` in the window (an
            -- item deleted, then created again) does not.
            SELECT k.tenant, k.entity, k.item_id,
                   arg_min(k.category, k.seq) FILTER (WHERE k.kind = 'created') AS category,
                   min(k."at") FILTER (WHERE k.kind = 'created') AS born_at,
                   min(k."at") FILTER (WHERE coalesce(k.semantic, o.semantic) = 'success'
                                       AND k.kind <> 'deleted') AS first_success,
                   arg_max(coalesce(k.semantic, o.semantic), k.seq) = 'failure'
                       AND arg_max(k.kind, k.seq) <> 'deleted' AS on_failure
            FROM kept k LEFT JOIN stage_order o USING (tenant, entity, category, stage)
            WHERE k.in_window
            GROUP BY k.tenant, k.entity, k.item_id
            HAVING born_at IS NOT NULL
        ),
        born AS (
            SELECT * REPLACE (
                CASE WHEN first_success >= born_at THEN first_success END AS first_success)
            FROM outcome
        )
        SELECT tenant, entity, category,
               date_trunc('week', born_at) AS week,
               count(*) AS items,
               count(first_success) / count(*) AS reached_success_share,
               count(*) FILTER (WHERE on_failure) / count(*) AS on_failure_share,
               quantile_cont((epoch(first_success) - epoch(born_at)) / 86400.0, 0.5)
                   AS median_days_to_success
        FROM born GROUP BY ALL ORDER BY tenant, entity, category, week
        """,
    )
