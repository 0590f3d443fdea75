"""The replay dataflow against the sequential engine, the reference oracle and its invariants."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state import native
from tests.conftest import Replay
from tests.flows.sequential import decide_sequentially
from tests.reference.oracle import decide as oracle_decide
from tests.reference.randlog import random_scenario

PIPELINE = {
    "kind": "pipeline",
    "tenant": "acme",
    "entity": "deal",
    "category": "0",
    "stages": [
        {"id": "NEW", "semantic": "process"},
        {"id": "PREPARATION", "semantic": "process"},
        {"id": "WON", "semantic": "success"},
        {"id": "LOSE", "semantic": "failure"},
    ],
}
WEBFORM = {
    "kind": "trigger",
    "tenant": "acme",
    "id": "t-17",
    "entity": "deal",
    "category": "0",
    "stage": "PREPARATION",
    "code": "WEBFORM",
    "params": {"form_id": "12"},
    "condition": {"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]},
}


def created(item: str, opportunity: int, at: str = "2026-11-25T09:00:00Z") -> dict[str, Any]:
    return {
        "id": f"c-{item}",
        "type": "item.created",
        "tenant": "acme",
        "occurred_at": at,
        "item": {"entity": "deal", "id": item},
        "data": {"category": "0", "stage": "NEW", "fields": {"OPPORTUNITY": opportunity}},
    }


def form(event_id: str, item: str, at: str = "2026-11-25T10:00:00Z") -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "form.submitted",
        "tenant": "acme",
        "occurred_at": at,
        "item": {"entity": "deal", "id": item},
        "data": {"form_id": "12"},
    }


def test_the_spec_example_moves_the_deal(replay: Replay, engine: str) -> None:
    events = [created("42", 5000), form("evt-9f2", "42")]
    result = replay([PIPELINE, WEBFORM], events, engine=engine)
    [move] = result.transitions
    assert move["item"] == {"entity": "deal", "id": "42"}
    assert (move["from_stage"], move["to_stage"], move["direction"]) == (
        "NEW",
        "PREPARATION",
        "forward",
    )
    assert move["trigger"] == {"id": "t-17", "code": "WEBFORM"}
    assert move["event"] == {
        "id": "evt-9f2",
        "type": "form.submitted",
        "occurred_at": "2026-11-25T10:00:00Z",
    }


def test_condition_false_moves_nothing_and_is_counted(replay: Replay, engine: str) -> None:
    result = replay([PIPELINE, WEBFORM], [created("7", 10), form("e1", "7")], engine=engine)
    assert result.transitions == []
    assert result.summary.counts["no_match"] == 1
    assert result.summary.balanced()


def test_every_bad_record_is_a_dead_letter_with_origin(
    replay: Replay, engine: str, tmp_path: Any
) -> None:
    events = [
        b"not json",
        {
            "id": "e1",
            "type": "no.such",
            "occurred_at": "2026-11-25T10:00:00Z",
            "item": {"entity": "deal", "id": "1"},
        },
        {
            "id": "e2",
            "type": "email.read",
            "occurred_at": "2026-11-25T10:00:00",
            "item": {"entity": "deal", "id": "1"},
        },
        form("e3", "unknown-item"),
        b"\xff\xfe{",
    ]
    bad = {"kind": "trigger", "id": "bad", "code": "NOPE"}
    result = replay([PIPELINE, WEBFORM, bad], events, engine=engine)
    letters = result.dead_letters
    assert [d["code"] for d in letters] == [
        "invalid_automation",
        "invalid_json",
        "unknown_event_type",
        "invalid_record",
        "unknown_item",
        "invalid_json",
    ]
    assert letters[0]["origin"]["line"] == 3
    assert [d["origin"]["line"] for d in letters[1:]] == [1, 2, 3, 4, 5]
    assert "occurred_at" in letters[3]["message"]
    assert letters[4]["item"] == "acme/deal/unknown-item"
    assert letters[5]["encoding"] == "base64"
    assert result.summary.balanced()


def test_multi_item_event_moves_each_item_once(replay: Replay, engine: str) -> None:
    items = [str(n) for n in range(20)]
    event = form("multi", "0") | {"items": [{"entity": "deal", "id": i} for i in items]}
    del event["item"]
    result = replay(
        [PIPELINE, WEBFORM],
        [*(created(i, 5000) for i in items), event],
        workers=2,
        key_groups=8,
        engine=engine,
    )
    moved = sorted(t["item"]["id"] for t in result.transitions)
    assert moved == sorted(items)
    assert result.summary.counts["extra_items"] == 19
    assert result.summary.balanced()


def _without_folder(dlq: bytes) -> bytes:
    """Dead letters with their origin file's folder removed (each run has its own folder)."""
    letters = [orjson.loads(line) for line in dlq.splitlines()]
    for letter in letters:
        letter["origin"]["file"] = letter["origin"]["file"].rsplit("/", 1)[-1]
    return b"\n".join(orjson.dumps(letter) for letter in letters)


def _lines(records: list[bytes]) -> list[bytes]:
    return [r for r in records if r.strip()]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    what_if=st.booleans(),
    key_groups=st.sampled_from([1, 8, 64]),
    workers=st.sampled_from([1, 2]),
)
def test_dataflow_equals_sequential_state_and_reference(
    replay: Replay, engine: str, seed: int, what_if: bool, key_groups: int, workers: int
) -> None:
    """Under `run_main` (1 worker) and `cluster_main` (2), on several key groups."""
    automation, events = random_scenario(seed, n_events=300, n_items=30)
    result = replay(
        automation, events, workers, what_if=what_if, key_groups=key_groups, engine=engine
    )
    expected = decide_sequentially(automation, events, what_if)
    assert result.transitions == expected
    reference, reference_dead = oracle_decide(automation, events, what_if=what_if)
    assert result.transitions == reference
    assert {(d["code"], d.get("item"), d["origin"]["line"]) for d in result.dead_letters} == {
        (d["code"], d["item"], d["index"] + 1) for d in reference_dead
    }
    assert result.summary.balanced()


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_workers_give_byte_identical_output(replay: Replay, engine: str, seed: int) -> None:
    automation, events = random_scenario(seed, n_events=300, n_items=30)
    one = replay(automation, events, engine=engine)
    two = replay(automation, events, workers=2, key_groups=16, engine=engine)
    again = replay(automation, events, key_groups=64, engine=engine)
    assert two.out == one.out == again.out
    assert _without_folder(two.dlq) == _without_folder(one.dlq)
    assert two.summary.counts == one.summary.counts


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_invariants_of_transitions(replay: Replay, engine: str, seed: int) -> None:
    automation, events = random_scenario(seed, n_events=300, n_items=30)
    result = replay(automation, events, engine=engine)
    backwards_ok = set()
    for raw in automation:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("allow_backwards") is True:
            backwards_ok.add((record.get("tenant", "default"), str(record.get("id"))))
    per_event_item: Counter[tuple[str, str, str, str]] = Counter()
    for move in result.transitions:
        assert move["from_stage"] != move["to_stage"]
        if move["direction"] == "backward":
            assert (move["tenant"], move["trigger"]["id"]) in backwards_ok
        per_event_item[
            (move["tenant"], move["item"]["entity"], move["item"]["id"], move["event"]["id"])
        ] += 1
    assert all(n == 1 for n in per_event_item.values())
    assert len({m["id"] for m in result.transitions}) == len(result.transitions)


@pytest.mark.parametrize("workers", [1, 2])
def test_counts_add_up_on_the_bundled_sample_shape(
    replay: Replay, engine: str, workers: int
) -> None:
    automation, events = random_scenario(99, n_events=500, n_items=50)
    result = replay(automation, events, workers=workers, key_groups=4 * workers, engine=engine)
    assert result.summary.events_read == len(_lines(events))
    assert result.summary.balanced()


@pytest.mark.skipif(not native.available(), reason="crm_triggers_native not built")
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_both_engines_write_the_same_bytes_through_the_dataflow(replay: Replay, seed: int) -> None:
    """The two engines on 2 workers (`cluster_main`), 16 key groups, with old retries and
    late echoes: the same transitions, dead letters and counts."""
    automation, events = random_scenario(seed, n_events=600, n_items=20, old_retries=True)
    compiled = replay(automation, events, 2, key_groups=16, engine="native")
    python = replay(automation, events, 2, key_groups=16, engine="python")
    assert compiled.out == python.out
    assert _without_folder(compiled.dlq) == _without_folder(python.dlq)
    assert compiled.summary.counts == python.summary.counts
