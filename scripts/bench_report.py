"""Report benchmark: `crm-triggers report` over a stage history, against a bare DuckDB scan.

    python scripts/bench_report.py [--records 10000000] [--runs 1] [--phases]
    python scripts/bench_report.py --sample [--runs 3]
    python scripts/bench_report.py --folder DIR

The logs: by default generated once (scripts/historylog.py) into
.cache/bench/history-N/ and reused; `--folder DIR` takes DIR's history.jsonl,
transitions.jsonl and automation.jsonl; `--sample` takes what `make sample`
writes (out/history.jsonl, out/transitions.jsonl, samples/automation.jsonl) once
replay writes the stage history, and until then a generated history of the
sample's scale (8,000 records). Then, run by run, one after the other so that
both see the same load:

- baseline: DuckDB alone reading the same history file (counting every column
  of `read_ndjson` with the report's column types): the floor of the work;
- report: `crm-triggers report --format json` as a separate process, with
  --transitions and --automation, its wall time and peak memory (max RSS);
- with `--cache`: the report with its Parquet cache (.cache/bench/report-cache,
  emptied first): run 1 parses the logs and writes the cache, later runs read it;
- with `--html` (the default for `--sample`): the same with `--html FILE`;
- start-up: `crm-triggers report --help` and a bare `python -c pass`.

`--phases` also times, in this process, each step of the report (loading,
stays, stage order, each figure) to say where the time goes. The machine may be
shared and noisy: quote the ratio report/baseline and records/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
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


def baseline(history: Path) -> tuple[float, int]:
    # Every column is counted, so that DuckDB parses each field the report reads.
    code = (
        "from analytics.load import HISTORY_COLUMNS, _reader, connect; "
        "db = connect(); "
        "counts = ', '.join(f'count(\"{c}\")' for c in HISTORY_COLUMNS); "
        f"reader = _reader({str(history)!r}, HISTORY_COLUMNS); "
        "print(db.execute(f'SELECT count(*), {counts} FROM {reader}').fetchone()[0])"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return time.perf_counter() - started, int(out.stdout)


SAMPLE_RECORDS = 8000


@dataclass(frozen=True)
class Logs:
    history: Path
    transitions: Path
    automation: Path

    @classmethod
    def of(cls, folder: Path) -> Logs:
        return cls(
            folder / "history.jsonl", folder / "transitions.jsonl", folder / "automation.jsonl"
        )


def sample_logs() -> Logs:
    """The sample's logs as `make sample` writes them, or a generated history of its scale."""
    made = Logs(
        ROOT / "out" / "history.jsonl",
        ROOT / "out" / "transitions.jsonl",
        ROOT / "samples" / "automation.jsonl",
    )
    if made.history.exists() and made.transitions.exists():
        print(f"the sample's logs: {made.history}, {made.transitions}")
        return made
    print(f"no {made.history} (make sample writes it with replay --history): generated logs")
    return Logs.of(generated(SAMPLE_RECORDS))


CACHE = ROOT / ".cache" / "bench" / "report-cache"


def report(logs: Logs, html: Path | None = None, cached: bool = False) -> tuple[float, int]:
    """Wall seconds and peak MB of one report; `cached` with the Parquet cache, else without."""
    command = [
        sys.executable,
        "-m",
        "flows",
        "report",
        "--history",
        str(logs.history),
        "--transitions",
        str(logs.transitions),
        "--automation",
        str(logs.automation),
        "--format",
        "json",
        *(["--html", str(html)] if html else []),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    env = {**os.environ, "CRM_TRIGGERS_REPORT_CACHE": str(CACHE) if cached else "off"}
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024


def startup() -> tuple[float, float]:
    """Seconds of `report --help` (the command line's imports) and of a bare interpreter."""
    timings = []
    for command in (["-m", "flows", "report", "--help"], ["-c", "pass"]):
        started = time.perf_counter()
        subprocess.run([sys.executable, *command], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


def phases(logs: Logs) -> None:
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
        lambda: load_history(db, [str(logs.history)], skipped),
    )
    timed(
        "load transitions",
        lambda: load_transitions(db, [str(logs.transitions)], skipped),
    )
    as_of = timed("window, as-of", lambda: figures.keep(db, scope))
    automation = timed("automation", lambda: automation_as_of([str(logs.automation)], as_of))  # type: ignore[arg-type]
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
    parser.add_argument("--folder", type=Path, help="history, transitions, automation of DIR")
    parser.add_argument("--sample", action="store_true", help="the sample's logs (make sample)")
    parser.add_argument("--html", action="store_true", help="also time --html (with --sample)")
    parser.add_argument("--cache", action="store_true", help="also time the cached report")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--phases", action="store_true")
    args = parser.parse_args()
    logs = sample_logs() if args.sample else Logs.of(args.folder or generated(args.records))
    html = args.html or args.sample
    page = ROOT / ".cache" / "bench" / "report.html"
    shutil.rmtree(CACHE, ignore_errors=True)
    for run in range(1, args.runs + 1):
        base_wall, rows = baseline(logs.history)
        wall, peak_mb = report(logs)
        print(
            f"run {run}: {rows:,} history records; baseline (DuckDB scan) {base_wall:.2f} s; "
            f"report {wall:.2f} s ({rows / wall:,.0f} records/s, {wall / base_wall:.2f}x the "
            f"baseline), peak RSS {peak_mb:,} MB"
        )
        if args.cache:
            cached_wall, cached_peak = report(logs, cached=True)
            what = "writing the cache" if run == 1 else "from the cache"
            print(
                f"  cached report ({what}): {cached_wall:.2f} s ({cached_wall / wall:.2f}x the "
                f"uncached report), peak RSS {cached_peak:,} MB"
            )
        if html:
            html_wall, _ = report(logs, page)
            print(f"  with --html: {html_wall:.2f} s ({html_wall / base_wall:.2f}x the baseline)")
        help_wall, bare = startup()
        print(f"  start-up: report --help {help_wall:.2f} s; bare python {bare:.2f} s")
    if args.phases:
        phases(logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
