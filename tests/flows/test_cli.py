"""The `crm-triggers replay` command line: files, stdin, exit codes, what-if."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from flows.cli import main
from tests.conftest import jsonl
from tests.flows.test_replay_flow import PIPELINE, WEBFORM, created, form

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "automation.jsonl").write_bytes(jsonl([PIPELINE, WEBFORM]))
    (tmp_path / "events.jsonl").write_bytes(jsonl([created("42", 5000), form("evt-9f2", "42")]))
    return tmp_path


def test_replay_writes_transitions_and_a_summary(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = logs / "out.jsonl"
    code = main(
        [
            "replay",
            "--automation",
            str(logs / "automation.jsonl"),
            "--events",
            str(logs / "events.jsonl"),
            "--out",
            str(out),
            "--dlq",
            str(logs / "dlq.jsonl"),
        ]
    )
    assert code == 0
    [move] = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert move["to_stage"] == "PREPARATION"
    assert (logs / "dlq.jsonl").read_bytes() == b""
    err = capsys.readouterr().err
    assert "transitions:        1" in err
    assert "events/s" in err


def test_a_missing_file_exits_2_naming_it(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["replay", "--automation", str(logs / "nope.jsonl"), "--events", str(logs / "events.jsonl")]
    )
    assert code == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_bad_usage_exits_2(logs: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "--events", str(logs / "events.jsonl")])
    assert exit_.value.code == 2
    assert (
        main(
            [
                "replay",
                "--automation",
                str(logs / "automation.jsonl"),
                "--events",
                str(logs / "events.jsonl"),
                "--seen-window",
                "zero",
            ]
        )
        == 2
    )


def test_stdin_to_stdout_in_a_real_process(logs: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows",
            "replay",
            "--automation",
            str(logs / "automation.jsonl"),
            "--events",
            "-",
        ],
        input=(logs / "events.jsonl").read_bytes(),
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    [move] = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert move["event"]["id"] == "evt-9f2"
    assert b"events read:        2" in done.stderr


def test_what_if_uses_the_latest_version_from_the_beginning(logs: Path) -> None:
    later = WEBFORM | {"stage": "WON", "updated_at": "2026-12-01T00:00:00Z"}
    (logs / "automation.jsonl").write_bytes(jsonl([PIPELINE, WEBFORM, later]))
    for flag, stage in (([], "PREPARATION"), (["--what-if"], "WON")):
        out = logs / "out.jsonl"
        assert (
            main(
                [
                    "replay",
                    "--automation",
                    str(logs / "automation.jsonl"),
                    "--events",
                    str(logs / "events.jsonl"),
                    "--out",
                    str(out),
                    *flag,
                ]
            )
            == 0
        )
        [move] = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert move["to_stage"] == stage


def test_several_event_logs_are_merged_by_time(logs: Path) -> None:
    (logs / "crm.jsonl").write_bytes(jsonl([created("42", 5000, at="2026-11-25T09:00:00Z")]))
    (logs / "forms.jsonl").write_bytes(jsonl([form("f1", "42", at="2026-11-25T10:00:00Z")]))
    out = logs / "out.jsonl"
    # Forms first on the command line: still decided after the item was created.
    assert (
        main(
            [
                "replay",
                "--automation",
                str(logs / "automation.jsonl"),
                "--events",
                str(logs / "forms.jsonl"),
                "--events",
                str(logs / "crm.jsonl"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(out.read_bytes().splitlines()) == 1
