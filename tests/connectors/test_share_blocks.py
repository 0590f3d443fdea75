"""A replay process's share of the lines: the lines `read_line_blocks` reads, split by item."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.jsonl import read_line_blocks, read_share_blocks
from state.engine import key_group


def event(item: str, tenant: str = "acme") -> bytes:
    return (
        b'{"id":"e","type":"email.sent","tenant":"%s","occurred_at":"2026-11-25T10:00:00Z",'
        b'"item":{"entity":"deal","id":"%s"}}' % (tenant.encode(), item.encode())
    )


LINES = [
    event("1"),
    b"",
    b"   \t",
    event("2") + b"\r",
    b'{"id":"m","items":[{"entity":"deal","id":"1"},{"entity":"deal","id":"2"}]}',
    b"not json at all",
    event("3", tenant="globex"),
    b"\x0b\x0c",
    event("4"),
]


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
@pytest.mark.parametrize("final_newline", [True, False])
def test_shares_are_the_lines_read_split_by_item(
    tmp_path: Path, block_bytes: int, final_newline: bool
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES) + (b"\n" if final_newline else b""))
    numbers: list[int] = []
    lines: list[bytes] = []
    for _, found_numbers, found_lines in read_line_blocks([str(path)], block_bytes):
        numbers.extend(found_numbers)
        lines.extend(found_lines)
    whole = list(zip(numbers, lines, strict=True))
    groups = 3
    kept_by_group = []
    for group in range(groups):
        kept = []
        seq = 0
        for _, places, share_numbers, share_lines, count, _ in read_share_blocks(
            [str(path)], group, groups, block_bytes
        ):
            for place, number, line in zip(places, share_numbers, share_lines, strict=True):
                assert whole[seq + place] == (number, line)
                kept.append(seq + place)
            seq += count
        assert seq == len(whole)
        kept_by_group.append(set(kept))
    single = {0: "acme/deal/1", 1: "acme/deal/2", 4: "globex/deal/3", 5: "acme/deal/4"}
    for index in range(len(whole)):
        holders = {g for g in range(groups) if index in kept_by_group[g]}
        if index in single:
            assert holders == {key_group(single[index], groups)}
        else:  # several items, or not readable without decoding: every process
            assert holders == set(range(groups))
