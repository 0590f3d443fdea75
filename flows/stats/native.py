"""The compiled stays step: the same chunks and dead letters as `StaysLogic`, several times
faster.

`crm_triggers_native.StatsStays` (Rust, `native/src/stats.rs`) decodes the common
well-formed history record itself, keeps each item's open stay and counts what each
record adds into chunks per pipeline and window; Python builds a `WindowFigures` per
chunk (a few per batch) and nothing per record. What it does not own it asks of this
module, so each rule keeps a single source:

- a record it does not take (anything to reject, an unusual shape, an `at` no window
  can hold) is read by `flows.stats.records.parse_history`, which also words each dead
  letter;
- the histogram's bucket bounds are `analytics.histogram`'s, handed over at start.

A chunk's facts stay compiled (`NativeFacts`) until a late chunk reads them; a chunk
still pickles (Bytewax may move it between workers) as the facts' bytes.

`StaysLogic` stays the reference: tests hold both to the same window records, late
records and dead letters, record by record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from bytewax.operators import StatefulBatchLogic

from analytics import histogram
from connectors.deadletter import DeadLetter
from connectors.raw import RawBatch
from flows.stats.figures import StageFigures, WindowFigures
from flows.stats.records import (
    NULL_VALUE,
    InvalidHistoryError,
    WindowRange,
    micros,
    parse_history,
)
from flows.stats.stays import Chunk, Fact, OpenStay, OpenStays, Out
from state import native as native_engine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def available() -> bool:
    """Whether the compiled module is installed and matches (see `state.native`)."""
    return native_engine.available()


def _time(at: int) -> datetime:
    return EPOCH + timedelta(microseconds=at)


class NativeFacts(Sequence[Fact]):
    """A chunk's facts, kept compiled; made `Fact`s when first read (a late chunk)."""

    __slots__ = ("_facts", "core")

    def __init__(self, core: Any) -> None:
        self.core = core
        self._facts: list[Fact] | None = None

    def _read(self) -> list[Fact]:
        if self._facts is None:
            self._facts = [Fact(_time(at), *rest) for at, *rest in self.core.rows()]
        return self._facts

    def __len__(self) -> int:
        return len(self.core)

    @overload
    def __getitem__(self, index: int) -> Fact: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Fact]: ...
    def __getitem__(self, index: int | slice) -> Fact | Sequence[Fact]:
        return self._read()[index]

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._read())

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (NativeFacts, (self.core,))


def _figures(
    records: int,
    stages: list[tuple[Any, ...]],
    moves: dict[tuple[str | None, str, str], int],
    fires: dict[str, tuple[str | None, int, set[str]]],
) -> WindowFigures:
    return WindowFigures(records, {row[0]: StageFigures(*row[1:]) for row in stages}, moves, fires)


class _Hooks:
    """What the compiled step asks of Python."""

    def __init__(self, times: WindowRange) -> None:
        self.times = times

    def slow(self, raw: bytes | None) -> tuple[Any, ...]:
        """A record the compiled decoder did not take: its fields, or (code, message)."""
        if raw is None:
            return (NULL_VALUE.code, str(NULL_VALUE))
        try:
            r = parse_history(raw, self.times)
        except InvalidHistoryError as bad:
            return (bad.code, str(bad))
        return (*r[:9], micros(r.at), r.trigger_id, r.trigger_code)

    def seconds(self, microseconds: int) -> float:
        """A stay's length as `timedelta.total_seconds()` gives it (beyond 2^53 us)."""
        return timedelta(microseconds=microseconds).total_seconds()

    def bucket(self, seconds: float) -> int:
        return histogram.bucket_of(seconds)


BUCKET_HIGHS = [histogram.bucket_high(bucket) for bucket in range(512)]
"""The histogram's bucket bounds the compiled step searches (`histogram.bucket_of` searches
the same ones; longer stays, beyond any datetime, are asked of it)."""


def _core(window: timedelta, lateness: timedelta) -> Any:
    if not available():
        raise ImportError(f"{native_engine.problem()}; or choose the Python engine")
    import crm_triggers_native

    times = WindowRange.of(window, lateness)
    return crm_triggers_native.StatsStays(
        times.window, times.first, times.last, BUCKET_HIGHS, _Hooks(times)
    )


def open_stays_of(snapshot: bytes) -> OpenStays:
    """The open stays of a native step's snapshot, as the Python step keeps them."""
    core = _core(timedelta(hours=1), timedelta(0))
    core.load(snapshot)
    return {
        item: OpenStay(_time(at), stage, semantic, pipeline)
        for item, at, stage, semantic, pipeline in core.open_stays()
    }


class NativeStaysLogic(StatefulBatchLogic[RawBatch, Out, OpenStays | bytes]):
    """`StaysLogic` compiled: one partition of the history topic, decoded and counted in
    Rust; its snapshot is bytes (a Python step's snapshot of open stays also resumes)."""

    def __init__(
        self,
        window: timedelta,
        resume: OpenStays | bytes | None,
        lateness: timedelta = timedelta(0),
    ) -> None:
        self.core = _core(window, lateness)
        if isinstance(resume, bytes):
            self.core.load(resume)
        elif resume:
            self.core.restore_open(
                [
                    (item, micros(o.at), o.stage, o.semantic, o.pipeline)
                    for item, o in resume.items()
                ]
            )

    def on_batch(self, values: list[RawBatch]) -> tuple[list[Out], bool]:
        out: list[Out] = []
        found = self.core.on_batches(
            [b.values if type(b.values) is list else list(b.values) for b in values]
        )
        for row in found:
            if len(row) == 4:
                number, index, code, message = row
                batch = values[number]
                raw = batch.values[index]
                out.append(DeadLetter(code, message, raw or b"", batch.origin(index)))
            else:
                pipeline, at, records, stages, moves, fires, facts = row
                figures = _figures(records, stages, moves, fires)
                out.append((pipeline, Chunk(_time(at), figures, NativeFacts(facts))))
        return out, False

    def snapshot(self) -> bytes:
        return self.core.dump()
