"""JSON Lines files as a source (for replay) and as sinks (transitions, dead letters).

An input is a `.jsonl` or `.jsonl.gz` file, a folder of them read in name
order, or `-` for standard input. Every record keeps its file and line.
"""

from __future__ import annotations

import gzip
import heapq
import io
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.raw import AUTOMATION, EVENTS, RawBatch
from state.errors import ConfigError

BATCH_SIZE = 4096
STDIO = "-"
SUFFIXES = (".jsonl", ".jsonl.gz")


def expand(path: str) -> list[str]:
    """The files an input names, in reading order; ConfigError if it cannot be read."""
    if path == STDIO:
        return [STDIO]
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.iterdir() if f.is_file() and f.name.endswith(SUFFIXES))
        if not files:
            raise ConfigError(f"{path}: folder has no .jsonl or .jsonl.gz files")
        return files
    if not p.is_file():
        raise ConfigError(f"{path}: no such file or folder")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{path}: file is not readable")
    return [path]


def _open(path: str) -> IO[bytes]:
    if path == STDIO:
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def read_lines(paths: list[str], skip: int = 0) -> Iterator[tuple[str, int, bytes]]:
    """(file, line number, line) of every non-blank line, after the first `skip` of them.

    The same lines as `read_line_blocks`, one at a time (for merging several inputs).
    """
    for path in paths:
        stream = _open(path)
        try:
            for number, line in enumerate(stream, 1):
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if skip:
                    skip -= 1
                    continue
                yield path, number, line
        finally:
            if path != STDIO:
                stream.close()


BLOCK_BYTES = 1 << 20


def read_line_blocks(
    paths: list[str], block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[str, Sequence[int], list[bytes]]]:
    """`read_lines` by blocks: (file, line numbers, lines) of about `block_bytes` each.

    The same lines, split by C code a block at a time instead of one by one (the
    replay of a single event log reads them so). Standard input is read as its
    data arrives, so that a pipe's lines are not held back for a full block.
    """
    for path in paths:
        stream = _open(path)
        read = stream.read1 if path == STDIO else stream.read  # type: ignore[attr-defined]
        number = 0
        tail = b""
        try:
            while True:
                chunk = read(block_bytes)
                if chunk:
                    data = tail + chunk
                    returns = b"\r" in data
                    lines = data.split(b"\n")
                    tail = lines.pop()
                else:
                    returns = b"\r" in tail
                    lines, tail = ([tail] if tail else []), b""
                if lines:
                    first, number = number + 1, number + len(lines)
                    yield (path, *_kept(lines, first, returns))
                if not chunk:
                    break
        finally:
            if path != STDIO:
                stream.close()


def _kept(lines: list[bytes], first: int, returns: bool) -> tuple[Sequence[int], list[bytes]]:
    """The non-blank lines of a block without their line ends, and their numbers."""
    if returns:
        lines = [line.rstrip(b"\r\n") for line in lines]
    if all(map(bytes.strip, lines)):  # strip() hands back the line itself when it is kept
        return range(first, first + len(lines)), lines
    kept = [(n, line) for n, line in enumerate(lines, first) if line.strip()]
    return [n for n, _ in kept], [line for _, line in kept]


def _sort_time(line: bytes) -> float | None:
    """occurred_at as seconds, or None when the line does not have a usable one."""
    try:
        value = orjson.loads(line).get("occurred_at")
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except (orjson.JSONDecodeError, AttributeError, ValueError, TypeError):
        return None


def merge_by_time(
    inputs: list[Iterator[tuple[str, int, bytes]]],
) -> Iterator[tuple[str, int, bytes]]:
    """Merge inputs by occurred_at, each keeping its own order (ties: earlier input first).

    A record without a readable time keeps its place after its predecessor.
    """
    if len(inputs) == 1:
        yield from inputs[0]
        return
    heap: list[tuple[float, int, int, tuple[str, int, bytes]]] = []
    last = [float("-inf")] * len(inputs)
    counter = 0

    def push(index: int) -> None:
        nonlocal counter
        for item in inputs[index]:
            at = _sort_time(item[2])
            if at is not None and at > last[index]:
                last[index] = at
            heapq.heappush(heap, (last[index], index, counter, item))
            counter += 1
            return

    for index in range(len(inputs)):
        push(index)
    while heap:
        _, index, _, item = heapq.heappop(heap)
        yield item
        push(index)


@dataclass(frozen=True)
class ReplayInputs:
    """The files of one replay: automation first, then the events merged by time."""

    automation: list[str]
    events: list[list[str]]
    progress: bool = False

    @classmethod
    def from_paths(
        cls, automation: Iterable[str], events: Iterable[str], progress: bool = False
    ) -> ReplayInputs:
        files = [f for path in automation for f in expand(path)]
        return cls(files, [expand(path) for path in events], progress)

    def total_bytes(self) -> int:
        every = self.automation + [f for group in self.events for f in group]
        return sum(os.path.getsize(f) for f in every if f != STDIO)


def _blocks(
    lines: Iterator[tuple[str, int, bytes]], size: int = 4096
) -> Iterator[tuple[str, Sequence[int], list[bytes]]]:
    """Lines of several files, merged one by one, as blocks of one file each."""
    source, numbers, values = "", [], []  # type: ignore[var-annotated]
    for path, number, line in lines:
        if path != source or len(values) >= size:
            if values:
                yield source, numbers, values
            source, numbers, values = path, [], []
        numbers.append(number)
        values.append(line)
    if values:
        yield source, numbers, values


class ReplaySource(FixedPartitionedSource[RawBatch, int]):
    """One partition reading automation, then events; resumes after the last record emitted."""

    def __init__(self, inputs: ReplayInputs, batch_size: int = BATCH_SIZE) -> None:
        self.inputs = inputs
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ReplayPartition:
        return _ReplayPartition(self.inputs, self.batch_size, resume_state or 0)


class _ReplayPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, inputs: ReplayInputs, batch_size: int, emitted: int) -> None:
        self.batch_size = batch_size
        self.emitted = emitted
        self.progress = Progress(inputs.total_bytes()) if inputs.progress else None
        self._batches = self._read(inputs, emitted)

    def _read(self, inputs: ReplayInputs, skip: int) -> Iterator[RawBatch]:
        automation = read_line_blocks(inputs.automation)
        if len(inputs.events) == 1:
            events = read_line_blocks(inputs.events[0])
        else:
            events = _blocks(merge_by_time([read_lines(group) for group in inputs.events]))
        seq = 0  # records before this block
        size = self.batch_size
        for stream, blocks in ((AUTOMATION, automation), (EVENTS, events)):
            for path, numbers, lines in blocks:
                start = max(0, min(len(lines), skip - seq))
                for at in range(start, len(lines), size):
                    end = min(at + size, len(lines))
                    yield RawBatch(stream, path, None, seq + at + 1, numbers[at:end], lines[at:end])
                seq += len(lines)
                if self.progress is not None:
                    self.progress.advance(sum(map(len, lines)) + len(lines))

    def next_batch(self) -> list[RawBatch]:
        batch = next(self._batches, None)
        if batch is None:
            if self.progress is not None:
                self.progress.done()
            raise StopIteration
        self.emitted = batch.first_seq + len(batch.values) - 1
        return [batch]

    def snapshot(self) -> int:
        return self.emitted


@dataclass
class Progress:
    """A one-line progress bar on standard error, shown only on a terminal."""

    total: int
    done_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    shown: float = 0.0

    def advance(self, size: int) -> None:
        self.done_bytes += size
        now = time.monotonic()
        if now - self.shown >= 0.5:
            self.shown = now
            share = min(1.0, self.done_bytes / self.total) if self.total else 0.0
            bar = "#" * int(share * 30)
            rate = self.done_bytes / max(now - self.started, 1e-9) / 1e6
            sys.stderr.write(f"\rreplay [{bar:<30}] {share:4.0%} {rate:6.1f} MB/s")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


class OrderedFileSink(FixedPartitionedSink[tuple[Any, str, bytes], None]):
    """Writes JSON Lines to a file (or `-`), in input order whatever the worker count.

    Items are `(key, (order, key, line))`; lines are held until the flow ends and then
    written sorted by `order`, so a replay's output is the same bytes every run.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        if path not in (None, STDIO):
            # Bytewax builds a partition only when an item reaches it: an empty
            # output must still replace the previous run's file.
            open(path, "wb").close()

    def list_parts(self) -> list[str]:
        return ["out"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OrderedFilePartition:
        return _OrderedFilePartition(self.path)


class _OrderedFilePartition(StatefulSinkPartition[tuple[Any, str, bytes], None]):
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lines: list[tuple[Any, str, bytes]] = []

    def write_batch(self, values: list[tuple[Any, str, bytes]]) -> None:
        self.lines.extend(values)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        if self.path is None:
            return
        self.lines.sort(key=lambda value: value[0])
        write_lines(self.path, [line for _, _, line in self.lines])


def write_lines(path: str | None, lines: list[bytes]) -> None:
    """JSON Lines to a file (replaced) or `-` (stdout); nothing where `path` is None."""
    if path is None:
        return
    out = sys.stdout.buffer if path == STDIO else open(path, "wb")  # noqa: SIM115
    try:
        out.write(b"".join(line + b"\n" for line in lines))
    finally:
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()
