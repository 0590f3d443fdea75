"""JSON Lines files as a source (for replay) and as sinks (transitions, dead letters).

An input is a `.jsonl` or `.jsonl.gz` file, a folder of them read in name
order, or `-` for standard input. Every record keeps its file and line.
"""

from __future__ import annotations

import gzip
import heapq
import io
import os
import stat
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, overload

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.raw import AUTOMATION, EVENTS, RawBatch
from state.errors import ConfigError
from state.native import is_lines, split_lines


class UnreadableInputError(ConfigError):
    """An input turned out unreadable while it was read (damaged gzip, an I/O error).

    A ConfigError: the command exits 2 with one line, as for a file missing at start.
    """


BATCH_SIZE = 4096
STDIO = "-"
SUFFIXES = (".jsonl", ".jsonl.gz")


def expand(path: str) -> list[str]:
    """The files an input names, in reading order; ConfigError if it cannot be read.

    A folder gives its `.jsonl` and `.jsonl.gz` files; a FIFO or a device (`/dev/null`)
    is read as a stream. Each regular file is opened and its first bytes read now, so
    an unreadable file (permissions, `/proc/self/mem`, a `.gz` that is not gzip) stops
    the run before anything is written.
    """
    if path == STDIO:
        return [STDIO]
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as bad:
        if isinstance(bad, FileNotFoundError | NotADirectoryError):
            raise ConfigError(f"{path}: no such file or folder") from None
        raise ConfigError(f"{path}: cannot read: {bad.strerror}") from None
    if stat.S_ISDIR(mode):
        try:
            found = sorted(p.iterdir())
        except OSError as bad:
            raise ConfigError(f"{path}: cannot read the folder: {bad.strerror}") from None
        files = [str(f) for f in found if f.name.endswith(SUFFIXES) and not f.is_dir()]
        if not files:
            raise ConfigError(f"{path}: folder has no .jsonl or .jsonl.gz files")
        for file in files:
            _check_readable(file)
        return files
    _check_readable(path)
    return [path]


def _check_readable(path: str) -> None:
    """ConfigError unless the first bytes of a regular file can be read (streams are not
    touched: what is read from them now would be lost)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return
        with _open(path) as stream:
            stream.read(1)
    except READ_ERRORS as bad:
        raise ConfigError(f"{path}: cannot read: {_reason(bad)}") from None


def _reason(error: BaseException) -> str:
    """Why a file could not be read, in a few words."""
    if isinstance(error, gzip.BadGzipFile):
        return "not a gzip file"
    if isinstance(error, EOFError):
        return "the gzip data is truncated"
    if isinstance(error, zlib.error):
        return f"the gzip data is damaged ({error})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None


def check_outputs(outputs: dict[str, str | None], inputs: Iterable[str]) -> None:
    """ConfigError unless each output file can be written and is none of the inputs.

    `outputs` maps each option (`--out`) to its path (None: not written, `-`: stdout).
    Writing starts by emptying the file, so an output that is an input (or another
    output) would be wiped before it is read; it is refused, as `cp` refuses it.
    """
    read: dict[tuple[int, int], str] = {}
    for path in inputs:
        files = [path] if path == STDIO else expand(path)
        for file in files:
            identity = _identity(file)
            if identity is not None:
                read.setdefault(identity, file)
    written: dict[tuple[int, int], str] = {}
    for option, given in outputs.items():
        if given is None or given == STDIO:
            continue
        path = given
        target = Path(path)
        if target.is_dir():
            raise ConfigError(f"{option} {path}: is a folder; give a file name")
        folder = target.parent
        if not folder.is_dir():
            raise ConfigError(f"{option} {path}: folder {str(folder)!r} does not exist")
        identity = _identity(path)
        if identity is not None and identity in read:
            raise ConfigError(
                f"{option} {path}: is the input {read[identity]}; writing it would wipe it"
            )
        if identity is not None and identity in written:
            raise ConfigError(f"{option} {path}: is also {written[identity]}")
        try:
            with open(path, "ab"):
                pass  # created if missing, never emptied here
        except OSError as bad:
            raise ConfigError(f"{option} {path}: cannot write: {_reason(bad)}") from None
        identity = _identity(path)
        if identity is not None:
            if identity in written:
                raise ConfigError(f"{option} {path}: is also {written[identity]}")
            written[identity] = f"{option} {path}"


def _open(path: str) -> IO[bytes]:
    if path == STDIO:
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def read_lines(paths: list[str], skip: int = 0) -> Iterator[tuple[str, int, bytes]]:
    """(file, line number, line) of every non-blank line, after the first `skip` of them.

    The same lines as `read_line_blocks`, one at a time (for merging several inputs).
    UnreadableInputError if a file cannot be read to its end.
    """
    for path in paths:
        stream = _open_for_reading(path)
        try:
            for number, line in enumerate(stream, 1):
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if skip:
                    skip -= 1
                    continue
                yield path, number, line
        except READ_ERRORS as bad:
            raise UnreadableInputError(f"{path}: cannot read: {_reason(bad)}") from None
        finally:
            if path != STDIO:
                stream.close()


READ_ERRORS = (OSError, EOFError, zlib.error)
"""What reading a file or its gzip stream raises when the file is damaged or unreadable."""


def _open_for_reading(path: str) -> IO[bytes]:
    try:
        return _open(path)
    except READ_ERRORS as bad:
        raise UnreadableInputError(f"{path}: cannot read: {_reason(bad)}") from None


BLOCK_BYTES = 1 << 20


@overload
def read_line_blocks(
    paths: list[str], block_bytes: int = BLOCK_BYTES, compiled: Literal[False] = False
) -> Iterator[tuple[str, Sequence[int], list[bytes]]]: ...
@overload
def read_line_blocks(
    paths: list[str], block_bytes: int = BLOCK_BYTES, *, compiled: bool
) -> Iterator[tuple[str, Sequence[int], Sequence[bytes]]]: ...
def read_line_blocks(
    paths: list[str], block_bytes: int = BLOCK_BYTES, compiled: bool = False
) -> Iterator[tuple[str, Sequence[int], Sequence[bytes]]]:
    """`read_lines` by blocks: (file, line numbers, lines) of about `block_bytes` each.

    The same lines, split by C code a block at a time instead of one by one (the
    replay of a single event log reads them so). Standard input is read as its
    data arrives, so that a pipe's lines are not held back for a full block.

    `compiled`: the lines are split by the compiled module (`state.native.split_lines`),
    a sequence of bytes that makes no object per line: the compiled board reads them
    where they lie in the block.
    """
    for path in paths:
        number = 0  # lines of the file before this block
        try:
            for data, end in _blocks_at_line_ends(path, block_bytes):
                if compiled:
                    kept, numbers, count = split_lines(data, end, number + 1)
                    if kept:
                        yield path, numbers or range(number + 1, number + 1 + count), kept
                else:
                    lines = data.split(b"\n")
                    if data[end - 1 : end] == b"\n":
                        lines.pop()  # what follows the last line end: read with the next block
                    count = len(lines)
                    yield (path, *_kept(lines, number + 1, b"\r" in data))
                number += count
        except READ_ERRORS as bad:
            raise UnreadableInputError(f"{path}: cannot read: {_reason(bad)}") from None


def _blocks_at_line_ends(path: str, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(data, end) of about `block_bytes` each: `data[:end]` are whole lines (the last
    one of the file may lack its line end), the rest is read again with the next block.

    A plain file is read again from the start of its unfinished line (a seek back):
    joining that line to the next block would copy the whole block, which cost more
    than splitting it. A stream or a gzip file is joined.
    """
    if path == STDIO or path.endswith(".gz") or not stat.S_ISREG(os.stat(path).st_mode):
        yield from _joined_blocks(path, block_bytes)
        return
    with open(path, "rb", buffering=0) as stream:
        size = block_bytes
        while chunk := stream.read(size):
            end = chunk.rfind(b"\n") + 1
            if end == 0 and (len(chunk) == size or stream.read(1)):
                stream.seek(-len(chunk) - (len(chunk) < size), os.SEEK_CUR)
                size *= 2  # a line longer than the block: read it whole
                continue
            if end == 0:
                end = len(chunk)  # the file's last line, without a line end
            elif end < len(chunk):
                stream.seek(end - len(chunk), os.SEEK_CUR)
            yield chunk, end
            size = block_bytes


def _joined_blocks(path: str, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    stream = _open_for_reading(path)
    read = stream.read1 if path == STDIO else stream.read  # type: ignore[attr-defined]
    tail = b""
    try:
        while True:
            chunk = read(block_bytes)
            data = tail + chunk if tail else chunk
            end = data.rfind(b"\n") + 1 if chunk else len(data)
            if end:
                yield data, end
            tail = data[end:]
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
    """One partition reading automation, then events; resumes after the last record emitted.

    `compiled`: a single events input is split into lines by the compiled module
    (`read_line_blocks`), for the compiled board, which reads them in their block.
    """

    def __init__(
        self, inputs: ReplayInputs, batch_size: int = BATCH_SIZE, compiled: bool = False
    ) -> None:
        self.inputs = inputs
        self.batch_size = batch_size
        self.compiled = compiled

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ReplayPartition:
        return _ReplayPartition(self.inputs, self.batch_size, resume_state or 0, self.compiled)


class _ReplayPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self, inputs: ReplayInputs, batch_size: int, emitted: int, compiled: bool = False
    ) -> None:
        self.batch_size = batch_size
        self.emitted = emitted
        self.compiled = compiled
        self.progress = Progress(inputs.total_bytes()) if inputs.progress else None
        self._batches = self._read(inputs, emitted)

    def _read(self, inputs: ReplayInputs, skip: int) -> Iterator[RawBatch]:
        automation = read_line_blocks(inputs.automation)
        events: Iterator[tuple[str, Sequence[int], Sequence[bytes]]]
        if len(inputs.events) == 1:
            events = read_line_blocks(inputs.events[0], compiled=self.compiled)
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
                    self.progress.advance(_size(lines))

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


def _size(lines: Sequence[bytes]) -> int:
    """Bytes of the lines, line ends counted."""
    if is_lines(lines):
        return lines.size()  # type: ignore[attr-defined]
    return sum(map(len, lines)) + len(lines)


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
