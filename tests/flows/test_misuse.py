"""Every misuse of a command ends with one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path

import pytest

from flows.cli import main
from tests.conftest import jsonl
from tests.flows.test_replay_flow import PIPELINE, WEBFORM, created, form


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "automation.jsonl").write_bytes(jsonl([PIPELINE, WEBFORM]))
    (tmp_path / "events.jsonl").write_bytes(jsonl([created("42", 5000), form("evt-9f2", "42")]))
    return tmp_path


def replay(logs: Path, *extra: str, events: str | None = None) -> list[str]:
    return [
        "replay",
        "--automation",
        str(logs / "automation.jsonl"),
        "--events",
        events or str(logs / "events.jsonl"),
        *extra,
    ]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("crm-triggers: error: ")
    return lines[0]


@pytest.mark.parametrize("option", ["--out", "--dlq", "--history"])
def test_an_output_naming_an_input_is_refused_and_the_input_kept(
    logs: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = logs / "events.jsonl"
    before = events.read_bytes()
    # Another spelling of the same file, as `cp` sees through it.
    assert main(replay(logs, option, str(logs / "." / "events.jsonl"))) == 2
    assert "would wipe it" in one_line_error(capsys)
    assert events.read_bytes() == before


def test_an_output_inside_an_input_folder_is_refused(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = logs / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes((logs / "events.jsonl").read_bytes())
    assert main(replay(logs, "--out", str(folder / "a.jsonl"), events=str(folder))) == 2
    assert "would wipe it" in one_line_error(capsys)
    assert (folder / "a.jsonl").read_bytes() == (logs / "events.jsonl").read_bytes()


def test_out_and_dlq_naming_one_file_are_refused(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(logs / "both.jsonl")
    assert main(replay(logs, "--out", out, "--dlq", out)) == 2
    assert "is also --out" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("missing/out.jsonl", "does not exist"),
        ("", "is a folder"),
        ("/proc/no-such-file", "cannot write"),
    ],
)
def test_an_output_that_cannot_be_written_is_one_line(
    logs: Path, where: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = where if where.startswith("/") else str(logs / where)
    for option in ("--out", "--dlq"):
        assert main(replay(logs, option, target)) == 2
        assert says in one_line_error(capsys)


def test_a_truncated_gzip_is_one_line(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = gzip.compress((logs / "events.jsonl").read_bytes() * 2000)
    (logs / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    assert main(replay(logs, events=str(logs / "cut.jsonl.gz"))) == 2
    assert "cut.jsonl.gz: cannot read: the gzip data is truncated" in one_line_error(capsys)


def test_a_fake_gzip_is_one_line(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (logs / "fake.jsonl.gz").write_bytes((logs / "events.jsonl").read_bytes())
    assert main(replay(logs, events=str(logs / "fake.jsonl.gz"))) == 2
    assert "fake.jsonl.gz: cannot read: not a gzip file" in one_line_error(capsys)


def test_a_folder_holding_an_unreadable_file_is_one_line(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = logs / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes((logs / "events.jsonl").read_bytes())
    # Unreadable even for root: reading /proc/self/mem at offset 0 is an I/O error.
    (folder / "b.jsonl").symlink_to("/proc/self/mem")
    assert main(replay(logs, events=str(folder))) == 2
    assert "b.jsonl: cannot read: Input/output error" in one_line_error(capsys)


def test_proc_self_mem_is_one_line(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(replay(logs, events="/proc/self/mem")) == 2
    assert "/proc/self/mem: cannot read" in one_line_error(capsys)


def test_dev_null_is_an_empty_input(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(replay(logs, "--out", str(logs / "out.jsonl"), events="/dev/null")) == 0
    assert "events read:        0" in capsys.readouterr().err


def test_a_fifo_is_read(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = logs / "events.fifo"
    os.mkfifo(fifo)
    data = (logs / "events.jsonl").read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as writer:
            writer.write(data)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out = logs / "out.jsonl"
    assert main(replay(logs, "--out", str(out), events=str(fifo))) == 0
    feeder.join(10)
    assert len(out.read_bytes().splitlines()) == 1
    assert "events read:        2" in capsys.readouterr().err
