"""Trigger changes while the job runs: each takes effect for events after its updated_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, produce_records
from connectors.tombstones import tombstone_record
from tests.conftest import Replay
from tests.integration.conftest import Job, StartJob, dumps, produce_lines, read_json

pytestmark = pytest.mark.integration

BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PIPELINE = {
    "kind": "pipeline",
    "tenant": "acme",
    "entity": "deal",
    "category": "0",
    "stages": [
        {"id": "NEW", "semantic": "process"},
        {"id": "PREPARATION", "semantic": "process"},
        {"id": "PROPOSAL", "semantic": "process"},
        {"id": "WON", "semantic": "success"},
        {"id": "LOSE", "semantic": "failure"},
    ],
}


def at(minute: int) -> str:
    return (BASE + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


def ms(minute: int) -> int:
    return int((BASE + timedelta(minutes=minute)).timestamp() * 1000)


def webform(trigger_id: str, form_id: str, stage: str, minute: int) -> dict[str, Any]:
    return {
        "kind": "trigger",
        "tenant": "acme",
        "id": trigger_id,
        "entity": "deal",
        "category": "0",
        "stage": stage,
        "code": "WEBFORM",
        "params": {"form_id": form_id},
        "updated_at": at(minute),
    }


def deal(item: str, created: int, form_id: str, submitted: int) -> list[dict[str, Any]]:
    """A new deal, then a web form of it."""
    return [
        {
            "id": f"c-{item}",
            "type": "item.created",
            "tenant": "acme",
            "occurred_at": at(created),
            "item": {"entity": "deal", "id": item},
            "data": {"category": "0", "stage": "NEW"},
        },
        {
            "id": f"f-{item}",
            "type": "form.submitted",
            "tenant": "acme",
            "occurred_at": at(submitted),
            "item": {"entity": "deal", "id": item},
            "data": {"form_id": form_id},
        },
    ]


def test_create_move_copy_delete_while_running(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay
) -> None:
    topics = make_topics(partitions=2)
    automation: list[bytes] = []
    events: list[bytes] = []

    def change(record: dict[str, Any] | None, job: Job, applied: int) -> None:
        if record is not None:
            automation.extend(dumps([record]))
            produce_lines(kafka, topics.automation, dumps([record]))
        job.wait_until(lambda c: c["applied"] >= applied)

    def send(*deals: list[dict[str, Any]]) -> None:
        lines = dumps(e for d in deals for e in d)
        events.extend(lines)
        produce_lines(kafka, topics.events, lines)

    # Created before the job starts: read before any event is decided.
    automation.extend(dumps([PIPELINE, webform("t-a", "1", "PREPARATION", 0)]))
    produce_lines(kafka, topics.automation, automation)
    job = start_job(topics)
    send(deal("1", 1, "1", 2))

    # Move: same id, a new stage from minute 10. A deal whose form came at minute 5
    # arrives after the move and still gets the stage of then.
    change(webform("t-a", "1", "PROPOSAL", 10), job, 3)
    send(deal("2", 11, "1", 12), deal("3", 4, "1", 5))

    # Copy: a new id on another form, from minute 20.
    change(webform("t-b", "2", "WON", 20), job, 4)
    send(deal("4", 21, "2", 22), deal("5", 14, "2", 15))

    # Delete with a deletion record, from minute 30.
    deletion = {"kind": "trigger", "tenant": "acme", "id": "t-a", "deleted": True}
    change(deletion | {"updated_at": at(30)}, job, 5)
    send(deal("6", 31, "1", 32), deal("7", 25, "1", 26))

    # Delete with a Kafka tombstone, at its record timestamp: minute 40.
    produce_records(kafka, topics.automation, [(b"trigger/acme/t-b", None)], ms(40))
    automation.append(orjson.dumps(tombstone_record(b"trigger/acme/t-b", ms(40))))
    change(None, job, 6)
    send(deal("8", 41, "2", 42), deal("9", 35, "2", 36))

    job.wait_until(lambda c: c["events_read"] >= len(events))
    job.stop()
    moves = {
        t["item"]["id"]: (t["to_stage"], t["trigger"]["id"])
        for t in read_json(kafka, topics.transitions)
    }
    assert moves == {
        "1": ("PREPARATION", "t-a"),
        "2": ("PROPOSAL", "t-a"),
        "3": ("PREPARATION", "t-a"),
        "4": ("WON", "t-b"),
        "7": ("PROPOSAL", "t-a"),
        "9": ("WON", "t-b"),
    }
    reference = replay(automation, events)
    assert moves == {
        t["item"]["id"]: (t["to_stage"], t["trigger"]["id"]) for t in reference.transitions
    }
