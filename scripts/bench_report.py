"""Report benchmark: `crm-triggers report` over a generated stage history at scale.

    python scripts/bench_report.py [--records 10000000] [--runs 1] [--phases]

Generates history, transition and automation logs once (scripts/historylog.py)
into .cache/bench/history-N/ and reuses them. Then, run by run:

- baseline: DuckDB alone reading the same history file (counting every column
  of `read_ndjson` with the report's column types): the floor of the work;
- report: `crm-triggers report --format json` as a separate process, with
  --transitions and --automation, its wall time and peak memory (max RSS).

`--phases` also times, in this process, each step of the report (loading,
stays, stage order, each figure) to say where the time goes. The machine may be
shared and noisy: quote the ratio report/baseline and records/s.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generated(records: int) -> Path:
    folder = ROOT / ".cache" / "bench" / f"history-{records}"
    if not (folder / "transitions.jsonl").exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "historylog.py"),
                str(folder),
                "--records",
                str(records),
            ],
            check=True,
        )
        print(f"generated {folder} in {time.perf_counter() - started:.0f} s")
    return folder


def baseline(folder: Path) -> tuple[float, int]:
    # Every column is counted, so that DuckDB parses each field the report reads.
    code = (
        "from analytics.load import HISTORY_COLUMNS, _reader, connect; "
        "db = connect(); "
        "counts = ', '.join(f'count(\"{c}\")' for c in HISTORY_COLUMNS); "
        f"reader = _reader({str(folder / 'history.jsonl')!r}, HISTORY_COLUMNS); "
        "print(db.execute(f'SELECT count(*), {counts} FROM {reader}').fetchone()[0])"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return time.perf_counter() - started, int(out.stdout)


def report(folder: Path) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "flows",
        "report",
        "--history",
        str(folder / "history.jsonl"),
        "--transitions",
        str(folder / "transitions.jsonl"),
        "--automation",
        str(folder / "automation.jsonl"),
        "--format",
        "json",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024


def phases(folder: Path) -> None:
    from analytics import figures
    from analytics.automation import automation_as_of
    from analytics.figures import Scope
    from analytics.load import Skipped, connect, load_history, load_transitions

    db, skipped, scope = connect(), Skipped(), Scope()
    steps: list[tuple[str, float]] = []

    def timed(name: str, run: object) -> object:
        started = time.perf_counter()
        result = run()  # type: ignore[operator]
        steps.append((name, time.perf_counter() - started))
        return result

    timed(
        "load history (read_ndjson)",
        lambda: load_history(db, [str(folder / "history.jsonl")], skipped),
    )
    timed(
        "load transitions",
        lambda: load_transitions(db, [str(folder / "transitions.jsonl")], skipped),
    )
    as_of = timed("window, as-of", lambda: figures.keep(db, scope))
    automation = timed(
        "automation", lambda: automation_as_of([str(folder / "automation.jsonl")], as_of)
    )  # type: ignore[arg-type]
    timed("stays (lead over items)", lambda: figures.stays(db, "kept", as_of))  # type: ignore[arg-type]
    timed("stage order", lambda: figures._stage_order(db, automation))  # type: ignore[arg-type]
    timed("our moves", lambda: figures._ours(db, scope, True))
    for name in (
        "entered",
        "reached",
        "time_in_stage",
        "moves",
        "backward_rate",
        "trigger_effectiveness",
        "cohorts",
    ):
        timed(name, lambda name=name: getattr(figures, name)(db))
    timed("stalled", lambda: figures.stalled(db, scope.stalled_s))
    total = sum(s for _, s in steps)
    for name, seconds in steps:
        print(f"  {name:<28} {seconds:7.2f} s  {100 * seconds / total:5.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--phases", action="store_true")
    args = parser.parse_args()
    folder = generated(args.records)
    for run in range(1, args.runs + 1):
        base_wall, rows = baseline(folder)
        wall, peak_mb = report(folder)
        print(
            f"run {run}: {rows:,} history records; baseline (DuckDB scan) {base_wall:.1f} s; "
            f"report {wall:.1f} s ({rows / wall:,.0f} records/s, {wall / base_wall:.2f}x the "
            f"baseline), peak RSS {peak_mb:,} MB"
        )
    if args.phases:
        phases(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
