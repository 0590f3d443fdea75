"""The report and the diff as one self-contained HTML page.

Charts are Vega-Lite specs (`*_chart` functions, testable on their own),
rendered to inline SVG by vl-convert: no script and no network is needed to
open the page. Tables sit next to the charts, numbers with units. A page's
charts are rendered together, several at a time (faster on a loaded machine,
the same on a quiet one; one large concatenated chart was no faster).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import vl_convert

from analytics.render import (
    cohort_cells,
    count,
    duration,
    never_fired_cells,
    percent,
    pipeline_cell,
    stage_cells,
    stage_change_cells,
    trigger_change_cells,
)

Spec = dict[str, Any]

WIDTH = 820
BLUE, RED, GREEN, GREY, AMBER = "#4c78a8", "#e45756", "#54a24b", "#9d9d9d", "#f2a541"
SEMANTIC_COLORS = {"domain": ["process", "success", "failure"], "range": [BLUE, GREEN, RED]}
FIRES_SHOWN = 30
RENDER_THREADS = 4
"""Charts rendered at once: up to 2.8x faster than 1 on 2 loaded cores, the same when quiet."""

CONFIG: Spec = {
    "font": "Helvetica, Arial, sans-serif",
    "title": {"anchor": "start", "fontSize": 14, "fontWeight": 600, "offset": 10},
    "axis": {
        "labelFontSize": 11,
        "titleFontSize": 11,
        "titleFontWeight": 500,
        "grid": True,
        "gridColor": "#eeeeee",
        "domainColor": "#888888",
        "labelLimit": 220,
    },
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "top"},
    "view": {"stroke": None},
}


def svg(spec: Spec) -> str:
    """A chart as an inline SVG; no data or font is fetched from anywhere."""
    return str(vl_convert.vegalite_to_svg(spec, config=CONFIG, allowed_base_urls=[]))


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 86400, 3)


# Report charts -------------------------------------------------------------------------


def funnel_chart(pipeline: dict) -> Spec:
    """Reached per non-failure stage (the funnel with conversion), Entered per failure stage."""
    rows = [
        {
            "stage": s["stage"],
            "semantic": s["semantic"] or "process",
            "items": s["reached"] if s["semantic"] != "failure" else s["entered"],
            "measure": "reached" if s["semantic"] != "failure" else "entered",
            "label": (
                f"{s['reached']:,}  ({percent(s['conversion_to_next'])} go on)"
                if s["semantic"] != "failure" and s["conversion_to_next"] is not None
                else f"{(s['reached'] if s['semantic'] != 'failure' else s['entered']):,}"
            ),
        }
        for s in pipeline["stages"]
    ]
    order = [r["stage"] for r in rows]
    return {
        "title": {
            "text": "Funnel: items that reached each stage",
            "subtitle": "Reached counts the stage or any later non-failure stage; "
            "failure stages show items that entered them",
        },
        "width": WIDTH - 260,
        "height": {"step": 26},
        "data": {"values": rows},
        "encoding": {
            "y": {"field": "stage", "type": "nominal", "sort": order, "title": None},
            "x": {"field": "items", "type": "quantitative", "title": "items"},
        },
        "layer": [
            {
                "mark": {"type": "bar", "cornerRadiusEnd": 2},
                "encoding": {
                    "color": {
                        "field": "semantic",
                        "type": "nominal",
                        "scale": SEMANTIC_COLORS,
                        "title": "stage semantic",
                    }
                },
            },
            {
                "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 11},
                "encoding": {"text": {"field": "label"}},
            },
        ],
    }


def time_in_stage_chart(pipeline: dict) -> Spec:
    """p50 and p90 of closed stays per stage, in days."""
    rows = []
    for s in pipeline["stages"]:
        for which in ("p50", "p90"):
            value = s["stays"][f"{which}_s"]
            if value is not None:
                rows.append(
                    {
                        "stage": s["stage"],
                        "percentile": which,
                        "days": _days(value),
                        "label": duration(value),
                    }
                )
    order = [s["stage"] for s in pipeline["stages"]]
    return {
        "title": {
            "text": "Time in stage (closed stays)",
            "subtitle": "median (p50) and 90th percentile (p90), in days",
        },
        "width": WIDTH - 260,
        "height": {"step": 13},
        "data": {"values": rows},
        "encoding": {
            "y": {"field": "stage", "type": "nominal", "sort": order, "title": None},
            "yOffset": {"field": "percentile", "sort": ["p50", "p90"]},
            "x": {"field": "days", "type": "quantitative", "title": "days"},
            "color": {
                "field": "percentile",
                "type": "nominal",
                "scale": {"domain": ["p50", "p90"], "range": [BLUE, "#9ecae9"]},
                "title": None,
            },
        },
        "layer": [
            {"mark": {"type": "bar"}},
            {
                "mark": {
                    "type": "text",
                    "align": "left",
                    "dx": 3,
                    "fontSize": 10,
                    "color": "#333333",
                },
                "encoding": {"text": {"field": "label"}, "color": {"value": "#333333"}},
            },
        ],
    }


def moves_chart(pipeline: dict) -> Spec:
    """The from/to matrix of moves (ours and the CRM's) as a heatmap."""
    cells: dict[tuple[str, str], int] = {}
    for m in pipeline["moves"]:
        key = (m["from"] or "(none)", m["to"])
        cells[key] = cells.get(key, 0) + m["count"]
    rows = [{"from": f, "to": t, "moves": n} for (f, t), n in cells.items()]
    order = [s["stage"] for s in pipeline["stages"]]
    order += sorted({f for f, _ in cells} - set(order))
    dark = 0.55 * max(cells.values(), default=0)
    return matrix_chart(
        "Moves: from stage (rows) to stage (columns)",
        "transitions of triggers and moves made in the CRM, summed",
        rows,
        order,
        "moves",
        {"scheme": "blues", "type": "sqrt"},
        text_format=",",
        dark_when=f"datum.moves > {dark}",
    )


def fires_chart(triggers: Sequence[dict]) -> Spec:
    """Fires per trigger (the busiest first), forward and backward."""
    rows = []
    for t in list(triggers)[:FIRES_SHOWN]:
        name = f"{t['tenant']} · {t['id']} ({t['code']})"
        rows.append({"trigger": name, "direction": "forward", "fires": t["fires"] - t["backward"]})
        if t["backward"]:
            rows.append({"trigger": name, "direction": "backward", "fires": t["backward"]})
    order = list(dict.fromkeys(r["trigger"] for r in rows))
    shown = (
        "" if len(triggers) <= FIRES_SHOWN else f" (the {FIRES_SHOWN} busiest of {len(triggers)})"
    )
    return {
        "title": {"text": f"Fires per trigger{shown}", "subtitle": "transitions each trigger made"},
        "width": WIDTH - 320,
        "height": {"step": 18},
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "y": {"field": "trigger", "type": "nominal", "sort": order, "title": None},
            "x": {"field": "fires", "type": "quantitative", "stack": "zero", "title": "fires"},
            "color": {
                "field": "direction",
                "type": "nominal",
                "scale": {"domain": ["forward", "backward"], "range": [BLUE, AMBER]},
                "title": None,
            },
        },
    }


def cohorts_chart(cohorts: Sequence[dict]) -> Spec:
    """Per week created, over every pipeline shown: items created, and the shares that
    reached success or sit on a failure stage (the table has them per pipeline)."""
    weeks: dict[str, list[float]] = {}
    for c in cohorts:
        week = weeks.setdefault(c["week"], [0, 0.0, 0.0])
        week[0] += c["items"]
        week[1] += c["items"] * (c["reached_success_share"] or 0)
        week[2] += c["items"] * (c["on_failure_share"] or 0)
    items = [{"week": w, "items": n} for w, (n, _, _) in sorted(weeks.items())]
    shares = [
        {"week": w, "outcome": outcome, "share": round(part / n, 4) if n else None}
        for w, (n, won, lost) in sorted(weeks.items())
        for outcome, part in (("reached success", won), ("on a failure stage", lost))
    ]
    x = {
        "field": "week",
        "type": "ordinal",
        "sort": sorted(weeks),
        "title": "week created (starting Monday, UTC)",
        "axis": {"labelAngle": -40},
    }
    return {
        "title": {
            "text": "Weekly cohorts: what became of the items created each week",
            "subtitle": "all pipelines of the report together; per pipeline in the table",
        },
        "vconcat": [
            {
                "width": WIDTH - 240,
                "height": 170,
                "data": {"values": shares},
                "mark": {"type": "line", "point": True, "strokeWidth": 2},
                "encoding": {
                    "x": {**x, "title": None, "axis": {"labels": False, "ticks": False}},
                    "y": {
                        "field": "share",
                        "type": "quantitative",
                        "title": "share of items",
                        "axis": {"format": "%"},
                        "scale": {"domain": [0, 1]},
                    },
                    "color": {
                        "field": "outcome",
                        "type": "nominal",
                        "title": None,
                        "scale": {
                            "domain": ["reached success", "on a failure stage"],
                            "range": [GREEN, RED],
                        },
                    },
                },
            },
            {
                "width": WIDTH - 240,
                "height": 90,
                "data": {"values": items},
                "mark": {"type": "bar", "color": GREY},
                "encoding": {
                    "x": x,
                    "y": {"field": "items", "type": "quantitative", "title": "items created"},
                },
            },
        ],
    }


# Page ----------------------------------------------------------------------------------

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-top: 12px; border-top: 2px solid #e3e6ea; }
h3 { font-size: 15px; margin: 20px 0 6px; color: #444; }
p.meta { color: #666; margin: 0 0 16px; font-size: 13px; }
nav { font-size: 13px; margin: 8px 0 16px; }
nav a { margin-right: 14px; color: #2f5f8f; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0 16px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e8e8e8; text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 12px 0 8px; overflow-x: auto; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0; }
.tile { background: #f0f4f8; border-radius: 6px; padding: 10px 16px; min-width: 120px; }
.tile b { display: block; font-size: 20px; }
.tile span { font-size: 12px; color: #555; }
.note { color: #666; font-size: 12px; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i >= numeric_from else ''}>{html.escape(str(cell))}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class Chart:
    """A chart's place on a page; `_page` renders every chart of the page at once."""

    spec: Spec


def _chart(spec: Spec) -> Chart:
    return Chart(spec)


def _page(title: str, body: Sequence[str | Chart]) -> str:
    specs = [part.spec for part in body if isinstance(part, Chart)]
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        rendered = iter(pool.map(svg, specs))
    parts = [
        part if isinstance(part, str) else f'<div class="chart">{next(rendered)}</div>'
        for part in body
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>\n"
    )


def _anchor(p: dict) -> str:
    return f"p-{p['tenant']}-{p['entity']}-{p['category']}".replace(" ", "_")


def report_page(report: dict) -> str:
    window = report["window"]
    span = (
        f"Window {window['from'] or 'start'} to {window['to'] or 'end'}. "
        if window["from"] or window["to"]
        else ""
    )
    body: list[str | Chart] = [
        "<h1>CRM stage history report</h1>",
        f'<p class="meta">{html.escape(span)}Open stays measured as of '
        f"{html.escape(report['as_of'] or '-')}. Times in stage are of closed stays.</p>",
    ]
    links = "".join(
        f'<a href="#{_anchor(p)}">{html.escape(p["tenant"])} / {html.escape(p["entity"])} / '
        f"{html.escape(p['category'])}</a>"
        for p in report["pipelines"]
    )
    body.append(
        f'<nav>Pipelines: {links} <a href="#triggers">Triggers</a>'
        '<a href="#stalled">Stalled</a><a href="#cohorts">Cohorts</a></nav>'
    )
    for p in report["pipelines"]:
        body.append(
            f'<h2 id="{_anchor(p)}">Pipeline {html.escape(p["tenant"])} / '
            f"{html.escape(p['entity'])} / category {html.escape(p['category'])}</h2>"
        )
        first_stage, first_entered = (
            (p["stages"][0]["stage"], p["stages"][0]["entered"]) if p["stages"] else ("-", 0)
        )
        body.append(
            '<div class="tiles">'
            f'<div class="tile"><b>{first_entered:,}</b><span>items entered '
            f"{html.escape(str(first_stage))}</span></div>"
            f'<div class="tile"><b>{sum(m["count"] for m in p["moves"]):,}</b>'
            "<span>moves</span></div>"
            f'<div class="tile"><b>{percent(p["backward_rate"])}</b>'
            "<span>of our transitions go backward</span></div></div>"
        )
        body.append(_chart(funnel_chart(p)))
        if any(s["stays"]["p50_s"] is not None for s in p["stages"]):
            body.append(_chart(time_in_stage_chart(p)))
        body.append(
            _table(
                [
                    "stage",
                    "semantic",
                    "entered",
                    "reached",
                    "conversion to next",
                    "closed stays",
                    "mean",
                    "p50",
                    "p90",
                    "open stays",
                    "open p50 age",
                ],
                [stage_cells(s) for s in p["stages"]],
                numeric_from=2,
            )
        )
        if p["moves"]:
            body.append(_chart(moves_chart(p)))
    body.append('<h2 id="triggers">Triggers</h2>')
    if report["triggers"]:
        body.append(_chart(fires_chart(report["triggers"])))
        body.append(
            _table(
                ["tenant", "trigger", "code", "fires", "items moved", "backward", "first", "last"],
                [
                    [
                        t["tenant"],
                        t["id"],
                        t["code"],
                        count(t["fires"]),
                        count(t["items"]),
                        count(t["backward"]),
                        t["first_at"],
                        t["last_at"],
                    ]
                    for t in report["triggers"]
                ],
                numeric_from=3,
            )
        )
    else:
        body.append('<p class="note">No transitions in the window.</p>')
    if report["never_fired"] is not None:
        body.append(
            f"<h3>Never fired: {len(report['never_fired'])} triggers in force at as-of</h3>"
        )
        if report["never_fired"]:
            body.append(
                _table(
                    ["tenant", "trigger", "code", "pipeline", "stage"],
                    [never_fired_cells(t, " / ") for t in report["never_fired"]],
                    numeric_from=5,
                )
            )
    stalled = report["stalled"]
    body.append(
        f'<h2 id="stalled">Stalled: {len(stalled):,} items on a process stage for '
        f"over {duration(report['stalled_after_s'])}</h2>"
    )
    if stalled:
        body.append(
            _table(
                ["tenant", "item", "pipeline", "stage", "since", "age"],
                [
                    [
                        s["tenant"],
                        f"{s['entity']} {s['id']}",
                        f"{s['entity']} / {s['category']}",
                        s["stage"],
                        s["since"],
                        duration(s["age_s"]),
                    ]
                    for s in stalled[:100]
                ],
                numeric_from=5,
            )
        )
        if len(stalled) > 100:
            body.append(
                f'<p class="note">The 100 oldest of {len(stalled):,}; '
                "all are in --format json or csv.</p>"
            )
    body.append('<h2 id="cohorts">Cohorts by week created</h2>')
    if report["cohorts"]:
        body.append(_chart(cohorts_chart(report["cohorts"])))
        body.append(
            _table(
                [
                    "pipeline",
                    "week (Monday)",
                    "items",
                    "reached success",
                    "on failure",
                    "median days to success",
                ],
                [cohort_cells(c, " / ") for c in report["cohorts"]],
                numeric_from=2,
            )
        )
    else:
        body.append('<p class="note">No item was created in the window.</p>')
    if report["skipped"]:
        body.append(
            '<p class="note">'
            + html.escape(
                "; ".join(f"skipped {n:,} {what}" for what, n in report["skipped"].items())
            )
            + "</p>"
        )
    return _page("CRM stage history report", body)


# Diff ----------------------------------------------------------------------------------


def fires_change_chart(triggers: Sequence[dict]) -> Spec:
    """Fires gained (right) and lost (left) per trigger."""
    rows = [
        {
            "trigger": f"{t['tenant']} · {t['id']} ({t['code']})",
            "change": t["delta"],
            "sign": "gained" if t["delta"] > 0 else "lost",
        }
        for t in list(triggers)[:FIRES_SHOWN]
    ]
    return {
        "title": {
            "text": "Fires gained and lost per trigger",
            "subtitle": "other log minus base log",
        },
        "width": WIDTH - 320,
        "height": {"step": 18},
        "data": {"values": rows},
        "encoding": {
            "y": {"field": "trigger", "type": "nominal", "sort": "-x", "title": None},
            "x": {"field": "change", "type": "quantitative", "title": "change in fires"},
        },
        "layer": [
            {
                "mark": "bar",
                "encoding": {
                    "color": {
                        "field": "sign",
                        "type": "nominal",
                        "scale": {"domain": ["gained", "lost"], "range": [GREEN, RED]},
                        "title": None,
                    }
                },
            },
            {
                "mark": {"type": "rule", "color": "#555555"},
                "encoding": {"x": {"datum": 0}, "y": {}},
            },
        ],
    }


def moves_change_chart(moves: Sequence[dict], order: Sequence[str]) -> Spec:
    """The change of one pipeline's from/to matrix: red where moves were lost, green
    where gained."""
    rows = [{"from": m["from"] or "(none)", "to": m["to"], "change": m["delta"]} for m in moves]
    order = [*order, *sorted({r["from"] for r in rows} - set(order))]
    largest = max((abs(r["change"]) for r in rows), default=1)
    return matrix_chart(
        "Change in moves: from stage (rows) to stage (columns)",
        "transitions in the other log minus the base log",
        rows,
        order,
        "change",
        {"scheme": "redyellowgreen", "domain": [-largest, largest]},
        text_format="+,",
        dark_when=f"abs(datum.change) > {0.6 * largest}",
    )


def matrix_chart(
    title: str,
    subtitle: str,
    rows: list[dict],
    order: Sequence[str],
    field: str,
    scale: dict,
    text_format: str,
    dark_when: str,
) -> Spec:
    """A from/to heatmap of `field`, stages in `order` on both axes, each cell labelled
    (white on the cells `dark_when` holds for)."""
    no_grid = {"grid": False, "ticks": False, "domain": False}
    return {
        "title": {"text": title, "subtitle": subtitle},
        "width": {"step": 64},
        "height": {"step": 26},
        "data": {"values": rows},
        "encoding": {
            "y": {
                "field": "from",
                "type": "nominal",
                "scale": {"domain": list(order)},
                "title": "from",
                "axis": no_grid,
            },
            "x": {
                "field": "to",
                "type": "nominal",
                "scale": {"domain": list(order)},
                "title": "to",
                "axis": {**no_grid, "orient": "top", "labelAngle": -35},
            },
        },
        "layer": [
            {
                "mark": {"type": "rect", "stroke": "#ffffff", "strokeWidth": 1},
                "encoding": {
                    "color": {
                        "field": field,
                        "type": "quantitative",
                        "scale": scale,
                        "title": field,
                    }
                },
            },
            {
                "mark": {"type": "text", "fontSize": 10},
                "encoding": {
                    "text": {"field": field, "format": text_format},
                    "color": {
                        "condition": {"test": dark_when, "value": "#ffffff"},
                        "value": "#222222",
                    },
                },
            },
        ],
    }


def reached_change_chart(stages: Sequence[dict]) -> Spec:
    rows = []
    for s in stages:
        name = f"{pipeline_cell(s)}: {s['stage']}"
        for side in ("base", "other"):
            if s[f"reached_{side}"] is not None:
                rows.append({"stage": name, "log": side, "reached": s[f"reached_{side}"]})
    return {
        "title": {
            "text": "Reached per stage, base and other",
            "subtitle": "only stages whose Reached changed",
        },
        "width": WIDTH - 320,
        "height": {"step": 12},
        "data": {"values": rows},
        "mark": "bar",
        "encoding": {
            "y": {"field": "stage", "type": "nominal", "sort": None, "title": None},
            "yOffset": {"field": "log"},
            "x": {"field": "reached", "type": "quantitative", "title": "items"},
            "color": {
                "field": "log",
                "type": "nominal",
                "scale": {"domain": ["base", "other"], "range": [GREY, BLUE]},
                "title": None,
            },
        },
    }


def diff_page(summary: dict) -> str:
    t = summary["transitions"]
    body: list[str | Chart] = [
        "<h1>What changed between two transition logs</h1>",
        '<p class="meta">Transitions are matched by id: the same event for the same item.</p>',
        '<div class="tiles">'
        + "".join(
            f'<div class="tile"><b>{value:,}</b><span>{label}</span></div>'
            for value, label in (
                (t["base"], "transitions in base"),
                (t["other"], "transitions in other"),
                (t["added"], "added"),
                (t["removed"], "removed"),
                (t["changed"], "changed"),
                (t["items_changed"], "items affected"),
            )
        )
        + "</div>",
    ]
    if not (t["added"] or t["removed"] or t["changed"]):
        body.append('<p class="note">The two logs hold the same transitions.</p>')
    if summary["triggers"]:
        body.append("<h2>Triggers</h2>")
        body.append(_chart(fires_change_chart(summary["triggers"])))
        body.append(
            _table(
                ["tenant", "trigger", "code", "base", "other", "change"],
                [trigger_change_cells(r) for r in summary["triggers"]],
                numeric_from=3,
            )
        )
    if summary["moves"]:
        body.append("<h2>Moves</h2>")
        by_pipeline: dict[str, list[dict]] = {}
        for m in summary["moves"]:
            by_pipeline.setdefault(pipeline_cell(m), []).append(m)
        for name, moves in by_pipeline.items():
            tenant, entity, category = name.split("/", 2)
            body.append(
                f"<h3>Pipeline {html.escape(tenant)} / {html.escape(entity)} / "
                f"category {html.escape(category)}</h3>"
            )
            body.append(_chart(moves_change_chart(moves, summary["stage_order"].get(name, []))))
    history = summary["history"]
    if history is not None:
        body.append(
            f"<h2>Items whose last stage differs: {history['items_last_stage_differs']:,}</h2>"
        )
        if history["stages"]:
            body.append(_chart(reached_change_chart(history["stages"])))
            body.append(
                _table(
                    [
                        "pipeline",
                        "stage",
                        "reached (base)",
                        "reached (other)",
                        "p50 in stage (base)",
                        "p50 in stage (other)",
                    ],
                    [stage_change_cells(r, " / ") for r in history["stages"]],
                    numeric_from=2,
                )
            )
        if history["items"]:
            body.append(
                _table(
                    ["tenant", "item", "last stage (base)", "last stage (other)"],
                    [
                        [
                            r["tenant"],
                            f"{r['entity']} {r['id']}",
                            r["base"] or "-",
                            r["other"] or "-",
                        ]
                        for r in history["items"][:100]
                    ],
                    numeric_from=4,
                )
            )
    return _page("What changed between two transition logs", body)
