"""`explain` benchmark: one item of a 1M-event log, and what the observer hook costs.

    python scripts/bench_explain.py [--events 1000000] [--items 100000] [--runs 3]
                                    [--observer-cost] [--before REV]

Uses the benchmark log of `scripts/benchdata.py` (made once into .cache/bench/).
Per run it times, as separate processes, one after the other:

- baseline: reading every line of the events file by blocks, as replay does, and
  nothing else (`read_line_blocks`; the floor of any pass over the log);
- explain: `crm-triggers explain` of an item, output to a file, for a few items:
  the busiest one of the first 200,000 lines and two picked at random (seed 1).

It prints seconds per explain (target: at most 5 s), its events/s over the whole
log, and its ratio to the baseline. With --observer-cost it also times `Board.decide`
alone on the log's first 300k events, decoded once, alternating the `Board` of
this tree with the `Board` of git revision REV (default: the commit before the
observer hook), both without an observer: the hook's cost on the hot path.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from benchdata import ROOT, generated_log

from connectors.jsonl import read_line_blocks
from connectors.records import decode_event, load_json, parse_automation
from state.board import Board
from state.model import Event, Rejection, Transition
from state.table import TriggerTable

BEFORE_HOOK = "fa01d08"
"""The last commit whose `Board` had no observer."""


def read_only(events: Path) -> float:
    started = time.perf_counter()
    count = 0
    for _, _, lines in read_line_blocks([str(events)]):
        count += len(lines)
    return time.perf_counter() - started


def pick_items(events: Path, count: int) -> list[str]:
    """The busiest item of the log's first 200k lines, and `count - 1` others at random."""
    seen: Counter[str] = Counter()
    with open(events, "rb") as lines:
        for number, line in enumerate(lines):
            if number >= 200_000:
                break
            try:
                record = orjson.loads(line)
                item = record["item"]
                seen[f"{record.get('tenant') or 'default'}/{item['entity']}/{item['id']}"] += 1
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
    busiest = seen.most_common(1)[0][0]
    others = random.Random(1).sample(sorted(seen), count - 1)
    return [busiest, *others]


def run_explain(folder: Path, item: str, out: Path) -> tuple[float, int]:
    command = [
        str(Path(sys.executable).parent / "crm-triggers"),
        "explain",
        "--automation",
        str(folder / "automation.jsonl"),
        "--events",
        str(folder / "events.jsonl"),
        "--item",
        item,
    ]
    started = time.perf_counter()
    with open(out, "wb") as sink:
        subprocess.run(command, check=True, stdout=sink)
    wall = time.perf_counter() - started
    first = out.read_text().splitlines()[2]  # "N events, M moves; now ..."
    return wall, int(first.split()[0])


def board_before(rev: str) -> type:
    """The `Board` class of git revision `rev`, imported from its source."""
    source = subprocess.run(
        ["git", "show", f"{rev}:state/board.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "board_before.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("board_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Board


def observer_cost(folder: Path, runs: int, rev: str, events: int = 300_000) -> None:
    """Board.decide alone, this tree's Board against REV's, on the same decoded events.

    The first `events` events of the log are decoded once; then each Board, fresh,
    decides all of them, alternating, `runs` times each: the minimum of each is the
    figure least disturbed by other processes on the machine.
    """
    table = TriggerTable()
    for line in (folder / "automation.jsonl").read_bytes().splitlines():
        record = load_json(line)
        if not isinstance(record, Rejection):
            record = parse_automation(record)
            if not isinstance(record, Rejection):
                table.apply(record)
    decided = []
    with open(folder / "events.jsonl", "rb") as lines:
        for number, line in enumerate(lines):
            if number >= events:
                break
            event = decode_event(line.rstrip(b"\n"))
            if type(event) is Event:
                decided.extend((event, ref) for ref in event.items)
    boards = {"before": board_before(rev), "after": Board}
    times: dict[str, list[float]] = {"before": [], "after": []}
    moves: dict[str, int] = {}
    for run in range(runs):
        for name, kind in boards.items():
            board = kind(table)
            decide = board.decide
            started = time.perf_counter()
            outcomes = [decide(event, ref) for event, ref in decided]
            seconds = time.perf_counter() - started
            times[name].append(seconds)
            moves[name] = sum(1 for o in outcomes if type(o) is Transition)
            print(
                f"run {run + 1}: Board.decide {name} the hook: {seconds:.3f} s for "
                f"{len(decided)} decisions ({len(decided) / seconds / 1000:.0f}k/s), "
                f"{moves[name]} moves",
                flush=True,
            )
    assert moves["before"] == moves["after"]
    b, a = min(times["before"]), min(times["after"])
    print(
        f"observer hook: best {a:.3f} s after against {b:.3f} s before: ratio {a / b:.3f} "
        f"(medians {statistics.median(times['after']):.3f} and "
        f"{statistics.median(times['before']):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--observer-cost", action="store_true")
    parser.add_argument("--only-observer-cost", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--before", default=BEFORE_HOOK, metavar="REV")
    args = parser.parse_args()
    folder = generated_log(args.events, args.items)
    if args.only_observer_cost:
        observer_cost(folder, args.runs, args.before)
        return
    events = folder / "events.jsonl"
    items = pick_items(events, 3)
    out = Path(tempfile.mkdtemp()) / "explain.txt"
    walls: list[float] = []
    bases: list[float] = []
    for run in range(args.runs):
        base = read_only(events)
        bases.append(base)
        print(f"run {run + 1}: baseline, read every line: {base:.2f} s", flush=True)
        for item in items:
            wall, named = run_explain(folder, item, out)
            walls.append(wall)
            print(
                f"run {run + 1}: explain --item {item}: {wall:.2f} s ({named} events of the item), "
                f"{args.events / wall / 1000:.0f}k events/s of the log, "
                f"{wall / base:.2f}x the baseline",
                flush=True,
            )
    wall, base = statistics.median(walls), statistics.median(bases)
    print(
        f"explain: median {wall:.2f} s (max {max(walls):.2f} s; target 5 s), "
        f"{args.events / wall / 1000:.0f}k events/s; baseline median {base:.2f} s; "
        f"ratio {wall / base:.2f}"
    )
    if args.observer_cost:
        observer_cost(folder, args.runs, args.before)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
