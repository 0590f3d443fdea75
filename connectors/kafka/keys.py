"""The Kafka keys of the job's records: events by item, automation by what it names."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from connectors.records import DEFAULT_CATEGORY, DEFAULT_TENANT
from connectors.tombstones import plain_name
from state.codes import id_text


def event_key(obj: Any) -> bytes | None:
    """`<tenant>/<entity>/<id>` of an event's (first) item, or None if it names none."""
    if type(obj) is not dict:
        return None
    ref = obj.get("item")
    if ref is None:
        items = obj.get("items")
        ref = items[0] if isinstance(items, list) and items else None
    if type(ref) is not dict:
        return None
    tenant = obj.get("tenant") or DEFAULT_TENANT
    entity, item_id = ref.get("entity"), id_text(ref.get("id"))
    if not plain_name(tenant) or not plain_name(entity) or not item_id:
        return None
    return f"{tenant}/{entity}/{item_id}".encode()


def automation_key(obj: Any) -> bytes | None:
    """`trigger/<tenant>/<id>` or `pipeline/<tenant>/<entity>/<category>`, or None."""
    if type(obj) is not dict:
        return None
    tenant = obj.get("tenant") or DEFAULT_TENANT
    if not plain_name(tenant):
        return None
    kind = obj.get("kind")
    if kind == "trigger":
        trigger_id = id_text(obj.get("id"))
        return f"trigger/{tenant}/{trigger_id}".encode() if trigger_id else None
    if kind == "pipeline":
        entity = obj.get("entity")
        category = id_text(obj.get("category")) or DEFAULT_CATEGORY
        return f"pipeline/{tenant}/{entity}/{category}".encode() if plain_name(entity) else None
    return None


def record_key(line: bytes, compacted: bool = False) -> bytes | None:
    """The Kafka key of a JSON Lines record: automation or event by its shape.

    A record with no usable key gets none (the job dead-letters it), except on a
    compacted topic, which refuses records without a key: there it is keyed
    `unkeyed/<hash of the record>`, and the job dead-letters it all the same.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if type(obj) is dict and obj.get("kind") is not None:
        key = automation_key(obj)
    else:
        key = event_key(obj)
    if key is None and compacted:
        return b"unkeyed/" + hashlib.sha256(line).hexdigest()[:24].encode()
    return key
