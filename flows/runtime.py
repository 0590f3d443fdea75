"""Process-wide settings the job runs best with."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 1_000)
"""The job keeps millions of long-lived item states; Python's default thresholds
(700, 10, 10) rescan them over and over. Item states hold no reference cycles, so
collecting the young generation rarely costs nothing in memory. Measured on the
replay benchmark: docs/performance.md."""


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
