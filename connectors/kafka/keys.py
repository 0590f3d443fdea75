"""The Kafka keys of the job's records: events by item, automation by what it names."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from connectors.records import (
    DEFAULT_CATEGORY,
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_TENANT,
    decode_event,
)
from state.codes import id_text
from state.model import Rejection, is_name


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
    if not is_name(tenant) or not is_name(entity) or not item_id:
        return None
    return f"{tenant}/{entity}/{item_id}".encode()


def automation_key(obj: Any) -> bytes | None:
    """`trigger/<tenant>/<id>` or `pipeline/<tenant>/<entity>/<category>`, or None."""
    if type(obj) is not dict:
        return None
    tenant = obj.get("tenant") or DEFAULT_TENANT
    if not is_name(tenant):
        return None
    kind = obj.get("kind")
    if kind == "trigger":
        trigger_id = id_text(obj.get("id"))
        return f"trigger/{tenant}/{trigger_id}".encode() if trigger_id else None
    if kind == "pipeline":
        entity = obj.get("entity")
        category = id_text(obj.get("category")) or DEFAULT_CATEGORY
        return f"pipeline/{tenant}/{entity}/{category}".encode() if is_name(entity) else None
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


def per_item_copies(
    line: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> list[tuple[bytes | None, bytes]]:
    """A record as (Kafka key, value) pairs: an event naming several items as one copy
    per item, keyed by that item; anything else as it is, keyed by `record_key`.

    A copy is the event with `items` replaced by that item's reference (hint
    included), so it is an ordinary single-item event: its transition has the id the
    original's has for that item (the id depends on the item and the event id only),
    and every item's events stay in its own partition. An item named twice gets one
    copy, from its first mention, as the job decides it once. An event the job would
    reject whole (too large, too many items, a bad item reference) is not split: it
    stays one record and one dead letter.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return [(record_key(line), line)]
    if (
        type(obj) is not dict
        or obj.get("kind") is not None
        or not isinstance(obj.get("items"), list)
        or len(obj["items"]) < 2
        or type(decode_event(line, max_bytes)) is Rejection
    ):
        return [(record_key(line), line)]
    copies: dict[bytes, bytes] = {}
    for ref in obj["items"]:
        copy = {
            ("item" if name == "items" else name): (ref if name == "items" else value)
            for name, value in obj.items()
        }
        key = event_key(copy)
        if key is not None and key not in copies:
            copies[key] = orjson.dumps(copy)
    return list(copies.items())
