"""Stay lengths on fixed log-scale buckets: mergeable across windows and partitions.

A histogram is a mapping `bucket -> count`. Bucket 0 holds lengths under
2^-10 s (about a millisecond; 0 included); bucket `b >= 1` holds lengths in
`[2^((b-1)/8 - 10), 2^(b/8 - 10))` seconds: 1 s starts bucket 81, and each
bucket is 2^(1/8) (1.0905) times as wide as the one before it, so an estimate
inside the right buckets is off by at most about 9%; 320 buckets reach past 30
years. The buckets are the same everywhere, so the histograms of
any set of windows add up to the histogram of their union, and percentiles of
that union are estimated from the sum alone, with a bound that holds the exact
value.

In JSON a histogram is a list of `[bucket, count]` pairs in bucket order
(`to_pairs`, `from_pairs`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BUCKETS_PER_DOUBLING = 8
"""Resolution of the scale: a bucket's upper bound is 2^(1/8) (1.0905) times its lower."""

SMALLEST_LOG2 = -10
"""Lengths under 2^-10 s fall in bucket 0; the log scale starts there."""

_OFFSET = -SMALLEST_LOG2 * BUCKETS_PER_DOUBLING
_SMALLEST = 2.0**SMALLEST_LOG2

Histogram = dict[int, int]


def bucket_of(seconds: float) -> int:
    """The bucket of a stay length in seconds (negative lengths count as 0)."""
    if seconds < _TABLE_END:
        # The first bucket whose upper bound is above the length: a search of the bounds
        # themselves, so no rounding of a logarithm can put a length across one.
        return bisect_right(_HIGHS, seconds)
    if not seconds >= _SMALLEST:  # NaN
        return 0
    bucket = 1 + _OFFSET + math.floor(BUCKETS_PER_DOUBLING * math.log2(seconds))
    # log2 may round across a bound by one unit in the last place: settle on the bounds.
    while bucket > 1 and seconds < bucket_low(bucket):
        bucket -= 1
    while seconds >= bucket_high(bucket):
        bucket += 1
    return bucket


def bucket_low(bucket: int) -> float:
    """Inclusive lower bound of a bucket, in seconds."""
    return 0.0 if bucket <= 0 else 2.0 ** ((bucket - 1 - _OFFSET) / BUCKETS_PER_DOUBLING)


def bucket_high(bucket: int) -> float:
    """Exclusive upper bound of a bucket, in seconds."""
    return 2.0 ** ((max(bucket, 0) - _OFFSET) / BUCKETS_PER_DOUBLING)


_HIGHS = [bucket_high(bucket) for bucket in range(512)]
"""Upper bounds of the first 512 buckets (up to 2^54 s); longer stays take the logarithm."""
_TABLE_END = _HIGHS[-1]


def add(histogram: Histogram, seconds: float) -> None:
    """Count one stay length into `histogram`, in place."""
    bucket = bucket_of(seconds)
    histogram[bucket] = histogram.get(bucket, 0) + 1


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    """The histogram of the union of the stays counted in `histograms`."""
    total: Histogram = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[bucket] = total.get(bucket, 0) + count
    return total


def to_pairs(histogram: Mapping[int, int]) -> list[list[int]]:
    """JSON form: `[[bucket, count], ...]` in bucket order, empty buckets left out."""
    return [[bucket, histogram[bucket]] for bucket in sorted(histogram) if histogram[bucket]]


def from_pairs(pairs: Iterable[Sequence[int]]) -> Histogram:
    """A histogram from its JSON form; ValueError if a pair is not two non-negative integers."""
    histogram: Histogram = {}
    for pair in pairs:
        if len(pair) != 2 or not all(type(x) is int and x >= 0 for x in pair):
            raise ValueError(
                f"histogram: expected [bucket, count] of non-negative integers, got {pair!r}"
            )
        bucket, count = pair
        histogram[bucket] = histogram.get(bucket, 0) + count
    return histogram


@dataclass(frozen=True, slots=True)
class Estimate:
    """A percentile estimated from a histogram; the exact percentile lies in [low, high]."""

    value: float
    low: float
    high: float

    @property
    def bucket(self) -> int:
        return bucket_of(self.value)

    @property
    def error_bound(self) -> float:
        """The most, in seconds, by which `value` can differ from the exact percentile."""
        return max(self.value - self.low, self.high - self.value)

    def holds(self, exact: float) -> bool:
        return self.low <= exact <= self.high


def percentile(
    histogram: Mapping[int, int], q: float, max_s: float | None = None
) -> Estimate | None:
    """Estimate the q-quantile (0 <= q <= 1) of the lengths counted in `histogram`.

    The exact figure is the one of spec section 6.2: linear interpolation between
    the closest ranks, `x[k] + f * (x[k+1] - x[k])` with `k + f = q * (n - 1)`.
    Each order statistic is estimated at its place among the bucket's counts (the
    lengths of a bucket taken as spread evenly over it); `low` is the lower bound
    of `x[k]`'s bucket and `high` the upper bound of `x[k+1]`'s, capped by `max_s`,
    the longest length counted, when it is known. None for an empty histogram.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile: q must be within [0, 1], got {q}")
    buckets = sorted(b for b, c in histogram.items() if c > 0)
    n = sum(histogram[b] for b in buckets)
    if n == 0:
        return None
    rank = q * (n - 1)
    k = math.floor(rank)
    fraction = rank - k
    upper_rank = min(k + 1, n - 1)
    cap = math.inf if max_s is None else max_s

    def order_statistic(r: int) -> tuple[float, int]:
        before = 0
        for bucket in buckets:
            count = histogram[bucket]
            if r < before + count:
                low, high = bucket_low(bucket), min(bucket_high(bucket), cap)
                if high < low:
                    high = low
                return low + (r - before + 0.5) / count * (high - low), bucket
            before += count
        raise AssertionError("rank beyond the histogram's count")

    x_k, bucket_k = order_statistic(k)
    x_next, bucket_next = order_statistic(upper_rank)
    value = x_k + fraction * (x_next - x_k)
    high = min(bucket_high(bucket_next), cap)
    low = min(bucket_low(bucket_k), high)
    return Estimate(value, low, max(high, low))


@dataclass(frozen=True, slots=True)
class MergedStays:
    """The stays of several window records of one stage, added up (`merge_stays`)."""

    closed: int
    sum_s: float
    max_s: float | None
    histogram: Histogram

    @property
    def mean_s(self) -> float | None:
        return self.sum_s / self.closed if self.closed else None

    def percentile(self, q: float) -> Estimate | None:
        return percentile(self.histogram, q, self.max_s)


def merge_stays(stays: Iterable[Mapping[str, Any]]) -> MergedStays:
    """Add up the `stays` objects of window records (`closed`, `sum_s`, `max_s`, `histogram`)."""
    closed, total, longest = 0, 0.0, None
    parts = []
    for part in stays:
        closed += part["closed"]
        total += part["sum_s"]
        if part["max_s"] is not None:
            longest = part["max_s"] if longest is None else max(longest, part["max_s"])
        parts.append(from_pairs(part["histogram"]))
    return MergedStays(closed, total, longest, merge(parts))


def closeness(estimate: Estimate, exact: float) -> dict[str, Any]:
    """How close a merged percentile is to the exact one: for `report --stats` to print."""
    return {
        "estimate_s": estimate.value,
        "exact_s": exact,
        "error_s": abs(estimate.value - exact),
        "bound_s": estimate.error_bound,
        "buckets_apart": abs(estimate.bucket - bucket_of(exact)),
        "within_bound": estimate.holds(exact),
    }
