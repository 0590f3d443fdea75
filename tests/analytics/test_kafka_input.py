"""`report` and `diff` read a topic from its beginning to its current end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import orjson
import pytest

from connectors.kafka import (
    KafkaSettings,
    Topics,
    create_topics,
    delete_topics,
    produce_records,
    topic_plans,
)
from flows.cli import main
from tests.analytics.conftest import Write
from tests.analytics.test_diff import BASE
from tests.analytics.test_figures import the_history

pytestmark = pytest.mark.integration


@pytest.fixture
def topics() -> Iterator[tuple[str, KafkaSettings, Topics]]:
    brokers = os.environ.get("CRM_TRIGGERS_BROKERS")
    if not brokers:
        pytest.skip("CRM_TRIGGERS_BROKERS is not set (scripts/test.sh sets it)")
    kafka = KafkaSettings(brokers)
    tag = f"test-{uuid.uuid4().hex[:12]}"
    made = Topics(f"{tag}.history", f"{tag}.automation", f"{tag}.transitions", f"{tag}.dlq")
    create_topics(kafka, topic_plans(made, 3), replication_factor=1)
    yield brokers, kafka, made
    delete_topics(kafka, list(made.all()))


def test_report_and_diff_of_topics_equal_those_of_files(
    topics: tuple[str, KafkaSettings, Topics],
    write: Write,
    capsys: pytest.CaptureFixture[str],
) -> None:
    brokers, kafka, made = topics
    history = the_history()
    # Keyed by item, as the job writes them: each item's records stay in order.
    produce_records(
        kafka,
        made.events,
        ((f"acme/deal/{r['item']['id']}".encode(), orjson.dumps(r)) for r in history),
    )
    produce_records(kafka, made.transitions, ((None, orjson.dumps(t)) for t in BASE))
    assert (
        main(
            [
                "report",
                "--history",
                f"kafka:{made.events}",
                "--brokers",
                brokers,
                "--format",
                "json",
            ]
        )
        == 0
    )
    from_topic = orjson.loads(capsys.readouterr().out)
    assert main(["report", "--history", write("h.jsonl", history), "--format", "json"]) == 0
    from_file = orjson.loads(capsys.readouterr().out)
    assert from_topic["pipelines"] == from_file["pipelines"]
    assert from_topic["cohorts"] == from_file["cohorts"]
    assert (
        main(
            [
                "diff",
                "--base",
                f"kafka:{made.transitions}",
                "--other",
                write("t.jsonl", BASE),
                "--brokers",
                brokers,
            ]
        )
        == 0
    )
    assert "The two logs hold the same transitions." in capsys.readouterr().out


def test_a_missing_topic_is_one_line(
    topics: tuple[str, KafkaSettings, Topics], capsys: pytest.CaptureFixture[str]
) -> None:
    brokers, _, _ = topics
    code = main(["report", "--history", f"kafka:missing-{uuid.uuid4().hex}", "--brokers", brokers])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
