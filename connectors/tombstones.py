"""Kafka tombstones on the automation topic, read as the deletions they stand for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from state.model import Rejection, is_name


def rfc3339_ms(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tombstone_record(key: bytes | None, timestamp_ms: int) -> dict[str, Any] | Rejection:
    """The deletion record (spec 2.1) a tombstone on the automation topic stands for.

    The key names the record (`trigger/<tenant>/<id>`, `pipeline/<tenant>/<entity>/<category>`)
    and the Kafka timestamp is its `updated_at`; anything else is `invalid_automation`.
    """
    expected = "trigger/<tenant>/<id> or pipeline/<tenant>/<entity>/<category>"
    try:
        text = key.decode() if key is not None else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        return Rejection(
            "invalid_automation",
            f"tombstone (null value) with key {key!r}: expected a UTF-8 key {expected}",
        )
    if timestamp_ms < 0:
        return Rejection(
            "invalid_automation",
            f"tombstone with key {text!r} has no timestamp, so no time to delete at",
        )
    kind, _, rest = text.partition("/")
    updated_at = rfc3339_ms(timestamp_ms)
    if kind == "trigger":
        tenant, _, trigger_id = rest.partition("/")
        if is_name(tenant) and trigger_id:
            return {
                "kind": "trigger",
                "tenant": tenant,
                "id": trigger_id,
                "deleted": True,
                "updated_at": updated_at,
            }
    elif kind == "pipeline":
        tenant, entity, category = [*rest.split("/", 2), "", ""][:3]
        if is_name(tenant) and is_name(entity) and category:
            return {
                "kind": "pipeline",
                "tenant": tenant,
                "entity": entity,
                "category": category,
                "deleted": True,
                "updated_at": updated_at,
            }
    return Rejection(
        "invalid_automation", f"tombstone (null value) with key {text!r}: expected {expected}"
    )
