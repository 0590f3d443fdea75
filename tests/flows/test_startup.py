"""Start-up: a command imports what it runs with, not every command's modules.

Each check runs the command line in a fresh interpreter and lists the modules it
loaded: a replay that imports the Kafka client, the metrics server, DuckDB or the
statistics job again fails here, whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import COMMANDS
from flows.options import Settings
from tests.conftest import jsonl
from tests.flows.test_replay_flow import PIPELINE, WEBFORM, created, form

ROOT = Path(__file__).resolve().parents[2]

NOT_FOR_A_REPLAY = (
    "analytics.report",
    "bytewax.operators.windowing",
    "confluent_kafka",
    "connectors.kafka.client",
    "duckdb",
    "flows.explain",
    "flows.kafka_commands",
    "flows.live",
    "flows.stats",
    "http.server",
    "prometheus_client",
    "vl_convert",
)
"""Modules of the other commands (the Kafka client, the metrics server, DuckDB, the
statistics job): a replay never uses them."""

NOT_FOR_HELP = (
    "bytewax.operators",
    "bytewax.inputs",
    "flows.settings",
    "flows.dataflow",
    "connectors.jsonl",
)
"""`crm-triggers --help` names the commands: it needs none of their modules."""


def modules_loaded(argv: list[str]) -> tuple[int, set[str]]:
    """The exit code of `crm-triggers ARGV` and the top-level modules it had loaded."""
    script = (
        "import json, sys\n"
        "from flows.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as stop:\n"
        "    code = stop.code\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    return code, set(modules)


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Those of `names` that are in `modules`, themselves or a submodule."""
    return [n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules)]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_replay_imports_no_other_commands_modules(tmp_path: Path, workers: str) -> None:
    (tmp_path / "automation.jsonl").write_bytes(jsonl([PIPELINE, WEBFORM]))
    (tmp_path / "events.jsonl").write_bytes(jsonl([created("42", 5000), form("e-1", "42")]))
    out = tmp_path / "out.jsonl"
    code, modules = modules_loaded(
        [
            "replay",
            "--automation",
            str(tmp_path / "automation.jsonl"),
            "--events",
            str(tmp_path / "events.jsonl"),
            "--out",
            str(out),
            "--workers",
            workers,
        ]
    )
    assert code == 0
    assert len(out.read_bytes().splitlines()) == 1  # it did decide
    assert "flows.replay" in modules
    assert loaded(modules, NOT_FOR_A_REPLAY) == []


def test_help_imports_no_commands_modules() -> None:
    code, modules = modules_loaded(["--help"])
    assert code == 0
    assert loaded(modules, NOT_FOR_HELP) == []


def test_a_commands_help_imports_its_settings_only() -> None:
    code, modules = modules_loaded(["report", "--help"])
    assert code == 0
    assert "analytics.cli" in modules
    assert loaded(modules, ("flows.stats", "flows.explain", "duckdb")) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_row_names_a_settings_class_and_a_runner(name: str) -> None:
    command = COMMANDS[name]
    assert issubclass(command.settings_class(), Settings)
    assert callable(command.runner())
