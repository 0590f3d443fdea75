"""Kafka keys, tombstones and settings: what needs no broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.kafka import KafkaSettings, automation_key, event_key, record_key
from connectors.records import parse_automation
from connectors.tombstones import rfc3339_ms, tombstone_record
from flows.settings import LiveSettings
from state.errors import ConfigError
from state.model import BEGINNING, Deletion, Rejection

names = st.text(st.characters(exclude_characters="/", exclude_categories=("Cs",)), min_size=1)
ids = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1), st.integers(0, 10**12)
)
times = st.integers(0, 4_102_444_800_000)  # up to 2100


def test_an_event_is_keyed_by_its_first_item() -> None:
    one = {"tenant": "acme", "item": {"entity": "deal", "id": 42}}
    several = {"items": [{"entity": "lead", "id": "7"}, {"entity": "deal", "id": "1"}]}
    assert event_key(one) == b"acme/deal/42"
    assert event_key(several) == b"default/lead/7"
    assert event_key({"item": {"entity": "deal"}}) is None
    assert event_key([1, 2]) is None


def test_automation_records_are_keyed_by_what_they_name() -> None:
    trigger = {"kind": "trigger", "tenant": "acme", "id": "t-17", "code": "WEBFORM"}
    pipeline = {"kind": "pipeline", "entity": "deal", "stages": []}
    assert automation_key(trigger) == b"trigger/acme/t-17"
    assert automation_key(pipeline | {"category": 2}) == b"pipeline/default/deal/2"
    assert automation_key(pipeline) == b"pipeline/default/deal/0"
    assert automation_key({"kind": "robot"}) is None


def test_a_line_without_a_usable_key_gets_none_or_a_stable_one_on_a_compacted_topic() -> None:
    assert record_key(b"not json") is None
    assert record_key(b"\xff\xfe") is None
    compacted = record_key(b"not json", compacted=True)
    assert compacted is not None and compacted.startswith(b"unkeyed/")
    assert record_key(b"not json", compacted=True) == compacted
    assert record_key(b'{"kind": "trigger", "id": 5}', compacted=True) == b"trigger/default/5"


@given(tenant=names, trigger_id=ids, at=times)
def test_a_trigger_tombstone_deletes_the_trigger_its_key_names(
    tenant: str, trigger_id: Any, at: int
) -> None:
    key = automation_key({"kind": "trigger", "tenant": tenant, "id": trigger_id})
    assert key is not None
    record = parse_automation(tombstone_record(key, at))
    assert isinstance(record, Deletion)
    assert (record.kind, record.tenant, record.key) == ("trigger", tenant, (str(trigger_id),))
    assert record.updated_at == datetime.fromtimestamp(at / 1000, UTC)


@given(tenant=names, entity=names, category=ids, at=times)
def test_a_pipeline_tombstone_deletes_the_pipeline_its_key_names(
    tenant: str, entity: str, category: Any, at: int
) -> None:
    key = automation_key(
        {"kind": "pipeline", "tenant": tenant, "entity": entity, "category": category}
    )
    assert key is not None
    record = parse_automation(tombstone_record(key, at))
    assert isinstance(record, Deletion)
    assert (record.kind, record.tenant, record.key) == (
        "pipeline",
        tenant,
        (entity, str(category)),
    )
    assert record.updated_at != BEGINNING


@pytest.mark.parametrize(
    "key",
    [None, b"", b"trigger/acme", b"trigger//t1", b"pipeline/acme/deal", b"robot/x/y", b"\xff"],
)
def test_a_tombstone_key_that_names_nothing_is_invalid_automation(key: bytes | None) -> None:
    rejection = tombstone_record(key, 0)
    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_automation"
    assert "trigger/<tenant>/<id>" in rejection.message


def test_the_time_of_a_tombstone_is_rfc3339_in_utc() -> None:
    assert rfc3339_ms(1_764_064_800_123) == "2025-11-25T10:00:00.123Z"
    assert isinstance(tombstone_record(b"trigger/acme/t1", -1), Rejection)
    assert orjson.loads(orjson.dumps(tombstone_record(b"trigger/acme/t1", 0)))["deleted"] is True


def test_secrets_never_show() -> None:
    options = {
        "sasl.username": "svc",
        "sasl.password": "hunter2",
        "ssl.key.password": "k",
        "sasl.oauthbearer.client.secret": "s",
        "client.id": "crm",
    }
    settings = LiveSettings.build(
        {"brokers": "kafka:9093", "kafka_option": [f"{k}={v}" for k, v in options.items()]}
    )
    for shown in (repr(settings), repr(settings.kafka)):
        assert "hunter2" not in shown and "'k'" not in shown and "'s'" not in shown
        assert "crm" in shown
    assert settings.kafka.producer_config()["sasl.password"] == "hunter2"


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({}, "--brokers (CRM_TRIGGERS_BROKERS)"),
        ({"brokers": "localhost"}, "--brokers"),
        ({"brokers": "h:1", "kafka_option": ["acks=1"]}, "acks"),
        ({"brokers": "h:1", "kafka_option": ["enable.auto.commit=true"]}, "enable.auto.commit"),
        ({"brokers": "h:1", "kafka_option": ["sasl.password"]}, "KEY=VALUE"),
        ({"brokers": "h:1", "events_topic": "bad topic"}, "--events-topic"),
        ({"brokers": "h:1", "events_topic": "crm.automation"}, "must differ"),
        ({"brokers": "h:1", "snapshot_interval": "0"}, "--snapshot-interval"),
        ({"brokers": "h:1", "start_from": "middle"}, "--start-from"),
        ({"brokers": "h:1", "process_id": "1"}, "--addresses"),
        ({"brokers": "h:1", "summary_interval": "soon"}, "--summary-interval"),
    ],
)
def test_bad_live_settings_fail_fast_naming_the_setting(values: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace("(", r"\(").replace(")", r"\)")):
        LiveSettings.build(values)


def test_live_settings_come_from_the_environment() -> None:
    settings = LiveSettings.from_env(
        {
            "CRM_TRIGGERS_BROKERS": "a:1, b:2",
            "CRM_TRIGGERS_KAFKA_OPTIONS": "client.id=x; security.protocol=SASL_SSL",
            "CRM_TRIGGERS_EVENTS_TOPIC": "in",
            "CRM_TRIGGERS_WORKERS": "3",
            "CRM_TRIGGERS_UNTIL_END": "yes",
            "CRM_TRIGGERS_ADDRESSES": "h1:2101;h2:2101",
            "CRM_TRIGGERS_PROCESS_ID": "1",
        }
    )
    assert settings.kafka == KafkaSettings(
        "a:1,b:2", {"client.id": "x", "security.protocol": "SASL_SSL"}
    )
    assert settings.topics.events == "in" and settings.topics.automation == "crm.automation"
    assert (settings.workers, settings.until_end, settings.process_id) == (3, True, 1)
    assert settings.addresses == ("h1:2101", "h2:2101")
