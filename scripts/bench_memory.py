"""Bytes of memory per tracked item: the state the job keeps for each CRM item.

    python scripts/bench_memory.py [--events 3000000] [--items 1000000] [--engine native|python]
                                   [--echo-window N] [--moves N]

Generates a log (scripts/generate.py, cached in .cache/bench/), decides it with
one board of the chosen engine as the job's key groups do, then counts two ways:

- native engine (the default): the bytes its items take as it counts them
  (`NativeBoard.heap_bytes`: hash table slots, keys, seen-id rings, watched
  fields, echoes; the allocator's own overhead aside);
- python engine, deep size: the items dict, each key, `ItemState` and what it holds (seen-id
  fingerprints, watched fields, echoes), with `sys.getsizeof`, objects shared
  between items (interned stage ids, categories) counted once;
- RSS growth of the process while deciding, for comparison (includes the
  allocator's slack and everything else the loop allocated and kept).

`--echo-window N` decides with another number of moves remembered per item than the
engines' `ECHO_WINDOW`, to compare two widths in one session. `--moves N` decides,
instead of the generated log, a log where each of `--items` items is created and then
moved N times (a visit moves it forward, an email back): the cost of the move memory
for items that move, which the generated log's items (about 2 events each) hardly do.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

import orjson
from benchdata import decide_log, generated_log

from connectors.records import decode_event, parse_automation
from state import board as python_board
from state import native
from state.board import Board
from state.table import TriggerTable


def deep_size(board: Board) -> int:
    """Bytes of the items dict and everything reachable from it, shared objects once."""
    seen: set[int] = set()

    def size(obj: Any) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        total = sys.getsizeof(obj)
        if isinstance(obj, tuple):
            total += sum(size(x) for x in obj)
        return total

    total = sys.getsizeof(board.items)
    for key, state in board.items.items():
        total += size(key) + sys.getsizeof(state)
        total += size(state.category) + size(state.stage) + size(state.seen)
        total += size(state.fields) + size(state.echoes)
    return total


MOVING_AUTOMATION = [
    {"kind": "pipeline", "entity": "deal",
     "stages": [{"id": "NEW", "semantic": "process"}, {"id": "WORK", "semantic": "process"}]},
    {"kind": "trigger", "id": "forward", "entity": "deal", "stage": "WORK", "code": "VISIT"},
    {"kind": "trigger", "id": "back", "entity": "deal", "stage": "NEW", "code": "EMAIL",
     "allow_backwards": True},
]  # fmt: skip


def moving_events(items: int, moves: int) -> list[bytes]:
    """Each item created on NEW, then moved `moves` times, the items interleaved."""

    def line(n: int, etype: str, item: int, data: dict[str, Any] | None = None) -> bytes:
        return orjson.dumps(
            {"id": f"e{n}", "type": etype, "occurred_at": "2026-11-25T10:00:00Z",
             "item": {"entity": "deal", "id": f"d{item}"}, "data": data or {}}
        )  # fmt: skip

    out = [line(0, "item.created", item, {"stage": "NEW"}) for item in range(items)]
    for move in range(1, moves + 1):
        etype = "visit.registered" if move % 2 else "email.received"
        out += [line(move, etype, item) for item in range(items)]
    return out


def decide_moving(lines: list[bytes], engine: str) -> tuple[Any, int, int]:
    """A board of `engine` over `moving_events`: the board, events read, transitions."""
    table = TriggerTable()
    for record in MOVING_AUTOMATION:
        table.apply(parse_automation(record))  # type: ignore[arg-type]
    moved = 0
    if engine == "native":
        fast = native.NativeBoard(table, decode_event)
        for at in range(0, len(lines), 4096):
            _, _, notes = fast.decide_batch(lines[at : at + 4096])
            moved += sum(1 for note in notes if note[3] == native.TRANSITION)
        return fast, len(lines), moved
    board = Board(table)
    for raw in lines:
        event = decode_event(raw)
        moved += type(board.decide(event, event.items[0])).__name__ == "Transition"  # type: ignore[union-attr]
    return board, len(lines), moved


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("native", "python"), default="native")
    parser.add_argument("--echo-window", type=int, default=python_board.ECHO_WINDOW)
    parser.add_argument("--moves", type=int, default=None)
    args = parser.parse_args()
    python_board.ECHO_WINDOW = native.ECHO_WINDOW = args.echo_window
    before = rss_mb()
    if args.moves is None:
        folder = generated_log(args.events, args.items)
        before = rss_mb()
        board, read, moved, seconds = decide_log(folder, args.engine)
    else:
        lines = moving_events(args.items, args.moves)
        before = rss_mb()
        started = time.perf_counter()
        board, read, moved = decide_moving(lines, args.engine)
        seconds = time.perf_counter() - started
    grown = rss_mb() - before
    items = len(board)
    size = board.core.heap_bytes() if args.engine == "native" else deep_size(board)
    per_item = size / items
    print(
        f"input: {read:,} events, {items:,} items tracked ({read / items:.1f} events per item), "
        f"{moved:,} moves ({moved / items:.1f} per item), decided in {seconds:.0f} s; "
        f"{args.echo_window} moves remembered per item"
    )
    what = "bytes of item state" if args.engine == "native" else "deep size of item state"
    print(f"{args.engine} engine, {what}: {per_item:,.0f} bytes per item")
    print(f"RSS growth while deciding: {grown * 1e6 / items:,.0f} bytes per item ({grown:,.0f} MB)")
    print(
        f"reproduce: {sys.executable} scripts/bench_memory.py --events {args.events} "
        f"--items {args.items} --engine {args.engine} --echo-window {args.echo_window}"
        + ("" if args.moves is None else f" --moves {args.moves}")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
