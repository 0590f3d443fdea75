"""Stage-history (spec 6.1) and transition (spec 2.3) logs into DuckDB tables.

DuckDB reads the JSON Lines itself (`read_ndjson`, `.gz` included) with explicit
column types, only the fields the figures read. A table's `rowid` is the
record's place in the input (files in the order given, lines in file order;
DuckDB keeps insertion order), read as `seq` so that two records of one item
with the same `at` keep input order whatever the engine's sort. A line that is
not JSON, or a record without what a figure needs, is flagged not `valid`,
skipped and counted.

A large log's typed table is also kept as Parquet in a cache folder, keyed by
the file's path, size and modification time: a second report over the same
logs reads the Parquet copy, several times faster than parsing the JSON again
(docs/decisions.md, analytics).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from state.errors import ConfigError

HISTORY_KINDS = ("created", "trigger", "crm", "deleted")

HISTORY_COLUMNS = {
    "tenant": "VARCHAR",
    "item": "STRUCT(entity VARCHAR, id VARCHAR)",
    "category": "VARCHAR",
    "stage": "VARCHAR",
    "from_stage": "VARCHAR",
    "semantic": "VARCHAR",
    "kind": "VARCHAR",
    "at": "VARCHAR",
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
    "event": "STRUCT(id VARCHAR, occurred_at VARCHAR)",
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


MEMORY_LIMIT_ENV = "CRM_TRIGGERS_REPORT_MEMORY"
DEFAULT_MEMORY_LIMIT = "1200MB"


def connect(spill_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that works in UTC, keeps insertion order, and holds its
    buffers under a limit (`CRM_TRIGGERS_REPORT_MEMORY`, default 1200MB), spilling
    to `spill_dir` (or the system's temporary folder) beyond it."""
    db = duckdb.connect(":memory:")
    db.execute("SET TimeZone = 'UTC'")
    db.execute("SET preserve_insertion_order = true")
    db.execute("SET enable_progress_bar = false")
    limit = os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT
    try:
        db.execute(f"SET memory_limit = {_literal(limit)}")
    except duckdb.Error:
        raise ConfigError(
            f"{MEMORY_LIMIT_ENV}: expected a size such as 1200MB or 2GB, got {limit!r}"
        ) from None
    spill = spill_dir or os.path.join(tempfile.gettempdir(), f"crm-triggers-duckdb-{os.getpid()}")
    db.execute(f"SET temp_directory = {_literal(spill)}")
    return db


CACHE_ENV = "CRM_TRIGGERS_REPORT_CACHE"
CACHE_MIN_BYTES = 64 << 20
"""Smaller logs are parsed each time (a fraction of a second); larger ones are cached."""
SCRATCH_PREFIX = "crm-triggers-report-"
"""Folders of copies of standard input and topics: never cached, they are deleted."""


def cache_folder() -> str | None:
    """`CRM_TRIGGERS_REPORT_CACHE` (`off` for none), else the user's cache folder."""
    given = os.environ.get(CACHE_ENV, "").strip()
    if given.lower() in ("off", "0", "no", "false"):
        return None
    if given:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "crm-triggers", "report")


def _cache_file(path: str, select: str) -> tuple[str, str] | None:
    """(folder, file name) of `path`'s cached table, or None if it is not cached."""
    folder = cache_folder()
    if folder is None or os.path.basename(os.path.dirname(path)).startswith(SCRATCH_PREFIX):
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    if status.st_size < CACHE_MIN_BYTES:
        return None
    where = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:20]
    state = f"{status.st_size}:{status.st_mtime_ns}:{duckdb.__version__}:{select}"
    return folder, f"{where}-{hashlib.sha256(state.encode()).hexdigest()[:20]}.parquet"


def _read_cached(db: duckdb.DuckDBPyConnection, verb: str, cached: tuple[str, str]) -> bool:
    file = os.path.join(*cached)
    if not os.path.exists(file):
        return False
    try:
        db.execute(f"{verb} SELECT * FROM read_parquet({_literal(file)})")
    except duckdb.Error:
        return False  # unreadable (cut short, another version): parsed again and rewritten
    return True


def _write_cached(
    db: duckdb.DuckDBPyConnection, table: str, first_row: int, cached: tuple[str, str]
) -> None:
    """Keep the rows of one file as Parquet; a cache that cannot be written is no cache."""
    folder, name = cached
    part = os.path.join(folder, f".{name}.{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        db.execute(
            f"COPY (SELECT * FROM {table} WHERE rowid >= {first_row}) "
            f"TO {_literal(part)} (FORMAT parquet)"
        )
        os.replace(part, os.path.join(folder, name))
        stem = name.split("-", 1)[0]
        for old in os.listdir(folder):
            if old.startswith(stem + "-") and old != name:
                os.remove(os.path.join(folder, old))
    except (OSError, duckdb.Error):
        with contextlib.suppress(OSError):
            os.remove(part)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _columns(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in columns.items()) + "}"


def _reader(path: str, columns: dict[str, str]) -> str:
    return (
        f"read_ndjson({_literal(path)}, columns = {_columns(columns)}, "
        "ignore_errors = true, compression = 'auto_detect', maximum_object_size = 16777216)"
    )


def _create(
    db: duckdb.DuckDBPyConnection,
    table: str,
    paths: Sequence[str],
    columns: dict[str, str],
    typed: str,
    valid: str,
) -> tuple[int, int]:
    """Table `table` of the typed columns of every line, files in the order given, and a
    `valid` flag; its `rowid` is the line's place in the input. (read, valid) counts."""
    db.execute(f"DROP TABLE IF EXISTS {table}")
    for number, path in enumerate(paths):
        select = f"SELECT {typed}, {valid} AS valid FROM {_reader(path, columns)}"
        verb = f"CREATE TABLE {table} AS" if number == 0 else f"INSERT INTO {table}"
        cached = _cache_file(path, select)
        if cached is not None and _read_cached(db, verb, cached):
            continue
        first_row = _count(db, table) if number else 0
        try:
            db.execute(f"{verb} {select}")
        except duckdb.Error as failed:
            first = str(failed).strip().splitlines()[0]
            raise ConfigError(f"{path}: cannot be read as JSON Lines ({first})") from None
        if cached is not None:
            _write_cached(db, table, first_row, cached)
    row = db.execute(f"SELECT count(*), count(*) FILTER (WHERE valid) FROM {table}").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def load_history(
    db: duckdb.DuckDBPyConnection, paths: Sequence[str], skipped: Skipped, table: str = "history"
) -> None:
    """Table `table` of history records; `rowid` is input order, `valid` marks the records
    the figures read (a line that is not a 6.1 record is counted, not read)."""
    kinds = ", ".join(_literal(k) for k in HISTORY_KINDS)
    read, valid = _create(
        db,
        table,
        paths,
        HISTORY_COLUMNS,
        typed="""coalesce(tenant, 'default') AS tenant,
                 item.entity AS entity, item.id AS item_id,
                 coalesce(category, '0') AS category,
                 stage, from_stage, semantic, kind,
                 TRY_CAST("at" AS TIMESTAMPTZ)::TIMESTAMP AS "at",
                 "trigger".id AS trigger_id, "trigger".code AS trigger_code""",
        valid=f"""(item.entity IS NOT NULL AND item.id IS NOT NULL AND stage IS NOT NULL
                  AND kind IN ({kinds}) AND TRY_CAST("at" AS TIMESTAMPTZ) IS NOT NULL
                  AND (kind <> 'trigger' OR "trigger".id IS NOT NULL))""",
    )
    skipped.add("history lines that are not valid 6.1 records", read - valid)


def load_transitions(
    db: duckdb.DuckDBPyConnection,
    paths: Sequence[str],
    skipped: Skipped,
    table: str = "transitions",
) -> None:
    """Table `table` of transition records, like `load_history`."""
    read, valid = _create(
        db,
        table,
        paths,
        TRANSITION_COLUMNS,
        typed="""id, coalesce(tenant, 'default') AS tenant,
                 item.entity AS entity, item.id AS item_id,
                 coalesce(category, '0') AS category,
                 from_stage, to_stage, direction,
                 "trigger".id AS trigger_id, "trigger".code AS trigger_code,
                 event.id AS event_id,
                 TRY_CAST(event.occurred_at AS TIMESTAMPTZ)::TIMESTAMP AS at""",
        valid="""(id IS NOT NULL AND item.entity IS NOT NULL AND item.id IS NOT NULL
                 AND to_stage IS NOT NULL AND "trigger".id IS NOT NULL
                 AND TRY_CAST(event.occurred_at AS TIMESTAMPTZ) IS NOT NULL
                 AND direction IN ('forward', 'backward'))""",
    )
    skipped.add("transition lines that are not valid 2.3 records", read - valid)


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
