"""Independent reference implementation (test oracle) of the CRM stage-trigger contract.

Written from /work/shared/spec.md sections 2, 3 and 4 only, for differential testing.
Clarity over speed: every event scans the whole trigger table.

Public API
----------
``decide(automation, events, what_if=False, max_record_bytes=1<<20) -> (transitions, dead_letters)``

The windows of docs/decisions.md ("Duplicates", "Echoes") are ``SEEN_WINDOW`` and
``ECHO_WINDOW`` below, in one place: a change of the documented windows is a one-line edit
here (and ``Oracle``/``decide`` take them as arguments for tests of other widths).

``Oracle`` is the same engine, fed one event at a time (``Oracle.feed``); ``decide`` is a thin
wrapper around it.

Interpretation choices (where the spec is silent or ambiguous)
-------------------------------------------------------------
Records and parsing

 1. Record bytes longer than ``max_record_bytes`` (strictly greater) are ``too_large``; this is
    checked before parsing. A ``str`` record is measured as its UTF-8 encoding.
 2. A record that is not UTF-8 or not JSON is ``invalid_json`` (parsed with orjson: NaN/Infinity
    are rejected, duplicate keys keep the last value, integers beyond 64 bits become floats and
    are therefore not valid ids).
 3. A blank record (empty or only whitespace, e.g. an empty JSONL line) is not a record: it is
    skipped without a dead letter, but it still occupies its index.
 4. Valid JSON that is not an object: ``invalid_record`` for events, ``invalid_automation`` for
    automation records. Every other problem with an automation record is ``invalid_automation``.
 5. Ids (event id, item id, category, stage ids, trigger id, transition_id, param values)
    are non-empty strings or integers (read as their decimal string); a float that is a whole
    number (``12.0``) is read as ``"12"`` (docs/decisions.md, "Ids"). Booleans, other floats
    and the empty string are not ids. ``tenant`` and ``entity`` are names: a non-empty string
    without ``/`` (they form keys); ``tenant`` absent or null = "default".
 6. ``category`` absent or null = "0" on pipelines and triggers. For an item created without a
    category (``item.created``, unknown item seen via ``item.stage_changed``, hint without a
    category) the category is the item reference's hint category if any, else "0".
 7. Times: read as docs/decisions.md says ("Times"): Python's ISO 8601 reader
    (``datetime.fromisoformat``), which takes RFC 3339 and a few other ISO forms
    (``20261125T100000Z``, a space for ``T``); a time without a zone is invalid. Times compare
    as instants to the microsecond. ``occurred_at`` is echoed as the original string.
 8. ``updated_at`` absent or null = in force from the beginning of time.
 9. Events: generic checks first, in this order: ``id``, ``type`` (must be a string),
    ``occurred_at``, ``tenant``, ``item``/``items``, ``data`` -> ``invalid_record``; then an
    unknown ``type`` -> ``unknown_event_type``; then the type-specific ``data`` checks ->
    ``invalid_record``. Record-level dead letters have ``item`` = None.
10. Exactly one of ``item`` / ``items`` (non-null) must be present, else ``invalid_record``.
    ``items`` must be a non-empty list. One malformed item reference makes the whole record
    ``invalid_record``. An item named twice in ``items`` is decided once, by its first
    mention (docs/decisions.md, "``item`` and ``items``"); the later mentions are not outcomes.
11. ``data`` absent or null = {}; otherwise it must be an object. Type-specific requirements:
    ``item.created`` needs ``data.stage`` (id); ``data.category`` optional id; ``data.fields``
    optional object. ``item.updated`` needs ``data.changes`` (object, may be empty).
    ``item.stage_changed`` needs ``data.stage`` (id); ``category`` and ``transition_id`` optional
    ids. ``item.deleted`` and activity events need nothing in ``data``.
12. A hint is the item reference's ``stage`` (id) and optional ``category`` (id); a hint
    without a stage is no hint. A hint is used only when the item is unknown (never seen by any
    lifecycle event or earlier hint); it then becomes the item's persisted state (fields {}),
    unless the item's outcome is a dead letter.

Automation table

13. Pipeline: ``entity`` (required), ``category`` (default "0"), ``stages`` (required non-empty
    list of objects with a unique id and ``semantic`` in process/success/failure).
    Trigger: ``id``, ``entity``, ``stage``, ``code`` required; ``category`` default "0";
    ``params`` absent/null = {} else an object; ``allow_backwards`` absent/null = false else a
    bool; ``sort`` absent/null = 0 else a number; ``condition`` absent/null = always true.
    ``deleted`` must be a bool if present; ``deleted: true`` needs only the key fields
    (trigger id; pipeline entity/category).
14. Params are validated per code: only the params of the code's row in the table are read,
    other keys are ignored. Scalar params (form_id, template_id, url, line, text, status, code,
    app_id) must be an id (string/int) or null/"" (= any); ``fields`` must be null, [] (= any)
    or a list of non-empty strings. WEBHOOK without a non-empty ``code``, or APP without both
    ``app_id`` and ``code``, is ``invalid_automation``.
15. "A stage that is not in its pipeline": a trigger is checked against the pipeline
    (tenant, entity, category) formed by the VALID automation records EARLIER in the list, taking
    its latest version (highest updated_at, ties: later in the list). If there is no such
    pipeline, or its latest version is a deletion, the trigger is accepted unchecked.
16. Versions of one key (trigger: tenant+id; pipeline: tenant+entity+category): the version in
    force at time t is the one with the greatest updated_at <= t (missing updated_at = -inf);
    ties on updated_at go to the one later in the list. If that version is a deletion, or none
    is in force, the record does not exist at t. A trigger may move to another pipeline by an
    upsert (its key is tenant+id only).
17. What-if: every key uses the version that sorts last by (updated_at, list position), with
    missing updated_at = -inf; if that is a deletion the record does not exist. That is exactly
    "the table at t = +infinity".
18. At decision time, a trigger whose stage is not in the pipeline in force (e.g. the pipeline
    lost that stage in a later version) is not a candidate; it is silently skipped.

Deciding an event, per item

19. Duplicate check first: (tenant, entity, item id, event id) among the item's last
    ``SEEN_WINDOW`` seen event ids -> ignored (counted). Every outcome except a dead letter and
    a duplicate marks the id as seen, including counted no-ops (deleted item, missing pipeline,
    no trigger matched) and lifecycle events; a repeat older than the window is decided again
    (docs/decisions.md, "Duplicates"). Seen ids survive ``item.deleted`` and ``item.created``.
20. ``item.created`` always (re)creates a live item with the given category, stage and fields,
    replacing any previous or deleted state. It is never ``unknown_stage`` (it fires nothing).
21. ``item.deleted``: a live item becomes deleted; an unknown item is recorded as deleted (so its
    later events are counted no-ops, not ``unknown_item``); an already deleted item: no-op.
22. While an item is deleted, every event except ``item.created`` is a counted no-op,
    including ``item.stage_changed``, ``item.updated`` (its field changes are NOT applied) and
    ``item.deleted``; hints are ignored.
23. ``item.stage_changed`` on an unknown item creates it live (fields {}). On a live item:
    if ``transition_id`` is the id of one of the last ``ECHO_WINDOW`` transitions this job
    emitted FOR THIS ITEM and the event names that transition's ``to_stage`` (its category is
    not compared), it is a confirmation and changes nothing (so a late echo of a recent
    transition does NOT move the item back to the older stage; an echo older than the window is
    a CRM move, docs/decisions.md "Echoes"). The window survives ``item.deleted`` and
    ``item.created``. Otherwise (no transition_id, an unknown id, or another stage)
    the item adopts ``data.stage`` and, if given, ``data.category``. Stages are not checked
    against the pipeline.
24. ``item.updated``: field changes are merged into the item's fields (a null value sets the
    field to null, which is empty). ``STAGE_ID``/``CATEGORY_ID`` in ``changes`` are stored as
    ordinary fields and do not move the item. Conditions see only the item's ``fields`` (the
    stage and category are not exposed as fields).
25. Order of checks for ``item.updated`` and activity events: duplicate -> deleted (no-op) ->
    unknown item without hint (``unknown_item``) -> apply hint / field changes (tentatively) ->
    pipeline missing at occurred_at (counted no-op; the tentative state IS kept) -> item stage
    not in the pipeline (``unknown_stage``; the tentative state is DISCARDED: an item.updated
    whose item has an unknown stage does not apply its field changes, and a hint is not
    recorded) -> trigger codes.
26. ``unknown_stage`` depends on the event TYPE only: ``item.updated`` and every activity type
    can fire some code, so they raise it even when no trigger would match (e.g. no triggers).
27. Codes fired: ``item.updated`` -> RESP_CHANGED (only if ``ASSIGNED_BY_ID`` is a key of
    ``changes``) then FIELD_CHANGED; ``form.submitted`` -> CALLBACK then WEBFORM if
    ``data.callback`` is exactly JSON ``true``, else WEBFORM only; ``chat.answered`` ->
    OPENLINE_ANSWER then OPENLINE_ANSWER_CTRL; the rest one code each as in the table.
28. FIELD_CHANGED: the watched changes are the keys of ``changes`` minus STAGE_ID, CATEGORY_ID,
    ASSIGNED_BY_ID (key presence counts, even if the value did not really change). With empty
    ``fields`` it fires when any watched key is present; otherwise when one of ``fields`` is.
29. Param matching: a data value is read as an id (string, or integer as decimal string); any
    other type (or missing) never matches a non-empty param. Equality is exact string equality
    (case-sensitive); EMAIL_LINK ``url`` is a case-sensitive prefix of ``data.url``;
    OPENLINE_MSG ``text`` is a case-insensitive (str.lower) substring of ``data.text``.
30. Candidate order: (stage position in the pipeline in force, sort numerically, trigger id as a
    string by code point, so "10" < "9"). ``direction`` is "forward" iff the target position is
    greater than the current one.
31. The transition's ``category`` is the item's category at decision time.

Conditions

32. ``condition`` must be an object with key ``any`` holding a list of lists of clause objects
    (other keys ignored). A clause needs ``field`` (non-empty string; ``event.`` followed by a
    non-empty name) and ``op`` in the spec's set; ``value`` is required except for
    ``empty``/``!empty``; for ``in``/``!in`` it must be a list of scalars, for ``between`` a list
    of exactly two scalars, otherwise a scalar (string, number, bool, null). Anything else is a
    malformed condition (``invalid_automation``).
33. ``{"any": []}`` (no condition groups) is TRUE, i.e. "no conditions set"; an empty inner list
    ``[]`` is an AND of nothing, also true.
34. ``event.<name>`` reads the top-level key ``<name>`` of the event's ``data`` (no nesting:
    ``event.a.b`` reads key "a.b").
35. Empty = missing, null, "", [] or {}. 0, false and "0" are NOT empty; " " is not empty.
36. Number rule: JSON numbers (not booleans) are numbers; a string is a number when, after
    stripping surrounding whitespace, it matches
    ``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`` (no nan/inf, no thousands
    separators). Numbers compare exactly (Decimal). Otherwise both
    sides compare as strings by code point; the string form of a value is: the string itself,
    "true"/"false" for booleans, "" for null, the decimal for integers, the JSON text for floats,
    lists and objects.
37. ``=``: if either side is empty, true iff both are empty; else compare == 0. ``!=`` is its
    negation.
38. ``>``, ``>=``, ``<``, ``<=``: false if either side is empty. ``between [low, high]``: false if
    the field, low or high is empty; else field >= low and field <= high, each comparison using
    the number rule on its own pair.
39. ``in``: true iff the field ``=`` (rule 37) some element of the list; ``!in`` is its
    negation (so an empty field is ``in`` a list only if the list has an empty element).
40. ``contain``: false if the field is empty; else the value's string form, lower-cased, is a
    substring of the field's string form, lower-cased (so an empty value is contained in any
    non-empty field). ``!contain`` is its exact negation (true for an empty field).
41. ``empty``/``!empty`` ignore ``value``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

SEEN_WINDOW = 32
"""Event ids remembered per item to drop producer retries (docs/decisions.md, "Duplicates")."""
ECHO_WINDOW = 4
"""Transitions remembered per item to recognise their echoes (docs/decisions.md, "Echoes")."""

TRANSITION_NAMESPACE = uuid.UUID("5b1f3c2e-8d4a-4f0e-9c6b-2a7e1d9f4b30")
DEFAULT_MAX_RECORD_BYTES = 1 << 20

# code -> params it reads (name, kind); kind "eq", "prefix", "substr", "fields"
CODE_PARAMS: dict[str, list[tuple[str, str]]] = {
    "RESP_CHANGED": [],
    "FIELD_CHANGED": [("fields", "fields")],
    "WEBFORM": [("form_id", "eq")],
    "CALLBACK": [("form_id", "eq")],
    "DOCUMENT_CREATE": [("template_id", "eq")],
    "DOCUMENT_VIEW": [("template_id", "eq")],
    "VISIT": [],
    "RESOURCE_BOOKING": [],
    "EMAIL": [],
    "EMAIL_SENT": [],
    "EMAIL_READ": [],
    "EMAIL_LINK": [("url", "prefix")],
    "CALL": [("line", "eq")],
    "OUTGOING_CALL": [("line", "eq")],
    "MISSED_CALL": [("line", "eq")],
    "OPENLINE": [("line", "eq")],
    "OPENLINE_MSG": [("line", "eq"), ("text", "substr")],
    "OPENLINE_ANSWER": [("line", "eq")],
    "OPENLINE_ANSWER_CTRL": [("line", "eq")],
    "TASK_STATUS": [("status", "eq")],
    "WEBHOOK": [("code", "eq")],
    "APP": [("app_id", "eq"), ("code", "eq")],
    "ORDER_PAID": [],
}
REQUIRED_PARAMS = {"WEBHOOK": ["code"], "APP": ["app_id", "code"]}

LIFECYCLE_TYPES = {"item.created", "item.updated", "item.stage_changed", "item.deleted"}
ACTIVITY_CODES = {
    "form.submitted": None,  # WEBFORM, or CALLBACK then WEBFORM
    "document.created": ["DOCUMENT_CREATE"],
    "document.opened": ["DOCUMENT_VIEW"],
    "visit.registered": ["VISIT"],
    "resource.booked": ["RESOURCE_BOOKING"],
    "email.received": ["EMAIL"],
    "email.sent": ["EMAIL_SENT"],
    "email.read": ["EMAIL_READ"],
    "email.link_clicked": ["EMAIL_LINK"],
    "call.incoming": ["CALL"],
    "call.outgoing": ["OUTGOING_CALL"],
    "call.missed": ["MISSED_CALL"],
    "chat.started": ["OPENLINE"],
    "chat.message": ["OPENLINE_MSG"],
    "chat.answered": ["OPENLINE_ANSWER", "OPENLINE_ANSWER_CTRL"],
    "task.status_changed": ["TASK_STATUS"],
    "webhook": ["WEBHOOK"],
    "app.trigger": ["APP"],
    "order.paid": ["ORDER_PAID"],
}
EVENT_TYPES = LIFECYCLE_TYPES | set(ACTIVITY_CODES)
NOT_WATCHED = {"STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID"}
OPS = {
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "in",
    "!in",
    "contain",
    "!contain",
    "empty",
    "!empty",
    "between",
}
SEMANTICS = {"process", "success", "failure"}


def transition_id(tenant: str, entity: str, item_id: str, event_id: str) -> str:
    return str(uuid.uuid5(TRANSITION_NAMESPACE, "\x1f".join([tenant, entity, item_id, event_id])))


class RecordError(Exception):
    """A record is malformed; the message names the field."""


# ----------------------------------------------------------------------------- small parsers


def parse_id(value: Any, name: str) -> str:
    if isinstance(value, bool):
        raise RecordError(f"{name}: must be a string or integer id, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value != "":
        return value
    raise RecordError(f"{name}: must be a non-empty string or integer id")


def parse_name(value: Any, name: str) -> str:
    """A tenant or entity: a non-empty string without '/' (it is part of keys)."""
    if not isinstance(value, str) or value == "" or "/" in value:
        raise RecordError(f"{name}: must be a non-empty string without '/'")
    return value


def tenant_of(obj: dict) -> str:
    value = obj.get("tenant")
    return "default" if value is None else parse_name(value, "tenant")


def opt_id(obj: dict, key: str, name: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    return parse_id(value, name)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def parse_time(value: Any, name: str) -> Fraction:
    """An ISO 8601 time with a zone (choice 7) -> seconds since the epoch, exactly."""
    if not isinstance(value, str):
        raise RecordError(f"{name}: must be a time string")
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{name}: not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise RecordError(f"{name}: time without a zone: {value!r}")
    delta = moment - _EPOCH
    return Fraction(delta.days * 86400 + delta.seconds) + Fraction(delta.microseconds, 10**6)


def opt_time(obj: dict, key: str, name: str) -> Fraction | None:
    value = obj.get(key)
    if value is None:
        return None
    return parse_time(value, name)


def read_raw(raw: bytes | str, max_bytes: int) -> tuple[str, Any]:
    """-> ("blank"|"too_large"|"invalid_json"|"ok", parsed-or-message)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        return "too_large", f"record of {len(data)} bytes is over the limit of {max_bytes}"
    if data.strip() == b"":
        return "blank", None
    try:
        return "ok", orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return "invalid_json", f"invalid JSON: {exc}"


# ----------------------------------------------------------------------------- conditions

_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def is_empty(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v == ""
    if isinstance(v, (list, dict)):
        return len(v) == 0
    return False


def as_number(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, str):
        s = v.strip()
        if _NUM_RE.match(s):
            return Decimal(s)
    return None


def as_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return orjson.dumps(v).decode("utf-8")


def compare(a: Any, b: Any) -> int:
    na, nb = as_number(a), as_number(b)
    if na is not None and nb is not None:
        x, y = na, nb
    else:
        x, y = as_string(a), as_string(b)
    return (x > y) - (x < y)


def cond_eq(a: Any, b: Any) -> bool:
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    return compare(a, b) == 0


def eval_clause(clause: dict, fields: dict, data: dict) -> bool:
    name = clause["field"]
    a = data.get(name[len("event.") :]) if name.startswith("event.") else fields.get(name)
    op = clause["op"]
    b = clause.get("value")
    if op == "=":
        return cond_eq(a, b)
    if op == "!=":
        return not cond_eq(a, b)
    if op in (">", ">=", "<", "<="):
        if is_empty(a) or is_empty(b):
            return False
        c = compare(a, b)
        return {">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]
    if op == "between":
        low, high = b
        if is_empty(a) or is_empty(low) or is_empty(high):
            return False
        return compare(a, low) >= 0 and compare(a, high) <= 0
    if op == "in":
        return any(cond_eq(a, x) for x in b)
    if op == "!in":
        return not any(cond_eq(a, x) for x in b)
    if op in ("contain", "!contain"):
        hit = (not is_empty(a)) and as_string(b).lower() in as_string(a).lower()
        return hit if op == "contain" else not hit
    if op == "empty":
        return is_empty(a)
    if op == "!empty":
        return not is_empty(a)
    raise AssertionError(op)


def eval_condition(condition: dict | None, fields: dict, data: dict) -> bool:
    if condition is None:
        return True
    groups = condition["any"]
    if not groups:
        return True  # choice 33: no condition groups = no conditions set
    return any(all(eval_clause(c, fields, data) for c in group) for group in groups)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def validate_condition(cond: Any) -> dict | None:
    if cond is None:
        return None
    if not isinstance(cond, dict) or "any" not in cond or not isinstance(cond["any"], list):
        raise RecordError('condition: must be an object {"any": [[clause, ...], ...]}')
    for gi, group in enumerate(cond["any"]):
        if not isinstance(group, list):
            raise RecordError(f"condition.any[{gi}]: must be a list of clauses")
        for ci, clause in enumerate(group):
            where = f"condition.any[{gi}][{ci}]"
            if not isinstance(clause, dict):
                raise RecordError(f"{where}: must be an object")
            fname = clause.get("field")
            if not isinstance(fname, str) or fname == "" or fname == "event.":
                raise RecordError(f"{where}.field: must be a non-empty string")
            op = clause.get("op")
            if op not in OPS:
                raise RecordError(f"{where}.op: unknown operator {op!r}")
            if op in ("empty", "!empty"):
                continue
            if "value" not in clause:
                raise RecordError(f"{where}.value: missing")
            value = clause["value"]
            if op in ("in", "!in"):
                if not isinstance(value, list) or not all(_is_scalar(x) for x in value):
                    raise RecordError(f"{where}.value: must be a list of scalars for {op}")
            elif op == "between":
                if not (
                    isinstance(value, list)
                    and len(value) == 2
                    and all(_is_scalar(x) for x in value)
                ):
                    raise RecordError(f"{where}.value: must be [low, high] for between")
            elif not _is_scalar(value):
                raise RecordError(f"{where}.value: must be a scalar for {op}")
    return cond


# ----------------------------------------------------------------------------- automation


@dataclass
class Version:
    at: Fraction | None  # None = beginning of time
    seq: int  # position in the automation list
    deleted: bool
    rec: dict | None  # normalised record

    def order(self) -> tuple:
        return (self.at is not None, self.at if self.at is not None else 0, self.seq)


def pick_version(versions: list[Version], t: Fraction | None) -> dict | None:
    """Version in force at t (None = what-if, i.e. +infinity)."""
    live = [v for v in versions if t is None or v.at is None or v.at <= t]
    if not live:
        return None
    best = max(live, key=Version.order)
    return None if best.deleted else best.rec


def validate_pipeline(obj: dict) -> tuple[tuple[str, str, str], bool, dict | None]:
    tenant = tenant_of(obj)
    entity = parse_name(obj.get("entity"), "entity")
    category = opt_id(obj, "category", "category") or "0"
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise RecordError("deleted: must be a boolean")
    key = (tenant, entity, category)
    if deleted:
        return key, True, None
    stages = obj.get("stages")
    if not isinstance(stages, list) or not stages:
        raise RecordError("stages: missing or not a non-empty list")
    ids: list[str] = []
    semantics: list[str] = []
    for i, st in enumerate(stages):
        if not isinstance(st, dict):
            raise RecordError(f"stages[{i}]: must be an object")
        sid = parse_id(st.get("id"), f"stages[{i}].id")
        if sid in ids:
            raise RecordError(f"stages[{i}].id: duplicate stage {sid!r}")
        sem = st.get("semantic")
        if sem not in SEMANTICS:
            raise RecordError(f"stages[{i}].semantic: must be process, success or failure")
        ids.append(sid)
        semantics.append(sem)
    return key, False, {"stages": ids, "semantics": semantics}


def validate_trigger(obj: dict) -> tuple[tuple[str, str], bool, dict | None]:
    tenant = tenant_of(obj)
    tid = parse_id(obj.get("id"), "id")
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise RecordError("deleted: must be a boolean")
    key = (tenant, tid)
    if deleted:
        return key, True, None
    entity = parse_name(obj.get("entity"), "entity")
    category = opt_id(obj, "category", "category") or "0"
    stage = parse_id(obj.get("stage"), "stage")
    code = obj.get("code")
    if code not in CODE_PARAMS:
        raise RecordError(f"code: unknown trigger code {code!r}")
    raw_params = obj.get("params")
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, dict):
        raise RecordError("params: must be an object")
    params: dict[str, Any] = {}
    for pname, kind in CODE_PARAMS[code]:
        pv = raw_params.get(pname)
        if kind == "fields":
            if pv is None or pv == []:
                params[pname] = None
            elif isinstance(pv, list) and all(isinstance(x, str) and x for x in pv):
                params[pname] = list(pv)
            else:
                raise RecordError(f"params.{pname}: must be a list of field names")
        else:
            params[pname] = None if pv is None or pv == "" else parse_id(pv, f"params.{pname}")
    for pname in REQUIRED_PARAMS.get(code, []):
        if params.get(pname) is None:
            raise RecordError(f"params.{pname}: required for {code}")
    allow_backwards = obj.get("allow_backwards")
    if allow_backwards is None:
        allow_backwards = False
    if not isinstance(allow_backwards, bool):
        raise RecordError("allow_backwards: must be a boolean")
    sort = obj.get("sort")
    if sort is None:
        sort = 0
    if isinstance(sort, bool) or not isinstance(sort, (int, float)):
        raise RecordError("sort: must be a number")
    condition = validate_condition(obj.get("condition"))
    rec = {
        "tenant": tenant,
        "id": tid,
        "entity": entity,
        "category": category,
        "stage": stage,
        "code": code,
        "params": params,
        "allow_backwards": allow_backwards,
        "sort": sort,
        "condition": condition,
    }
    return key, False, rec


# ----------------------------------------------------------------------------- events


@dataclass
class ItemRef:
    entity: str
    id: str
    hint_stage: str | None
    hint_category: str | None


@dataclass
class Event:
    id: str
    type: str
    occurred_at_raw: str
    t: Fraction
    tenant: str
    refs: list[ItemRef]
    data: dict


def validate_event(obj: Any) -> tuple[str, str] | Event:
    """-> Event, or (dead letter code, message)."""
    if not isinstance(obj, dict):
        return "invalid_record", "record: not a JSON object"
    try:
        eid = parse_id(obj.get("id"), "id")
        etype = obj.get("type")
        if not isinstance(etype, str):
            raise RecordError("type: missing or not a string")
        occurred_raw = obj.get("occurred_at")
        t = parse_time(occurred_raw, "occurred_at")
        tenant = tenant_of(obj)
        item, items = obj.get("item"), obj.get("items")
        if item is not None and items is not None:
            raise RecordError("item/items: only one of them may be given")
        if item is None and items is None:
            raise RecordError("item: missing (item or items is required)")
        if items is not None:
            if not isinstance(items, list) or not items:
                raise RecordError("items: must be a non-empty list")
            raw_refs = [(f"items[{i}]", r) for i, r in enumerate(items)]
        else:
            raw_refs = [("item", item)]
        refs = []
        for name, r in raw_refs:
            if not isinstance(r, dict):
                raise RecordError(f"{name}: must be an object")
            entity = parse_name(r.get("entity"), f"{name}.entity")
            iid = parse_id(r.get("id"), f"{name}.id")
            hs = opt_id(r, "stage", f"{name}.stage")
            hc = opt_id(r, "category", f"{name}.category")
            refs.append(ItemRef(entity, iid, hs, hc))
        data = obj.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RecordError("data: must be an object")
    except RecordError as exc:
        return "invalid_record", str(exc)
    if etype not in EVENT_TYPES:
        return "unknown_event_type", f"unknown event type {etype!r}"
    try:
        if etype == "item.created":
            parse_id(data.get("stage"), "data.stage")
            opt_id(data, "category", "data.category")
            flds = data.get("fields")
            if flds is not None and not isinstance(flds, dict):
                raise RecordError("data.fields: must be an object")
        elif etype == "item.updated":
            if not isinstance(data.get("changes"), dict):
                raise RecordError("data.changes: missing or not an object")
        elif etype == "item.stage_changed":
            parse_id(data.get("stage"), "data.stage")
            opt_id(data, "category", "data.category")
            opt_id(data, "transition_id", "data.transition_id")
    except RecordError as exc:
        return "invalid_record", str(exc)
    return Event(eid, etype, occurred_raw, t, tenant, refs, data)


def codes_for(ev: Event) -> list[str]:
    if ev.type == "item.updated":
        codes = ["RESP_CHANGED"] if "ASSIGNED_BY_ID" in ev.data["changes"] else []
        return [*codes, "FIELD_CHANGED"]
    if ev.type == "form.submitted":
        return ["CALLBACK", "WEBFORM"] if ev.data.get("callback") is True else ["WEBFORM"]
    return list(ACTIVITY_CODES.get(ev.type) or [])


def _data_id(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        return v
    return None


def params_match(trigger: dict, ev: Event) -> bool:
    code = trigger["code"]
    params = trigger["params"]
    for pname, kind in CODE_PARAMS[code]:
        want = params.get(pname)
        if kind == "fields":
            watched = set(ev.data["changes"]) - NOT_WATCHED
            if want is None:
                if not watched:
                    return False
            elif not any(f in watched for f in want):
                return False
            continue
        if want is None:
            continue
        got = _data_id(ev.data.get(pname))
        if got is None:
            return False
        if kind == "eq" and got != want:
            return False
        if kind == "prefix" and not got.startswith(want):
            return False
        if kind == "substr" and want.lower() not in got.lower():
            return False
    return True


# ----------------------------------------------------------------------------- the engine


@dataclass
class ItemState:
    deleted: bool
    category: str | None = None
    stage: str | None = None
    fields: dict = field(default_factory=dict)


class Oracle:
    def __init__(
        self,
        automation: list[bytes | str],
        what_if: bool = False,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        seen_window: int = SEEN_WINDOW,
        echo_window: int = ECHO_WINDOW,
    ) -> None:
        self.what_if = what_if
        self.seen_window = seen_window
        self.echo_window = echo_window
        self.max_record_bytes = max_record_bytes
        self.transitions: list[dict] = []
        self.dead_letters: list[dict] = []
        self.counts: Counter = Counter()
        self.pipelines: dict[tuple, list[Version]] = {}
        self.triggers: dict[tuple, list[Version]] = {}
        self.items: dict[tuple[str, str, str], ItemState] = {}
        # per item: its last event ids seen, and its last moves (transition id, to_stage)
        self.seen: dict[tuple[str, str, str], deque[str]] = {}
        self.echoes: dict[tuple[str, str, str], deque[tuple[str, str]]] = {}
        # everything ever seen and moved, only to count where the windows made a difference
        self.ever_seen: set[tuple[tuple[str, str, str], str]] = set()
        self.ever_moved: set[tuple[tuple[str, str, str], str, str]] = set()
        self.event_index = 0
        for index, raw in enumerate(automation):
            self._load_automation(index, raw)

    # -- output helpers
    def _dead(
        self, code: str, source: str, index: int, message: str, item: str | None = None
    ) -> None:
        self.dead_letters.append(
            {"code": code, "source": source, "index": index, "item": item, "message": message}
        )
        self.counts[f"dead:{code}"] += 1

    # -- automation
    def _load_automation(self, index: int, raw: bytes | str) -> None:
        status, obj = read_raw(raw, self.max_record_bytes)
        if status == "blank":
            return
        if status != "ok":
            self._dead(status, "automation", index, obj)
            return
        try:
            if not isinstance(obj, dict):
                raise RecordError("record: not a JSON object")
            kind = obj.get("kind")
            at = opt_time(obj, "updated_at", "updated_at")
            if kind == "pipeline":
                key, deleted, rec = validate_pipeline(obj)
                self.pipelines.setdefault(key, []).append(Version(at, index, deleted, rec))
            elif kind == "trigger":
                key, deleted, rec = validate_trigger(obj)
                if rec is not None:
                    pkey = (rec["tenant"], rec["entity"], rec["category"])
                    pipeline = pick_version(self.pipelines.get(pkey, []), None)
                    if pipeline is not None and rec["stage"] not in pipeline["stages"]:
                        raise RecordError(f"stage: {rec['stage']!r} is not in pipeline {pkey}")
                self.triggers.setdefault(key, []).append(Version(at, index, deleted, rec))
            else:
                raise RecordError(f"kind: must be 'pipeline' or 'trigger', got {kind!r}")
        except RecordError as exc:
            self._dead("invalid_automation", "automation", index, str(exc))
            return
        self.counts["automation_loaded"] += 1

    def _at(self, ev: Event) -> Fraction | None:
        return None if self.what_if else ev.t

    def _pipeline(self, tenant: str, entity: str, category: str, ev: Event) -> dict | None:
        return pick_version(self.pipelines.get((tenant, entity, category), []), self._at(ev))

    def _triggers_in_force(
        self, tenant: str, entity: str, category: str, code: str, ev: Event
    ) -> list[dict]:
        out = []
        for (t_tenant, _tid), versions in self.triggers.items():
            if t_tenant != tenant:
                continue
            rec = pick_version(versions, self._at(ev))
            if (
                rec
                and rec["entity"] == entity
                and rec["category"] == category
                and rec["code"] == code
            ):
                out.append(rec)
        return out

    # -- events
    def feed(self, raw: bytes | str) -> list[dict]:
        """Decide one event record; returns the transitions it produced."""
        index = self.event_index
        self.event_index += 1
        before = len(self.transitions)
        status, obj = read_raw(raw, self.max_record_bytes)
        if status == "blank":
            return []
        if status != "ok":
            self._dead(status, "events", index, obj)
            return []
        ev = validate_event(obj)
        if isinstance(ev, tuple):
            self._dead(ev[0], "events", index, ev[1])
            return []
        named = set()
        for ref in ev.refs:
            if (ref.entity, ref.id) in named:
                continue
            named.add((ref.entity, ref.id))
            self._decide_item(ev, ref, index)
        return self.transitions[before:]

    def _decide_item(self, ev: Event, ref: ItemRef, index: int) -> None:
        key = (ev.tenant, ref.entity, ref.id)
        item_name = "/".join(key)
        seen = self.seen.setdefault(key, deque(maxlen=self.seen_window))
        if ev.id in seen:
            self.counts["duplicate"] += 1
            return
        if (key, ev.id) in self.ever_seen:
            self.counts["repeat_beyond_seen_window"] += 1

        def mark() -> None:
            seen.append(ev.id)
            self.ever_seen.add((key, ev.id))

        state = self.items.get(key)
        data = ev.data

        if ev.type == "item.created":
            category = opt_id(data, "category", "data.category") or ref.hint_category or "0"
            self.items[key] = ItemState(
                False,
                category,
                parse_id(data["stage"], "stage"),
                copy.deepcopy(data.get("fields") or {}),
            )
            mark()
            self.counts["created"] += 1
            return

        if ev.type == "item.deleted":
            if state is None:
                self.items[key] = ItemState(True)
            elif not state.deleted:
                state.deleted = True
            mark()
            self.counts["deleted"] += 1
            return

        if ev.type == "item.stage_changed":
            stage = parse_id(data["stage"], "stage")
            category = opt_id(data, "category", "data.category")
            tid = opt_id(data, "transition_id", "data.transition_id")
            if state is None:
                self.items[key] = ItemState(False, category or ref.hint_category or "0", stage, {})
                self.counts["stage_changed_new"] += 1
            elif state.deleted:
                self.counts["noop_deleted"] += 1
            else:
                if tid is not None and (key, tid, stage) in self.ever_moved:
                    in_window = (tid, stage) in self.echoes.get(key, ())
                    self.counts["echo_in_window" if in_window else "echo_beyond_window"] += 1
                if tid is not None and (tid, stage) in self.echoes.get(key, ()):
                    self.counts["echo_confirmed"] += 1
                else:
                    state.stage = stage
                    if category is not None:
                        state.category = category
                    self.counts["stage_adopted"] += 1
            mark()
            return

        # item.updated or an activity event
        if state is not None and state.deleted:
            mark()
            self.counts["noop_deleted"] += 1
            return
        if state is None:
            if ref.hint_stage is None:
                self._dead(
                    "unknown_item",
                    "events",
                    index,
                    f"item {item_name} is unknown and the event has no stage hint",
                    item_name,
                )
                return
            state = ItemState(False, ref.hint_category or "0", ref.hint_stage, {})
        else:
            state = copy.deepcopy(state)
        if ev.type == "item.updated":
            state.fields.update(copy.deepcopy(data["changes"]))

        pipeline = self._pipeline(ev.tenant, ref.entity, state.category, ev)
        if pipeline is None:
            self.items[key] = state
            mark()
            self.counts["noop_no_pipeline"] += 1
            return
        stages = pipeline["stages"]
        if state.stage not in stages:
            self._dead(
                "unknown_stage",
                "events",
                index,
                f"stage {state.stage!r} of {item_name} is not in pipeline "
                f"{ev.tenant}/{ref.entity}/{state.category}",
                item_name,
            )
            return
        current = stages.index(state.stage)

        moved = None
        for code in codes_for(ev):
            candidates = []
            for trig in self._triggers_in_force(ev.tenant, ref.entity, state.category, code, ev):
                if trig["stage"] not in stages:
                    continue
                pos = stages.index(trig["stage"])
                if pos == current:
                    continue
                if pos > current or trig["allow_backwards"]:
                    candidates.append((pos, trig["sort"], trig["id"], trig))
            candidates.sort(key=lambda c: (c[0], c[1], c[2]))
            for pos, _sort, _tid, trig in candidates:
                if params_match(trig, ev) and eval_condition(trig["condition"], state.fields, data):
                    moved = (pos, trig)
                    break
            if moved:
                break

        if moved:
            pos, trig = moved
            tr = {
                "id": transition_id(ev.tenant, ref.entity, ref.id, ev.id),
                "tenant": ev.tenant,
                "item": {"entity": ref.entity, "id": ref.id},
                "category": state.category,
                "from_stage": state.stage,
                "to_stage": trig["stage"],
                "direction": "forward" if pos > current else "backward",
                "trigger": {"id": trig["id"], "code": trig["code"]},
                "event": {"id": ev.id, "type": ev.type, "occurred_at": ev.occurred_at_raw},
            }
            self.transitions.append(tr)
            self.echoes.setdefault(key, deque(maxlen=self.echo_window)).append(
                (tr["id"], tr["to_stage"])
            )
            self.ever_moved.add((key, tr["id"], tr["to_stage"]))
            state.stage = trig["stage"]
            self.counts["moved"] += 1
        else:
            self.counts["noop_no_match"] += 1
        self.items[key] = state
        mark()


def decide(
    automation: list[bytes | str],
    events: list[bytes | str],
    what_if: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    seen_window: int = SEEN_WINDOW,
    echo_window: int = ECHO_WINDOW,
) -> tuple[list[dict], list[dict]]:
    oracle = Oracle(
        automation,
        what_if=what_if,
        max_record_bytes=max_record_bytes,
        seen_window=seen_window,
        echo_window=echo_window,
    )
    for raw in events:
        oracle.feed(raw)
    return oracle.transitions, oracle.dead_letters
