"""The report as text tables (for a terminal of 100 columns), JSON, or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the report's type only: rendering needs no DuckDB
    from analytics.report import Report

STALLED_SHOWN = 20
MOVES_SHOWN = 12


def duration(seconds: float | None, compact: bool = False) -> str:
    """A length a person reads at a glance: 45 s, 12 min, 3.5 h, 9.2 d; `compact` (a
    narrow terminal table): 45s, 12m, 3.5h, 9.2d."""
    if seconds is None:
        return "-"
    s, m, h, d = ("s", "m", "h", "d") if compact else (" s", " min", " h", " d")
    if seconds < 60:
        return f"{seconds:.0f}{s}"
    if seconds < 3600:
        return f"{seconds / 60:.0f}{m}"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}{h}"
    return f"{seconds / 86400:.1f}{d}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """Columns padded to their widest cell; text left, figures right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < numeric_from else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _pipeline_name(p: dict) -> str:
    return f"{p['tenant']} / {p['entity']} / category {p['category']}"


def to_text(report: Report) -> str:
    out: list[str] = []
    window = report["window"]
    span = (
        f"window {window['from'] or 'start'} .. {window['to'] or 'end'}, "
        if window["from"] or window["to"]
        else ""
    )
    out.append(f"Stage history report ({span}as of {report['as_of'] or '-'})")
    out.append(
        "reached: items on the stage or a later non-failure one; conv.: reached next / "
        "reached;\ntime in stage (mean, p50, p90) over closed stays; open p50: median age "
        "of open stays"
    )
    for p in report["pipelines"]:
        out += ["", f"== Pipeline {_pipeline_name(p)} ==", ""]
        out.append(
            table(
                [
                    "stage",
                    "semantic",
                    "entered",
                    "reached",
                    "conv.",
                    "closed",
                    "mean",
                    "p50",
                    "p90",
                    "open",
                    "open p50",
                ],
                [stage_cells(s) for s in p["stages"]],
                numeric_from=2,
            )
        )
        if p["moves"]:
            shown = p["moves"][:MOVES_SHOWN]
            out += [
                "",
                f"Moves, the {len(shown)} most frequent of {len(p['moves'])} "
                f"(backward rate of our transitions: {percent(p['backward_rate'])})",
            ]
            out.append(
                table(
                    ["from", "to", "kind", "count"],
                    [[m["from"] or "-", m["to"], m["kind"], count(m["count"])] for m in shown],
                    numeric_from=3,
                )
            )
    out += ["", "== Triggers ==", ""]
    if report["triggers"]:
        out.append(
            table(
                ["tenant", "trigger", "code", "fires", "items", "backward", "first", "last"],
                [
                    [
                        t["tenant"],
                        t["id"],
                        t["code"] or "?",
                        count(t["fires"]),
                        count(t["items"]),
                        count(t["backward"]),
                        t["first_at"][:16],
                        t["last_at"][:16],
                    ]
                    for t in report["triggers"]
                ],
                numeric_from=3,
            )
        )
    else:
        out.append("no transitions in the window")
    if report["never_fired"] is not None:
        out += ["", f"Never fired ({len(report['never_fired'])} triggers in force at as-of)"]
        if report["never_fired"]:
            out.append(
                table(
                    ["tenant", "trigger", "code", "pipeline", "stage"],
                    [never_fired_cells(t) for t in report["never_fired"]],
                    numeric_from=5,
                )
            )
    stalled = report["stalled"]
    after = duration(report["stalled_after_s"])
    out += ["", f"== Stalled: {len(stalled)} items on a process stage for over {after} =="]
    if stalled:
        out.append("")
        out.append(
            table(
                ["tenant", "item", "pipeline", "stage", "since", "age"],
                [
                    [
                        s["tenant"],
                        f"{s['entity']}/{s['id']}",
                        f"{s['entity']}/{s['category']}",
                        s["stage"],
                        s["since"][:16],
                        duration(s["age_s"]),
                    ]
                    for s in stalled[:STALLED_SHOWN]
                ],
                numeric_from=5,
            )
        )
        if len(stalled) > STALLED_SHOWN:
            out.append(f"... and {len(stalled) - STALLED_SHOWN} more (--format json or csv)")
    out += ["", "== Cohorts by week created (Monday, UTC) ==", ""]
    if report["cohorts"]:
        out.append(
            table(
                ["pipeline", "week", "items", "reached success", "on failure", "median to success"],
                [cohort_cells(c) for c in report["cohorts"]],
                numeric_from=2,
            )
        )
    else:
        out.append("no item created in the window")
    for what, n in report["skipped"].items():
        out.append(f"\nnote: skipped {n:,} {what}")
    return "\n".join(out) + "\n"


def to_json(report: Report) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"


# CSV: one table per section ---------------------------------------------------------


def _stages(report: Report) -> list[dict]:
    return [
        {
            "tenant": p["tenant"],
            "entity": p["entity"],
            "category": p["category"],
            "position": i,
            "stage": s["stage"],
            "semantic": s["semantic"],
            "entered": s["entered"],
            "reached": s["reached"],
            "conversion_to_next": s["conversion_to_next"],
            **{f"stays_{k}": v for k, v in s["stays"].items()},
        }
        for p in report["pipelines"]
        for i, s in enumerate(p["stages"])
    ]


def _moves(report: Report) -> list[dict]:
    return [
        {"tenant": p["tenant"], "entity": p["entity"], "category": p["category"], **m}
        for p in report["pipelines"]
        for m in p["moves"]
    ]


def _backward(report: Report) -> list[dict]:
    return [
        {
            "tenant": p["tenant"],
            "entity": p["entity"],
            "category": p["category"],
            "backward_rate": p["backward_rate"],
        }
        for p in report["pipelines"]
    ]


SECTIONS: dict[str, Callable[[Report], list[dict]]] = {
    "stages": _stages,
    "moves": _moves,
    "backward": _backward,
    "triggers": lambda r: list(r["triggers"]),
    "never_fired": lambda r: list(r["never_fired"] or []),
    "stalled": lambda r: list(r["stalled"]),
    "cohorts": lambda r: list(r["cohorts"]),
}


def _csv_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def to_csv(report: Report, section: str | None) -> str:
    """One CSV table; or, without a section, every table after a `# section` line."""
    if section is not None:
        return _csv_table(SECTIONS[section](report))
    return "\n".join(f"# {name}\n{_csv_table(rows(report))}" for name, rows in SECTIONS.items())


def stage_cells(stage: dict) -> list[str]:
    """A stage's row of the report's stage table, as text (text tables and the page)."""
    stays = stage["stays"]
    return [
        stage["stage"],
        stage["semantic"] or "?",
        count(stage["entered"]),
        count(stage["reached"]),
        percent(stage["conversion_to_next"]),
        count(stays["closed"]),
        duration(stays["mean_s"]),
        duration(stays["p50_s"]),
        duration(stays["p90_s"]),
        count(stays["open"]),
        duration(stays["open_p50_age_s"]),
    ]


def trigger_change_cells(row: dict) -> list[str]:
    """A trigger's row of a diff's fires table, as text (the text diff and its page)."""
    return [
        row["tenant"],
        row["id"],
        row["code"] or "?",
        count(row["base"]),
        count(row["other"]),
        f"{row['delta']:+,}",
    ]


def pipeline_cell(row: dict, sep: str = "/") -> str:
    """A pipeline in a table cell: tenant/entity/category (the page spaces it: ` / `)."""
    return f"{row['tenant']}{sep}{row['entity']}{sep}{row['category']}"


def never_fired_cells(trigger: dict, sep: str = "/") -> list[str]:
    """A trigger's row of the report's never-fired table (text tables and the page)."""
    return [
        trigger["tenant"],
        trigger["id"],
        trigger["code"],
        f"{trigger['entity']}{sep}{trigger['category']}",
        trigger["stage"],
    ]


def cohort_cells(cohort: dict, sep: str = "/") -> list[str]:
    """A cohort's row of the report's cohort table (text tables and the page)."""
    days = cohort["median_days_to_success"]
    return [
        pipeline_cell(cohort, sep),
        cohort["week"],
        count(cohort["items"]),
        percent(cohort["reached_success_share"]),
        percent(cohort["on_failure_share"]),
        "-" if days is None else f"{days:.1f} d",
    ]


def stage_change_cells(row: dict, sep: str = "/") -> list[str]:
    """A stage's row of a diff's reached and time-in-stage table (the text diff and its page)."""
    return [
        pipeline_cell(row, sep),
        row["stage"],
        count(row["reached_base"]),
        count(row["reached_other"]),
        duration(row["p50_s_base"]),
        duration(row["p50_s_other"]),
    ]
