"""`report --stats`: the live statistics' window records against the report's exact figures.

The statistics job (`crm-triggers stats`, spec 6.4) keeps each stage's closed stays
as a histogram on fixed log-scale buckets, so percentiles over any set of windows
come from the records alone. Here the windows inside the report's `--from`/`--to`
are merged per pipeline and stage, and their p50 and p90 set beside the exact
figures the report computed from the stage history (`analytics.histogram.closeness`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from analytics import histogram
from connectors.jsonl import expand, read_lines

PipelineKey = tuple[str, str, str]


def read_windows(paths: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """The window records of stats logs (one copy per id), and how many lines were not one."""
    windows: dict[str, dict[str, Any]] = {}
    skipped = 0
    for path in paths:
        for _, _, line in read_lines(expand(path)):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            if type(record) is not dict or record.get("kind") not in ("window", "late"):
                skipped += 1
            elif record["kind"] == "window":
                windows[str(record.get("id"))] = record  # a restart writes a window again, same
    return list(windows.values()), skipped


def _stamp(moment: datetime | None) -> str | None:
    """A naive UTC time as the window records write their bounds (compared as text)."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def window_closeness(
    windows: Sequence[Mapping[str, Any]],
    report: Mapping[str, Any],
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per pipeline and stage of the report: the merged windows' closed stays, mean, p50 and
    p90, and how close those percentiles are to the report's exact ones.

    Only whole windows inside [start, end) count; the report's figures are those of the
    same history, so the two agree when the windows cover it.
    """
    low, high = _stamp(start), _stamp(end)
    kept = [
        w
        for w in windows
        if (low is None or str(w.get("window_start")) >= low)
        and (high is None or str(w.get("window_end")) <= high)
    ]
    stays: dict[tuple[PipelineKey, str], list[Mapping[str, Any]]] = {}
    counted: dict[PipelineKey, int] = {}
    for window in kept:
        key = (str(window["tenant"]), str(window["entity"]), str(window["category"]))
        counted[key] = counted.get(key, 0) + 1
        for stage in window.get("stages") or ():
            stays.setdefault((key, str(stage["stage"])), []).append(stage["stays"])
    rows = []
    for pipeline in report["pipelines"]:
        key = (pipeline["tenant"], pipeline["entity"], pipeline["category"])
        for stage in pipeline["stages"]:
            merged = histogram.merge_stays(stays.get((key, stage["stage"]), ()))
            exact = stage["stays"]
            row: dict[str, Any] = {
                "tenant": key[0],
                "entity": key[1],
                "category": key[2],
                "stage": stage["stage"],
                "windows": counted.get(key, 0),
                "closed": merged.closed,
                "closed_exact": exact["closed"],
                "mean_s": merged.mean_s,
            }
            for name, q in (("p50", 0.5), ("p90", 0.9)):
                estimate = merged.percentile(q) if merged.closed else None
                exact_s = exact[f"{name}_s"]
                row[name] = (
                    None
                    if estimate is None or exact_s is None
                    else histogram.closeness(estimate, exact_s)
                )
            rows.append(row)
    return rows


def closeness_text(rows: list[Mapping[str, Any]]) -> str:
    """The comparison as a text table (durations in hours)."""
    lines = [
        "",
        "Live statistics (window records) against the exact figures from the history",
        f"{'pipeline':<24}  {'stage':<20}  {'closed':>13}  {'p50 est/exact h':>17}  "
        f"{'p90 est/exact h':>17}  within",
    ]

    def pair(found: Mapping[str, Any] | None) -> str:
        if found is None:
            return "-"
        return f"{found['estimate_s'] / 3600:.1f} / {found['exact_s'] / 3600:.1f}"

    for row in rows:
        pipeline = f"{row['tenant']}/{row['entity']}/{row['category']}"
        checks = [r["within_bound"] for r in (row["p50"], row["p90"]) if r is not None]
        within = "-" if not checks else ("yes" if all(checks) else "no")
        closed = f"{row['closed']}/{row['closed_exact']}"
        lines.append(
            f"{pipeline[:24]:<24}  {row['stage'][:20]:<20}  {closed:>13}  "
            f"{pair(row['p50']):>17}  {pair(row['p90']):>17}  {within}"
        )
    return "\n".join(lines) + "\n"
