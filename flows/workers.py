"""A replay by several processes, one per core, that writes what one process writes.

    process 0: read all ─> decide group 0's items ─┐
    process 1: read all ─> decide group 1's items ─┼─> merge in input order ─> files
    ...                                            ┘

Every process reads every record and keeps the whole trigger table; each decides
the items of its own key group (crc32 of the item key modulo the process count).
The compiled board skips a single-item line of another group after a look at its
key members, before decoding it, so each process decodes about its share of the
log. A line naming several items is decided by each process for its own items, as
key groups of one process decide it. Each output record carries its input order
(record sequence, item index), so merging the processes' sorted outputs by it
gives the bytes a single process writes.

No record crosses processes: this is faster than a Bytewax cluster, whose workers
would exchange the records of each batch (docs/performance.md, "Replay on every core").
"""

from __future__ import annotations

import dataclasses
import heapq
import multiprocessing
import os
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from bytewax.testing import run_main

from connectors.jsonl import ReplayInputs, ReplaySource, write_lines
from connectors.summary import Summary, SummarySink
from flows.dataflow import build_flow
from flows.replay import flow_settings
from flows.runtime import tune_gc
from flows.settings import ReplaySettings
from state.errors import CrmTriggersError

Ordered = list[tuple[Any, bytes]]
"""(input order, JSON line) of one output, sorted by order."""


@dataclasses.dataclass
class PartResult:
    """What one process decided: its transitions, dead letters, stage history and counts."""

    transitions: Ordered
    dead_letters: Ordered
    history: Ordered
    counts: Counter[str]


class WorkerError(CrmTriggersError):
    """A replay process stopped without its results."""


def replay_in_processes(
    settings: ReplaySettings, processes: int, report: Callable[[Summary], None]
) -> None:
    """Replay with `processes` processes (this one and `processes - 1` forked ones),
    write the outputs of `settings` and hand the summed counts to `report`."""
    started = time.monotonic()
    for path in (settings.out, settings.dlq, settings.history):
        if path not in (None, "-"):
            open(path, "wb").close()  # as a single process does: a failed run leaves no stale file
    quiet = dataclasses.replace(settings, progress=False)
    # Forked: a child starts with the modules this process has loaded, at no cost.
    context: Any = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with tempfile.TemporaryDirectory(prefix="crm-triggers-replay-") as folder:
        paths = [os.path.join(folder, f"part-{group}.pickle") for group in range(processes)]
        children = [
            context.Process(
                target=_run_part_to_file,
                args=(quiet, group, processes, paths[group]),
                name=f"crm-triggers replay {group}/{processes}",
            )
            for group in range(1, processes)
        ]
        for child in children:
            child.start()
        try:
            parts = [run_part(settings, 0, processes)]
        finally:
            for child in children:
                child.join()
        for group, child in enumerate(children, 1):
            parts.append(_load_part(paths[group], group, processes, child.exitcode))
    write_lines(settings.out, merge_in_order([p.transitions for p in parts]))
    write_lines(settings.dlq, merge_in_order([p.dead_letters for p in parts]))
    if settings.history is not None:
        write_lines(settings.history, merge_in_order([p.history for p in parts]))
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part.counts)
    if counts:
        report(Summary(counts, time.monotonic() - started))


def run_part(settings: ReplaySettings, group: int, processes: int) -> PartResult:
    """Replay in this process the items of key group `group` of `processes`."""
    tune_gc()
    transitions, dead_letters, history = KeptLines(), KeptLines(), KeptLines()
    counts: Counter[str] = Counter()
    inputs = ReplayInputs.from_paths(settings.automation, settings.events, settings.progress)
    flow = build_flow(
        ReplaySource(inputs, compiled=settings.engine == "native"),
        transitions,
        dead_letters,
        SummarySink(lambda summary: counts.update(summary.counts)),
        flow_settings(dataclasses.replace(settings, key_groups=processes), group),
        history=history if settings.history is not None else None,
    )
    run_main(flow)
    return PartResult(transitions.ordered(), dead_letters.ordered(), history.ordered(), counts)


def merge_in_order(parts: list[Ordered]) -> list[bytes]:
    """The lines of the processes' outputs in input order (each is sorted by it)."""
    return [line for _, line in heapq.merge(*parts, key=itemgetter(0))]


def _run_part_to_file(settings: ReplaySettings, group: int, processes: int, path: str) -> None:
    try:
        result: PartResult | BaseException = run_part(settings, group, processes)
    except KeyboardInterrupt:
        return  # Ctrl-C reaches every process of the group: the parent reports it
    except Exception as failed:  # handed to the parent, which raises it
        result = failed if _picklable(failed) else WorkerError(str(failed))
    with open(path, "wb") as out:
        pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _load_part(path: str, group: int, processes: int, exitcode: int | None) -> PartResult:
    try:
        with open(path, "rb") as saved:
            result = pickle.load(saved)
    except FileNotFoundError:
        raise WorkerError(
            f"replay process {group} of {processes} stopped (exit code {exitcode}) "
            "before writing its results; rerun, or use --workers 1"
        ) from None
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, PartResult)
    return result


class KeptLines(FixedPartitionedSink[tuple[Any, str, bytes], None]):
    """An output kept in memory with each line's input order, for the merge."""

    def __init__(self) -> None:
        self.lines: Ordered = []

    def ordered(self) -> Ordered:
        self.lines.sort(key=itemgetter(0))
        return self.lines

    def list_parts(self) -> list[str]:
        return ["kept"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KeptPartition:
        return _KeptPartition(self.lines)


class _KeptPartition(StatefulSinkPartition[tuple[Any, str, bytes], None]):
    def __init__(self, lines: Ordered) -> None:
        self.lines = lines

    def write_batch(self, values: list[tuple[Any, str, bytes]]) -> None:
        self.lines.extend((order, line) for order, _, line in values)

    def snapshot(self) -> None:
        return None
