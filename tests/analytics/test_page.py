"""The HTML page: every chart renders with something drawn, nothing is fetched."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import vl_convert

from analytics import page
from analytics.diff import DiffInputs, build_diff
from analytics.load import Skipped, connect
from analytics.report import Report
from tests.analytics.conftest import MakeReport, Write, pipeline, trigger
from tests.analytics.test_diff import BASE, OTHER
from tests.analytics.test_figures import the_history, the_transitions


@pytest.fixture
def report(make_report: MakeReport) -> Report:
    return make_report(the_history(), the_transitions(), [pipeline(), trigger("t-idle", "B")])


def _emptied(spec: Any) -> Any:
    """The same chart with no data at all."""
    spec = copy.deepcopy(spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "values" in node and isinstance(node["values"], list):
                node["values"] = []
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return spec


def _drawn_marks(scenegraph: Any) -> int:
    """Items of data-bearing marks (rects, bars, symbols, lines, texts) in a scenegraph."""
    found = 0

    def walk(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            if (
                node.get("marktype") in {"rect", "symbol", "line", "text"}
                and node.get("role", "") == "mark"
            ):
                found += len(node.get("items", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(scenegraph)
    return found


CHARTS: list[tuple[str, Callable[[Report], Any]]] = [
    ("funnel", lambda r: page.funnel_chart(r["pipelines"][0])),
    ("time in stage", lambda r: page.time_in_stage_chart(r["pipelines"][0])),
    ("moves", lambda r: page.moves_chart(r["pipelines"][0])),
    ("fires", lambda r: page.fires_chart(r["triggers"])),
    ("cohorts", lambda r: page.cohorts_chart(r["cohorts"])),
]


@pytest.mark.parametrize(("name", "chart"), CHARTS, ids=[n for n, _ in CHARTS])
def test_every_report_chart_renders_not_blank(
    report: Report, name: str, chart: Callable[[Report], Any]
) -> None:
    spec = chart(report)
    png = vl_convert.vegalite_to_png(spec, config=page.CONFIG, allowed_base_urls=[])
    empty = vl_convert.vegalite_to_png(_emptied(spec), config=page.CONFIG, allowed_base_urls=[])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > len(empty) + 500, f"{name}: the chart draws nothing more than its frame"
    drawn = _drawn_marks(vl_convert.vegalite_to_scenegraph(spec, config=page.CONFIG))
    assert drawn >= 3, f"{name}: {drawn} marks drawn"


def test_diff_charts_render_not_blank(write: Write) -> None:
    summary = build_diff(
        connect(), DiffInputs([write("b.jsonl", BASE)], [write("o.jsonl", OTHER)]), Skipped()
    ).summary
    for spec in (
        page.fires_change_chart(summary["triggers"]),
        page.moves_change_chart(summary["moves"], summary["stage_order"]["acme/deal/0"]),
    ):
        assert _drawn_marks(vl_convert.vegalite_to_scenegraph(spec, config=page.CONFIG)) >= 1


def test_page_references_nothing_on_the_network(report: Report) -> None:
    html = page.report_page(report)
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 5
    assert "<script" not in html and "<link" not in html and "@import" not in html
    addresses = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"')<]*", html))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert not re.search(r"(src|href)=\"(?!#)", html)
    assert "url(" not in html.replace("url(#", "")


def test_page_has_the_tables_a_person_reads(report: Report) -> None:
    html = page.report_page(report)
    for heading in (
        "Funnel: items that reached each stage",
        "Time in stage",
        "Moves: from stage (rows) to stage (columns)",
        "Fires per trigger",
        "Weekly cohorts",
        "Never fired: 1 triggers",
        "Stalled",
    ):
        assert heading in html
    assert "1.1 d" in html  # NEW's mean stay, with its unit
