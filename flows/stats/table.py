"""Reading the stats topic: closed windows as a table for `crm-triggers tail --stats`.

A window record is a title line (window, pipeline, records, moves, fires) and a
line per stage under fixed columns, so that blocks printed as they arrive line
up under one header; a late record is one line. Stage names longer than the
column are cut (with "…").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from analytics import histogram
from analytics.render import duration

STAGE_WIDTH = 24
SEMANTIC_WIDTH = 10
COUNTS = (("entries", 8), ("entered", 8), ("exits", 7))
DURATIONS = (("mean", 7), ("p50", 7), ("p90", 7), ("max", 7))
"""The columns after the stage and its semantic, and their widths (lines under 100 wide)."""


def header() -> list[str]:
    """The column names over the stage lines of every window; the durations are the time
    in stage of the stays that ended in the window (the exits)."""
    counts = "".join(name.rjust(width) for name, width in COUNTS)
    durations = "".join(name.rjust(width) for name, width in DURATIONS)
    names = f"  {'stage'.ljust(STAGE_WIDTH)}{'semantic'.ljust(SEMANTIC_WIDTH)}{counts}"
    over = " time in stage of exits ".center(len(durations) - 1, "─")
    return [" " * len(names) + " " + over, names + durations]


def window_lines(record: Mapping[str, Any]) -> list[str]:
    """A window record: a blank line, its title, then one line per stage (durations of the
    stays that ended: mean, p50 and p90 from the histogram, max)."""
    start = str(record.get("window_start", ""))[:16].replace("T", " ")
    end = str(record.get("window_end", ""))[11:16]
    moves = sum(m.get("count", 0) for m in record.get("moves", []))
    fires = sum(f.get("fires", 0) for f in record.get("fires", []))
    lines = [
        "",
        f"{start}-{end} UTC  {_pipeline(record)}  {_count(record.get('records', 0), 'record')}, "
        f"{_count(moves, 'move')}, {_count(fires, 'trigger fire')}",
    ]
    for stage in record.get("stages", []):
        stays = stage.get("stays", {})
        closed = stays.get("closed", 0)
        max_s = stays.get("max_s")
        counts = histogram.from_pairs(stays.get("histogram", []))
        p50, p90 = (histogram.percentile(counts, q, max_s) for q in (0.5, 0.9))
        cells = (
            str(stage.get("entries", 0)),
            str(stage.get("entered", 0)),
            str(closed),
            duration(stays.get("sum_s", 0) / closed, compact=True) if closed else "-",
            duration(p50.value, compact=True) if p50 else "-",
            duration(p90.value, compact=True) if p90 else "-",
            duration(max_s, compact=True),
        )
        name = str(stage.get("stage"))
        if len(name) > STAGE_WIDTH - 1:
            name = name[: STAGE_WIDTH - 2] + "…"
        columns = (*COUNTS, *DURATIONS)
        row = "".join(cell.rjust(width) for cell, (_, width) in zip(cells, columns, strict=True))
        semantic = str(stage.get("semantic") or "-")
        lines.append(f"  {name.ljust(STAGE_WIDTH)}{semantic.ljust(SEMANTIC_WIDTH)}{row}")
    return lines


def late_line(record: Mapping[str, Any]) -> str:
    """A late record: which closed window it would have added to, and what."""
    start = str(record.get("window_start", ""))[:16].replace("T", " ")
    end = str(record.get("window_end", ""))[11:16]
    added = []
    if record.get("entry"):
        added.append(f"entry {record['entry']}")
    if record.get("stay"):
        stay = record["stay"]
        added.append(f"stay {stay.get('stage')} {duration(stay.get('seconds', 0), compact=True)}")
    if record.get("move"):
        move = record["move"]
        added.append(f"move {move.get('from')} -> {move.get('to')}")
    return (
        f"late: {start}-{end} UTC  {_pipeline(record)}  history {record.get('history_id')} "
        f"at {record.get('at')}: {', '.join(added) or 'a record'}"
    )


def stats_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Window records as a table under one header; late records counted in a last line."""
    lines: list[str] = []
    late = 0
    for record in records:
        if record.get("kind") == "window":
            lines.extend(window_lines(record))
        elif record.get("kind") == "late":
            late += 1
    if lines:
        lines[:0] = header()
    if late:
        lines.append(f"late records: {late} (counted apart: their windows had closed)")
    return "\n".join(lines)


def _count(number: int, what: str) -> str:
    return f"{number} {what}" if number == 1 else f"{number} {what}s"


def _pipeline(record: Mapping[str, Any]) -> str:
    return f"{record.get('tenant')}/{record.get('entity')}/{record.get('category')}"
