"""The Parquet cache of typed logs: the same report from it, a changed log read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analytics import load
from analytics.figures import Scope
from analytics.load import Skipped, connect
from analytics.report import Report, ReportInputs, build_report
from tests.analytics.conftest import at, record, transition_of
from tests.conftest import jsonl


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(load.CACHE_ENV, str(folder))
    monkeypatch.setattr(load, "CACHE_MIN_BYTES", 0)
    return folder


def history(items: int) -> list[dict]:
    records = []
    for n in range(items):
        item = f"i{n}"
        records.append(record(item, "created", "NEW", at(0, n)))
        records.append(record(item, "trigger", "A", at(1, n), "NEW", trigger="t-A"))
    records.append({"not": "a history record"})
    return records


def report(paths: list[Path], transitions: list[Path]) -> tuple[Report, Skipped]:
    skipped = Skipped()
    inputs = ReportInputs(
        history=[str(p) for p in paths], transitions=[str(p) for p in transitions]
    )
    return build_report(connect(), inputs, Scope(), skipped), skipped


def test_a_second_report_reads_the_cache_and_gives_the_same_figures(
    tmp_path: Path, cache: Path
) -> None:
    first, second = tmp_path / "h1.jsonl", tmp_path / "h2.jsonl"
    first.write_bytes(jsonl(history(3)))
    second.write_bytes(jsonl([record("j", "created", "NEW", at(2))]))
    moves = tmp_path / "t.jsonl"
    moves.write_bytes(jsonl([transition_of(r) for r in history(3)[:-1] if r["kind"] == "trigger"]))

    fresh, skipped = report([first, second], [moves])
    assert len(list(cache.glob("*.parquet"))) == 3
    from_cache, skipped_again = report([first, second], [moves])
    assert from_cache == fresh
    assert (
        skipped_again.counts
        == skipped.counts
        == {"history lines that are not valid 6.1 records": 1}
    )
    # the cache is what was read: emptied of rows, the report shows no item
    for file in cache.glob("*.parquet"):
        db = connect()
        db.execute(f"COPY (SELECT * FROM '{file}' LIMIT 0) TO '{file}' (FORMAT parquet)")
    emptied, _ = report([first, second], [moves])
    assert emptied["pipelines"] == []


def test_a_changed_log_is_read_again_and_replaces_its_entry(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(jsonl(history(2)))
    before, _ = report([path], [])
    path.write_bytes(jsonl(history(5)))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after, _ = report([path], [])
    entered = after["pipelines"][0]["stages"][0]["entered"]
    assert (before["pipelines"][0]["stages"][0]["entered"], entered) == (2, 5)
    assert len(list(cache.glob("*.parquet"))) == 1


def test_an_unreadable_cache_entry_is_parsed_again(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(jsonl(history(2)))
    fresh, _ = report([path], [])
    [entry] = cache.glob("*.parquet")
    entry.write_bytes(b"not parquet")
    again, _ = report([path], [])
    assert again == fresh
    assert entry.read_bytes()[:4] == b"PAR1"


def test_no_cache_when_turned_off_or_for_small_logs(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(jsonl(history(2)))
    monkeypatch.setenv(load.CACHE_ENV, "off")
    report([path], [])
    monkeypatch.setenv(load.CACHE_ENV, str(cache))
    monkeypatch.setattr(load, "CACHE_MIN_BYTES", path.stat().st_size + 1)
    report([path], [])
    assert not cache.exists()
