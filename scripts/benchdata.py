"""What the benchmarks share: generated logs (made once, kept in .cache/bench/) and the
plain loop that decides a log with the job's own code, no Bytewax.

    python scripts/benchdata.py FOLDER [native|python]   # prints: events read, transitions, seconds
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
sys.path.insert(0, str(ROOT))

from connectors.jsonl import read_line_blocks  # noqa: E402
from connectors.records import decode_event, load_json, parse_automation  # noqa: E402
from flows.runtime import tune_gc  # noqa: E402
from state import native  # noqa: E402
from state.board import Board  # noqa: E402
from state.model import Event, Rejection, Transition  # noqa: E402
from state.table import TriggerTable  # noqa: E402


def generated_log(events: int, items: int) -> Path:
    """The folder of a log of `events` over `items` (scripts/generate.py, default seed)."""
    folder = CACHE / f"log-{events}-{items}"
    if not (folder / "events.jsonl").exists():
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(ROOT / "scripts" / "generate.py"),
            "--out",
            str(folder),
            "--events",
            str(events),
            "--items",
            str(items),
        ]
        print("generating:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return folder


BATCH = 4096


def decide_log(folder: Path, engine: str = "native") -> tuple[Any, int, int, float]:
    """One board of `engine` over the whole log: the board, events read, transitions, seconds.

    The native loop hands the compiled board batches of raw lines, as the job does; the
    Python loop decodes each line and decides it item by item.
    """
    tune_gc()
    started = time.perf_counter()
    table = TriggerTable()
    with open(folder / "automation.jsonl", "rb") as automation:
        for line in automation:
            record = load_json(line)
            if not isinstance(record, Rejection):
                record = parse_automation(record)
                if not isinstance(record, Rejection):
                    table.apply(record)
    if engine == "native":
        fast = native.NativeBoard(table, decode_event)
        read = moved = 0
        for _, _, lines in read_line_blocks([str(folder / "events.jsonl")]):
            for at in range(0, len(lines), BATCH):
                batch = lines[at : at + BATCH]
                read += len(batch)
                _, _, notes = fast.decide_batch(batch)
                moved += sum(1 for note in notes if note[3] == native.TRANSITION)
        return fast, read, moved, time.perf_counter() - started
    board = Board(table)
    decide = board.decide
    read = moved = 0
    with open(folder / "events.jsonl", "rb", buffering=1 << 20) as lines:
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            read += 1
            event = decode_event(line)
            if type(event) is Event:
                for ref in event.items:
                    if type(decide(event, ref)) is Transition:
                        moved += 1
    return board, read, moved, time.perf_counter() - started


if __name__ == "__main__":
    _, read, moved, seconds = decide_log(Path(sys.argv[1]), *sys.argv[2:3])
    print(read, moved, seconds)
