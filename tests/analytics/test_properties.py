"""Properties of the report and the diff over random histories and transition logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.diff import DiffInputs, build_diff
from analytics.figures import Scope
from analytics.load import Skipped, connect
from analytics.report import Report, ReportInputs, build_report
from tests.analytics.conftest import STAGES, at, pipeline, record, transition_of
from tests.conftest import jsonl

STAGE_NAMES = [s for s, _ in STAGES]
KINDS = ["trigger", "crm", "crm", "deleted", "created"]

steps = st.lists(
    st.tuples(
        st.integers(0, 5),  # item
        st.sampled_from(KINDS),
        st.sampled_from(STAGE_NAMES),
        st.integers(0, 3),  # hours after the previous record (0: a tie)
    ),
    max_size=40,
)


def as_history(drawn: list[tuple[int, str, str, int]]) -> list[dict[str, Any]]:
    """A history an engine could write: each item starts with `created`."""
    history: list[dict[str, Any]] = []
    where: dict[str, str | None] = {}
    hours = 0
    for n, (item_no, kind, stage, gap) in enumerate(drawn):
        item = f"i{item_no}"
        hours += gap
        when = at(0, hours)
        if item not in where or where[item] is None:
            kind = "created"
        if kind == "deleted":
            history.append(record(item, "deleted", where[item] or "NEW", when, where[item]))
            where[item] = None
            continue
        trigger = f"t-{stage}" if kind == "trigger" else None
        history.append(record(item, kind, stage, when, where.get(item), trigger, event=f"e{n}"))
        where[item] = stage
    return history


def report_of(tmp_path: Path, history: list[dict[str, Any]], automation: bool) -> Report:
    path = tmp_path / "h.jsonl"
    path.write_bytes(jsonl(history))
    automation_paths = []
    if automation:
        (tmp_path / "a.jsonl").write_bytes(jsonl([pipeline()]))
        automation_paths = [str(tmp_path / "a.jsonl")]
    inputs = ReportInputs(history=[str(path)], automation=automation_paths)
    return build_report(connect(), inputs, Scope(), Skipped())


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(drawn=steps, automation=st.booleans())
def test_reached_is_monotone_along_the_pipeline(
    tmp_path: Path, drawn: list, automation: bool
) -> None:
    report = report_of(tmp_path, as_history(drawn), automation)
    for p in report["pipelines"]:
        reached = [s["reached"] for s in p["stages"] if s["reached"] is not None]
        assert reached == sorted(reached, reverse=True)
        for s in p["stages"]:
            if s["reached"] is not None:
                assert s["reached"] >= s["entered"]


@SETTINGS
@given(drawn=steps)
def test_entered_equals_distinct_items_per_stage(tmp_path: Path, drawn: list) -> None:
    history = as_history(drawn)
    report = report_of(tmp_path, history, automation=False)
    direct: dict[str, set[str]] = {}
    for r in history:
        if r["kind"] != "deleted":
            direct.setdefault(r["stage"], set()).add(r["item"]["id"])
    got = {s["stage"]: s["entered"] for p in report["pipelines"] for s in p["stages"]}
    assert {k: v for k, v in got.items() if v} == {k: len(v) for k, v in direct.items()}


@SETTINGS
@given(drawn=steps)
def test_every_stay_is_closed_or_open_once(tmp_path: Path, drawn: list) -> None:
    history = as_history(drawn)
    report = report_of(tmp_path, history, automation=False)
    stays = sum(
        s["stays"]["closed"] + s["stays"]["open"] for p in report["pipelines"] for s in p["stages"]
    )
    assert stays == sum(1 for r in history if r["kind"] != "deleted")


def transitions_of(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [transition_of(r) for r in history if r["kind"] == "trigger"]


def diff_of(tmp_path: Path, base: list[dict], other: list[dict]) -> Any:
    (tmp_path / "base.jsonl").write_bytes(jsonl(base))
    (tmp_path / "other.jsonl").write_bytes(jsonl(other))
    inputs = DiffInputs([str(tmp_path / "base.jsonl")], [str(tmp_path / "other.jsonl")])
    return build_diff(connect(), inputs, Skipped())


@SETTINGS
@given(drawn=steps)
def test_diff_of_a_log_with_itself_is_empty(tmp_path: Path, drawn: list) -> None:
    log = transitions_of(as_history(drawn))
    result = diff_of(tmp_path, log, log)
    counts = result.summary["transitions"]
    assert (counts["added"], counts["removed"], counts["changed"]) == (0, 0, 0)
    assert counts["unchanged"] == len({t["id"] for t in log})
    assert result.summary["triggers"] == [] and result.summary["moves"] == []
    assert result.items == []


@SETTINGS
@given(base=steps, other=steps)
def test_diff_counts_add_up(tmp_path: Path, base: list, other: list) -> None:
    left, right = transitions_of(as_history(base)), transitions_of(as_history(other))
    counts = diff_of(tmp_path, left, right).summary["transitions"]
    left_ids, right_ids = {t["id"] for t in left}, {t["id"] for t in right}
    assert counts["added"] == len(right_ids - left_ids)
    assert counts["removed"] == len(left_ids - right_ids)
    assert counts["changed"] + counts["unchanged"] == len(left_ids & right_ids)
    assert counts["added"] + counts["removed"] + counts["changed"] + counts["unchanged"] == len(
        left_ids | right_ids
    )
