"""A seeded mutation corpus: the sample's lines damaged as an adversarial producer would.

Each mutation kind takes a line's bytes and a `random.Random` and returns new bytes
without a line feed (one record stays one line). The same seed gives the same corpus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

Mutation = Callable[[bytes, random.Random], bytes]


def _object(line: bytes) -> dict[str, object] | None:
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _dumps(record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _insert_member(line: bytes, member: bytes, rng: random.Random) -> bytes:
    """`member` (`"key":value`) as the first member of the record or of its data."""
    at = line.find(b'"data":{')
    if at != -1 and rng.random() < 0.7:
        at += len(b'"data":{')
        rest = line[at:]
        return line[:at] + member + (b"," if not rest.startswith(b"}") else b"") + rest
    if line.startswith(b"{"):
        return b"{" + member + (b"," if line[1:2] != b"}" else b"") + line[1:]
    return member + line


def truncate(line: bytes, rng: random.Random) -> bytes:
    return line[: rng.randrange(len(line) + 1)]


def flip_bytes(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        if data:
            data[rng.randrange(len(data))] = rng.choice([b for b in range(256) if b not in b"\r\n"])
    return bytes(data)


DEPTHS = [8, 40, 59, 60, 61, 62, 63, 64, 65, 66, 128, 129, 256, 257, 1000, 1025, 20_000]


def deep_nesting(line: bytes, rng: random.Random) -> bytes:
    depth = rng.choice(DEPTHS)
    open_, close = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    value = open_ * depth + b"1" + close * depth
    return _insert_member(line, b'"deep":' + value, rng)


NUMBERS = [
    b"1e400",
    b"-1e400",
    b"1E999",
    b"1e308",
    b"1.7976931348623157e308",
    b"1.8e308",
    b"-1.8e308",
    b"1e-400",
    b"-0",
    b"-0.0",
    b"1" + b"0" * 400,
    b"123456789012345678901234567890",
    b"18446744073709551616",
    b"9007199254740993",
    b"NaN",
    b"Infinity",
    b"0.1e+999999999999",
]


def huge_number(line: bytes, rng: random.Random) -> bytes:
    number = rng.choice(NUMBERS)
    record = _object(line)
    if record is not None and rng.random() < 0.5:
        # In a field a condition reads, or a param value.
        data = record.get("data")
        if isinstance(data, dict):
            target = data.get("fields") or data.get("changes") or data
            if isinstance(target, dict):
                target[rng.choice(["OPPORTUNITY", "answer_time_sec", "form_id", "line"])] = 0
                text = _dumps(record)
                at = text.rfind(b":0")
                return text[: at + 1] + number + text[at + 2 :]
    return _insert_member(line, b'"n":' + number, rng)


ESCAPES = [
    b"\\ud800",
    b"\\udc00",
    b"\\udbff\\u0041",
    b"\\ud83d\\ude00",
    b"\\u0000",
    b"\\ud800\\ud800",
]


def surrogate(line: bytes, rng: random.Random) -> bytes:
    escape = rng.choice(ESCAPES)
    quotes = [i for i, b in enumerate(line) if b == ord('"')]
    if quotes and rng.random() < 0.6:
        at = rng.choice(quotes) + 1  # inside a key or a value, or just after a closing quote
        return line[:at] + escape + line[at:]
    return _insert_member(line, b'"s":"' + escape + b'"', rng)


ITEM_COUNTS = [2, 3, 99, 100, 101, 500, 2000]


def many_items(line: bytes, rng: random.Random) -> bytes:
    record = _object(line)
    if record is None:
        return line
    first = record.pop("item", None) or {"entity": "deal", "id": "1"}
    count = 10_000 if rng.random() < 0.02 else rng.choice(ITEM_COUNTS)
    refs: list[object] = [first]
    refs += [{"entity": "deal", "id": f"fuzz-{n}"} for n in range(count - 1)]
    if rng.random() < 0.3:
        refs[rng.randrange(len(refs))] = {"entity": "deal", "id": "x", "stage": "NEW"}
    record["items"] = refs
    return _dumps(record)


IDS: list[object] = [
    123456789012345678901234567890,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    10**400,
    1.0e20,
    5.5,
    -1,
    0,
]


def large_id(line: bytes, rng: random.Random) -> bytes:
    record = _object(line)
    if record is None:
        return line
    value = rng.choice(IDS)
    item = record.get("item")
    where = rng.random()
    if where < 0.4 and isinstance(item, dict):
        item["id"] = value
    elif where < 0.7 and isinstance(item, dict):
        record.pop("item")
        record["items"] = [{**item, "id": value}, {**item, "id": str(value)}]
    else:
        record["id"] = value
    return _dumps(record)


WRONG: list[object] = [None, True, 5, 5.5, "", "x", [], [1], {}, {"a": 1}, "a/b"]
FIELDS = [
    "id",
    "type",
    "occurred_at",
    "tenant",
    "item",
    "items",
    "data",
    "kind",
    "stage",
    "condition",
    "params",
    "stages",
    "code",
    "updated_at",
]


def wrong_type(line: bytes, rng: random.Random) -> bytes:
    record = _object(line)
    if record is None:
        return line
    record[rng.choice(FIELDS)] = rng.choice(WRONG)
    return _dumps(record)


def drop_field(line: bytes, rng: random.Random) -> bytes:
    record = _object(line)
    if not record:
        return line
    record.pop(rng.choice(sorted(record)))
    return _dumps(record)


def duplicate_key(line: bytes, rng: random.Random) -> bytes:
    key = rng.choice([b'"id":"dup"', b'"type":"webhook"', b'"item":{"entity":"deal","id":"9"}'])
    return _insert_member(line, key, rng)


def odd_whitespace(line: bytes, rng: random.Random) -> bytes:
    record = _object(line)
    if record is None:
        return line
    return json.dumps(record, indent="\t").replace("\n", " ").encode()


def deep_condition(line: bytes, rng: random.Random) -> bytes:
    """An automation record whose condition value nests deep (or any line, nested)."""
    depth = rng.choice(DEPTHS)
    value = "[" * depth + "]" * depth
    record = _object(line)
    if record is None or record.get("kind") != "trigger":
        return deep_nesting(line, rng)
    clause = f'{{"field":"OPPORTUNITY","op":"in","value":{value}}}'
    text = _dumps({k: v for k, v in record.items() if k != "condition"})
    return text[:-1] + f',"condition":{{"any":[[{clause}]]}}}}'.encode()


EVENT_MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "flip_bytes": flip_bytes,
    "deep_nesting": deep_nesting,
    "huge_number": huge_number,
    "surrogate": surrogate,
    "many_items": many_items,
    "large_id": large_id,
    "wrong_type": wrong_type,
    "drop_field": drop_field,
    "duplicate_key": duplicate_key,
    "odd_whitespace": odd_whitespace,
}
AUTOMATION_MUTATIONS: dict[str, Mutation] = {
    **{k: v for k, v in EVENT_MUTATIONS.items() if k not in ("many_items", "large_id")},
    "deep_condition": deep_condition,
}


def mutate(
    lines: list[bytes], seed: int, share: float, kinds: dict[str, Mutation]
) -> tuple[list[bytes], dict[str, int]]:
    """`lines` with about `share` of them mutated (kinds in turn, seeded), and the counts."""
    rng = random.Random(seed)
    names = sorted(kinds)
    counts = dict.fromkeys(names, 0)
    out = []
    for line in lines:
        if rng.random() < share:
            name = rng.choice(names)
            counts[name] += 1
            line = kinds[name](line, rng)
            assert b"\n" not in line, name
        out.append(line)
    return out, counts
