"""The `crm-triggers replay` command line: files, stdin, exit codes, what-if."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import Field
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli import COMMANDS, main, parser
from flows.options import Option, Settings, env_name
from flows.settings import LiveSettings, ReplaySettings
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


# Options: one declaration gives the flag, the variable and the help ----------------------

COMMAND_SETTINGS = sorted(
    {(name, command.settings_class()) for name, command in COMMANDS.items()},
    key=lambda pair: pair[0],
)


def option_fields(settings: type[Settings]) -> list[tuple[Field[Any], Option]]:
    return list(settings.options())


@pytest.mark.parametrize(("name", "settings"), COMMAND_SETTINGS)
def test_help_names_each_option_and_the_variable_it_reads(
    name: str, settings: type[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*name.split(), "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for f, spec in option_fields(settings):
        flag_name = f.name if spec.positional else settings.flag_of(f, spec)
        assert flag_name in shown
        variable = settings.variable(f, spec)
        if variable and spec.cli_env and spec.show_env:
            assert variable in shown, f"{name}: {flag_name} does not name {variable}"


LIVE_VALUES = {
    "brokers": "a:1,b:2",
    "kafka_config": None,
    "events_topic": "in",
    "automation_topic": "rules",
    "transitions_topic": "moves",
    "dead_letter_topic": "bad",
    "history_topic": "stages",
    "recovery_dir": "/tmp/recovery",
    "recovery_partitions": "3",
    "snapshot_interval": "5",
    "backup_interval": "7",
    "workers": "2",
    "process_id": "1",
    "start_from": "end",
    "batch_size": "1024",
    "summary_interval": "2.5",
    "key_groups": "8",
    "seen_window": "16",
    "max_record_bytes": "2048",
    "engine": "python",
}


def test_a_variable_and_its_flag_give_the_same_setting() -> None:
    env = {env_name(k): v for k, v in LIVE_VALUES.items() if v is not None}
    env |= {
        "CRM_TRIGGERS_KAFKA_OPTIONS": "client.id=x;linger.ms=7",
        "CRM_TRIGGERS_ADDRESSES": "h1:2101;h2:2101",
        "CRM_TRIGGERS_UNTIL_END": "yes",
    }
    argv = ["run"]
    for k, v in LIVE_VALUES.items():
        if v is not None:
            argv += ["--" + k.replace("_", "-"), v]
    argv += ["--kafka-option", "client.id=x", "--kafka-option", "linger.ms=7"]
    argv += ["--addresses", "h1:2101;h2:2101", "--until-end"]
    from_env = LiveSettings.from_env(env)
    from_flags = LiveSettings.from_args(parser().parse_args(argv), {})
    assert from_flags == from_env
    assert from_env.kafka_options == {"client.id": "x", "linger.ms": "7"}
    assert (from_env.workers, from_env.summary_interval, from_env.until_end) == (2, 2.5, True)
    assert from_env.addresses == ("h1:2101", "h2:2101")


def test_a_flag_wins_over_its_variable_and_a_repeatable_flag_replaces_the_list() -> None:
    env = {
        "CRM_TRIGGERS_BROKERS": "env:1",
        "CRM_TRIGGERS_WORKERS": "4",
        "CRM_TRIGGERS_KAFKA_OPTIONS": "client.id=env",
    }
    args = parser().parse_args(["run", "--brokers", "flag:2", "--kafka-option", "linger.ms=1"])
    settings = LiveSettings.from_args(args, env)
    assert settings.brokers == "flag:2"
    assert settings.workers == 4
    assert settings.kafka_options == {"linger.ms": "1"}


def test_replay_files_come_from_flags_only_on_the_command_line(logs: Path) -> None:
    env = {"CRM_TRIGGERS_OUT": str(logs / "elsewhere.jsonl"), "CRM_TRIGGERS_SEEN_WINDOW": "9"}
    args = parser().parse_args(
        ["replay", "--automation", "a.jsonl", "--events", "e.jsonl", "--engine", "python"]
    )
    settings = ReplaySettings.from_args(args, env)
    assert (settings.out, settings.seen_window, settings.key_groups) == ("-", 9, 1)
    assert ReplaySettings.from_env(
        {**env, "CRM_TRIGGERS_AUTOMATION": "a", "CRM_TRIGGERS_EVENTS": "e"}
    ).out == str(logs / "elsewhere.jsonl")


def test_an_empty_variable_is_the_default() -> None:
    settings = LiveSettings.from_env({"CRM_TRIGGERS_BROKERS": "h:1", "CRM_TRIGGERS_WORKERS": ""})
    assert settings.workers == 1
