"""A replay by several processes writes the bytes one process writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.summary import Summary
from flows.replay import replay_flow
from flows.settings import ReplaySettings
from flows.workers import WorkerError, merge_in_order, replay_in_processes
from tests.reference.randlog import random_scenario


def _write(folder: Path, automation: list[bytes], events: list[bytes]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "automation.jsonl").write_bytes(b"".join(line + b"\n" for line in automation))
    (folder / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in events))
    return {
        "automation": [str(folder / "automation.jsonl")],
        "events": [str(folder / "events.jsonl")],
    }


def _run(
    inputs: dict[str, Any], folder: Path, name: str, processes: int, **options: Any
) -> tuple[bytes, bytes, Summary]:
    out, dlq = folder / f"{name}.out.jsonl", folder / f"{name}.dlq.jsonl"
    history = folder / f"{name}.history.jsonl"
    values = {**inputs, "out": str(out), "dlq": str(dlq), "history": str(history), **options}
    replay = ReplaySettings.build(values)
    summaries: list[Summary] = []
    if processes == 1:
        run_main(replay_flow(replay, summaries.append))
    else:
        replay_in_processes(replay, processes, summaries.append)
    [summary] = summaries
    return out.read_bytes(), dlq.read_bytes(), summary


@pytest.mark.parametrize("engine", ["native", "python"])
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_processes_write_the_bytes_of_one(tmp_path: Path, engine: str, seed: int) -> None:
    folder = tmp_path / f"{engine}-{seed}"
    automation, events = random_scenario(seed, n_events=400, n_items=40, tenants=3)
    inputs = _write(folder, automation, events)
    one_out, one_dlq, one = _run(inputs, folder, "one", 1, engine=engine)
    for processes in (2, 3):
        out, dlq, summary = _run(inputs, folder, f"p{processes}", processes, engine=engine)
        assert out == one_out
        assert dlq == one_dlq
        history = (folder / f"p{processes}.history.jsonl").read_bytes()
        assert history == (folder / "one.history.jsonl").read_bytes()
        assert history.count(b"\n") > 0
        assert summary.counts == one.counts
        assert summary.balanced()


def test_every_process_has_work_and_multi_item_events_count_once(tmp_path: Path) -> None:
    pipeline = {
        "kind": "pipeline",
        "tenant": "acme",
        "entity": "deal",
        "category": "0",
        "stages": [{"id": "NEW", "semantic": "process"}, {"id": "WON", "semantic": "success"}],
    }
    trigger = {
        "kind": "trigger",
        "tenant": "acme",
        "id": "t-1",
        "entity": "deal",
        "category": "0",
        "stage": "WON",
        "code": "EMAIL",
    }
    items = [str(i) for i in range(20)]
    events = [
        {
            "id": f"c-{i}",
            "type": "item.created",
            "tenant": "acme",
            "occurred_at": "2026-11-25T09:00:00Z",
            "item": {"entity": "deal", "id": i},
            "data": {"category": "0", "stage": "NEW"},
        }
        for i in items
    ]
    events.append(
        {
            "id": "mail-1",
            "type": "email.received",
            "tenant": "acme",
            "occurred_at": "2026-11-25T10:00:00Z",
            "items": [{"entity": "deal", "id": i} for i in items],
        }
    )
    events_lines = [orjson.dumps(e) for e in events] + [b"{not json"]
    inputs = _write(tmp_path, [orjson.dumps(pipeline), orjson.dumps(trigger)], events_lines)
    out, dlq, summary = _run(inputs, tmp_path, "p2", 2)
    moved = [orjson.loads(line) for line in out.splitlines()]
    assert sorted(m["item"]["id"] for m in moved) == sorted(items)
    assert [orjson.loads(line)["code"] for line in dlq.splitlines()] == ["invalid_json"]
    assert summary.counts["extra_items"] == len(items) - 1
    assert summary.counts["events_read"] == len(events_lines)
    assert summary.balanced()


def test_merge_keeps_input_order() -> None:
    parts = [[((1, 0), b"a"), ((3, 1), b"d")], [((2, 0), b"b"), ((3, 0), b"c")]]
    assert merge_in_order(parts) == [b"a", b"b", b"c", b"d"]


def test_standard_input_is_read_by_one_process() -> None:
    base = {"automation": ["a.jsonl"], "out": "-"}
    assert ReplaySettings.build({**base, "events": ["-"], "workers": 4}).processes == 1
    assert ReplaySettings.build({**base, "events": ["e.jsonl"], "workers": 4}).processes == 4


def test_a_process_that_stops_without_results_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.workers as workers

    def dies(*args: Any) -> None:
        import os

        os._exit(3)

    monkeypatch.setattr(workers, "_run_part_to_file", dies)
    inputs = _write(tmp_path, [], [b'{"id": "e"}'])
    with pytest.raises(WorkerError, match="exit code 3"):
        _run(inputs, tmp_path, "p2", 2)


TRICKY = [
    # A second item member, an items member after the item, an item named in the data,
    # integer and escaped ids, no tenant, bad JSON after the item, bytes that are not UTF-8.
    b'{"id":"a1","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"1"},"item":{"entity":"deal","id":"2"}}',
    b'{"id":"a2","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"3"},"items":[{"entity":"deal","id":"4"}]}',
    b'{"id":"a3","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"5"},"data":{"item":{"entity":"deal","id":"6"}}}',
    b'{"id":"a4","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":7}}',
    b'{"id":"a5","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"\\u0038"}}',
    b'{"id":"a6","type":"email.received","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"9"}}',
    b'{"id":"a7","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"10"},"data":{oops}}',
    b'{"id":"a8","type":"email.received","tenant":"acme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"11"},"tenant":"globex"}',
    b'{"id":"a9","type":"email.received","tenant":"ac\xffme","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"12"}}',
    # A second item member whose key is spelled with an escape: JSON reads it as "item"
    # (the last one wins), so the event is globex/deal/4's, in another share than 3's.
    b'{"id":"a10","type":"email.received","tenant":"globex","occurred_at":"2026-11-25T10:00:00Z",'
    b'"item":{"entity":"deal","id":"3"},"it\\u0065m":{"entity":"deal","id":"4"}}',
]


def test_records_whose_item_takes_decoding_to_know(tmp_path: Path) -> None:
    automation = []
    for tenant in ("acme", "globex", "default"):
        pipeline = {
            "kind": "pipeline",
            "tenant": tenant,
            "entity": "deal",
            "category": "0",
            "stages": [{"id": "NEW", "semantic": "process"}, {"id": "WON", "semantic": "success"}],
        }
        trigger = {**pipeline, "kind": "trigger", "id": "t", "stage": "WON", "code": "EMAIL"}
        del trigger["stages"]
        automation += [orjson.dumps(pipeline), orjson.dumps(trigger)]
    created = [
        orjson.dumps(
            {
                "id": f"c{i}-{tenant}",
                "type": "item.created",
                "tenant": tenant,
                "occurred_at": "2026-11-25T09:00:00Z",
                "item": {"entity": "deal", "id": str(i)},
                "data": {"category": "0", "stage": "NEW"},
            }
        )
        for tenant in ("acme", "globex", "default")
        for i in range(1, 13)
    ]
    inputs = _write(tmp_path, automation, created + TRICKY)
    one_out, one_dlq, one = _run(inputs, tmp_path, "one", 1)
    assert one_out and one_dlq  # some of them move an item, some are dead letters
    escaped = [orjson.loads(line) for line in one_out.splitlines()]
    assert any(t["event"]["id"] == "a10" and t["item"]["id"] == "4" for t in escaped)
    for processes in (2, 3, 5):
        out, dlq, summary = _run(inputs, tmp_path, f"p{processes}", processes)
        assert (out, dlq, summary.counts) == (one_out, one_dlq, one.counts)


def test_the_command_line_replays_on_every_core_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    root = Path(__file__).resolve().parents[2] / "samples"
    outputs = {}
    for workers in ("1", "3", None):
        out, dlq = tmp_path / f"{workers}.out", tmp_path / f"{workers}.dlq"
        argv = ["replay", "--automation", str(root / "automation.jsonl")]
        argv += ["--events", str(root / "events.jsonl"), "--out", str(out), "--dlq", str(dlq)]
        argv += [] if workers is None else ["--workers", workers]
        assert main(argv) == 0
        outputs[workers] = (out.read_bytes(), dlq.read_bytes(), capsys.readouterr().err)
    assert outputs["1"][0] and outputs["1"][1]
    for workers in ("3", None):
        assert outputs[workers][:2] == outputs["1"][:2]
        # The summary's counts (its first lines) are the same; only the rate differs.
        assert outputs[workers][2].splitlines()[:3] == outputs["1"][2].splitlines()[:3]
