"""`crm-triggers report` and `diff` from the command line: formats, files, bad input."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import orjson
import pytest

from flows.cli import main
from tests.analytics.conftest import Write, pipeline, trigger
from tests.analytics.test_diff import BASE, OTHER
from tests.analytics.test_figures import the_history, the_transitions


@pytest.fixture
def logs(write: Write) -> dict[str, str]:
    return {
        "history": write("history.jsonl", the_history()),
        "transitions": write("transitions.jsonl", the_transitions()),
        "automation": write("automation.jsonl", [pipeline(), trigger("t-a", "A")]),
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_report_fits_a_terminal_of_100(
    capsys: pytest.CaptureFixture[str], logs: dict[str, str]
) -> None:
    code, out, _ = run(
        capsys, "report", "--history", logs["history"], "--automation", logs["automation"]
    )
    assert code == 0
    assert "Pipeline acme / deal / category 0" in out
    assert "Never fired (0 triggers in force at as-of)" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_report_has_the_shape_of_6_3(
    capsys: pytest.CaptureFixture[str], logs: dict[str, str]
) -> None:
    code, out, _ = run(capsys, "report", "--history", logs["history"], "--format", "json")
    assert code == 0
    report = orjson.loads(out)
    assert {"pipelines", "triggers", "never_fired", "stalled", "cohorts"} <= set(report)
    stage = report["pipelines"][0]["stages"][0]
    assert set(stage) == {"stage", "semantic", "entered", "reached", "conversion_to_next", "stays"}
    assert set(stage["stays"]) == {"closed", "mean_s", "p50_s", "p90_s", "open", "open_p50_age_s"}
    assert set(report["pipelines"][0]["moves"][0]) == {"from", "to", "kind", "count"}
    assert set(report["triggers"][0]) == {
        "tenant",
        "id",
        "code",
        "fires",
        "items",
        "backward",
        "first_at",
        "last_at",
    }


def test_csv_one_section(capsys: pytest.CaptureFixture[str], logs: dict[str, str]) -> None:
    code, out, _ = run(
        capsys, "report", "--history", logs["history"], "--format", "csv", "--section", "stages"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["stage"] for r in rows] == ["NEW", "B", "A", "WON", "LOSE"]  # first appearance
    assert rows[0]["entered"] == "4" and rows[-1]["reached"] == ""


def test_csv_every_section(capsys: pytest.CaptureFixture[str], logs: dict[str, str]) -> None:
    _, out, _ = run(capsys, "report", "--history", logs["history"], "--format", "csv")
    assert [line for line in out.splitlines() if line.startswith("# ")] == [
        "# stages",
        "# moves",
        "# backward",
        "# triggers",
        "# never_fired",
        "# stalled",
        "# cohorts",
    ]


def test_gzip_folder_and_stdin_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    logs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    data = Path(logs["history"]).read_bytes()
    (folder / "h.jsonl.gz").write_bytes(gzip.compress(data))
    _, from_folder, _ = run(capsys, "report", "--history", str(folder), "--format", "json")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    _, from_stdin, _ = run(capsys, "report", "--history", "-", "--format", "json")
    _, from_file, _ = run(capsys, "report", "--history", logs["history"], "--format", "json")
    assert from_folder == from_stdin == from_file


def test_several_history_files_are_read_in_the_order_given(
    capsys: pytest.CaptureFixture[str], write: Write
) -> None:
    history = the_history()
    first, second = write("1.jsonl", history[:5]), write("2.jsonl", history[5:])
    _, split, _ = run(capsys, "report", "--history", first, "--history", second, "--format", "json")
    _, whole, _ = run(
        capsys, "report", "--history", write("all.jsonl", history), "--format", "json"
    )
    assert split == whole


def test_bad_lines_are_counted_skips(capsys: pytest.CaptureFixture[str], write: Write) -> None:
    lines = [*the_history(), b"not json", b"[1, 2]", {"kind": "created"}, b"\xff\xfe"]
    code, out, err = run(capsys, "report", "--history", write("h.jsonl", lines))
    assert code == 0
    assert "crm-triggers: skipped 4 history lines that are not valid 6.1 records" in err
    assert "Pipeline acme / deal / category 0" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--history", "/nonexistent.jsonl"], "/nonexistent.jsonl: no such file or folder"),
        (["--tenant", "nobody"], "--tenant nobody: no history records of that tenant"),
        (["--from", "yesterday"], "--from: expected an RFC 3339 time"),
        (["--to", "2026-11-01T00:00:00"], "needs a zone"),
        (["--stalled", "a week"], "--stalled: expected a duration"),
        (["--section", "stages"], "--section goes with --format csv"),
        (["--history", "kafka:topic"], "give --brokers"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    logs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("CRM_TRIGGERS_BROKERS", raising=False)
    if "--history" not in argv:
        argv = ["--history", logs["history"], *argv]
    code, _, err = run(capsys, "report", *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreadable_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    code, _, err = run(capsys, "report", "--history", str(folder))
    assert code == 2 and "folder has no .jsonl or .jsonl.gz files" in err


def test_html_is_written(
    capsys: pytest.CaptureFixture[str], logs: dict[str, str], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    code, _, _ = run(
        capsys,
        "report",
        "--history",
        logs["history"],
        "--transitions",
        logs["transitions"],
        "--html",
        str(page),
    )
    assert code == 0
    assert page.read_text().count("<svg") >= 4


def test_diff_text_json_items_and_html(
    capsys: pytest.CaptureFixture[str], write: Write, tmp_path: Path
) -> None:
    base, other = write("base.jsonl", BASE), write("other.jsonl", OTHER)
    items, page = tmp_path / "items.jsonl", tmp_path / "diff.html"
    code, out, _ = run(
        capsys,
        "diff",
        "--base",
        base,
        "--other",
        other,
        "--items-out",
        str(items),
        "--html",
        str(page),
    )
    assert code == 0
    assert "added 2, removed 1, changed 1, unchanged 1; 3 items affected" in out
    assert len(items.read_bytes().splitlines()) == 3
    assert "<svg" in page.read_text()
    _, same, _ = run(capsys, "diff", "--base", base, "--other", base)
    assert "The two logs hold the same transitions." in same
    code, as_json, _ = run(capsys, "diff", "--base", base, "--other", other, "--format", "json")
    assert orjson.loads(as_json)["transitions"]["added"] == 2


def test_diff_needs_both_histories(capsys: pytest.CaptureFixture[str], write: Write) -> None:
    base = write("base.jsonl", BASE)
    code, _, err = run(capsys, "diff", "--base", base, "--other", base, "--base-history", base)
    assert code == 2 and "--other-history" in err
