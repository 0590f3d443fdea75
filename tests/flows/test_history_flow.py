"""`replay --history`: the stage history file, in input order, the same bytes on every run."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.records import (
    decode_event,
    history_json,
    load_json,
    parse_automation,
    transition_json,
)
from flows.cli import main
from flows.settings import ReplaySettings
from state.board import Board
from state.model import Rejection
from state.table import TriggerTable
from tests.conftest import Replay, jsonl
from tests.reference.randlog import random_scenario


def history_sequentially(automation: list[bytes], events: list[bytes]) -> bytes:
    """The history of one Python board over the whole input, one record after another."""
    table = TriggerTable()
    for raw in automation:
        obj = load_json(raw)
        record = obj if isinstance(obj, Rejection) else parse_automation(obj)
        if not isinstance(record, Rejection):
            table.apply(record)
    board = Board(table, decode=decode_event, encode=transition_json)
    board.write_history(history_json)
    decided = board.decide_parcel(list(events), None, 0, 1)
    return b"".join(line + b"\n" for *_, line in decided.history)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_history_file_is_the_sequential_history_whatever_the_workers(
    replay: Replay, tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    automation, events = random_scenario(seed, n_events=300, n_items=30)
    expected = history_sequentially(automation, events)
    assert expected, "the scenario makes history"
    folder = tmp_path_factory.mktemp("history")
    written = []
    for run, (workers, engine) in enumerate([(1, "native"), (2, "native"), (1, "python")]):
        path = folder / f"history{run}.jsonl"
        result = replay(
            automation,
            events,
            workers=workers,
            key_groups=4 * workers,
            engine=engine,
            history=str(path),
        )
        written.append(path.read_bytes())
        assert result.summary.counts["history"] == len(expected.splitlines())
    assert written == [expected] * 3


def test_without_history_no_file_and_no_tally(replay: Replay, tmp_path: Path) -> None:
    automation, events = random_scenario(5, n_events=100, n_items=10)
    result = replay(automation, events)
    assert result.transitions
    assert result.summary.counts["history"] == 0
    assert "stage history" not in result.summary.render()


def test_replay_history_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    automation, events = random_scenario(11, n_events=200, n_items=20)
    (tmp_path / "automation.jsonl").write_bytes(jsonl(automation))
    (tmp_path / "events.jsonl").write_bytes(jsonl(events))
    history = tmp_path / "history.jsonl"
    status = main(
        [
            "replay",
            "--automation",
            str(tmp_path / "automation.jsonl"),
            "--events",
            str(tmp_path / "events.jsonl"),
            "--out",
            str(tmp_path / "out.jsonl"),
            "--history",
            str(history),
        ]
    )
    assert status == 0
    lines = history.read_bytes().splitlines()
    assert history.read_bytes() == history_sequentially(automation, events)
    assert f"stage history:      {len(lines)}" in capsys.readouterr().err
    kinds = {orjson.loads(line)["kind"] for line in lines}
    assert kinds <= {"created", "trigger", "crm", "deleted"} and "trigger" in kinds


def test_the_history_variable_names_the_file_for_bytewax_run(tmp_path: Path) -> None:
    env = {
        "CRM_TRIGGERS_AUTOMATION": "a.jsonl",
        "CRM_TRIGGERS_EVENTS": "e.jsonl",
        "CRM_TRIGGERS_HISTORY": str(tmp_path / "h.jsonl"),
    }
    assert ReplaySettings.from_env(env).history == str(tmp_path / "h.jsonl")
    assert (
        ReplaySettings.from_env({k: v for k, v in env.items() if "HISTORY" not in k}).history
        is None
    )


def test_tail_describes_a_history_record_in_one_line() -> None:
    from flows.kafka_commands import describe

    record = {
        "id": "x",
        "tenant": "acme",
        "item": {"entity": "deal", "id": "42"},
        "category": "0",
        "stage": "PREPARATION",
        "from_stage": "NEW",
        "semantic": "process",
        "kind": "trigger",
        "at": "2026-11-25T10:00:00Z",
        "event": {"id": "evt-9f2", "type": "form.submitted"},
        "transition_id": "t",
        "trigger": {"id": "t-17", "code": "WEBFORM"},
    }
    assert describe(orjson.dumps(record)) == (
        "2026-11-25T10:00:00Z  acme  deal/42  trigger: NEW -> PREPARATION (process)  "
        "trigger t-17 (WEBFORM)  event evt-9f2 (form.submitted)"
    )
    created = {**record, "kind": "created", "from_stage": None, "semantic": None, "trigger": None}
    assert describe(orjson.dumps(created)) == (
        "2026-11-25T10:00:00Z  acme  deal/42  created: - -> PREPARATION (unknown)  "
        "event evt-9f2 (form.submitted)"
    )
