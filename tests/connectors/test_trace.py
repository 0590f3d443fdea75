"""The job's timeline for latency breakdowns: written only when asked for, one line per note."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import gc, time
from connectors.kafka import trace
before = time.time() * 1000
trace.note("read", 3, 10, 19, 4.5)
gc.collect()
print(trace.ON, before)
"""


def run(env: dict[str, str]) -> tuple[bool, float]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    on, before = done.stdout.split()
    return on == "True", float(before)


def test_a_process_writes_its_timeline_to_the_path_given_with_its_pid(tmp_path: Path) -> None:
    on, before = run({"CRM_TRIGGERS_TRACE": str(tmp_path / "job"), "PATH": ""})
    assert on
    (written,) = tmp_path.glob("job.*")
    assert written.name.removeprefix("job.").isdigit()
    lines = [line.split("\t") for line in written.read_text().splitlines()]
    reads = [line for line in lines if line[0] == "read"]
    assert [line[2:] for line in reads] == [["3", "10", "19", "4.5"]]
    assert before - 0.01 <= float(reads[0][1]) <= before + 60_000  # ms, rounded to 0.01
    collections = [line for line in lines if line[0] == "gc"]
    assert collections and all(float(line[3]) >= 0 for line in collections)


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    on, _ = run({"PATH": "", "HOME": str(tmp_path)})
    assert not on
    assert list(tmp_path.iterdir()) == []


def test_a_path_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import connectors.kafka.trace"],
        env={"CRM_TRIGGERS_TRACE": str(tmp_path / "missing" / "job"), "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: CRM_TRIGGERS_TRACE={tmp_path / 'missing' / 'job'}: No such file or directory"
    ]
