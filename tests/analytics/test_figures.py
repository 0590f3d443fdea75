"""Each figure of spec 6.2 against a small history computed by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.analytics.conftest import (
    DAY,
    MakeReport,
    at,
    pipeline,
    record,
    stage_of,
    transition_of,
    trigger,
)


def the_history() -> list[dict[str, Any]]:
    """Four deals of acme/deal/0 (NEW, A, B, WON success, LOSE failure):

    d1 skips A (a trigger to B), then a person wins it; d2 goes to A, a trigger
    moves it back to NEW, it re-enters A and is lost; d3 is created late and
    still waits on NEW; d4 is deleted a day after it was created.
    """
    return [
        record("d1", "created", "NEW", at(0)),
        record("d2", "created", "NEW", at(0, 12)),
        record("d1", "trigger", "B", at(1), "NEW", "t-b"),
        record("d4", "created", "NEW", at(1)),
        record("d2", "trigger", "A", at(2), "NEW", "t-a"),
        record("d4", "deleted", "NEW", at(2), "NEW"),
        record("d1", "crm", "WON", at(3), "B"),
        record("d2", "trigger", "NEW", at(4), "A", "t-back"),
        record("d2", "trigger", "A", at(5), "NEW", "t-a"),
        record("d3", "created", "NEW", at(6)),
        record("d2", "crm", "LOSE", at(9), "A"),
    ]


def the_transitions() -> list[dict[str, Any]]:
    return [
        transition_of(r, "backward" if r["stage"] == "NEW" else "forward")
        for r in the_history()
        if r["kind"] == "trigger"
    ]


def test_entered_counts_distinct_items_with_a_stay(make_report: MakeReport) -> None:
    report = make_report(the_history())
    entered = {s["stage"]: s["entered"] for s in report["pipelines"][0]["stages"]}
    # d2 entered NEW and A twice each, but counts once; d4's deletion opens no stay.
    assert entered == {"NEW": 4, "A": 1, "B": 1, "WON": 1, "LOSE": 1}


def test_reached_counts_later_non_failure_stages_and_skips(make_report: MakeReport) -> None:
    report = make_report(the_history(), automation=[pipeline()])
    stages = {s["stage"]: s for s in report["pipelines"][0]["stages"]}
    # d1 skipped A but reached WON, so it counts on A; d2 was lost from A: LOSE is a
    # failure stage and does not carry it further.
    assert [stages[s]["reached"] for s in ("NEW", "A", "B", "WON")] == [4, 2, 1, 1]
    assert stages["LOSE"]["reached"] is None
    assert [stages[s]["conversion_to_next"] for s in ("NEW", "A", "B", "WON", "LOSE")] == [
        0.5,
        0.5,
        1.0,
        None,
        None,
    ]


def test_time_in_stage_of_closed_and_open_stays(make_report: MakeReport) -> None:
    report = make_report(the_history(), automation=[pipeline()])
    new, a, won, lose = (stage_of(report, s)["stays"] for s in ("NEW", "A", "WON", "LOSE"))
    # NEW closed: d1 1 d, d2 1.5 d, d2 again 1 d, d4 1 d (closed by its deletion).
    assert new["closed"] == 4
    assert new["mean_s"] == pytest.approx(1.125 * DAY)
    assert new["p50_s"] == pytest.approx(1.0 * DAY)
    assert new["p90_s"] == pytest.approx(1.35 * DAY)  # 1 + 0.7 * (1.5 - 1), linear
    # d3 waits on NEW since day 6; as-of is the latest `at`, day 9.
    assert (new["open"], new["open_p50_age_s"]) == (1, pytest.approx(3 * DAY))
    assert (a["closed"], a["mean_s"], a["p90_s"]) == (2, 3 * DAY, pytest.approx(3.8 * DAY))
    assert (won["closed"], won["mean_s"], won["open"]) == (0, None, 1)
    assert won["open_p50_age_s"] == pytest.approx(6 * DAY)
    assert (lose["open"], lose["open_p50_age_s"]) == (1, 0)


def test_as_of_moves_the_age_of_open_stays(make_report: MakeReport) -> None:
    report = make_report(the_history(), as_of=datetime(2026, 11, 21))
    assert stage_of(report, "NEW")["stays"]["open_p50_age_s"] == pytest.approx(13 * DAY)


def test_a_stay_is_never_negative(make_report: MakeReport) -> None:
    history = [
        record("x", "created", "NEW", at(2)),
        record("x", "crm", "A", at(1), "NEW"),  # decided later, stamped earlier
    ]
    assert stage_of(make_report(history), "NEW")["stays"]["mean_s"] == 0


def test_moves_and_backward_rate(make_report: MakeReport) -> None:
    report = make_report(the_history(), the_transitions())
    moves = {(m["from"], m["to"], m["kind"]): m["count"] for m in report["pipelines"][0]["moves"]}
    assert moves == {
        ("NEW", "B", "trigger"): 1,
        ("B", "WON", "crm"): 1,
        ("NEW", "A", "trigger"): 2,
        ("A", "NEW", "trigger"): 1,
        ("A", "LOSE", "crm"): 1,
    }
    assert report["pipelines"][0]["backward_rate"] == 0.25


def test_backward_rate_without_transitions_reads_the_stage_order(
    make_report: MakeReport,
) -> None:
    report = make_report(the_history(), automation=[pipeline()])
    assert report["pipelines"][0]["backward_rate"] == 0.25


def test_trigger_effectiveness_and_never_fired(make_report: MakeReport) -> None:
    automation = [
        pipeline(),
        trigger("t-a", "A"),
        trigger("t-b", "B"),
        trigger("t-back", "NEW", allow_backwards=True),
        trigger("t-idle", "B"),
        trigger("t-later", "B", updated_at="2026-12-31T00:00:00Z"),
        trigger("t-gone", "B"),
        {
            "kind": "trigger",
            "tenant": "acme",
            "id": "t-gone",
            "deleted": True,
            "updated_at": "2026-10-02T00:00:00Z",
        },
    ]
    report = make_report(the_history(), the_transitions(), automation)
    fires = {t["id"]: (t["fires"], t["items"], t["backward"]) for t in report["triggers"]}
    assert fires == {"t-a": (2, 1, 0), "t-b": (1, 1, 0), "t-back": (1, 1, 1)}
    t_a = next(t for t in report["triggers"] if t["id"] == "t-a")
    assert (t_a["first_at"], t_a["last_at"]) == (at(2), at(5))
    # In force at as-of (day 9) and silent: t-idle only (t-later is not yet, t-gone is deleted).
    assert [t["id"] for t in report["never_fired"]] == ["t-idle"]


def test_never_fired_is_null_without_automation(make_report: MakeReport) -> None:
    assert make_report(the_history())["never_fired"] is None


def test_stalled_items_are_strictly_older_open_process_stays(make_report: MakeReport) -> None:
    two_days = make_report(the_history(), stalled_s=2 * DAY)["stalled"]
    assert [(s["id"], s["stage"], s["age_s"]) for s in two_days] == [("d3", "NEW", 3 * DAY)]
    # d3 is exactly 3 days old: not strictly older. d1 (won) and d2 (lost) are closed.
    assert make_report(the_history(), stalled_s=3 * DAY)["stalled"] == []


def test_cohorts_by_iso_week_of_creation(make_report: MakeReport) -> None:
    history = [
        *the_history(),
        record("d5", "created", "NEW", at(7)),  # Monday 2026-11-09
        record("d5", "crm", "WON", at(8, 12), "NEW"),
    ]
    cohorts = make_report(history)["cohorts"]
    assert [(c["week"], c["items"]) for c in cohorts] == [("2026-11-02", 4), ("2026-11-09", 1)]
    first, second = cohorts
    assert (first["reached_success_share"], first["on_failure_share"]) == (0.25, 0.25)
    assert first["median_days_to_success"] == 3.0
    assert (second["reached_success_share"], second["median_days_to_success"]) == (1.0, 1.5)


def test_ties_keep_input_order(make_report: MakeReport) -> None:
    """Two records of one item with the same `at`: the later line closes the earlier."""
    same = at(1)
    created, moved = (
        record("x", "created", "NEW", same),
        record("x", "trigger", "A", same, "NEW", "t"),
    )
    report = make_report([created, moved])
    assert stage_of(report, "A")["stays"]["open"] == 1
    assert stage_of(report, "NEW")["stays"]["closed"] == 1
    reversed_report = make_report([moved, created])
    assert stage_of(reversed_report, "NEW")["stays"]["open"] == 1
    assert stage_of(reversed_report, "A")["stays"]["closed"] == 1


def test_ties_keep_input_order_over_many_records(make_report: MakeReport) -> None:
    """Thousands of items, each with a created and a move at the same second."""
    history = []
    for n in range(3000):
        history.append(record(f"i{n}", "created", "NEW", at(0)))
        history.append(record(f"i{n}", "trigger", "A", at(0), "NEW", "t"))
    report = make_report(history)
    assert stage_of(report, "A")["stays"]["open"] == 3000
    assert stage_of(report, "NEW")["stays"]["closed"] == 3000


def test_window_counts_stays_closed_inside_it(make_report: MakeReport) -> None:
    report = make_report(
        the_history(),
        start=datetime(2026, 11, 4),  # day 2
        end=datetime(2026, 11, 8),  # day 6: d3's creation is outside
    )
    entered = {s["stage"]: s["entered"] for s in report["pipelines"][0]["stages"]}
    assert entered == {"NEW": 1, "A": 1, "B": 0, "WON": 1, "LOSE": 0}
    # d1's stay on B opened before the window (day 1) and closed inside it (day 3).
    assert stage_of(report, "B")["stays"]["closed"] == 1
    assert stage_of(report, "B")["stays"]["mean_s"] == 2 * DAY
    # NEW: d2 (closed day 2), d4 (deleted day 2), d2 again (day 4 to 5).
    assert stage_of(report, "NEW")["stays"]["closed"] == 3
    assert report["as_of"] == at(5)
    assert report["cohorts"] == []


def test_tenants_and_pipelines_are_apart(make_report: MakeReport) -> None:
    history = [
        *the_history(),
        record("d1", "created", "NEW", at(0), tenant="globex"),
        record("l1", "created", "NEW", at(0), entity="lead"),
        record("c1", "created", "C1:NEW", at(0), category="1"),
        record("d1", "crm", "C1:NEW", at(1), "NEW", tenant="globex", category="1"),
    ]
    report = make_report(history)
    names = [(p["tenant"], p["entity"], p["category"]) for p in report["pipelines"]]
    assert names == [
        ("acme", "deal", "0"),
        ("acme", "deal", "1"),
        ("acme", "lead", "0"),
        ("globex", "deal", "0"),
        ("globex", "deal", "1"),
    ]
    # globex's d1 is not acme's d1: acme's NEW still has four items.
    assert stage_of(report, "NEW")["entered"] == 4
    # A move into another category belongs to the new pipeline; the stay it closes
    # belongs to the pipeline that opened it.
    globex_old, globex_new = report["pipelines"][3], report["pipelines"][4]
    assert globex_old["stages"][0]["stays"]["closed"] == 1
    assert globex_new["moves"] == [{"from": "NEW", "to": "C1:NEW", "kind": "crm", "count": 1}]
    only_globex = make_report(history, tenant="globex")
    assert {p["tenant"] for p in only_globex["pipelines"]} == {"globex"}


def test_stage_order_from_automation_then_first_appearance(make_report: MakeReport) -> None:
    history = [
        record("x", "created", "NEW", at(0)),
        record("x", "crm", "WON", at(1), "NEW"),
        record("x", "crm", "ODD", at(2), "WON"),
        record("x", "crm", "B", at(3), "ODD"),
    ]
    without = make_report(history)["pipelines"][0]["stages"]
    assert [s["stage"] for s in without] == ["NEW", "WON", "ODD", "B"]
    with_order = make_report(history, automation=[pipeline()])["pipelines"][0]["stages"]
    assert [s["stage"] for s in with_order] == ["NEW", "A", "B", "WON", "LOSE", "ODD"]
    assert [s["semantic"] for s in with_order][-1] is None  # unknown everywhere


def test_empty_figures_are_null(make_report: MakeReport) -> None:
    report = make_report([record("x", "created", "NEW", at(0))], automation=[pipeline()])
    a = stage_of(report, "A")
    assert (a["entered"], a["reached"], a["conversion_to_next"]) == (0, 0, None)
    assert a["stays"] == {
        "closed": 0,
        "mean_s": None,
        "p50_s": None,
        "p90_s": None,
        "open": 0,
        "open_p50_age_s": None,
    }
    assert report["pipelines"][0]["backward_rate"] is None
    assert report["triggers"] == []
