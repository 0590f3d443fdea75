"""Draw the live statistics of a few hours as a PNG (the picture in the README).

    python scripts/stats_chart.py [--history FILE] [--pipeline acme/deal/0] [--out FILE.png]

Runs the statistics dataflow (`flows.stats.build_stats_flow`, one-hour windows,
10 minutes of lateness) over stage-history records and charts its window records
with Vega-Lite (rendered by vl-convert): entries per stage and hour, and the
median time in stage of the stays closed in each hour, estimated from the
window's histogram. Without `--history` it makes its own history records in the
shape of spec 6.1 (`bench_stats.history_records`: 8 hours of a generated CRM),
since the bundled sample has no history yet; given a history file (JSON Lines,
as `replay --history` writes), it charts that.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import vl_convert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bytewax.operators as op
from bench_stats import history_records
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from analytics import histogram
from flows.stats import batches_of, build_stats_flow


def window_records(values: list[bytes]) -> list[dict[str, Any]]:
    """The window records the statistics flow writes for these history records."""
    flow = Dataflow("stats_chart")
    out: list[Any] = []
    stream = op.input("history", flow, TestingSource(batches_of(values, 4096)))
    stats, letters = build_stats_flow(stream, timedelta(hours=1), timedelta(minutes=10))
    op.output("out", stats, TestingSink(out))
    op.output("dlq", letters, TestingSink([]))
    run_main(flow)
    return [r for r in (orjson.loads(x.value) for x in out) if r["kind"] == "window"]


def chart_rows(windows: list[dict[str, Any]], pipeline: str, hours: int) -> list[dict[str, Any]]:
    """One row per stage and window of `pipeline`, for its first `hours` windows."""
    mine = [w for w in windows if f"{w['tenant']}/{w['entity']}/{w['category']}" == pipeline]
    starts = sorted({w["window_start"] for w in mine})[:hours]
    rows = []
    for window in mine:
        if window["window_start"] not in starts:
            continue
        for stage in window["stages"]:
            stays = stage["stays"]
            median = histogram.percentile(
                histogram.from_pairs(stays["histogram"]), 0.5, stays["max_s"]
            )
            rows.append(
                {
                    "hour": window["window_start"],
                    "stage": stage["stage"],
                    "entries": stage["entries"],
                    "median_minutes": None if median is None else median.value / 60,
                    "closed": stays["closed"],
                }
            )
    return rows


def spec(rows: list[dict[str, Any]], pipeline: str, source: str) -> dict[str, Any]:
    x = {
        "field": "hour",
        "type": "temporal",
        "timeUnit": "utcmonthdatehours",
        "title": "window (UTC)",
    }
    color = {"field": "stage", "type": "nominal", "title": "stage"}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": f"Live statistics of pipeline {pipeline}, one-hour windows",
                  "subtitle": source},
        "data": {"values": rows},
        "vconcat": [
            {
                "width": 640, "height": 200,
                "title": "Items entering each stage",
                "mark": "bar",
                "encoding": {"x": {**x, "type": "ordinal"},
                             "y": {"field": "entries", "type": "quantitative",
                                   "title": "entries", "stack": True},
                             "color": color},
            },
            {
                "width": 640, "height": 200,
                "title": "Median time in stage of the stays closed in the hour (histograms)",
                "transform": [{"filter": "datum.closed > 0"}],
                "mark": {"type": "line", "point": True},
                "encoding": {"x": {**x, "type": "ordinal"},
                             "y": {"field": "median_minutes", "type": "quantitative",
                                   "title": "minutes (p50)", "scale": {"type": "log"}},
                             "color": color},
            },
        ],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=Path, help="history records (JSON Lines)")
    parser.add_argument("--pipeline", default="acme/deal/0", help="tenant/entity/category")
    parser.add_argument("--out", type=Path, default=Path("docs/stats-windows.png"))
    parser.add_argument("--hours", type=int, default=12, help="windows to draw (default: 12)")
    args = parser.parse_args()
    if args.history:
        values = [line for line in args.history.read_bytes().splitlines() if line.strip()]
        source = f"history from {args.history.name}"
    else:
        start = datetime(2026, 11, 25, 8, tzinfo=UTC)
        values = [v for _, v in history_records(12_000, 4_000, start=start, days=8 / 24)]
        source = "history records generated in the shape of spec 6.1 (scripts/bench_stats.py)"
    rows = chart_rows(window_records(values), args.pipeline, args.hours)
    if not rows:
        sys.exit(f"stats_chart: no window of pipeline {args.pipeline} in the history")
    png = vl_convert.vegalite_to_png(spec(rows, args.pipeline, source), scale=1.5)
    args.out.write_bytes(png)
    print(f"{args.out}: {len(rows)} stage rows from {len(values)} history records")


if __name__ == "__main__":
    main()
