"""`crm-triggers explain`: its moves are replay's transitions, its reasons are true.

The property test replays random logs with the replay dataflow (the native
engine, as the command does by default), explains sampled items, and checks
each explained event against replay's output and each "did not apply" against
the reference oracle (`tests/reference/oracle.py`, written apart from `state/`).
"""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.jsonl import ReplayInputs
from connectors.records import transition_json
from flows.cli import main
from flows.explain import (
    _FLOAT_ID,
    ItemName,
    RejectedRecord,
    build_timeline,
    line_filter,
    render_text,
    timeline_json,
)
from flows.replay import replay_flow
from flows.settings import ReplaySettings
from state.explain import (
    BACKWARDS,
    CONDITION,
    FIRED,
    NOT_CANDIDATES,
    NOT_IN_FORCE,
    NOT_REACHED,
    PARAMS,
    SAME_STAGE,
    STAGE_NOT_IN_PIPELINE,
    Step,
)
from tests.conftest import jsonl
from tests.reference import oracle as ref
from tests.reference.randlog import random_scenario

ROOT = Path(__file__).resolve().parents[2]
STAGES = [
    {"id": "NEW", "semantic": "process"},
    {"id": "PREPARATION", "semantic": "process"},
    {"id": "WON", "semantic": "success"},
    {"id": "LOSE", "semantic": "failure"},
]


def _pipeline() -> dict[str, Any]:
    return {
        "kind": "pipeline",
        "tenant": "acme",
        "entity": "deal",
        "category": "0",
        "stages": STAGES,
    }


def _trigger(tid: str, stage: str, code: str = "WEBFORM", **fields: Any) -> dict[str, Any]:
    record = {"kind": "trigger", "tenant": "acme", "id": tid, "entity": "deal", "category": "0"}
    return {**record, "stage": stage, "code": code, **fields}


def _event(eid: str, etype: str, item: Any, at: str, data: Any = None) -> dict[str, Any]:
    record = {"id": eid, "type": etype, "tenant": "acme", "occurred_at": at, "item": item}
    return record if data is None else {**record, "data": data}


DEAL_42 = {"entity": "deal", "id": "42"}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    big = {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]}
    automation = [
        _pipeline(),
        _trigger("t-17", "PREPARATION", params={"form_id": "12"}, condition=big),
        _trigger("t-18", "PREPARATION", params={"form_id": "13"}, sort=5),
        _trigger("t-30", "WON", updated_at="2026-12-01T00:00:00Z"),
    ]
    events = [
        _event(
            "c",
            "item.created",
            DEAL_42,
            "2026-11-25T09:00:00Z",
            {"stage": "NEW", "fields": {"OPPORTUNITY": 10}},
        ),
        _event("f1", "form.submitted", DEAL_42, "2026-11-25T10:00:00Z", {"form_id": "12"}),
        _event(
            "u", "item.updated", DEAL_42, "2026-11-25T10:30:00Z", {"changes": {"OPPORTUNITY": 5000}}
        ),
        _event(
            "f2",
            "form.submitted",
            {"entity": "deal", "id": 42},
            "2026-11-25T11:00:00Z",
            {"form_id": "12"},
        ),
        _event("f2", "form.submitted", DEAL_42, "2026-11-25T11:00:00Z", {"form_id": "12"}),
        _event("x", "form.submitted", {"entity": "deal", "id": "420"}, "2026-11-25T11:00:00Z"),
        {"id": "bad", "type": "form.submitted", "tenant": "acme", "item": DEAL_42},
    ]
    (tmp_path / "automation.jsonl").write_bytes(jsonl(automation))
    (tmp_path / "events.jsonl").write_bytes(jsonl(events))
    return tmp_path


def _explain(logs: Path, *extra: str) -> list[str]:
    return [
        "explain",
        "--automation",
        str(logs / "automation.jsonl"),
        "--events",
        str(logs / "events.jsonl"),
        *extra,
    ]


def test_text_timeline(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_explain(logs, "--item", "acme/deal/42")) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    blocks = out.split("\n\n")
    assert "6 events, 1 move; now on PREPARATION (deal/0)" in blocks[0]
    assert "created on NEW" in blocks[1]
    assert (
        "x t-17  PREPARATION  sort 0   condition: OPPORTUNITY > 1000 failed (saw 10)" in blocks[2]
    )
    assert (
        'x t-18  PREPARATION  sort 5   param form_id: wants "13", the event has "12"' in blocks[2]
    )
    assert (
        ". t-30  WON" in blocks[2] and "not in force yet (from 2026-12-01T00:00:00Z)" in blocks[2]
    )
    assert "fields updated; no trigger applied" in blocks[3]
    assert "MOVED NEW -> PREPARATION (forward) by trigger t-17 (WEBFORM)" in blocks[4]
    assert (
        "=> t-17" in blocks[4]
        and "- t-18" in blocks[4]
        and "not tried: t-17 fired first" in blocks[4]
    )
    assert "duplicate" in blocks[5]
    assert "DEAD LETTER invalid_record: occurred_at" in blocks[6]


def test_json_shape(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_explain(logs, "--item", "acme/deal/42", "--format", "json")) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert document["item"] == {"tenant": "acme", "entity": "deal", "id": "42"}
    assert (document["found"], document["events"], document["moves"]) == (True, 6, 1)
    assert document["final"] == {"category": "0", "stage": "PREPARATION", "deleted": False}
    outcomes = [entry["outcome"] for entry in document["timeline"]]
    assert outcomes == ["created", "no_match", "updated", "moved", "duplicate", "dead_letter"]
    moved = document["timeline"][3]
    assert moved["transition"]["to_stage"] == "PREPARATION"
    assert moved["origin"] == {"file": str(logs / "events.jsonl"), "line": 4}
    [trial] = moved["codes"]
    assert [(t["id"], t["verdict"]) for t in trial["triggers"]] == [
        ("t-17", FIRED),
        ("t-18", NOT_REACHED),
        ("t-30", NOT_IN_FORCE),
    ]
    first = document["timeline"][1]["codes"][0]["triggers"]
    assert first[0]["clauses"] == [
        {"group": 0, "field": "OPPORTUNITY", "op": ">", "value": 1000, "saw": 10}
    ]
    assert first[1]["params"] == [{"param": "form_id", "expected": "13", "got": "12"}]
    assert document["timeline"][5]["dead_letter"]["code"] == "invalid_record"


def test_what_if_puts_the_latest_rules_in_force(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_explain(logs, "--item", "acme/deal/42", "--format", "json", "--what-if")) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert document["what_if"] is True
    triggers = document["timeline"][1]["codes"][0]["triggers"]
    assert [(t["id"], t["verdict"]) for t in triggers][-1] == ("t-30", FIRED)


def test_an_item_never_named(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_explain(logs, "--item", "acme/deal/4")) == 0
    assert "no event of the input names item acme/deal/4" in capsys.readouterr().out
    assert main(_explain(logs, "--item", "acme/deal/4", "--format", "json")) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert (document["found"], document["timeline"], document["final"]) == (False, [], None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--item", "acme/deal"], "--item: expected TENANT/ENTITY/ID"),
        (["--item", "acme//42"], "--item: expected TENANT/ENTITY/ID"),
        (["--item", "acme/deal/42", "--seen-window", "0"], "--seen-window"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    logs: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_explain(logs, *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


def test_unreadable_inputs_exit_2_without_a_traceback(logs: Path) -> None:
    (logs / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"id": 1}\n' * 1000)[:-40])
    for events in (logs / "missing.jsonl", logs / "broken.jsonl.gz"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "explain",
                "--automation",
                str(logs / "automation.jsonl"),
                "--events",
                str(events),
                "--item",
                "acme/deal/42",
            ],
            capture_output=True,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(b"crm-triggers: error: ")
        assert b"Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_the_line_filter_keeps_every_spelling_of_the_id() -> None:
    keeps = line_filter("42")
    for line in (b'{"id": 42}', b'{"id" : 4.2e1}', b'{"id":42.0}', b'{"id":"\\u0034\\u0032"}'):
        assert keeps(line)
    assert not keeps(b'{"item": {"entity": "deal", "id": "41"}, "id": "e-1"}')
    assert line_filter("a-7")(b'{"id":"a-7"}') and not line_filter("a-7")(b'{"id": 7}')


@settings(max_examples=200, deadline=None)
@given(
    item_id=st.sampled_from(["42", "4", "a-7", "x"]),
    lines=st.lists(
        st.lists(
            st.sampled_from(
                [b'"id":', b'"id" : ', b"42", b"4.2e1", b"a-7", b"\\", b'"x"', b",", b"7", b"."]
            ),
            max_size=6,
        ).map(b"".join),
        max_size=12,
    ),
)
def test_a_block_keeps_the_lines_each_line_would(item_id: str, lines: list[bytes]) -> None:
    keep = line_filter(item_id)
    assert keep.kept(lines) == [i for i, line in enumerate(lines) if keep(line)]
    for line in lines:
        plain = keep.needle in line or b"\\" in line
        assert keep(line) == (plain or (keep.numeric and _FLOAT_ID.search(line) is not None))


def test_every_spelling_of_the_item_is_its_item(tmp_path: Path) -> None:
    item = {"entity": "deal", "id": "42"}
    events = [
        _event("c", "item.created", item, "2026-11-25T09:00:00Z", {"stage": "NEW"}),
        b'{"id":"a","type":"visit.registered","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
        b'"item":{"entity":"deal","id":4.2e1}}',
        b'{"id":"b","type":"visit.registered","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
        b'"item":{"entity":"deal","id":"\\u0034\\u0032"}}',
        _event("d", "visit.registered", {"entity": "deal", "id": "42"}, "2026-11-25T10:00:00Z"),
    ]
    (tmp_path / "a.jsonl").write_bytes(jsonl([_pipeline()]))
    (tmp_path / "e.jsonl").write_bytes(jsonl(events))
    inputs = ReplayInputs.from_paths([str(tmp_path / "a.jsonl")], [str(tmp_path / "e.jsonl")])
    timeline = build_timeline(inputs, ItemName("acme", "deal", "42"))
    assert [origin.line for origin, _ in timeline.entries] == [1, 2, 3, 4]


# The property: explain decides as replay does, and its reasons are true of the input.

SEEN_ALL = 100_000


def test_several_inputs_are_merged_as_replay_merges_them(tmp_path: Path) -> None:
    automation, lines = random_scenario(11, n_events=400, n_items=6)
    (tmp_path / "automation.jsonl").write_bytes(b"\n".join(automation) + b"\n")
    inputs = []
    for part in range(2):  # one every other line, gzip for the second
        path = tmp_path / f"events-{part}.jsonl{'.gz' if part else ''}"
        data = b"\n".join(lines[part::2]) + b"\n"
        path.write_bytes(gzip.compress(data) if part else data)
        inputs.append(str(path))
    flow_settings = ReplaySettings.build(
        {
            "automation": [str(tmp_path / "automation.jsonl")],
            "events": inputs,
            "out": str(tmp_path / "out.jsonl"),
        }
    )
    run_main(replay_flow(flow_settings, lambda summary: None))
    replayed = [orjson.loads(x) for x in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    both = ReplayInputs.from_paths([str(tmp_path / "automation.jsonl")], inputs)
    names = {(t["tenant"], t["item"]["entity"], t["item"]["id"]) for t in replayed}
    assert names
    for name in sorted(names):
        timeline = build_timeline(both, ItemName(*name))
        explained = [
            orjson.loads(render_json_transition(step))
            for _, step in timeline.entries
            if isinstance(step, Step) and step.transition is not None
        ]
        ours = [t for t in replayed if (t["tenant"], t["item"]["entity"], t["item"]["id"]) == name]
        assert explained == ours


def _items_named(lines: list[bytes]) -> list[tuple[str, str, str]]:
    found = []
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(obj) is not dict:
            continue
        tenant = obj.get("tenant") or "default"
        refs = [obj.get("item"), *(obj.get("items") if type(obj.get("items")) is list else ())]
        for r in refs:
            if type(r) is dict and type(r.get("entity")) is str and type(r.get("id")) in (str, int):
                found.append((tenant, r["entity"], str(r["id"])))
    return sorted(set(found))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), what_if=st.booleans())
def test_explain_moves_are_replay_transitions_and_its_reasons_hold(
    seed: int, what_if: bool
) -> None:
    _explain_against_replay(seed, what_if)


@pytest.mark.parametrize("what_if", [False, True])
def test_the_property_checks_verdicts_of_every_kind(what_if: bool) -> None:
    """On a fixed log the checks above do run, and see every kind of verdict."""
    kinds: set[str] = set()
    assert _explain_against_replay(2, what_if, kinds, sample=100, events=1500) > 100
    assert {FIRED, SAME_STAGE, BACKWARDS, PARAMS, CONDITION, NOT_REACHED} <= kinds


def _explain_against_replay(
    seed: int, what_if: bool, kinds: set[str] | None = None, sample: int = 5, events: int = 300
) -> int:
    """Replay a random log, explain `sample` of its items; the count of verdicts checked.

    Both run with a seen window larger than the log: the oracle remembers every event id.
    """
    automation, lines = random_scenario(seed, n_events=events, n_items=12)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "automation.jsonl").write_bytes(b"\n".join(automation) + b"\n")
        (folder / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        inputs = ReplayInputs.from_paths(
            [str(folder / "automation.jsonl")], [str(folder / "events.jsonl")]
        )
        flow_settings = ReplaySettings.build(
            {
                "automation": [str(folder / "automation.jsonl")],
                "events": [str(folder / "events.jsonl")],
                "out": str(folder / "out.jsonl"),
                "dlq": str(folder / "dlq.jsonl"),
                "what_if": what_if,
                "seen_window": SEEN_ALL,
            }
        )
        run_main(replay_flow(flow_settings, lambda summary: None))
        transitions = [orjson.loads(x) for x in (folder / "out.jsonl").read_bytes().splitlines()]
        letters = [orjson.loads(x) for x in (folder / "dlq.jsonl").read_bytes().splitlines()]
        items = _items_named(lines)
        sampled = random.Random(seed).sample(items, min(sample, len(items)))
        timelines = {
            name: build_timeline(inputs, ItemName(*name), what_if=what_if, seen_window=SEEN_ALL)
            for name in sampled
        }
        for name, timeline in timelines.items():
            key = "/".join(name)
            replayed = [
                t
                for t in transitions
                if (t["tenant"], t["item"]["entity"], t["item"]["id"]) == name
            ]
            explained = [
                orjson.loads(render_json_transition(step))
                for _, step in timeline.entries
                if isinstance(step, Step) and step.transition is not None
            ]
            assert explained == replayed
            item_letters = [
                (d["origin"]["line"], d["code"]) for d in letters if d.get("item") == key
            ]
            explained_letters = [
                (origin.line, step.rejection.code)
                for origin, step in timeline.entries
                if isinstance(step, Step) and step.rejection is not None
            ]
            assert explained_letters == item_letters
            record_letters = {
                (d["origin"]["line"], d["code"]) for d in letters if d.get("item") is None
            }
            for origin, entry in timeline.entries:
                if isinstance(entry, RejectedRecord):
                    assert (origin.line, entry.rejection.code) in record_letters
            orjson.loads(timeline_json(timeline))
            if kinds is not None:
                kinds.update(
                    v.verdict
                    for _, step in timeline.entries
                    if isinstance(step, Step)
                    for trial in step.codes
                    for v in trial.verdicts
                )
            assert render_text(timeline)
        return _check_reasons(automation, lines, timelines, what_if)


def render_json_transition(step: Step) -> bytes:
    assert step.transition is not None
    return transition_json(step.transition)


def _check_reasons(
    automation: list[bytes],
    events: list[bytes],
    timelines: dict[tuple[str, str, str], Any],
    what_if: bool,
) -> int:
    """Every verdict checked with the oracle's own reading of the input, event by event."""
    oracle = ref.Oracle(automation, what_if=what_if)
    steps: dict[int, list[tuple[tuple[str, str, str], Step]]] = {}
    for name, timeline in timelines.items():
        for origin, step in timeline.entries:
            if isinstance(step, Step):
                steps.setdefault(origin.line, []).append((name, step))
    checked = 0
    for line_number, line in enumerate(events, 1):
        here = steps.get(line_number, [])
        before = {
            name: (oracle.items[name].stage, oracle.items[name].deleted)
            for name, _ in here
            if name in oracle.items
        }
        oracle.feed(line)
        for name, step in here:
            if not step.codes:
                continue
            ev = ref.validate_event(orjson.loads(line))
            assert isinstance(ev, ref.Event)
            stage = step.stage_before
            if name in before:
                assert stage == before[name][0]
            state = oracle.items[name]
            pipeline = oracle._pipeline(name[0], name[1], state.category, ev)
            assert pipeline is not None and list(step.stages) == pipeline["stages"]
            position = pipeline["stages"].index(stage)
            for trial in step.codes:
                if not trial.tried:
                    continue
                in_force = {
                    t["id"]: t
                    for t in oracle._triggers_in_force(
                        name[0], name[1], state.category, trial.code, ev
                    )
                }
                candidates = [v for v in trial.verdicts if v.verdict not in NOT_CANDIDATES]
                assert [v.trigger.id for v in candidates] == [
                    t["id"]
                    for t in sorted(
                        (t for t in in_force.values() if t["stage"] in pipeline["stages"]),
                        key=lambda t: (pipeline["stages"].index(t["stage"]), t["sort"], t["id"]),
                    )
                ]
                for verdict in trial.verdicts:
                    checked += 1
                    _check_verdict(verdict, in_force, pipeline, position, trial.code, ev, state)
    return checked


def _check_verdict(
    verdict: Any,
    in_force: dict[str, dict[str, Any]],
    pipeline: dict[str, Any],
    position: int,
    code: str,
    ev: Any,
    state: Any,
) -> None:
    kind = verdict.verdict
    if kind == STAGE_NOT_IN_PIPELINE:
        assert in_force[verdict.trigger.id]["stage"] not in pipeline["stages"]
        return
    if kind in NOT_CANDIDATES:
        assert verdict.trigger.id not in in_force
        return
    trigger = in_force[verdict.trigger.id]
    at = pipeline["stages"].index(trigger["stage"])
    assert verdict.position == at
    if kind == SAME_STAGE:
        assert at == position
    elif kind == BACKWARDS:
        assert at < position and not trigger["allow_backwards"]
    elif kind == PARAMS:
        assert verdict.detail["params"]
        for differed in verdict.detail["params"]:
            name = differed["param"]
            only = {p: None for p, _ in ref.CODE_PARAMS[code]}
            only[name] = trigger["params"][name]
            assert not ref.params_match({"code": code, "params": only}, ev)
            if name != "fields":
                assert differed["got"] == ev.data.get(name)
    elif kind == CONDITION:
        groups = trigger["condition"]["any"]
        clauses = verdict.detail["clauses"]
        assert [c["group"] for c in clauses] == list(range(len(groups)))
        for clause in clauses:
            [raw] = [
                c
                for c in groups[clause["group"]]
                if (c["field"], c["op"], c.get("value"))
                == (clause["field"], clause["op"], clause["value"])
            ][:1]
            assert not ref.eval_clause(raw, state.fields, ev.data)
            name = clause["field"]
            seen = ev.data.get(name[6:]) if name.startswith("event.") else state.fields.get(name)
            assert clause["saw"] == seen
    elif kind == FIRED:
        assert at != position and (at > position or trigger["allow_backwards"])
        assert ref.params_match(trigger, ev)
        assert ref.eval_condition(trigger["condition"], state.fields, ev.data)
