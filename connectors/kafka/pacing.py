"""How many records an events partition reads per worker cycle: bounded by time.

A worker's cycle reads a batch from each of its partitions, routes and decides
them, writes the outputs, then reads again; an event that arrives meanwhile
waits for the cycle to end. With a fixed count per partition, a worker that has
fallen behind for a moment (a stall of the shared machine, a burst) runs cycles
of the whole count times the partitions, and every event behind waits for them.
Bounding the cycle's work instead keeps each cycle near a target time and gives
back the full count when cycles are short (docs/performance.md, "Latency").

A cycle is measured in the worker thread's CPU time: on a shared machine the wall
time of a cycle grows with what other processes run, and reading less would then
cost throughput for nothing. A partition far behind (a catch-up, a backlog of many
cycles) reads the full count: smaller cycles would not bring its events sooner. A
partition behind by less reads at least an eighth of its backlog, so no backlog
takes more than 8 cycles to read: when the shared machine leaves the worker too
little CPU, cycles held small would read less per cycle than arrives and the
backlog would grow (docs/performance.md, "Where an event's time goes").
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_CYCLE_MS = 50
"""The cycle length the events partitions aim at."""

LEAST_RECORDS = 64
"""Never fewer records per partition and cycle: the cycle's fixed cost stays small."""

FAR_BEHIND_BATCHES = 8
"""A partition reads at least this fraction of its backlog per cycle (1/8): this many full
counts behind its end, it reads the full count."""


class CycleBound:
    """The count a partition reads this cycle, from the length of the last cycle.

    The time between two reads of the same partition is one cycle of its worker.
    The count follows the ratio of the target to that length: in proportion when
    the cycle was longer, at most twice when shorter, between `least` and `most`.
    A target of 0 always reads `most`.
    """

    def __init__(
        self,
        most: int,
        target_s: float,
        least: int = LEAST_RECORDS,
        clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.most = most
        self.target_s = target_s
        self.least = min(least, most)
        self.clock = clock
        self.count = most
        self.last: float | None = None

    def next_count(self, behind: int | None = None) -> int:
        """The count to read now; `behind`: records between the partition's position
        and its end, where known."""
        now = self.clock()
        if self.last is not None and self.target_s > 0:
            cycle = max(now - self.last, 1e-6)
            scale = min(2.0, self.target_s / cycle)
            self.count = max(self.least, min(self.most, round(self.count * scale)))
        self.last = now
        if behind is not None and behind > FAR_BEHIND_BATCHES * self.count:
            return min(self.most, -(-behind // FAR_BEHIND_BATCHES))
        return self.count
