"""Bad records on both input topics become dead letters with topic, partition and offset."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from connectors.kafka import KafkaSettings, produce_records
from tests.integration.conftest import StartJob, dumps, produce_lines, read_json

pytestmark = pytest.mark.integration

PIPELINE = {
    "kind": "pipeline",
    "tenant": "acme",
    "entity": "deal",
    "category": "0",
    "stages": [{"id": "NEW"}, {"id": "PREPARATION"}, {"id": "WON", "semantic": "success"}],
}
WEBFORM = {
    "kind": "trigger",
    "tenant": "acme",
    "id": "t-17",
    "entity": "deal",
    "category": "0",
    "stage": "PREPARATION",
    "code": "WEBFORM",
    "params": {"form_id": "12"},
}


def event(event_id: str, etype: str = "form.submitted", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": etype,
        "tenant": "acme",
        "occurred_at": "2026-11-02T10:00:00Z",
        "item": {"entity": "deal", "id": "42"},
        "data": {"form_id": "12"},
    } | extra


def test_bad_records_are_dead_letters_and_the_job_goes_on(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob
) -> None:
    topics = make_topics(partitions=1)
    good_automation = produce_lines(kafka, topics.automation, dumps([PIPELINE, WEBFORM]))
    bad_automation = produce_lines(
        kafka,
        topics.automation,
        [b'{"kind": "trigger", "id": "t-9", "code": "TELEPATHY"}', b"{not json"],
    )
    tombstones = produce_records(
        kafka, topics.automation, [(b"trigger/acme", None), (b"\xff\xfe", None)]
    )
    created = event("c-42", "item.created", data={"stage": "NEW", "category": "0"})
    produce_lines(kafka, topics.events, dumps([created]))
    bad_events = produce_lines(
        kafka,
        topics.events,
        [
            b"not json",
            b"\xff\xfe{",
            *dumps(
                [
                    event("e-1", "sms.received"),
                    {k: v for k, v in event("e-2").items() if k != "occurred_at"},
                    event("e-3", data={"form_id": "12", "note": "x" * 5000}),
                ]
            ),
        ],
    )
    empty = produce_records(kafka, topics.events, [(b"acme/deal/42", None)])
    produce_lines(kafka, topics.events, dumps([event("e-4")]))

    start_job(topics, "--max-record-bytes", "4096", until_end=True).finish()

    letters = {
        (d["origin"]["topic"], d["origin"]["offset"]): d
        for d in read_json(kafka, topics.dead_letters)
    }
    expected = {
        (topics.automation, bad_automation.positions[0][1]): "invalid_automation",
        (topics.automation, bad_automation.positions[1][1]): "invalid_json",
        (topics.automation, tombstones.positions[0][1]): "invalid_automation",
        (topics.automation, tombstones.positions[1][1]): "invalid_automation",
        (topics.events, bad_events.positions[0][1]): "invalid_json",
        (topics.events, bad_events.positions[1][1]): "invalid_json",
        (topics.events, bad_events.positions[2][1]): "unknown_event_type",
        (topics.events, bad_events.positions[3][1]): "invalid_record",
        (topics.events, bad_events.positions[4][1]): "too_large",
        (topics.events, empty.positions[0][1]): "invalid_record",
    }
    assert {where: d["code"] for where, d in letters.items()} == expected
    assert all(d["origin"]["partition"] == 0 for d in letters.values())
    not_utf8 = letters[(topics.events, bad_events.positions[1][1])]
    assert not_utf8["encoding"] == "base64"
    assert base64.b64decode(not_utf8["record"]) == b"\xff\xfe{"
    assert "trigger/acme" in letters[(topics.automation, tombstones.positions[0][1])]["message"]
    assert "occurred_at" in letters[(topics.events, bad_events.positions[3][1])]["message"]
    assert good_automation.records == 2

    [moved] = read_json(kafka, topics.transitions)
    assert (moved["event"]["id"], moved["to_stage"]) == ("e-4", "PREPARATION")
