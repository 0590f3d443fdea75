"""The events partitions' count per cycle follows the length of the worker's cycles."""

from __future__ import annotations

from connectors.kafka.pacing import CycleBound


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cycles(bound: CycleBound, clock: Clock, lengths: list[float]) -> list[int]:
    counts = [bound.next_count()]
    for length in lengths:
        clock.now += length
        counts.append(bound.next_count())
    return counts


def test_long_cycles_shrink_the_count_in_proportion_and_short_ones_give_it_back() -> None:
    clock = Clock()
    bound = CycleBound(4096, 0.05, clock=clock)
    counts = cycles(bound, clock, [0.2, 0.1, 0.05, 0.04, 0.01, 0.01, 0.01])
    assert counts == [4096, 1024, 512, 512, 640, 1280, 2560, 4096]


def test_the_count_stays_within_its_bounds() -> None:
    clock = Clock()
    bound = CycleBound(4096, 0.05, least=64, clock=clock)
    assert cycles(bound, clock, [10.0, 10.0])[-1] == 64
    assert cycles(bound, clock, [0.001] * 20)[-1] == 4096


def test_no_target_always_reads_the_batch_size() -> None:
    clock = Clock()
    bound = CycleBound(4096, 0, clock=clock)
    assert set(cycles(bound, clock, [5.0, 0.001, 1.0])) == {4096}


def test_a_partition_far_behind_reads_the_whole_count() -> None:
    clock = Clock()
    bound = CycleBound(4096, 0.05, clock=clock)
    counts = cycles(bound, clock, [0.2])
    assert counts[-1] == 1024
    clock.now += 0.2
    assert bound.next_count(behind=10 * 4096) == 4096
    clock.now += 0.05
    assert bound.next_count(behind=1024) == 256  # a short backlog: the bound holds


def test_a_backlog_takes_at_most_eight_cycles_to_read() -> None:
    clock = Clock()
    bound = CycleBound(4096, 0.05, clock=clock)
    assert cycles(bound, clock, [0.4])[-1] == 512
    for behind, count in ((8 * 512 + 1, 513), (8 * 2000, 2000), (8 * 4096 + 8, 4096)):
        clock.now += 0.05  # cycles at the target: the time bound stays at 512
        assert bound.next_count(behind=behind) == count
    clock.now += 0.05
    assert bound.next_count(behind=100) == 512
