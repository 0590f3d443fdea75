"""Log-scale stay histograms: buckets, merging, percentile estimates with their bounds."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics import histogram
from tests.flows.test_stats_flow import linear_percentile

lengths = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(lengths)
def test_a_length_lies_in_its_bucket(seconds: float) -> None:
    bucket = histogram.bucket_of(seconds)
    assert histogram.bucket_low(bucket) <= seconds < histogram.bucket_high(bucket)


def test_buckets_are_fixed_and_log_scaled() -> None:
    assert histogram.bucket_of(0) == 0
    assert histogram.bucket_of(0.0009) == 0
    assert histogram.bucket_of(-5) == 0
    assert histogram.bucket_of(2**-10) == 1
    assert histogram.bucket_of(1) == 81
    assert histogram.bucket_of(2) == 81 + histogram.BUCKETS_PER_DOUBLING
    assert histogram.bucket_of(3600) == 81 + math.floor(8 * math.log2(3600))
    for bucket in range(1, 330):
        assert histogram.bucket_high(bucket) / histogram.bucket_low(bucket) == pytest.approx(
            2 ** (1 / 8)
        )
        assert histogram.bucket_of(histogram.bucket_low(bucket)) == bucket


@given(st.lists(st.lists(lengths, max_size=30), max_size=6))
def test_merged_histograms_are_the_histogram_of_the_union(parts: list[list[float]]) -> None:
    def of(values: list[float]) -> histogram.Histogram:
        counts: histogram.Histogram = {}
        for v in values:
            histogram.add(counts, v)
        return counts

    merged = histogram.merge(of(p) for p in parts)
    assert merged == of([v for p in parts for v in p])
    assert histogram.from_pairs(histogram.to_pairs(merged)) == merged


@given(
    st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]),
)
def test_the_exact_percentile_lies_within_the_estimates_bound(
    values: list[float], q: float
) -> None:
    counts: histogram.Histogram = {}
    for v in values:
        histogram.add(counts, v)
    estimate = histogram.percentile(counts, q, max(values))
    assert estimate is not None
    exact = linear_percentile(values, q)
    assert estimate.holds(exact)
    assert estimate.low <= estimate.value <= estimate.high
    assert abs(estimate.value - exact) <= estimate.error_bound + 1e-9


def test_percentile_of_nothing_is_none_and_q_is_checked() -> None:
    assert histogram.percentile({}, 0.5) is None
    with pytest.raises(ValueError, match="q must be within"):
        histogram.percentile({1: 1}, 1.5)
    with pytest.raises(ValueError, match="histogram: expected"):
        histogram.from_pairs([[1, -1]])


def test_merged_window_stays_give_the_percentiles_of_all_their_stays() -> None:
    from tests.flows.test_stats_flow import random_history, run_stats

    records = random_history(seed=8, items=500, hours=12)
    windows, _, _ = run_stats(records)
    stage_stays = [s["stays"] for w in windows for s in w["stages"] if s["stage"] == "NEW"]
    merged = histogram.merge_stays(stage_stays)
    assert merged.closed == sum(s["closed"] for s in stage_stays) > 50
    assert merged.max_s == max(s["max_s"] for s in stage_stays if s["max_s"] is not None)
    # The exact lengths of the same stays, from the per-window histograms' inputs.
    lengths: list[float] = []
    last: dict[str, Any] = {}
    for r in records:
        key = f"{r['tenant']}/{r['item']['entity']}/{r['item']['id']}"
        before = last.pop(key, None)
        if before is not None and before["stage"] == "NEW":
            opened = datetime.fromisoformat(before["at"])
            lengths.append(max((datetime.fromisoformat(r["at"]) - opened).total_seconds(), 0))
        if r["kind"] != "deleted":
            last[key] = r
    assert len(lengths) == merged.closed
    assert merged.mean_s == pytest.approx(sum(lengths) / len(lengths))
    for q in (0.5, 0.9):
        estimate = merged.percentile(q)
        assert estimate is not None
        close = histogram.closeness(estimate, linear_percentile(lengths, q))
        assert close["within_bound"] and close["buckets_apart"] <= 1
        assert close["error_s"] <= close["bound_s"]
