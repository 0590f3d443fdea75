"""The statistics flow on in-memory history: window figures against an exact computation."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from analytics import histogram
from flows.stats import (
    OpenStay,
    batches_of,
    build_stats_flow,
    parse_history,
    stats_table,
    stay_facts,
    window_id_of,
)

HOUR = timedelta(hours=1)
LATENESS = timedelta(minutes=10)
START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
STAGES = {
    ("acme", "deal", "0"): [
        ("NEW", "process"),
        ("PREPARATION", "process"),
        ("WON", "success"),
        ("LOSE", "failure"),
    ],
    ("acme", "deal", "7"): [("C7:NEW", "process"), ("C7:WON", "success")],
    ("globex", "lead", "0"): [("NEW", "process"), ("IN_PROCESS", "process"), ("JUNK", "failure")],
}


def at_text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def history(
    tenant: str,
    entity: str,
    item: str,
    category: str,
    stage: str | None,
    kind: str,
    at: datetime,
    from_stage: str | None = None,
    semantic: str | None = "process",
    trigger: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A stage-history record in the shape of spec 6.1."""
    event = f"evt-{uuid.uuid4().hex[:10]}"
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{entity}/{item}/{event}/{kind}")),
        "tenant": tenant,
        "item": {"entity": entity, "id": item},
        "category": category,
        "stage": stage,
        "from_stage": from_stage,
        "semantic": semantic,
        "kind": kind,
        "at": at_text(at),
        "event": {"id": event, "type": "item.stage_changed"},
        "transition_id": str(uuid.uuid4()) if kind == "trigger" else None,
        "trigger": {"id": trigger[0], "code": trigger[1]} if trigger else None,
    }


def random_history(
    seed: int, items: int, start: datetime = START, hours: float = 6.0
) -> list[dict[str, Any]]:
    """Items created within `hours` of `start`, each moving on a few times; sorted by `at`.

    Gaps between an item's records range from zero to about a day, so stays
    cross windows; some items are deleted, some move to another category.
    """
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    pipelines = list(STAGES)
    for n in range(items):
        tenant, entity, category = rng.choice(pipelines)
        stages = STAGES[(tenant, entity, category)]
        at = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        stage, semantic = stages[0]
        records.append(
            history(tenant, entity, str(n), category, stage, "created", at, semantic=semantic)
        )
        for _ in range(rng.randint(0, 4)):
            at += timedelta(seconds=rng.choice([0, rng.expovariate(1 / 600), rng.uniform(0, 9e4)]))
            roll = rng.random()
            if roll < 0.08:
                records.append(
                    history(tenant, entity, str(n), category, stage, "deleted", at, stage, semantic)
                )
                break
            if roll < 0.15 and entity == "deal":
                category = "7" if category == "0" else "0"
                new_stage, semantic = STAGES[(tenant, entity, category)][0]
                records.append(
                    history(tenant, entity, str(n), category, new_stage, "crm", at, stage, semantic)
                )
                stages, stage = STAGES[(tenant, entity, category)], new_stage
                continue
            new_stage, semantic = rng.choice([s for s in stages if s[0] != stage] or stages)
            kind = "trigger" if roll < 0.7 else "crm"
            trigger = (f"t-{rng.randint(1, 5)}", "WEBFORM") if kind == "trigger" else None
            records.append(
                history(
                    tenant, entity, str(n), category, new_stage, kind, at, stage, semantic, trigger
                )
            )
            stage = new_stage
    records.sort(key=lambda r: r["at"])
    return records


def linear_percentile(values: list[float], q: float) -> float:
    """Spec 6.2: linear interpolation between closest ranks."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def exact_windows(records: list[dict[str, Any]], length: timedelta) -> dict[tuple[str, str], Any]:
    """Per (pipeline, window start): the figures a report --from --to gives, from scratch."""

    def window_of(moment: datetime) -> str:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return at_text(epoch + ((moment - epoch) // length) * length)

    out: dict[tuple[str, str], Any] = defaultdict(
        lambda: {
            "records": 0,
            "entries": defaultdict(int),
            "entered": defaultdict(set),
            "stays": defaultdict(list),
            "moves": defaultdict(int),
            "fires": defaultdict(int),
            "fired_items": defaultdict(set),
        }
    )
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        at = datetime.fromisoformat(r["at"])
        item = f"{r['tenant']}/{r['item']['entity']}/{r['item']['id']}"
        pipeline = f"{r['tenant']}/{r['item']['entity']}/{r['category']}"
        window = window_of(at)
        figures = out[(pipeline, window)]
        figures["records"] += 1
        previous = last.pop(item, None)
        if previous is not None:
            opened = datetime.fromisoformat(previous["at"])
            before = f"{previous['tenant']}/{previous['item']['entity']}/{previous['category']}"
            length_s = max((at - opened).total_seconds(), 0.0)
            out[(before, window)]["stays"][previous["stage"]].append(length_s)
        if r["kind"] != "deleted":
            figures["entries"][r["stage"]] += 1
            figures["entered"][r["stage"]].add(item)
            last[item] = r
        if r["kind"] in ("trigger", "crm"):
            figures["moves"][(r["from_stage"], r["stage"], r["kind"])] += 1
        if r["kind"] == "trigger":
            figures["fires"][r["trigger"]["id"]] += 1
            figures["fired_items"][r["trigger"]["id"]].add(item)
    return dict(out)


def values(records: list[Any]) -> list[bytes | None]:
    return [r if isinstance(r, bytes) or r is None else orjson.dumps(r) for r in records]


def run_stats(
    records: list[Any],
    window: timedelta = HOUR,
    lateness: timedelta = LATENESS,
    workers: int = 1,
    batch_size: int = 7,
    engine: str = "native",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(window records, late records, dead letters) of the flow on these history records."""
    flow = Dataflow("stats_test")
    stats: list[Any] = []
    letters: list[Any] = []
    history_in = op.input("history", flow, TestingSource(batches_of(values(records), batch_size)))
    out, dead = build_stats_flow(history_in, window, lateness, engine)
    op.output("stats", out, TestingSink(stats))
    op.output("dead", dead, TestingSink(letters))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    decoded = [orjson.loads(s.value) for s in stats]
    return (
        [d for d in decoded if d["kind"] == "window"],
        [d for d in decoded if d["kind"] == "late"],
        [orjson.loads(d.value) for d in letters],
    )


def assert_equal_to_exact(window: dict[str, Any], exact: dict[str, Any]) -> None:
    assert window["records"] == exact["records"]
    stages = {s["stage"]: s for s in window["stages"]}
    expected_stages = set(exact["entries"]) | {s for s, v in exact["stays"].items() if v}
    assert set(stages) == expected_stages
    for name, stage in stages.items():
        assert stage["entries"] == exact["entries"].get(name, 0)
        assert stage["entered"] == len(exact["entered"].get(name, ()))
        lengths = exact["stays"].get(name, [])
        stays = stage["stays"]
        assert stays["closed"] == len(lengths)
        assert stays["sum_s"] == pytest.approx(sum(lengths), abs=1e-3)
        if not lengths:
            assert stays["max_s"] is None
            continue
        assert stays["max_s"] == pytest.approx(max(lengths), abs=1e-6)
        counts = histogram.from_pairs(stays["histogram"])
        assert sum(counts.values()) == len(lengths)
        for q in (0.5, 0.9):
            estimate = histogram.percentile(counts, q, stays["max_s"])
            exact_value = linear_percentile(lengths, q)
            assert estimate is not None
            assert estimate.holds(exact_value), (name, q, estimate, exact_value)
            assert abs(estimate.bucket - histogram.bucket_of(exact_value)) <= 1
    moves = {(m["from"], m["to"], m["kind"]): m["count"] for m in window["moves"]}
    assert moves == dict(exact["moves"])
    fires = {f["trigger"]: (f["fires"], f["items"]) for f in window["fires"]}
    assert fires == {t: (n, len(exact["fired_items"][t])) for t, n in exact["fires"].items()}


@pytest.mark.parametrize("workers", [1, 2])
def test_window_figures_equal_an_exact_computation(workers: int) -> None:
    records = random_history(seed=5, items=400)
    windows, late, letters = run_stats(records, workers=workers)
    assert late == [] and letters == []
    exact = exact_windows(records, HOUR)
    assert {
        (f"{w['tenant']}/{w['entity']}/{w['category']}", w["window_start"]) for w in windows
    } == set(exact)
    for window in windows:
        key = (
            f"{window['tenant']}/{window['entity']}/{window['category']}",
            window["window_start"],
        )
        assert_equal_to_exact(window, exact[key])
    assert sum(w["records"] for w in windows) == len(records)
    # Stays crossed windows, so the test saw more than one window per pipeline.
    assert len(windows) > 3 * len(STAGES)


def test_window_record_shape_and_deterministic_id() -> None:
    records = [
        history("acme", "deal", "1", "0", "NEW", "created", START),
        history(
            "acme",
            "deal",
            "1",
            "0",
            "PREPARATION",
            "trigger",
            START + timedelta(minutes=30),
            "NEW",
            trigger=("t-17", "WEBFORM"),
        ),
    ]
    first, _, _ = run_stats(records)
    again, _, _ = run_stats(records)
    assert first == again
    (window,) = first
    assert window == {
        "kind": "window",
        "id": window_id_of("acme/deal/0", START),
        "tenant": "acme",
        "entity": "deal",
        "category": "0",
        "window_start": "2026-11-25T08:00:00Z",
        "window_end": "2026-11-25T09:00:00Z",
        "records": 2,
        "stages": [
            {
                "stage": "NEW",
                "semantic": "process",
                "entries": 1,
                "entered": 1,
                "stays": {"closed": 1, "sum_s": 1800, "max_s": 1800, "histogram": [[167, 1]]},
            },
            {
                "stage": "PREPARATION",
                "semantic": "process",
                "entries": 1,
                "entered": 1,
                "stays": {"closed": 0, "sum_s": 0, "max_s": None, "histogram": []},
            },
        ],
        "moves": [{"from": "NEW", "to": "PREPARATION", "kind": "trigger", "count": 1}],
        "fires": [{"trigger": "t-17", "code": "WEBFORM", "fires": 1, "items": 1}],
    }
    assert histogram.bucket_low(167) <= 1800 < histogram.bucket_high(167)


def test_out_of_order_within_lateness_counts_in_its_window_later_ones_are_late() -> None:
    def created(item: str, minute: int) -> dict[str, Any]:
        return history(
            "acme", "deal", item, "0", "NEW", "created", START + timedelta(minutes=minute)
        )

    records = [
        created("a", 5),  # 08:05, window 08
        created("b", 69),  # 09:09: 08 stays open (it closes when the latest at reaches 09:10)
        created("c", 30),  # 08:30, 39 minutes out of order but its window is open: counted
        created("d", 70),  # 09:10: window 08 closes
        created("e", 40),  # 08:40: its window has closed: late
        created("f", 61),  # 09:01: window 09 is open: counted
    ]
    windows, late, _ = run_stats(records)
    by_start = {w["window_start"]: w for w in windows}
    assert by_start["2026-11-25T08:00:00Z"]["records"] == 2  # a and c
    assert by_start["2026-11-25T08:00:00Z"]["stages"][0]["entered"] == 2
    assert by_start["2026-11-25T09:00:00Z"]["records"] == 3  # b, d, f
    (late_e,) = late
    assert late_e["item"] == "acme/deal/e" and late_e["entry"] == "NEW"
    assert late_e["window_start"] == "2026-11-25T08:00:00Z"
    assert late_e["history_id"] == records[4]["id"]
    # Nothing is dropped: every record is in a window or late.
    assert sum(w["records"] for w in windows) + len(late) == len(records)


def test_shuffled_history_counts_every_record_once() -> None:
    records = random_history(seed=11, items=300)
    rng = random.Random(3)
    shuffled = records[:]
    for i in range(len(shuffled) - 1):  # local disorder: swap neighbours now and then
        if rng.random() < 0.3:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    shuffled.insert(len(shuffled) // 2, records[0] | {"id": "very-late"})
    windows, late, _ = run_stats(shuffled, lateness=timedelta(minutes=1))
    counted = sum(w["records"] for w in windows)
    late_records = {x["history_id"] for x in late}
    assert "very-late" in late_records
    assert counted + len(late_records) == len(shuffled)


def test_batch_boundaries_change_no_window_and_no_late_record() -> None:
    # The stays step counts a batch's facts into chunks; where batches end must not matter.
    records = random_history(seed=23, items=200)
    rng = random.Random(5)
    for i in range(len(records) - 1):
        if rng.random() < 0.3:
            records[i], records[i + 1] = records[i + 1], records[i]
    records.insert(len(records) // 3, records[0] | {"id": "very-late"})
    outputs = []
    for size in (1, 3, 64, len(records)):
        windows, late, _ = run_stats(records, lateness=timedelta(minutes=2), batch_size=size)
        outputs.append(
            (
                sorted(windows, key=lambda w: w["id"]),
                sorted(late, key=lambda x: (x["history_id"], x["category"])),
            )
        )
    assert outputs[0][1], "the history has late records"
    assert all(output == outputs[0] for output in outputs[1:])


def test_bad_history_records_are_dead_letters() -> None:
    good = history("acme", "deal", "1", "0", "NEW", "created", START)
    records = [
        b"not json",
        orjson.dumps([1]),
        orjson.dumps(good | {"at": "2026-11-25T08:00:00"}),
        orjson.dumps(good | {"kind": "moved"}),
        orjson.dumps(good | {"kind": "trigger", "trigger": None}),
        orjson.dumps(good | {"item": {"entity": "deal"}}),
        None,
        good,
    ]
    windows, late, letters = run_stats(records)
    assert [d["code"] for d in letters] == ["invalid_json"] + ["invalid_record"] * 6
    assert [d["origin"]["offset"] for d in letters] == [0, 1, 2, 3, 4, 5, 6]
    assert "at: expected an RFC 3339 time with a zone" in letters[2]["message"]
    assert "$.kind" in letters[3]["message"] and "moved" in letters[3]["message"]
    assert "`id` - at `$.item`" in letters[5]["message"]
    assert [w["records"] for w in windows] == [1] and late == []


def test_stays_follow_spec_definitions() -> None:
    created = parse_history(
        orjson.dumps(history("acme", "deal", "1", "0", "NEW", "created", START))
    )
    opened, facts = stay_facts(None, created)
    assert opened == OpenStay(START, "NEW", "process", "acme/deal/0")
    assert [(p, f.stage, f.stay) for p, f in facts] == [("acme/deal/0", "NEW", None)]
    earlier = parse_history(
        orjson.dumps(
            history("acme", "deal", "1", "7", "C7:NEW", "crm", START - timedelta(minutes=5), "NEW")
        )
    )
    opened, facts = stay_facts(opened, earlier)
    # The stay belongs to the pipeline that opened it; a negative length counts as 0.
    assert [(p, f.stage, f.stay, f.counted) for p, f in facts] == [
        ("acme/deal/0", None, ("NEW", "process", 0.0), False),
        ("acme/deal/7", "C7:NEW", None, True),
    ]
    deleted = parse_history(
        orjson.dumps(history("acme", "deal", "1", "7", "C7:NEW", "deleted", START, "C7:NEW"))
    )
    after, facts = stay_facts(opened, deleted)
    assert after is None  # deleted opens no stay
    assert [(f.stage, f.stay) for _, f in facts] == [(None, ("C7:NEW", "process", 300.0))]


def test_stats_table_shows_each_window_and_stage() -> None:
    records = random_history(seed=2, items=60, hours=2)
    windows, _, _ = run_stats(records)
    table = stats_table([*windows, {"kind": "late"}])
    lines = table.splitlines()
    assert lines[0].split() == ["──", "time", "in", "stage", "of", "exits", "─"]
    assert lines[1].split() == [
        "stage",
        "semantic",
        "entries",
        "entered",
        "exits",
        "mean",
        "p50",
        "p90",
        "max",
    ]
    assert max(len(line) for line in lines[:-1]) <= 100  # a terminal of 100 columns
    titles = [line for line in lines if line and not line.startswith(" ")]
    assert len(titles) == len(windows) + 1
    assert titles[-1].startswith("late records: 1")
    first = windows[0]
    assert titles[0].startswith(first["window_start"][:16].replace("T", " "))
    assert f"{first['records']} records" in titles[0]
    stage = first["stages"][0]
    assert lines[2] == ""
    row = lines[4].split()
    assert row[:5] == [
        stage["stage"],
        stage["semantic"],
        str(stage["entries"]),
        str(stage["entered"]),
        str(stage["stays"]["closed"]),
    ]
    # Every stage line has its figures under the header's columns.
    for line in lines[2:-1]:
        if line.startswith(" "):
            assert len(line) == len(lines[1])


def test_stats_table_cuts_long_stage_names_and_describes_late_records() -> None:
    from flows.stats.table import late_line, window_lines

    window = {
        "kind": "window",
        "tenant": "acme",
        "entity": "deal",
        "category": "7",
        "window_start": "2026-11-25T08:00:00Z",
        "window_end": "2026-11-25T09:00:00Z",
        "records": 3,
        "stages": [
            {
                "stage": "C7:A_VERY_LONG_STAGE_NAME_INDEED",
                "semantic": None,
                "entries": 2,
                "entered": 1,
                "stays": {"closed": 1, "sum_s": 5400, "max_s": 5400, "histogram": []},
            }
        ],
        "moves": [{"from": "A", "to": "B", "kind": "crm", "count": 2}],
        "fires": [],
    }
    blank, title, stage = window_lines(window)
    assert blank == ""
    assert title == "2026-11-25 08:00-09:00 UTC  acme/deal/7  3 records, 2 moves, 0 trigger fires"
    assert stage.split()[:6] == ["C7:A_VERY_LONG_STAGE_N…", "-", "2", "1", "1", "1.5h"]
    late = {
        "kind": "late",
        "tenant": "acme",
        "entity": "deal",
        "category": "0",
        "window_start": "2026-11-25T08:00:00Z",
        "window_end": "2026-11-25T09:00:00Z",
        "at": "2026-11-25T08:59:00Z",
        "history_id": "h-9",
        "entry": "WON",
        "stay": {"stage": "NEW", "seconds": 120},
        "move": {"from": "NEW", "to": "WON", "kind": "trigger"},
    }
    assert late_line(late) == (
        "late: 2026-11-25 08:00-09:00 UTC  acme/deal/0  history h-9 at 2026-11-25T08:59:00Z: "
        "entry WON, stay NEW 2m, move NEW -> WON"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--window", "0s"], "--window (CRM_TRIGGERS_WINDOW): must be at least 1 s"),
        (["--window", "an hour"], "--window (CRM_TRIGGERS_WINDOW): expected a duration"),
        (["--allowed-lateness=-5m"], "--allowed-lateness (CRM_TRIGGERS_ALLOWED_LATENESS)"),
        (["--history-topic", "bad topic"], "is not a Kafka topic name"),
        (["--stats-topic", "crm.stage-history"], "--history-topic: must differ"),
        (["--process-id", "0"], "give both, for a cluster of processes, or neither"),
        (["--batch-size", "0"], "--batch-size (CRM_TRIGGERS_BATCH_SIZE): expected a positive"),
        (["--engine", "rust"], "--engine (CRM_TRIGGERS_ENGINE): expected one of native, python"),
    ],
)
def test_bad_settings_are_one_line_errors_with_exit_2(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    assert main(["stats", "--brokers", "127.0.0.1:1", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crm-triggers: error: ") and message in err
    assert err.count("\n") == 1


def test_durations() -> None:
    from flows.stats import duration

    read = duration(timedelta(0))
    assert read("w", timedelta(hours=1)) == timedelta(hours=1)
    assert read("w", "90") == timedelta(seconds=90)
    assert read("w", "10m") == timedelta(minutes=10)
    assert read("w", "1.5h") == timedelta(minutes=90)
    assert read("w", "1d") == timedelta(days=1)
    assert read("w", "250ms") == timedelta(milliseconds=250)


def test_stats_settings_from_the_environment() -> None:
    from flows.stats import StatsSettings

    settings = StatsSettings.from_env(
        {
            "CRM_TRIGGERS_BROKERS": "127.0.0.1:9092",
            "CRM_TRIGGERS_WINDOW": "1d",
            "CRM_TRIGGERS_ALLOWED_LATENESS": "",
            "CRM_TRIGGERS_STATS_RECOVERY_DIR": "/tmp/stats-recovery",
            "CRM_TRIGGERS_RECOVERY_DIR": "/tmp/live-recovery",
            "CRM_TRIGGERS_ENGINE": "python",
        }
    )
    assert settings.engine == "python"
    assert settings.window == timedelta(days=1)
    assert settings.allowed_lateness == timedelta(minutes=10)
    assert settings.recovery_dir == "/tmp/stats-recovery"
    assert settings.history_topic == "crm.stage-history"


def test_the_main_jobs_history_is_read_whole(tmp_path: Path) -> None:
    # The history replay writes (spec 6.1) is what the stats job reads: every record counts.
    from flows.cli import main

    history = tmp_path / "history.jsonl"
    samples = Path(__file__).resolve().parents[2] / "samples"
    assert (
        main(
            [
                *("replay", "--engine", "python", "--out", str(tmp_path / "out.jsonl")),
                *("--automation", f"{samples}/automation.jsonl"),
                *("--events", f"{samples}/events.jsonl", "--history", str(history)),
            ]
        )
        == 0
    )
    records = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    assert records
    windows, late, letters = run_stats(records, batch_size=500)
    assert letters == [] and late == []
    assert sum(w["records"] for w in windows) == len(records)
    assert {
        pipeline
        for pipeline in (f"{r['tenant']}/{r['item']['entity']}/{r['category']}" for r in records)
    } == {f"{w['tenant']}/{w['entity']}/{w['category']}" for w in windows}


def test_report_stats_merges_the_windows_to_the_exact_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `report --stats`: the sample's windows, merged per stage, count the report's closed
    # stays exactly, and their p50 and p90 lie within one bucket of the exact ones.
    from flows.cli import main

    history = tmp_path / "history.jsonl"
    samples = Path(__file__).resolve().parents[2] / "samples"
    replayed = [
        *("replay", "--out", str(tmp_path / "out.jsonl"), "--history", str(history)),
        *("--automation", f"{samples}/automation.jsonl", "--events", f"{samples}/events.jsonl"),
    ]
    assert main(replayed) == 0
    records = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    windows, late, _ = run_stats(records, batch_size=500)
    assert late == []
    stats = tmp_path / "stats.jsonl"
    stats.write_bytes(b"".join(orjson.dumps(w) + b"\n" for w in windows))
    capsys.readouterr()
    report = ["report", "--history", str(history), "--stats", str(stats)]
    assert main([*report, "--format", "json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)["stats"]
    compared = [r for r in rows if r["p50"] is not None]
    assert len(compared) > 10
    for row in rows:
        assert row["closed"] == row["closed_exact"], row
    for row in compared:
        for name in ("p50", "p90"):
            assert row[name]["within_bound"], row
            assert row[name]["buckets_apart"] <= 1, row
    assert main(report) == 0
    text = capsys.readouterr().out
    assert "Live statistics (window records) against the exact figures" in text
