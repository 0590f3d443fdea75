"""Bytes of memory per tracked item: the state the job keeps for each CRM item.

    python scripts/bench_memory.py [--events 3000000] [--items 1000000] [--engine native|python]

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
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

from benchdata import decide_log, generated_log

from state.board import Board


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


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("native", "python"), default="native")
    args = parser.parse_args()
    folder = generated_log(args.events, args.items)
    before = rss_mb()
    board, read, _, seconds = decide_log(folder, args.engine)
    grown = rss_mb() - before
    items = len(board)
    size = board.core.heap_bytes() if args.engine == "native" else deep_size(board)
    per_item = size / items
    print(
        f"input: {read:,} events, {items:,} items tracked ({read / items:.1f} events per item), "
        f"decided in {seconds:.0f} s"
    )
    what = "bytes of item state" if args.engine == "native" else "deep size of item state"
    print(f"{args.engine} engine, {what}: {per_item:,.0f} bytes per item")
    print(f"RSS growth while deciding: {grown * 1e6 / items:,.0f} bytes per item ({grown:,.0f} MB)")
    print(
        f"reproduce: {sys.executable} scripts/bench_memory.py --events {args.events} "
        f"--items {args.items} --engine {args.engine}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
