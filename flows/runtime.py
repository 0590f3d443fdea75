"""Process-wide settings the job runs best with."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 1_000)
"""The job keeps millions of long-lived item states; Python's default thresholds
(700, 10, 10) rescan them over and over. Item states hold no reference cycles, so
collecting the young generation rarely costs nothing in memory. Measured on the
replay benchmark: docs/performance.md."""

LIVE_GC_YOUNG = 10_000
"""The young generation of a live job. A young collection walks every object made
since the last one that is still alive: with 100k that is a whole in-flight batch
(decoded events, parcels), 60-90 ms of CPU in one pause while every event waits;
10k bounds a pause to 5-20 ms for about 1 µs more collector time per event
(docs/performance.md, "Latency")."""


def tune_gc(young: int = GC_THRESHOLDS[0]) -> None:
    gc.set_threshold(young, *GC_THRESHOLDS[1:])
