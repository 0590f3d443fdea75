"""Replay benchmark: the Bytewax replay job against a plain loop over the same decision code.

    python scripts/bench_replay.py [--events 1000000] [--items 100000] [--runs 3] [--python]

Generates a realistic log (scripts/generate.py) once into .cache/bench/, then
alternates, run by run, between:

- baseline: one Python process reading the same file by blocks and handing batches
  of raw lines to one compiled board (`state.native.NativeBoard`), no Bytewax, no
  output (`scripts/benchdata.py FOLDER native`: the floor of the job's work);
- job: `python -m flows replay --workers 1` as a separate process, writing
  transitions and dead letters to files;
- job on every core: the same with `--workers N` (N: the cores, or `--workers`),
  its output checked byte for byte against the one-process job's;
- the job on an empty events log with `--workers 1` and `--workers N`: the part of a
  replay that does not divide (Python's start, imports, the fork, the exit), and what
  it leaves of N processes' gain were the rest divided exactly;
- with --python, the same job with `--engine python` (the reference engine);
- with --history, the same job writing the stage history too (`--history FILE`).

It prints, per run and as medians: events/s of each, the ratio job/baseline, the
ratio of N processes to one (each run's pair measured back to back), the
speedup of the native engine over the Python one, and the job's peak memory (max
RSS). Each line names the command that reproduces it. The machine may be shared
and noisy: quote medians and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchdata import ROOT, generated_log


def run_baseline(folder: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "scripts" / "benchdata.py"), str(folder), "native"]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    read, moved, _ = out.stdout.split()
    return wall, int(read), int(moved)


def job_command(
    folder: Path,
    engine: str = "native",
    workers: int = 1,
    history: bool = False,
    events: str = "events.jsonl",
    outputs: str = "",
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows",
        "replay",
        "--automation",
        str(folder / "automation.jsonl"),
        "--events",
        str(folder / events),
        "--out",
        str(folder / f"{outputs}transitions.jsonl"),
        "--dlq",
        str(folder / f"{outputs}dead-letters.jsonl"),
        "--engine",
        engine,
        "--workers",
        str(workers),
        *(["--history", str(folder / "history.jsonl")] if history else []),
    ]


def outputs_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("transitions.jsonl", "dead-letters.jsonl"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


CPU_SECONDS: dict[int, list[float]] = {}
"""CPU seconds (user and system, every process of the job) of each run, by --workers."""


def run_job(
    folder: Path, engine: str = "native", workers: int = 1, history: bool = False
) -> tuple[float, int, float]:
    """Wall seconds, transitions written, and the job's peak memory in MB."""
    started = time.perf_counter()
    child = subprocess.Popen(
        job_command(folder, engine, workers, history),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if engine == "native":
        CPU_SECONDS.setdefault(workers, []).append(usage.ru_utime + usage.ru_stime)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"job failed with exit code {child.returncode}")
    with open(folder / "transitions.jsonl", "rb") as out:
        moved = sum(1 for _ in out)
    return wall, moved, usage.ru_maxrss / 1024


START_UP: dict[int, list[tuple[float, float]]] = {}
"""(wall, CPU seconds) of the job on an empty events log, by --workers: what a replay
pays whatever its length (Python's start, imports, the flow, the fork, the exit)."""


def run_start_up(folder: Path, workers: int) -> None:
    empty = folder / "empty-events.jsonl"
    empty.touch()
    started = time.perf_counter()
    command = job_command(folder, workers=workers, events=empty.name, outputs="empty-")
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"job on an empty log failed: {' '.join(command)}")
    wall = time.perf_counter() - started
    START_UP.setdefault(workers, []).append((wall, usage.ru_utime + usage.ru_stime))


def print_start_up(workers: int) -> None:
    """The serial part of a replay and what it leaves of N processes' gain (Amdahl).

    From CPU seconds, which a loaded machine inflates less than wall time: on N free
    cores the job would take its start-up plus the largest process's share.
    """
    walls = {n: statistics.median(w for w, _ in runs) for n, runs in START_UP.items()}
    cpus = {n: statistics.median(c for _, c in runs) for n, runs in START_UP.items()}
    print(
        f"start-up and exit (empty events log), CPU (median): {cpus[1]:.2f} s --workers 1, "
        f"{cpus[workers]:.2f} s --workers {workers} (wall {walls[1]:.2f} s, {walls[workers]:.2f} s)"
    )
    one = statistics.median(CPU_SECONDS[1])
    rest = one - cpus[1]
    each = (statistics.median(CPU_SECONDS[workers]) - cpus[workers]) / workers
    exact = one / (cpus[workers] + rest / workers)
    print(
        f"CPU past start-up: {rest:.2f} s in one process, {each:.2f} s in each of {workers} "
        f"({each / rest:.2f} of one; {1 / workers:.2f} would be an exact division)"
    )
    print(
        f"on {workers} free cores, from these CPU figures: --workers {workers} / --workers 1 "
        f"= {one / (cpus[workers] + each):.2f}; {exact:.2f} if the rest divided exactly "
        "(the limit the serial start-up sets on this log)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes of the job on every core (default: the cores)",
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="also run the job with --engine python (the reference) in each run",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="also run the job with --history (the stage history) in each run",
    )
    args = parser.parse_args()
    folder = generated_log(args.events, args.items)
    size = os.path.getsize(folder / "events.jsonl")
    print(
        f"input: {args.events:,} events over {args.items:,} items, {size / 1e6:.0f} MB ({folder})"
    )
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    baseline_rates, job_rates, python_rates, ratios, speedups, peaks = [], [], [], [], [], []
    history_rates, history_costs, history_peaks = [], [], []
    many_rates, scale = [], []
    for run in range(1, args.runs + 1):
        base_wall, read, base_moved = run_baseline(folder)
        # One process and N alternate, in both orders, so that a change in the
        # machine's load falls on both alike.
        pair = [1, args.workers] if run % 2 else [args.workers, 1]
        walls: dict[int, float] = {}
        digests: dict[int, str] = {}
        for workers in pair:
            wall, moved, peak = run_job(folder, workers=workers)
            walls[workers], digests[workers] = wall, outputs_digest(folder)
            if workers == 1:
                job_wall, job_moved, peak_mb = wall, moved, peak
        for workers in pair:
            run_start_up(folder, workers)
        if digests[1] != digests[args.workers]:
            print(f"MISMATCH: --workers {args.workers} wrote other bytes than --workers 1")
            return 1
        many_rates.append(read / walls[args.workers])
        scale.append(job_wall / walls[args.workers])
        python_wall, python_moved, _ = run_job(folder, "python") if args.python else (0, 0, 0)
        history_wall, history_moved, history_peak = (
            run_job(folder, history=True) if args.history else (0, job_moved, 0)
        )
        peaks.append(peak_mb)
        if (
            job_moved != base_moved
            or (args.python and python_moved != job_moved)
            or history_moved != job_moved
        ):
            print(
                f"MISMATCH: job wrote {job_moved} transitions, baseline decided {base_moved}, "
                f"the Python engine wrote {python_moved}"
            )
            return 1
        baseline_rates.append(read / base_wall)
        job_rates.append(read / job_wall)
        ratios.append(base_wall / job_wall)
        line = (
            f"run {run}: baseline {read / base_wall:,.0f} events/s, "
            f"job {read / job_wall:,.0f} events/s, job/baseline {base_wall / job_wall:.2f}, "
            f"{job_moved:,} transitions, job peak {peak_mb:,.0f} MB; "
            f"--workers {args.workers} {read / walls[args.workers]:,.0f} events/s "
            f"({job_wall / walls[args.workers]:.2f}x one, same bytes)"
        )
        if args.python:
            python_rates.append(read / python_wall)
            speedups.append(python_wall / job_wall)
            line += f"; job --engine python {read / python_wall:,.0f} events/s"
        if args.history:
            history_rates.append(read / history_wall)
            history_costs.append(history_wall / job_wall)
            history_peaks.append(history_peak)
            line += (
                f"; job --history {read / history_wall:,.0f} events/s "
                f"({history_wall / job_wall:.2f}x the time, peak {history_peak:,.0f} MB)"
            )
        print(line)
    print()
    baseline_rate = statistics.median(baseline_rates)
    print(f"baseline (plain loop, same native board): {baseline_rate:,.0f} events/s")
    print(f"replay job, one process:                  {statistics.median(job_rates):,.0f} events/s")
    print(f"job / baseline (median of runs):           {statistics.median(ratios):.2f}")
    print(f"job peak memory (max RSS, median):         {statistics.median(peaks):,.0f} MB")
    print(
        f"replay job, --workers {args.workers}:                "
        f"{statistics.median(many_rates):,.0f} events/s"
    )
    print(
        f"--workers {args.workers} / --workers 1 (median; runs):  {statistics.median(scale):.2f}"
        f" ({', '.join(f'{r:.2f}' for r in scale)})"
    )
    if args.python:
        print(
            f"job --engine python:                      "
            f"{statistics.median(python_rates):,.0f} events/s"
        )
        print(f"native / python engine (median of runs):   {statistics.median(speedups):.2f}")
    if args.history:
        print(
            f"job --history:                            "
            f"{statistics.median(history_rates):,.0f} events/s"
        )
        print(f"--history time / job time (median):        {statistics.median(history_costs):.2f}")
        print(
            f"job --history peak memory (median):        {statistics.median(history_peaks):,.0f} MB"
        )
    for workers, spent in sorted(CPU_SECONDS.items()):
        print(
            f"CPU seconds of the job, --workers {workers} (median; runs):  "
            f"{statistics.median(spent):.2f} ({', '.join(f'{s:.2f}' for s in spent)})"
        )
    print_start_up(args.workers)
    print("reproduce the job alone: " + " ".join(job_command(folder)))
    print("on every core: " + " ".join(job_command(folder, workers=args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
