"""Reading the stats topic: closed windows as a table for `crm-triggers tail --stats`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from analytics import histogram


def stats_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Closed windows as a compact table for `tail --stats`: a line per window and pipeline,
    then a line per stage (entries, distinct items entered, stays closed with their mean,
    p50, p90 from the histogram, and max). Late records are counted in a last line.
    """
    header = ("stage", "entries", "entered", "closed", "mean", "p50", "p90", "max")
    blocks: list[tuple[str, list[tuple[str, ...]]]] = []
    late = 0
    for record in records:
        if record.get("kind") == "late":
            late += 1
            continue
        if record.get("kind") != "window":
            continue
        start = str(record.get("window_start", ""))[:16].replace("T", " ")
        end = str(record.get("window_end", ""))[11:16]
        moves = sum(m.get("count", 0) for m in record.get("moves", []))
        fires = sum(f.get("fires", 0) for f in record.get("fires", []))
        title = (
            f"{start}-{end}  {record.get('tenant')}/{record.get('entity')}/"
            f"{record.get('category')}: {record.get('records', 0)} records, {moves} moves, "
            f"{fires} fires"
        )
        rows: list[tuple[str, ...]] = []
        for stage in record.get("stages", []):
            stays = stage.get("stays", {})
            counts = histogram.from_pairs(stays.get("histogram", []))
            max_s = stays.get("max_s")
            p50, p90 = (histogram.percentile(counts, q, max_s) for q in (0.5, 0.9))
            closed = stays.get("closed", 0)
            rows.append(
                (
                    str(stage.get("stage")),
                    str(stage.get("entries", 0)),
                    str(stage.get("entered", 0)),
                    str(closed),
                    _duration(stays.get("sum_s", 0) / closed) if closed else "-",
                    _duration(p50.value) if p50 else "-",
                    _duration(p90.value) if p90 else "-",
                    _duration(max_s) if max_s is not None else "-",
                )
            )
        blocks.append((title, rows))
    every = [header] + [row for _, rows in blocks for row in rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = (
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return ("  " + "  ".join(cells)).rstrip()

    lines = [line(header)] if blocks else []
    for title, rows in blocks:
        lines.append(title)
        lines.extend(line(row) for row in rows)
    if late:
        lines.append(f"late records: {late} (counted apart: their windows had closed)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """A stay length for people: 45s, 12m, 3.5h, 2.1d."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
