"""The statistics step under seeded, damaged history logs: both engines give the same
chunks, facts, open stays and dead letters, and every record counts or is a dead letter.

Each seed mutates most records of a random history (the damage of
`tests.fuzz.mutations` plus the history fields' own: wrong types, ids as integers,
odd times and zones, nulls, escapes, repeated keys, huge values) and runs the stays
step of each engine over them, in batches of a random size.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from flows.stats.native import available
from tests.flows.test_stats_engines import assert_same_step
from tests.flows.test_stats_flow import random_history, run_stats
from tests.fuzz.mutations import deep_nesting, flip_bytes, huge_number, surrogate, truncate

pytestmark = pytest.mark.skipif(not available(), reason="crm_triggers_native not built")

HistoryMutation = Callable[[dict[str, Any], random.Random], bytes | None]


def _dumps(record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


WRONG: list[object] = [
    None, True, False, 0, -1, 5.5, 2**63, 2**64, 10**30, "", "x", "a/b", [], [1], {}, {"id": 1},
]  # fmt: skip
FIELDS = [
    "id", "tenant", "item", "item.entity", "item.id", "category", "stage", "from_stage",
    "semantic", "kind", "at", "trigger", "trigger.id", "trigger.code",
]  # fmt: skip
TIMES = [
    "2026-11-25T08:00:00Z", "2026-11-25T08:00:00+05:30", "2026-11-25T08:00:00-11:59",
    "2026-11-25T08:00:00.000001Z", "2026-11-25T08:00:00.9999999Z", "2026-11-25T08:00:00",
    "2026-11-25 08:00:00Z", "2026-11-25t08:00:00z", "2026-11-25T08:00Z", "2026-11-25",
    "2026-11-25T08:00:00+0530", "2026-11-25T24:00:00Z", "2026-11-25T23:59:60Z",
    "2024-02-29T12:00:00Z", "2026-02-29T12:00:00Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00", "0001-01-02T00:00:00-23:59", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T00:00:00-12:00", "9999-12-30T00:00:00Z", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.5Z", "2026-11-25T08:00:00+23:59", "2026-11-25T08:00:00+24:00", "",
]  # fmt: skip


def _set(record: dict[str, Any], path: str, value: object) -> None:
    head, _, tail = path.partition(".")
    if tail:
        inner = record.get(head)
        if not isinstance(inner, dict):
            inner = record[head] = {"id": "1", "entity": "deal"}
        inner[tail] = value
    else:
        record[head] = value


def wrong_type(record: dict[str, Any], rng: random.Random) -> bytes:
    _set(record, rng.choice(FIELDS), rng.choice(WRONG))
    return _dumps(record)


def drop_field(record: dict[str, Any], rng: random.Random) -> bytes:
    path = rng.choice(FIELDS)
    head, _, tail = path.partition(".")
    inner = record.get(head) if tail else record
    if isinstance(inner, dict):
        inner.pop(tail or head, None)
    return _dumps(record)


def ids_as_integers(record: dict[str, Any], rng: random.Random) -> bytes:
    for path in rng.sample(["id", "item.id", "category", "stage", "from_stage", "trigger.id"], 3):
        _set(record, path, rng.choice([0, 7, -3, 42, 2**63 - 1, 2**64 - 1, 2**64]))
    return _dumps(record)


def odd_time(record: dict[str, Any], rng: random.Random) -> bytes:
    record["at"] = rng.choice(TIMES)
    return _dumps(record)


def odd_kind(record: dict[str, Any], rng: random.Random) -> bytes:
    record["kind"] = rng.choice(["created", "trigger", "crm", "deleted", "moved", "Created"])
    if rng.random() < 0.5:
        record["trigger"] = rng.choice([None, {"id": "t-9"}, {"id": "t-9", "code": None}, {}])
    if rng.random() < 0.3:
        record["stage"] = None
    return _dumps(record)


def escaped(record: dict[str, Any], rng: random.Random) -> bytes:
    text = _dumps(record)
    # A character of a key or a value written as a \\u escape (the same string to JSON).
    letters = [i for i, b in enumerate(text) if chr(b).isalpha()]
    at = rng.choice(letters)
    return text[:at] + b"\\u%04x" % text[at] + text[at + 1 :]


def repeated_key(record: dict[str, Any], rng: random.Random) -> bytes:
    key = rng.choice(["id", "kind", "at", "stage", "tenant", "item", "category"])
    text = _dumps(record)
    value = _dumps(rng.choice([record.get(key), "other", None, 5]))
    return text[:-1] + b',"' + key.encode() + b'":' + value + b"}"


def huge_value(record: dict[str, Any], rng: random.Random) -> bytes:
    size = rng.choice([10_000, 200_000])
    if rng.random() < 0.5:
        record["stage"] = "S" * size
    else:
        record["extra"] = {"list": list(range(size // 10)), "text": "é" * size}
    return _dumps(record)


def null_value(record: dict[str, Any], rng: random.Random) -> bytes | None:
    return None


def _bytes(mutation: Callable[[bytes, random.Random], bytes]) -> HistoryMutation:
    return lambda record, rng: mutation(_dumps(record), rng)


MUTATIONS: dict[str, HistoryMutation] = {
    "truncate": _bytes(truncate),
    "flip_bytes": _bytes(flip_bytes),
    "deep_nesting": _bytes(deep_nesting),
    "huge_number": _bytes(huge_number),
    "surrogate": _bytes(surrogate),
    "wrong_type": wrong_type,
    "drop_field": drop_field,
    "ids_as_integers": ids_as_integers,
    "odd_time": odd_time,
    "odd_kind": odd_kind,
    "escaped": escaped,
    "repeated_key": repeated_key,
    "huge_value": huge_value,
    "null_value": null_value,
}


def damaged_history(seed: int, items: int, share: float) -> list[bytes | None]:
    rng = random.Random(seed)
    names = sorted(MUTATIONS)
    out: list[bytes | None] = []
    for n, record in enumerate(random_history(seed=seed, items=items)):
        if rng.random() < share:
            out.append(MUTATIONS[names[n % len(names)]](record, rng))
        else:
            out.append(_dumps(record))
    return out


def test_a_damaged_history_is_read_alike() -> None:
    raws = damaged_history(seed=100, items=150, share=0.5)
    outputs = assert_same_step(raws, batch_size=9, per_call=2)
    assert sum(1 for o in outputs if o[0] == "dead_letter") > len(raws) / 5
    windows = {engine: run_stats(raws, engine=engine) for engine in ("python", "native")}
    assert windows["native"] == windows["python"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_damaged_histories_are_read_alike(seed: int) -> None:
    rng = random.Random(seed)
    raws = damaged_history(seed=seed, items=1500, share=rng.choice([0.2, 0.6, 0.9]))
    assert_same_step(raws, batch_size=rng.choice([1, 13, 500, 5000]), per_call=rng.randint(1, 4))
