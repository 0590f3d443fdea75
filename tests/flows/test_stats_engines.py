"""The compiled stays step against the Python reference: the same chunks (figures to the
last bit of each float sum), facts, dead letters and open stays, and through the
dataflow the same window records, late records and dead letters, byte for byte."""

from __future__ import annotations

import json
import pickle
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.deadletter import DeadLetter
from flows.stats import batches_of
from flows.stats.dataflow import stays_logic
from flows.stats.native import NativeFacts, available, open_stays_of
from flows.stats.stays import Chunk
from tests.flows.test_stats_flow import (
    HOUR,
    LATENESS,
    START,
    history,
    random_history,
    run_stats,
    values,
)

pytestmark = pytest.mark.skipif(not available(), reason="crm_triggers_native not built")

ENGINES = ("python", "native")


def normal(out: Any) -> tuple[Any, ...]:
    """A step's output as plain values: a dead letter whole, a chunk with its facts read."""
    if isinstance(out, DeadLetter):
        return ("dead_letter", out.code, out.message, out.raw, out.origin)
    pipeline, chunk = out
    assert isinstance(chunk, Chunk)
    return ("chunk", pipeline, chunk.at, chunk.figures, [tuple(f) for f in chunk.facts])


def run_step(
    engine: str,
    raws: list[bytes | None],
    batch_size: int = 7,
    per_call: int = 2,
    window: timedelta = HOUR,
    lateness: timedelta = LATENESS,
    resume: Any = None,
) -> tuple[list[tuple[Any, ...]], Any]:
    """The stays step of `engine` over `raws` (`per_call` batches a call): its outputs in
    order, and its snapshot at the end."""
    logic = stays_logic(engine)(window, resume, lateness)
    batches = batches_of(raws, batch_size)
    out: list[tuple[Any, ...]] = []
    for at in range(0, len(batches), per_call):
        found, done = logic.on_batch(batches[at : at + per_call])
        assert done is False
        out.extend(normal(o) for o in found)
    return out, logic.snapshot()


def open_stays(snapshot: Any) -> dict[str, Any]:
    return open_stays_of(snapshot) if isinstance(snapshot, bytes) else snapshot


def assert_same_step(raws: list[bytes | None], **options: Any) -> list[tuple[Any, ...]]:
    """Both engines' steps give the same outputs and open stays; every record counts in a
    chunk or is a dead letter. Returns the outputs."""
    python, python_snapshot = run_step("python", raws, **options)
    native, native_snapshot = run_step("native", raws, **options)
    assert len(native) == len(python)
    for ours, theirs in zip(native, python, strict=True):
        assert ours == theirs
    assert open_stays(native_snapshot) == python_snapshot
    counted = sum(o[3].records for o in python if o[0] == "chunk")
    letters = sum(1 for o in python if o[0] == "dead_letter")
    assert counted + letters == len(raws)
    return python


def disordered(seed: int, items: int) -> list[dict[str, Any]]:
    records = random_history(seed=seed, items=items)
    rng = random.Random(seed)
    for i in range(len(records) - 1):
        if rng.random() < 0.3:
            records[i], records[i + 1] = records[i + 1], records[i]
    records.insert(len(records) // 3, records[0] | {"id": "very-late"})
    return records


@pytest.mark.parametrize("batch_size, per_call", [(1, 1), (7, 2), (64, 3), (10_000, 1)])
def test_the_steps_agree_on_random_history(batch_size: int, per_call: int) -> None:
    raws = values(disordered(seed=31, items=300))
    outputs = assert_same_step(raws, batch_size=batch_size, per_call=per_call)
    assert any(o[0] == "chunk" and any(f[6] for f in o[4]) for o in outputs), "closed stays"


def sample_history(tmp_path: Path) -> list[bytes]:
    from flows.cli import main

    history_file = tmp_path / "history.jsonl"
    samples = Path(__file__).resolve().parents[2] / "samples"
    assert (
        main(
            [
                *("replay", "--out", str(tmp_path / "out.jsonl")),
                *("--automation", f"{samples}/automation.jsonl"),
                *("--events", f"{samples}/events.jsonl", "--history", str(history_file)),
            ]
        )
        == 0
    )
    return history_file.read_bytes().splitlines()


def test_the_engines_agree_on_the_samples_history(tmp_path: Path) -> None:
    in_order: list[bytes | None] = list(sample_history(tmp_path))
    shuffled = in_order[:]
    random.Random(4).shuffle(shuffled)
    for raws in (in_order, shuffled):
        assert_same_step(raws, batch_size=100)
        outputs = {
            engine: run_stats(raws, batch_size=100, engine=engine, lateness=timedelta(0))
            for engine in ENGINES
        }
        windows, late, letters = outputs["python"]
        assert windows and letters == []
        assert bool(late) == (raws is shuffled)
        assert outputs["native"] == outputs["python"]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_dataflows_write_the_same_records(workers: int) -> None:
    # Two workers move chunks between them: the native facts are pickled on the way.
    records = disordered(seed=11, items=300)
    records[5:5] = [b"not json", None, orjson.dumps([1])]
    outputs = {
        engine: run_stats(records, lateness=timedelta(minutes=2), workers=workers, engine=engine)
        for engine in ENGINES
    }
    windows, late, letters = outputs["python"]
    assert windows and late and len(letters) == 3
    assert settled(outputs["native"]) == settled(outputs["python"])


def settled(outputs: tuple[list[Any], ...]) -> tuple[list[bytes], ...]:
    """Each output in a fixed order (workers interleave them in any)."""
    return tuple(sorted(orjson.dumps(o) for o in records) for records in outputs)


def odd(good: dict[str, Any], **changes: Any) -> bytes:
    # json, not orjson: integers beyond 64 bits are written too.
    return json.dumps(good | changes, separators=(",", ":")).encode()


GOOD = history("acme", "deal", "1", "0", "NEW", "created", START)
ODD_RECORDS: list[bytes | None] = [
    None,
    b"",
    b"null",
    b"[]",
    b"not json",
    b"\xff\xfe",
    orjson.dumps(GOOD) + b" \n",
    orjson.dumps(GOOD) + b"x",
    b"\xef\xbb\xbf" + orjson.dumps(GOOD),
    orjson.dumps([GOOD]),
    # Ids as integers, and what an integer id may not be.
    odd(
        GOOD, id=42, category=7, stage=5, from_stage=4, kind="crm", item={"entity": "deal", "id": 1}
    ),
    odd(GOOD, id=-0, item={"entity": "deal", "id": -12}),
    odd(GOOD, id=18446744073709551615),
    odd(GOOD, id=18446744073709551616),
    odd(GOOD, id=10**30),
    odd(GOOD, id=1.0),
    odd(GOOD, id=True),
    odd(GOOD, id=""),
    odd(GOOD, id=None),
    odd(GOOD, item={"entity": "deal", "id": ""}),
    odd(GOOD, item={"entity": "", "id": "1"}),
    odd(GOOD, item={"entity": "de/al", "id": "1"}),
    odd(GOOD, item=["deal", "1"]),
    odd(GOOD, item={"entity": "deal", "id": "1", "extra": [1, {"a": None}]}),
    odd(GOOD, tenant=None),
    odd(GOOD, tenant=""),
    odd(GOOD, tenant="a/b"),
    odd(GOOD, tenant=5),
    odd(GOOD, category=None),
    odd(GOOD, category=""),
    odd(GOOD, category=[]),
    odd(GOOD, stage=None),
    odd(GOOD, stage=None, kind="deleted"),
    odd(GOOD, stage=""),
    odd(GOOD, from_stage="", kind="crm"),
    odd(GOOD, semantic=""),
    odd(GOOD, semantic=3),
    odd(GOOD, kind="moved"),
    odd(GOOD, kind=None),
    odd(GOOD, kind="trigger"),
    odd(GOOD, kind="trigger", trigger={"id": 17, "code": None}),
    odd(GOOD, kind="trigger", trigger={"id": "", "code": "X"}),
    odd(GOOD, kind="trigger", trigger={"code": "X"}),
    odd(GOOD, kind="crm", trigger={"id": ""}),
    odd(GOOD, kind="crm", trigger={}),
    odd(GOOD, kind="crm", trigger=[]),
    # Times and zones.
    odd(GOOD, at="2026-11-25T08:00:00"),
    odd(GOOD, at="2026-11-25T08:00:00+05:30"),
    odd(GOOD, at="2026-11-25T08:00:00-00:00"),
    odd(GOOD, at="2026-11-25T08:00:00.5Z"),
    odd(GOOD, at="2026-11-25T08:00:00.1234567Z"),
    odd(GOOD, at="2026-11-25 08:00:00z"),
    odd(GOOD, at="2026-11-25T08:00:00+0530"),
    odd(GOOD, at="2026-11-25T23:59:60Z"),
    odd(GOOD, at="2026-02-30T08:00:00Z"),
    odd(GOOD, at="2026-11-25T08:00:00+24:00"),
    odd(GOOD, at="0001-01-01T00:00:00Z"),
    odd(GOOD, at="0001-01-01T00:00:00+05:00"),
    odd(GOOD, at="0001-01-02T02:00:00Z"),
    odd(GOOD, at="9999-12-31T23:59:59.999999Z"),
    odd(GOOD, at="9999-12-31T23:59:59.999999-05:00"),
    odd(GOOD, at="9999-12-30T12:00:00Z"),
    odd(GOOD, at=1764057600),
    odd(GOOD, at=None),
    # Escapes, repeated keys, nesting, numbers.
    orjson.dumps(GOOD).replace(b'"kind":"created"', b'"kind":"cr\\u0065ated"'),
    orjson.dumps(GOOD).replace(b'"stage":"NEW"', b'"st\\u0061ge":"NEW"'),
    orjson.dumps(GOOD).replace(b'"stage":"NEW"', b'"stage":"N\\u00c9W"'),
    orjson.dumps(GOOD).replace(b'"stage":"NEW"', b'"stage":"NEW\\ud800"'),
    orjson.dumps(GOOD).replace(b'"at":"2026', b'"at":"2026-11-25T08:00:00Z","at":"2026'),
    orjson.dumps(GOOD).replace(b'"stage":"NEW"', b'"stage":"NEW","stage":"WON"'),
    orjson.dumps(GOOD).replace(b"}", b',"deep":' + b"[" * 200 + b"]" * 200 + b"}", 1),
    orjson.dumps(GOOD).replace(b"}", b',"deep":' + b"[" * 5000 + b"]" * 5000 + b"}", 1),
    orjson.dumps(GOOD).replace(b"}", b',"n":1e400}', 1),
    orjson.dumps(GOOD).replace(b"}", b',"n":' + b"9" * 500 + b"}", 1),
    orjson.dumps(GOOD).replace(b"}", b',"n":NaN}', 1),
    orjson.dumps(GOOD).replace(b"}", b',"s":"\\u0000\\t"}', 1),
    orjson.dumps(GOOD).replace(b"}", b',"s":"a\tb"}', 1),
    orjson.dumps(GOOD | {"huge": "x" * 100_000}),
]


def test_odd_records_are_read_or_rejected_alike() -> None:
    # Each odd record after a good one of the same item, so that a stay closes on it.
    raws: list[bytes | None] = []
    for n, record in enumerate(ODD_RECORDS):
        raws.append(odd(GOOD, id=f"good-{n}", item={"entity": "deal", "id": str(n)}))
        raws.append(record)
    for window in (HOUR, timedelta(days=365)):
        outputs = assert_same_step(raws, batch_size=5, window=window)
        letters = [o for o in outputs if o[0] == "dead_letter"]
        assert 20 < len(letters) < len(ODD_RECORDS)
    outputs = {engine: settled(run_stats(raws, engine=engine)) for engine in ENGINES}
    assert outputs["native"] == outputs["python"]


def test_a_python_snapshot_resumes_the_native_step_and_back() -> None:
    raws = values(disordered(seed=3, items=200))
    half = len(raws) // 2
    whole, _ = run_step("python", raws[half:], resume=run_step("python", raws[:half])[1])
    for first, then in (("python", "native"), ("native", "python"), ("native", "native")):
        _, snapshot = run_step(first, raws[:half])
        rest, _ = run_step(then, raws[half:], resume=snapshot)
        assert rest == whole, (first, then)


def test_a_native_chunk_pickles_with_its_facts() -> None:
    raws = values(random_history(seed=8, items=50))
    logic = stays_logic("native")(HOUR, None, LATENESS)
    found, _ = logic.on_batch(batches_of(raws, 1000))
    chunks = [o for o in found if not isinstance(o, DeadLetter)]
    assert chunks
    for pipeline, chunk in chunks:
        assert isinstance(chunk.facts, NativeFacts)
        copy = pickle.loads(pickle.dumps((pipeline, chunk)))
        assert normal(copy) == normal((pipeline, chunk))
        assert len(copy[1].facts) == len(chunk.facts) > 0


def test_a_snapshot_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="not a snapshot of the native statistics step"):
        stays_logic("native")(HOUR, b"\x00garbage", LATENESS)
