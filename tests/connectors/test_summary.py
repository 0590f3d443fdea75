"""The one summary sink: a replay's report at the end, a live job's progress lines."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import connectors.kafka
from connectors.summary import Summary, SummarySink, progress_line


def partition(sink: SummarySink) -> Any:
    [name] = sink.list_parts()
    return sink.build_part("summary", name, None)


def test_a_replay_reports_its_counts_once_at_the_end_even_with_nothing_read() -> None:
    reports: list[Summary] = []
    part = partition(SummarySink(reports.append))
    part.write_batch([Counter(events_read=2, transition=1), Counter(events_read=3)])
    part.snapshot()
    assert reports == []
    part.close()
    [summary] = reports
    assert (summary.events_read, summary.counts["transition"]) == (5, 1)

    empty: list[Summary] = []
    partition(SummarySink(empty.append)).close()
    assert [s.events_read for s in empty] == [0]


def test_a_live_job_shows_progress_at_each_epoch_and_reports_only_what_it_saw() -> None:
    lines: list[str] = []
    reports: list[Summary] = []
    part = partition(SummarySink(reports.append, lines.append, interval=3600))
    part.write_batch([Counter(events_read=4, transition=2, automation_caught_up=1)])
    assert lines == []  # not due before the interval
    part.snapshot()
    assert len(lines) == 1 and lines[0].startswith("events read 4 (")
    assert "transitions 2" in lines[0]
    part.snapshot()
    assert len(lines) == 1  # nothing new, no line
    part.close()
    assert [s.events_read for s in reports] == [4]

    nothing: list[Summary] = []
    partition(SummarySink(nothing.append, lines.append)).close()
    assert nothing == []


def test_progress_says_when_automation_is_still_loading() -> None:
    assert progress_line(Counter(), 0.0).endswith("waiting for automation to load")
    assert "waiting" not in progress_line(Counter(automation_caught_up=1), 0.0)


@pytest.mark.parametrize(
    "name",
    [
        # Every name other modules imported from the single-module connector.
        "AutomationPartition",
        "DEFAULT_BATCH_SIZE",
        "EventsPartition",
        "KafkaSettings",
        "KafkaSink",
        "KafkaSource",
        "PeriodicSummarySink",
        "Produced",
        "Producers",
        "Topics",
        "admin_client",
        "automation_key",
        "caught_up_marker",
        "create_topics",
        "delete_topics",
        "event_key",
        "is_compacted",
        "masked",
        "print_line",
        "produce_records",
        "read_topic",
        "record_key",
        "tombstone_record",
        "topic_partitions",
        "topic_plans",
    ],
)
def test_the_kafka_package_keeps_every_name_of_the_old_module(name: str) -> None:
    assert name in connectors.kafka.__all__
    assert getattr(connectors.kafka, name) is not None


def test_the_old_periodic_sink_is_the_one_summary_sink() -> None:
    reports: list[Summary] = []
    sink = connectors.kafka.PeriodicSummarySink(5.0, print, reports.append)
    assert isinstance(sink, SummarySink)
    assert (sink.interval, sink.report) == (5.0, reports.append)
