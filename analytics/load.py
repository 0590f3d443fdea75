"""Stage-history (spec 6.1) and transition (spec 2.3) logs into DuckDB tables.

DuckDB reads the JSON Lines itself (`read_ndjson`, `.gz` included) with explicit
column types. Each table carries `seq`, the record's place in the input (files
in the order given, lines in file order), so that two records of one item with
the same `at` keep input order whatever the engine's sort. A line that is not
JSON, or a record without what a figure needs, is skipped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from state.errors import ConfigError

HISTORY_KINDS = ("created", "trigger", "crm", "deleted")

HISTORY_COLUMNS = {
    "id": "VARCHAR",
    "tenant": "VARCHAR",
    "item": "STRUCT(entity VARCHAR, id VARCHAR)",
    "category": "VARCHAR",
    "stage": "VARCHAR",
    "from_stage": "VARCHAR",
    "semantic": "VARCHAR",
    "kind": "VARCHAR",
    "at": "VARCHAR",
    "event": "STRUCT(id VARCHAR, type VARCHAR)",
    "transition_id": "VARCHAR",
    "trigger": "STRUCT(id VARCHAR, code VARCHAR)",
}

TRANSITION_COLUMNS = {
    "id": "VARCHAR",
    "tenant": "VARCHAR",
    "item": "STRUCT(entity VARCHAR, id VARCHAR)",
    "category": "VARCHAR",
    "from_stage": "VARCHAR",
    "to_stage": "VARCHAR",
    "direction": "VARCHAR",
    "trigger": "STRUCT(id VARCHAR, code VARCHAR)",
    "event": "STRUCT(id VARCHAR, type VARCHAR, occurred_at VARCHAR)",
}


@dataclass
class Skipped:
    """Records left out of the figures, by why."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, count: int) -> None:
        if count:
            self.counts[what] = self.counts.get(what, 0) + count

    def lines(self) -> list[str]:
        return [f"skipped {count} {what}" for what, count in sorted(self.counts.items())]


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that works in UTC and keeps insertion order."""
    db = duckdb.connect(":memory:")
    db.execute("SET TimeZone = 'UTC'")
    db.execute("SET preserve_insertion_order = true")
    if memory_limit:
        db.execute(f"SET memory_limit = '{memory_limit}'")
    return db


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _columns(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in columns.items()) + "}"


def _reader(path: str, columns: dict[str, str]) -> str:
    return (
        f"read_ndjson({_literal(path)}, columns = {_columns(columns)}, "
        "ignore_errors = true, compression = 'auto_detect', maximum_object_size = 16777216)"
    )


def _read(db: duckdb.DuckDBPyConnection, path: str, columns: dict[str, str], into: str) -> None:
    try:
        db.execute(f"INSERT INTO {into} SELECT * FROM {_reader(path, columns)}")
    except duckdb.Error as failed:
        first = str(failed).strip().splitlines()[0]
        raise ConfigError(f"{path}: cannot be read as JSON Lines ({first})") from None


def _raw_table(db: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str]) -> None:
    typed = ", ".join(f'"{column}" {kind}' for column, kind in columns.items())
    db.execute(f"CREATE OR REPLACE TABLE {name} ({typed})")


def load_history(
    db: duckdb.DuckDBPyConnection, paths: Sequence[str], skipped: Skipped, table: str = "history"
) -> None:
    """Table `table`: one row per valid history record, `seq` in input order."""
    raw = f"{table}_raw"
    _raw_table(db, raw, HISTORY_COLUMNS)
    for path in paths:
        _read(db, path, HISTORY_COLUMNS, raw)
    kinds = ", ".join(_literal(k) for k in HISTORY_KINDS)
    db.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        WITH typed AS (
            SELECT rowid AS seq,
                   coalesce(tenant, 'default') AS tenant,
                   item.entity AS entity, item.id AS item_id,
                   coalesce(category, '0') AS category,
                   stage, from_stage, semantic, kind,
                   TRY_CAST("at" AS TIMESTAMPTZ)::TIMESTAMP AS "at",
                   event.id AS event_id, event.type AS event_type,
                   transition_id, "trigger".id AS trigger_id, "trigger".code AS trigger_code
            FROM {raw}
        )
        SELECT * FROM typed
        WHERE entity IS NOT NULL AND item_id IS NOT NULL AND stage IS NOT NULL
          AND kind IN ({kinds}) AND "at" IS NOT NULL
          AND (kind <> 'trigger' OR trigger_id IS NOT NULL)
        ORDER BY seq
        """
    )
    total = _count(db, raw)
    kept = _count(db, table)
    skipped.add("history lines that are not valid 6.1 records", total - kept)
    db.execute(f"DROP TABLE {raw}")


def load_transitions(
    db: duckdb.DuckDBPyConnection,
    paths: Sequence[str],
    skipped: Skipped,
    table: str = "transitions",
) -> None:
    """Table `table`: one row per valid transition record, `seq` in input order."""
    raw = f"{table}_raw"
    _raw_table(db, raw, TRANSITION_COLUMNS)
    for path in paths:
        _read(db, path, TRANSITION_COLUMNS, raw)
    db.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        WITH typed AS (
            SELECT rowid AS seq, id,
                   coalesce(tenant, 'default') AS tenant,
                   item.entity AS entity, item.id AS item_id,
                   coalesce(category, '0') AS category,
                   from_stage, to_stage, direction,
                   "trigger".id AS trigger_id, "trigger".code AS trigger_code,
                   event.id AS event_id, event.type AS event_type,
                   TRY_CAST(event.occurred_at AS TIMESTAMPTZ)::TIMESTAMP AS "at"
            FROM {raw}
        )
        SELECT * FROM typed
        WHERE id IS NOT NULL AND entity IS NOT NULL AND item_id IS NOT NULL
          AND to_stage IS NOT NULL AND trigger_id IS NOT NULL AND "at" IS NOT NULL
          AND direction IN ('forward', 'backward')
        ORDER BY seq
        """
    )
    total = _count(db, raw)
    kept = _count(db, table)
    skipped.add("transition lines that are not valid 2.3 records", total - kept)
    db.execute(f"DROP TABLE {raw}")


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def latest_at(db: duckdb.DuckDBPyConnection, table: str) -> datetime | None:
    row = db.execute(f'SELECT max("at") FROM {table}').fetchone()
    return None if row is None else row[0]
