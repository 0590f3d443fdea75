"""What an operator relies on: the recovery store's fixed settings, Kafka options that
never echo a secret, readable `tail` lines, throttled and JSON logs, metrics and health."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest

from flows.cli import main
from flows.kafka_commands import describe, visible
from flows.logs import JsonFormatter, Throttle
from flows.metrics import JobMetrics, wsgi_app
from flows.recovery_store import STORE_FILE, recovery_store
from flows.settings import parse_kafka_options
from state.errors import ConfigError

UNREACHABLE = "127.0.0.1:1"


# The recovery store -------------------------------------------------------------------------


def test_a_store_resumed_with_other_key_groups_is_refused(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    recovery_store(store, 64)
    assert orjson.loads((tmp_path / "store" / STORE_FILE).read_bytes()) == {"key_groups": 64}
    recovery_store(store, 64)  # the same count resumes
    with pytest.raises(ConfigError, match="made with --key-groups 64, which is fixed"):
        recovery_store(store, 8)


def test_a_store_from_before_the_record_is_adopted(tmp_path: Path) -> None:
    (tmp_path / "part-0.sqlite3").write_bytes(b"")
    recovery_store(str(tmp_path), 16)
    with pytest.raises(ConfigError, match="--key-groups 16"):
        recovery_store(str(tmp_path), 64)


def test_a_recovery_dir_naming_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "store"
    file.write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        recovery_store(str(file), 64)


def test_run_resuming_a_store_with_other_key_groups_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    recovery_store(store, 64)  # as a first run with the default made it
    started = time.monotonic()
    code = main(["run", "--brokers", UNREACHABLE, "--recovery-dir", store, "--key-groups", "8"])
    err = capsys.readouterr().err
    assert code == 2
    assert "made with --key-groups 64, which is fixed for the life of a store" in err
    assert "Traceback" not in err
    assert time.monotonic() - started < 3  # refused before the cluster is asked


def test_run_with_a_recovery_dir_naming_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "store"
    file.write_bytes(b"x")
    started = time.monotonic()
    assert main(["run", "--brokers", UNREACHABLE, "--recovery-dir", str(file)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err
    assert "Traceback" not in err
    assert time.monotonic() - started < 3  # refused before the cluster is asked


# Kafka options and commands -------------------------------------------------------------------


def test_a_binary_kafka_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "client.properties"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    code = main(
        ["produce", "--brokers", UNREACHABLE, "--topic", "t", "--kafka-config", str(config)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "not a text file of KEY=VALUE lines" in err
    assert "Traceback" not in err


def test_an_option_with_a_colon_never_shows_its_value() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_kafka_options(["sasl.password:SECRET"], None)
    assert "SECRET" not in str(bad.value)
    assert "'sasl.password'" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        parse_kafka_options(["SECRET"], None)
    assert "SECRET" not in str(bad.value)


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "create"],
        ["produce", "--topic", "t", "--tombstone", "trigger/acme/t-1"],
        ["tail", "--max", "1"],
    ],
)
def test_an_unreachable_broker_is_one_line_within_seconds(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = main([*command, "--brokers", UNREACHABLE])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the Kafka cluster" in err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("crm-triggers: ")] == [
        err.strip().splitlines()[-1]
    ]
    assert took < 15


def test_tail_shows_control_characters_escaped() -> None:
    line = describe(
        b'{"code": "invalid_json", "origin": {"file": "f", "line": 1}, '
        b'"message": "bad \\u001b[2J here"}'
    )
    assert "\x1b" in line
    assert visible(line).endswith("bad \\x1b[2J here")
    assert visible("a\tb\x00c\u2028") == "a\\tb\\x00c\\u2028"


# Logs ---------------------------------------------------------------------------------------


def record(message: str, level: int = logging.WARNING, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("crm_triggers.kafka", level, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_repeated_warning_is_said_once_then_every_interval() -> None:
    throttle = Throttle(interval=0.2)
    shown = [
        throttle.filter(record(f"Connect to 127.0.0.1:{9092} failed after {n}ms"))
        for n in range(500)
    ]
    assert shown.count(True) == 1  # numbers aside, the same message
    time.sleep(0.25)
    later = record("Connect to 127.0.0.1:9092 failed after 3ms")
    assert throttle.filter(later)
    assert "(and 499 more like it in" in later.getMessage()
    assert throttle.filter(record("another warning"))
    assert all(throttle.filter(record("info", logging.INFO)) for _ in range(3))


def test_json_logs_are_one_object_a_line_with_the_event() -> None:
    line = JsonFormatter().format(
        record("broker lost", event="broker_lost", fields={"client": "producer of worker 0"})
    )
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["event"] == "broker_lost"
    assert parsed["client"] == "producer of worker 0"
    assert parsed["level"] == "warning"
    assert parsed["message"] == "broker lost"


def test_run_logs_as_json_and_never_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "--brokers",
            UNREACHABLE,
            "--log-format",
            "json",
            "--kafka-option",
            "sasl.password=SECRET",
            "--kafka-option",
            "socket.timeout.ms=1000",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "SECRET" not in err


# Metrics and health -------------------------------------------------------------------------


def scrape(metrics: JobMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_metrics_count_what_the_summary_counts() -> None:
    metrics = JobMetrics()
    metrics.name_topics("crm.events", "crm.automation")
    metrics.add_tally(
        Counter(
            {
                "events_read": 10,
                "automation_read": 3,
                "automation_applied": 3,
                "transition": 2,
                "no_match": 5,
                "dlq.invalid_json": 2,
                "automation_dlq.invalid_automation": 1,
                "extra_items": 1,
                "history": 4,
            }
        )
    )
    text = scrape(metrics)
    assert 'crm_triggers_records_read_total{topic="crm.events"} 10.0' in text
    assert 'crm_triggers_records_read_total{topic="crm.automation"} 3.0' in text
    assert 'crm_triggers_records_written_total{output="transitions"} 2.0' in text
    assert 'crm_triggers_records_written_total{output="history"} 4.0' in text
    assert 'crm_triggers_records_written_total{output="dead_letters"} 3.0' in text
    assert 'crm_triggers_decisions_total{outcome="moved"} 2.0' in text
    assert 'crm_triggers_decisions_total{outcome="no_match"} 5.0' in text
    assert 'crm_triggers_dead_letters_total{code="invalid_json",input="events"} 2.0' in text
    metrics.partition_lag("crm.events", 3, 120)
    metrics.group_items(1, 5)
    metrics.group_items(2, 7)
    metrics.group_items(1, 6)
    metrics.snapshot_taken(1000, 0.002)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    metrics.transitions_written([orjson.dumps({"event": {"occurred_at": now}})])
    text = scrape(metrics)
    assert 'crm_triggers_consumer_lag{partition="3",topic="crm.events"} 120.0' in text
    assert "crm_triggers_items_held 13.0" in text
    assert "crm_triggers_snapshot_bytes_total 1000.0" in text
    assert 'crm_triggers_end_to_end_latency_seconds_bucket{le="1.0"} 0.0' in text
    assert 'crm_triggers_end_to_end_latency_seconds_bucket{le="5.0"} 1.0' in text


def call(app: Any, path: str) -> tuple[str, bytes]:
    got: list[str] = []
    body = b"".join(
        app(
            {
                "PATH_INFO": path,
                "REQUEST_METHOD": "GET",
                "QUERY_STRING": "",
            },
            lambda status, headers: got.append(status),
        )
    )
    return got[0], body


def test_ready_once_caught_up_and_live_while_cycles_run(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = JobMetrics()
    app = wsgi_app(metrics)
    metrics.cycle()
    assert call(app, "/healthz")[0].startswith("200")
    assert call(app, "/readyz")[0].startswith("503")
    metrics.add_tally(Counter({"automation_caught_up": 1}))
    status, body = call(app, "/readyz")
    assert status.startswith("200")
    assert orjson.loads(body)["ready"] is True
    monkeypatch.setattr("flows.metrics.STALL_AFTER_S", 0.05)
    time.sleep(0.1)
    assert call(app, "/healthz")[0].startswith("503")
    assert call(app, "/readyz")[0].startswith("503")
    assert b"crm_triggers_items_held 0.0" in call(app, "/metrics")[1]


def test_a_snapshot_is_one_log_line_per_epoch() -> None:
    metrics = JobMetrics()
    seen: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = seen.append  # type: ignore[method-assign]
    job_log = logging.getLogger("crm_triggers.job")
    job_log.addHandler(listener)
    try:
        for _ in range(64):
            metrics.snapshot_taken(1000, 0.001)
        metrics.log_snapshot()
        metrics.log_snapshot()  # nothing new: no line
    finally:
        job_log.removeHandler(listener)
    lines = [r for r in seen if getattr(r, "event", None) == "snapshot"]
    assert len(lines) == 1
    assert lines[0].getMessage().startswith("snapshot: 64 key groups, 64,000 bytes")
