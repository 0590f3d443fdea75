"""Types of the compiled board (native/src), as `state/native.py` uses it.

Shipped in the wheel by maturin (with `py.typed`), so mypy checks the boundary.
Keep in step with the `#[pyfunction]`s, `#[pymethods]` and `register`s of native/src.
"""

from collections.abc import Sequence
from typing import Any, Protocol, overload

# The vocabulary (native/src/vocabulary.rs); `state/native.py` checks them at import.
OPERATORS: list[str]
PARAM_RULES: list[str]
REASONS: list[str]
NOTE_KINDS: list[str]
SPECIAL_TYPES: list[str]
SPECIAL_CODES: list[str]
NEVER_WATCHED: list[str]

def configure(types: list[tuple[str, list[str]]], codes: list[str]) -> None:
    """Take Python's table of event types (with their one-to-one codes) and codes.

    Once per process; the same table again is a no-op, another one a ValueError.
    """

class Hooks(Protocol):
    """What the board asks of Python (`state.native.NativeBoard`)."""

    def slow(self, raw: bytes | None) -> tuple[bytes, int] | tuple[str, str]: ...
    def view(
        self, tenant: str, entity: str, category: str, at: int
    ) -> tuple[int, int, tuple[list[str], list[tuple[Any, ...]], list[str]] | None]: ...
    def holds(self, trigger: Any, fields: bytes | None, raw: bytes) -> bool: ...

Note = tuple[int, int, str | None, int, Any]
"""(record index, item index, item key or None, kind by NOTE_KINDS, payload)."""

class NativeBoard:
    def __init__(self, seen_window: int, echo_window: int, hooks: Hooks) -> None: ...
    def set_watched(self, names: list[str]) -> None: ...
    def clear_views(self) -> None: ...
    def set_history(self, on: bool) -> None:
        """Write the stage history: notes of kind history, payload (step, JSON line)."""
    def __len__(self) -> int: ...
    def decide_batch(
        self,
        raws: Sequence[bytes | None],
        group: int,
        groups: int,
        max_bytes: int,
        shared: bool = False,
    ) -> tuple[tuple[int, ...], int, list[Note]]: ...
    def item(self, key: str) -> tuple[str, str | None, list[tuple[str, str]], int, int] | None:
        """(category, stage or None, watched fields as (name, JSON), seen ids, echoes)."""
    def heap_bytes(self) -> int: ...
    def dump(self) -> bytes: ...
    def load(self, data: bytes) -> None: ...

def route_batch(
    keys: list[bytes | None] | None, raws: list[bytes | None], groups: int
) -> tuple[dict[int, list[int]], list[int]]: ...

class StatsHooks(Protocol):
    """What the statistics step asks of Python (`flows.stats.native`)."""

    def slow(self, raw: bytes | None) -> tuple[Any, ...]: ...
    def seconds(self, microseconds: int) -> float: ...
    def bucket(self, seconds: float) -> int: ...

FactRow = tuple[
    int,
    str,
    str,
    bool,
    str | None,
    str | None,
    tuple[str, str | None, float] | None,
    tuple[str | None, str, str] | None,
    tuple[str, str | None] | None,
]
"""(at in microseconds, item, history_id, counted, stage, semantic, stay, move, trigger)."""

class StatsFacts:
    def __len__(self) -> int: ...
    def rows(self) -> list[FactRow]: ...
    def dump(self) -> bytes: ...
    @staticmethod
    def load(data: bytes) -> StatsFacts: ...

StatsChunk = tuple[
    str,
    int,
    int,
    list[tuple[str, str | None, int, set[str], int, float, float, dict[int, int]]],
    dict[tuple[str | None, str, str], int],
    dict[str, tuple[str | None, int, set[str]]],
    StatsFacts,
]
"""(pipeline, latest at in microseconds, records, stages, moves, fires, facts)."""

class StatsStays:
    def __init__(
        self, window: int, first_start: int, last_start: int, highs: list[float], hooks: StatsHooks
    ) -> None: ...
    def __len__(self) -> int: ...
    def on_batches(
        self, batches: list[list[bytes | None]]
    ) -> list[tuple[int, int, str, str] | StatsChunk]:
        """Dead letters (batch, index, code, message) and chunks, in the Python step's order."""
    def restore_open(self, stays: list[tuple[str, int, str, str | None, str]]) -> None: ...
    def open_stays(self) -> list[tuple[str, int, str, str | None, str]]: ...
    def dump(self) -> bytes: ...
    def load(self, data: bytes) -> None: ...

class Lines(Sequence[bytes]):
    """The non-blank lines of a block, as spans of it (`split_lines`)."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Lines: ...
    def size(self) -> int:
        """Bytes the lines take in the block, line ends included."""

def split_lines(data: bytes, end: int, first: int) -> tuple[Lines, list[int] | None, int]:
    """The non-blank lines of `data[:end]`, the numbers of those kept (None: all), the count."""
