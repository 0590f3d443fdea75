"""JSON Lines inputs: files, gzip, folders, stdin, merging by time, resuming."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.jsonl import (
    ReplayInputs,
    ReplaySource,
    expand,
    merge_by_time,
    read_line_blocks,
    read_lines,
)
from connectors.raw import AUTOMATION, EVENTS, RawBatch
from state.errors import ConfigError


def event_line(n: int, at: str) -> bytes:
    return orjson.dumps({"id": f"e{n}", "occurred_at": at})


def read_all(source: ReplaySource, resume: int | None = None) -> tuple[list[RawBatch], int]:
    part = source.build_part("read", "replay", resume)
    batches: list[RawBatch] = []
    while True:
        try:
            batches.extend(part.next_batch())
        except StopIteration:
            return batches, part.snapshot()


def test_a_folder_is_read_in_name_order_and_gzip_is_transparent(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_bytes(b'{"n": 2}\n')
    with gzip.open(tmp_path / "a.jsonl.gz", "wb") as out:
        out.write(b'{"n": 1}\n\n')
    (tmp_path / "notes.txt").write_text("not an input")
    files = expand(str(tmp_path))
    assert [Path(f).name for f in files] == ["a.jsonl.gz", "b.jsonl"]
    assert [line for _, _, line in read_lines(files)] == [b'{"n": 1}', b'{"n": 2}']


def test_a_missing_input_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        expand(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match=r"no \.jsonl"):
        expand(str(tmp_path))


def test_lines_keep_their_file_and_number_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n   \n{"a": 2}\n')
    assert list(read_lines([str(path)])) == [
        (str(path), 1, b'{"a": 1}'),
        (str(path), 4, b'{"a": 2}'),
    ]


def _blocks_of(path: Path, block_bytes: int, compiled: bool) -> list[tuple[int, bytes]]:
    blocks = read_line_blocks([str(path)], block_bytes, compiled=compiled)
    return [
        (n, line) for _, numbers, lines in blocks for n, line in zip(numbers, lines, strict=True)
    ]


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [b"\n", b"\r", b"\r\n", b" ", b"\t", b"\x0b", b"\x0c", b"{}", b"ab", b"\xff"]
        ),
        max_size=40,
    ).map(b"".join),
    block_bytes=st.integers(1, 12),
)
def test_lines_split_by_the_compiled_module_are_those_split_in_python(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block_bytes: int
) -> None:
    folder = tmp_path_factory.mktemp("lines")
    path, packed = folder / "e.jsonl", folder / "e.jsonl.gz"
    path.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    expected = _blocks_of(path, block_bytes, compiled=False)
    # A plain file is read again from its unfinished line, a gzip file joined to it.
    assert _blocks_of(path, block_bytes, compiled=True) == expected
    assert _blocks_of(packed, block_bytes, compiled=True) == expected
    assert [n for n, _ in expected] == [n for _, n, _ in read_lines([str(path)])]


def test_lines_of_a_block_are_a_sequence_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n   \n{"a": 2}\n{"a": 3}\n')
    [(_, numbers, lines)] = list(read_line_blocks([str(path)], compiled=True))
    assert list(numbers) == [1, 4, 5]
    assert len(lines) == 3
    assert list(lines) == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
    assert lines[-1] == b'{"a": 3}'
    assert list(lines[1:]) == [b'{"a": 2}', b'{"a": 3}']
    assert list(lines[1:][1:5]) == [b'{"a": 3}']
    assert list(lines[2:1]) == []
    with pytest.raises(IndexError):
        lines[3]


def test_merge_by_time_keeps_each_input_in_its_own_order() -> None:
    calls = [
        ("calls", 1, event_line(1, "2026-11-25T10:00:00Z")),
        ("calls", 2, event_line(2, "2026-11-25T10:05:00Z")),
        ("calls", 3, b"not json"),
        ("calls", 4, event_line(4, "2026-11-25T10:01:00Z")),
    ]
    mails = [
        ("mails", 1, event_line(5, "2026-11-25T11:00:00+01:00")),
        ("mails", 2, event_line(6, "2026-11-25T10:03:00Z")),
    ]
    merged = [(name, n) for name, n, _ in merge_by_time([iter(calls), iter(mails)])]
    # 11:00+01:00 is 10:00Z: a tie goes to the first input; "not json" and the
    # late 10:01 stay after their predecessor in their own input.
    assert merged == [
        ("calls", 1),
        ("mails", 1),
        ("mails", 2),
        ("calls", 2),
        ("calls", 3),
        ("calls", 4),
    ]


@pytest.mark.parametrize("compiled", [False, True])
def test_the_source_reads_automation_first_and_resumes_after_the_last_record(
    tmp_path: Path, compiled: bool
) -> None:
    automation = tmp_path / "automation.jsonl"
    automation.write_bytes(b'{"kind": "pipeline"}\n')
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(event_line(n, "2026-11-25T10:00:00Z") + b"\n" for n in range(10)))
    inputs = ReplayInputs.from_paths([str(automation)], [str(events)])

    whole, _ = read_all(ReplaySource(inputs, batch_size=3, compiled=compiled))
    assert [b.stream for b in whole] == [AUTOMATION, EVENTS, EVENTS, EVENTS, EVENTS]
    values = [v for b in whole for v in b.values]
    seqs = [b.first_seq + i for b in whole for i in range(len(b.values))]
    assert seqs == list(range(1, 12))

    part = ReplaySource(inputs, batch_size=3, compiled=compiled).build_part("read", "replay", None)
    first = part.next_batch() + part.next_batch()
    snapshot = part.snapshot()
    rest, _ = read_all(ReplaySource(inputs, batch_size=3, compiled=compiled), resume=snapshot)
    resumed = [v for b in first + rest for v in b.values]
    assert resumed == values
    assert rest[0].first_seq == snapshot + 1
    assert rest[0].positions[0] == 4  # line 4 of events.jsonl: after the 3 emitted
