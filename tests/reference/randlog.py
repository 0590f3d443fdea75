"""Random but meaningful scenarios (automation + events) for differential testing.

``random_scenario(seed, n_events, n_items, tenants=2) -> (automation_lines, event_lines)``

Deterministic given the seed (only ``random.Random(seed)`` is used). Records are JSON bytes
(``orjson.dumps``), except a few deliberately malformed ones.

Echoes of our own transitions (``item.stage_changed`` with ``transition_id``) are made realistic
by running the reference oracle alongside the generator: when an event produces a transition, the
generator sometimes schedules the CRM's echo of it a few events later (mostly confirming the
target stage, sometimes naming another stage, sometimes arriving late, after a newer move).

The logs reach every window and leniency of docs/decisions.md, whatever their size:

- hot items: a few items (``hot_share`` of the events) get long histories, longer than the
  seen window (``oracle.SEEN_WINDOW`` event ids), and are moved back by the CRM often enough
  to make more moves than the echo window (``oracle.ECHO_WINDOW``) holds;
- late echoes: some echoes of a hot item's move come after several newer moves of it, older
  than the echo window;
- old retries (``old_retries=True``): a producer retry of one of an item's events from
  beyond the seen window, besides the usual retry right after the original. Such a retry is
  decided again and may move the item a second time under the same transition id, as
  documented; tests of "at most one transition per (event, item)" leave them out;
- leniencies: whole-number float ids (``12.0``) and ISO 8601 times that are not RFC 3339
  (``20261125T100000Z``, a space for ``T``).
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Any

import orjson

from .oracle import ECHO_WINDOW, SEEN_WINDOW, Oracle

BASE = _dt.datetime(2026, 11, 1, 0, 0, 0, tzinfo=_dt.UTC)
STEP = 60  # seconds between consecutive events, on average

FIELD_POOL = ["OPPORTUNITY", "TITLE", "SOURCE_ID", "ASSIGNED_BY_ID", "UF_SCORE", "COMMENTS"]
WATCH_POOL = [
    "OPPORTUNITY",
    "TITLE",
    "SOURCE_ID",
    "UF_SCORE",
    "COMMENTS",
    "ASSIGNED_BY_ID",
    "STAGE_ID",
]
FORM_IDS = ["1", "2", 3]
TEMPLATE_IDS = ["t1", "t2"]
LINES = ["1", "2"]
URLS = ["https://ex.com/a", "https://ex.com/b", "https://other.org/"]
URL_PREFIXES = ["https://ex.com/", "https://ex.com/a", "https://other.org"]
TEXTS = ["What is the PRICE?", "hello there", "need a discount on price", "Bonjour"]
TEXT_PARAMS = ["price", "Hello", "discount"]
STATUSES = ["2", "5", 3]
WEBHOOK_CODES = ["wh1", "wh2"]
APP_IDS = ["app1", "app2"]
APP_CODES = ["c1", "c2"]

ALL_CODES = [
    "RESP_CHANGED",
    "FIELD_CHANGED",
    "WEBFORM",
    "CALLBACK",
    "DOCUMENT_CREATE",
    "DOCUMENT_VIEW",
    "VISIT",
    "RESOURCE_BOOKING",
    "EMAIL",
    "EMAIL_SENT",
    "EMAIL_READ",
    "EMAIL_LINK",
    "CALL",
    "OUTGOING_CALL",
    "MISSED_CALL",
    "OPENLINE",
    "OPENLINE_MSG",
    "OPENLINE_ANSWER",
    "OPENLINE_ANSWER_CTRL",
    "TASK_STATUS",
    "WEBHOOK",
    "APP",
    "ORDER_PAID",
]

ACTIVITY_TYPES = [
    "form.submitted",
    "document.created",
    "document.opened",
    "visit.registered",
    "resource.booked",
    "email.received",
    "email.sent",
    "email.read",
    "email.link_clicked",
    "call.incoming",
    "call.outgoing",
    "call.missed",
    "chat.started",
    "chat.message",
    "chat.answered",
    "task.status_changed",
    "webhook",
    "app.trigger",
    "order.paid",
]


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _fmt_time(seconds: float, rng: random.Random) -> str:
    """RFC 3339, mostly UTC 'Z', sometimes another zone offset or fractional seconds."""
    moment = BASE + _dt.timedelta(seconds=seconds)
    r = rng.random()
    if r < 0.03:  # ISO 8601 basic format: not RFC 3339, accepted
        return moment.strftime("%Y%m%dT%H%M%SZ")
    if r < 0.06:  # a space for "T": not RFC 3339, accepted
        return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")
    if r < 0.15:
        offset_min = rng.choice([120, -300, 330])
        tz = _dt.timezone(_dt.timedelta(minutes=offset_min))
        return moment.astimezone(tz).isoformat(timespec="seconds")
    if r < 0.25:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rng.randrange(1000):03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_value(rng: random.Random, fname: str) -> Any:
    if fname == "OPPORTUNITY":
        return rng.choice([0, 500, 999, 1000, 1500, 20000, "1000", "250.5", "abc", None, ""])
    if fname == "TITLE":
        return rng.choice(["Big deal", "small order", "VIP client", "", "Order 42"])
    if fname == "SOURCE_ID":
        return rng.choice(["WEB", "CALL", "EMAIL", "web", None])
    if fname == "ASSIGNED_BY_ID":
        return rng.choice([1, 2, 7, "7", 15])
    if fname == "UF_SCORE":
        return rng.choice([1, 5, 9, 10, "9", "10", "x", None])
    return rng.choice(["call back", "Price asked", "", None, "n/a"])


def _random_clause(rng: random.Random, event_fields: bool) -> dict:
    if event_fields and rng.random() < 0.5:
        name = rng.choice(["event.answer_time_sec", "event.form_id", "event.text", "event.amount"])
    else:
        name = rng.choice(FIELD_POOL)
    op = rng.choice(
        [
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
        ]
    )
    if op in ("empty", "!empty"):
        return {"field": name, "op": op}
    if op in ("in", "!in"):
        pool = ["WEB", "CALL", 7, "1", 1000, "Big deal", 30, "2"]
        value: Any = rng.sample(pool, k=rng.randint(1, 3))
    elif op == "between":
        low = rng.choice([0, 10, 100, 900, "5"])
        value = [low, low + rng.choice([0, 5, 60, 1000]) if isinstance(low, int) else "50"]
    elif op in ("contain", "!contain"):
        value = rng.choice(["big", "PRICE", "web", "0", "order"])
    else:
        value = rng.choice([1000, "1000", 500, 9, "9", 30, 60, "WEB", "Big deal", "b"])
    return {"field": name, "op": op, "value": value}


def _random_condition(rng: random.Random, code: str) -> dict | None:
    r = rng.random()
    if r < 0.45:
        return None
    if r < 0.48:
        return {"any": []}
    ctrl = code == "OPENLINE_ANSWER_CTRL"
    groups = []
    for _ in range(rng.randint(1, 2)):
        groups.append(
            [_random_clause(rng, ctrl or rng.random() < 0.2) for _ in range(rng.randint(1, 2))]
        )
    if ctrl and rng.random() < 0.7:
        groups = [
            [{"field": "event.answer_time_sec", "op": "<=", "value": rng.choice([30, 60, "60"])}]
        ]
    return {"any": groups}


def _random_params(rng: random.Random, code: str) -> dict | None:
    p: dict[str, Any] = {}
    if code == "FIELD_CHANGED":
        if rng.random() < 0.7:
            p["fields"] = rng.sample(WATCH_POOL, k=rng.randint(1, 2))
    elif code in ("WEBFORM", "CALLBACK"):
        if rng.random() < 0.7:
            p["form_id"] = rng.choice(FORM_IDS)
    elif code in ("DOCUMENT_CREATE", "DOCUMENT_VIEW"):
        if rng.random() < 0.6:
            p["template_id"] = rng.choice(TEMPLATE_IDS)
    elif code == "EMAIL_LINK":
        if rng.random() < 0.7:
            p["url"] = rng.choice(URL_PREFIXES)
    elif code in (
        "CALL",
        "OUTGOING_CALL",
        "MISSED_CALL",
        "OPENLINE",
        "OPENLINE_ANSWER",
        "OPENLINE_ANSWER_CTRL",
    ):
        if rng.random() < 0.6:
            p["line"] = rng.choice(LINES)
    elif code == "OPENLINE_MSG":
        if rng.random() < 0.5:
            p["line"] = rng.choice(LINES)
        if rng.random() < 0.6:
            p["text"] = rng.choice(TEXT_PARAMS)
    elif code == "TASK_STATUS":
        if rng.random() < 0.7:
            p["status"] = rng.choice(STATUSES)
    elif code == "WEBHOOK":
        p["code"] = rng.choice(WEBHOOK_CODES)
    elif code == "APP":
        p["app_id"] = rng.choice(APP_IDS)
        p["code"] = rng.choice(APP_CODES)
    if not p and rng.random() < 0.3:
        return None if rng.random() < 0.5 else {}
    if code not in ("WEBHOOK", "APP") and p and rng.random() < 0.1:
        # an explicitly empty param means "any"
        k = next(iter(p))
        p[k] = [] if k == "fields" else ""
    return p


def random_scenario(
    seed: int,
    n_events: int,
    n_items: int,
    tenants: int = 2,
    hot_share: float = 0.3,
    old_retries: bool = False,
) -> tuple[list[bytes], list[bytes]]:
    rng = random.Random(seed)
    tenant_names = ["default", "acme", "globex", "initech", "umbrella"][: max(1, tenants)]
    while len(tenant_names) < tenants:
        tenant_names.append(f"t{len(tenant_names)}")
    span = n_events * STEP  # the event period, in seconds from BASE

    def tenant_field(obj: dict, tenant: str) -> dict:
        if tenant != "default" or rng.random() < 0.5:
            obj = {"tenant": tenant, **obj}
        return obj

    # ------------------------------------------------------------------ pipelines
    automation: list[bytes] = []
    pipelines: dict[tuple[str, str, str], list[str]] = {}  # current stages known to the generator
    pipe_v1: dict[tuple[str, str, str], list[str]] = {}
    for tenant in tenant_names:
        entities = ["deal", "lead"] + (["dynamic_128"] if rng.random() < 0.4 else [])
        for entity in entities:
            cats = ["0", "1"] if entity != "lead" and rng.random() < 0.6 else ["0"]
            for cat in cats:
                n_stages = rng.randint(3, 6)
                prefix = "" if cat == "0" else f"C{cat}:"
                process = [
                    f"{prefix}{name}"
                    for name in ["NEW", "PREPARATION", "PROPOSAL", "NEGOTIATION"][: n_stages - 2]
                ]
                finals = [(f"{prefix}WON", "success"), (f"{prefix}LOSE", "failure")]
                if rng.random() < 0.3:
                    finals.reverse()
                stages = [{"id": s, "semantic": "process"} for s in process] + [
                    {"id": s, "semantic": sem} for s, sem in finals
                ]
                rec: dict[str, Any] = {
                    "kind": "pipeline",
                    "entity": entity,
                    "category": cat if cat != "0" or rng.random() < 0.8 else 0,
                    "stages": stages,
                }
                if rng.random() < 0.6:
                    rec["updated_at"] = _fmt_time(-86400 * rng.randint(1, 30), rng)
                automation.append(_dump(tenant_field(rec, tenant)))
                ids = [s["id"] for s in stages]
                pipelines[(tenant, entity, cat)] = ids
                pipe_v1[(tenant, entity, cat)] = ids

    pipe_keys = sorted(pipelines)

    # ------------------------------------------------------------------ triggers v1
    triggers: dict[tuple[str, str], dict] = {}
    n_triggers = rng.randint(min(10, 6 * len(tenant_names)), min(30, 15 * len(tenant_names)))
    trig_lines: list[bytes] = []
    for i in range(n_triggers):
        tenant, entity, cat = rng.choice(pipe_keys)
        stages = pipelines[(tenant, entity, cat)]
        code = rng.choice(ALL_CODES)
        tid: Any = f"t-{i}" if rng.random() < 0.8 else 100 + i
        rec = {
            "kind": "trigger",
            "id": tid,
            "entity": entity,
            "category": cat,
            "stage": rng.choice(stages[1:]) if rng.random() < 0.85 else stages[0],
            "code": code,
        }
        params = _random_params(rng, code)
        if params is not None:
            rec["params"] = params
        if rng.random() < 0.25:
            rec["allow_backwards"] = True
        elif rng.random() < 0.3:
            rec["allow_backwards"] = False
        if rng.random() < 0.5:
            rec["sort"] = rng.choice([0, 1, 2, 3, 10])
        cond = _random_condition(rng, code)
        if cond is not None:
            rec["condition"] = cond
        if rng.random() < 0.5:
            rec["updated_at"] = _fmt_time(-86400 * rng.randint(1, 30), rng)
        rec = tenant_field(rec, tenant)
        triggers[(tenant, str(tid))] = rec
        trig_lines.append(_dump(rec))

    # a few invalid automation records
    invalid: list[bytes] = []
    t0, e0, c0 = pipe_keys[0]
    invalid.append(
        _dump(
            tenant_field(
                {
                    "kind": "trigger",
                    "id": "bad-code",
                    "entity": e0,
                    "category": c0,
                    "stage": pipelines[pipe_keys[0]][1],
                    "code": "TELEPATHY",
                },
                t0,
            )
        )
    )
    invalid.append(
        _dump(
            tenant_field(
                {
                    "kind": "trigger",
                    "id": "bad-stage",
                    "entity": e0,
                    "category": c0,
                    "stage": "NO_SUCH_STAGE",
                    "code": "VISIT",
                },
                t0,
            )
        )
    )
    invalid.append(
        _dump(
            tenant_field(
                {
                    "kind": "trigger",
                    "id": "bad-cond",
                    "entity": e0,
                    "category": c0,
                    "stage": pipelines[pipe_keys[0]][1],
                    "code": "EMAIL",
                    "condition": {"any": [{"field": "X", "op": "~", "value": 1}]},
                },
                t0,
            )
        )
    )
    invalid.append(
        _dump(
            tenant_field(
                {
                    "kind": "trigger",
                    "id": "no-entity",
                    "category": c0,
                    "stage": pipelines[pipe_keys[0]][1],
                    "code": "EMAIL",
                },
                t0,
            )
        )
    )
    invalid.append(
        _dump(
            tenant_field(
                {
                    "kind": "trigger",
                    "id": "bad-time",
                    "entity": e0,
                    "category": c0,
                    "stage": pipelines[pipe_keys[0]][1],
                    "code": "EMAIL",
                    "updated_at": "2026-11-01T10:00:00",
                },
                t0,
            )
        )
    )
    invalid.append(
        _dump(
            {
                "kind": "pipeline",
                "entity": "deal",
                "category": "9",
                "stages": [{"id": "A", "semantic": "maybe"}],
            }
        )
    )
    invalid.append(b'{"kind": "trigger", "id": "broken"')
    invalid.append(_dump({"kind": "robot", "id": "r1"}))
    # an invalid UPDATE of an existing trigger: the previous version must stay in force
    some = rng.choice(sorted(triggers))
    bad_update = dict(triggers[some])
    bad_update["code"] = "NOT_A_CODE"
    bad_update["updated_at"] = _fmt_time(rng.uniform(0, span), rng)
    invalid.append(_dump(bad_update))

    mixed = trig_lines + invalid[:-1]
    rng.shuffle(mixed)
    automation.extend(mixed)
    automation.append(invalid[-1])

    # ------------------------------------------------------------------ later versions
    later: list[bytes] = []
    for key in pipe_keys:
        if rng.random() < 0.3:
            tenant, entity, cat = key
            old = pipelines[key]
            n_proc = len(old) - 2
            new_stage = f"{'' if cat == '0' else 'C' + cat + ':'}EXTRA"
            proc = old[:n_proc]
            if rng.random() < 0.3 and n_proc >= 3:
                proc = proc[:1] + proc[2:]  # a process stage disappears
            proc = [*proc, new_stage]
            ids = proc + old[n_proc:]
            stages = [{"id": s, "semantic": "process"} for s in proc] + [
                {"id": s, "semantic": "success" if s.endswith("WON") else "failure"}
                for s in old[n_proc:]
            ]
            at = rng.uniform(0.1 * span, 0.6 * span)
            later.append(
                _dump(
                    tenant_field(
                        {
                            "kind": "pipeline",
                            "entity": entity,
                            "category": cat,
                            "stages": stages,
                            "updated_at": _fmt_time(at, rng),
                        },
                        tenant,
                    )
                )
            )
            pipelines[key] = ids
            # a trigger on the new stage, in force from the same time or later
            code = rng.choice(ALL_CODES)
            rec = {
                "kind": "trigger",
                "id": f"x-{entity}-{cat}",
                "entity": entity,
                "category": cat,
                "stage": new_stage,
                "code": code,
                "updated_at": _fmt_time(at + rng.uniform(0, 0.2 * span), rng),
            }
            params = _random_params(rng, code)
            if params is not None:
                rec["params"] = params
            later.append(_dump(tenant_field(rec, tenant)))
    for (tenant, _tid), rec in sorted(triggers.items()):
        r = rng.random()
        if r < 0.2:
            key = (tenant, rec["entity"], rec["category"])
            common = [s for s in pipelines[key] if s in pipe_v1[key]]
            new = dict(rec)
            new["stage"] = rng.choice(common)
            new["allow_backwards"] = rng.random() < 0.3
            params = _random_params(rng, rec["code"])
            new["params"] = params
            cond = _random_condition(rng, rec["code"])
            new["condition"] = cond
            new["updated_at"] = _fmt_time(rng.uniform(0, span), rng)
            later.append(_dump(new))
        elif r < 0.3:
            dele: dict[str, Any] = {"kind": "trigger", "id": rec["id"], "deleted": True}
            if rng.random() < 0.85:
                dele["updated_at"] = _fmt_time(rng.uniform(0, span), rng)
            later.append(_dump(tenant_field(dele, tenant)))
    if rng.random() < 0.5:
        tenant, entity, cat = rng.choice(pipe_keys)
        later.append(
            _dump(
                tenant_field(
                    {
                        "kind": "pipeline",
                        "entity": entity,
                        "category": cat,
                        "deleted": True,
                        "updated_at": _fmt_time(rng.uniform(0.5, 0.9) * span, rng),
                    },
                    tenant,
                )
            )
        )
    automation.extend(later)

    # ------------------------------------------------------------------ items
    items: list[dict] = []
    for n in range(n_items):
        tenant, entity, cat = rng.choice(pipe_keys)
        ids = pipe_v1[(tenant, entity, cat)]
        iid: Any = n + 1 if rng.random() < 0.3 else f"{entity[:1]}{n + 1}"
        stage = ids[0] if rng.random() < 0.7 else rng.choice(ids)
        items.append(
            {
                "tenant": tenant,
                "entity": entity,
                "id": iid,
                "category": cat,
                "stage": stage,
                "known": rng.random() < 0.85,
            }
        )

    # ------------------------------------------------------------------ events
    oracle = Oracle(automation)
    events: list[bytes] = []
    emitted_events: list[bytes] = []  # valid events that may be retried verbatim
    pending_echoes: list[tuple[int, dict]] = []  # (emit at event number, transition)
    echoed_late: list[dict] = []
    seq = [0]
    clock = [-STEP * 1.0]

    def next_time() -> str:
        clock[0] += STEP
        jitter = rng.uniform(-0.8, 0.8) * STEP if rng.random() < 0.3 else 0.0
        return _fmt_time(clock[0] + jitter, rng)

    def new_event_id() -> Any:
        seq[0] += 1
        r = rng.random()
        if r < 0.03:
            return float(seq[0])  # a whole-number float id reads as "12"
        return seq[0] if r < 0.1 else f"evt-{seq[0]}"

    def ref(item: dict, hint: str | None = None) -> dict:
        iid = item["id"]
        if isinstance(iid, int) and rng.random() < 0.1:
            iid = float(iid)
        r: dict[str, Any] = {"entity": item["entity"], "id": iid}
        if hint == "stage":
            r["stage"] = rng.choice(pipe_v1[(item["tenant"], item["entity"], item["category"])])
            if rng.random() < 0.8:
                r["category"] = item["category"]
        elif hint == "category":
            r["category"] = item["category"]
        return r

    history: dict[tuple, list[bytes]] = {}  # per item, its single-item events
    moves: dict[tuple, int] = {}  # per item, the moves made so far
    # echoes held back until their item has moved on past the echo window: (moves then, move)
    held_echoes: list[tuple[int, dict]] = []

    def key_of(tr: dict) -> tuple:
        return (tr["tenant"], tr["item"]["entity"], tr["item"]["id"])

    def emit(obj: dict, retryable: bool = True) -> None:
        raw = _dump(obj)
        events.append(raw)
        new = oracle.feed(raw)
        if retryable:
            emitted_events.append(raw)
            if "item" in obj:
                ref_id = obj["item"]["id"]
                text = str(int(ref_id)) if isinstance(ref_id, float) else str(ref_id)
                ikey = (obj.get("tenant", "default"), obj["item"]["entity"], text)
                history.setdefault(ikey, []).append(raw)
        for tr in new:
            k = key_of(tr)
            moves[k] = moves.get(k, 0) + 1
            r = rng.random()
            if r < 0.5:
                pending_echoes.append((len(events) + rng.randint(0, 3), tr))
            elif r < 0.6:
                echoed_late.append(tr)
            elif r < 0.7:
                held_echoes.append((moves[k], tr))

    def base_event(etype: str, item: dict, data: dict | None, hint: str | None = None) -> dict:
        ev: dict[str, Any] = {
            "id": new_event_id(),
            "type": etype,
            "occurred_at": next_time(),
            "item": ref(item, hint),
        }
        if data is not None:
            ev["data"] = data
        return tenant_field(ev, item["tenant"])

    def created_data(item: dict) -> dict:
        ids = pipe_v1[(item["tenant"], item["entity"], item["category"])]
        fields = {f: _random_value(rng, f) for f in rng.sample(FIELD_POOL, k=rng.randint(1, 4))}
        d: dict[str, Any] = {
            "stage": item["stage"] if rng.random() < 0.8 else rng.choice(ids),
            "fields": fields,
        }
        if item["category"] != "0" or rng.random() < 0.7:
            d["category"] = item["category"]
        return d

    for item in items:
        if item["known"]:
            emit(base_event("item.created", item, created_data(item)))

    def activity_data(etype: str) -> dict:
        d: dict[str, Any] = {}
        if etype == "form.submitted":
            d["form_id"] = rng.choice(FORM_IDS)
            if rng.random() < 0.4:
                d["callback"] = True
            elif rng.random() < 0.1:
                d["callback"] = "true"
        elif etype in ("document.created", "document.opened"):
            d["template_id"] = rng.choice(TEMPLATE_IDS)
        elif etype == "email.link_clicked":
            d["url"] = rng.choice(URLS)
        elif etype in ("call.incoming", "call.outgoing", "call.missed", "chat.started"):
            d["line"] = rng.choice(LINES)
        elif etype == "chat.message":
            d["line"] = rng.choice(LINES)
            d["text"] = rng.choice(TEXTS)
        elif etype == "chat.answered":
            d["line"] = rng.choice(LINES)
            d["answer_time_sec"] = rng.choice([5, 30, 45, 61, 120, "50"])
        elif etype == "task.status_changed":
            d["status"] = rng.choice(STATUSES)
        elif etype == "webhook":
            d["code"] = rng.choice(WEBHOOK_CODES)
        elif etype == "app.trigger":
            d["app_id"] = rng.choice(APP_IDS)
            d["code"] = rng.choice(APP_CODES)
        elif etype == "order.paid":
            d["amount"] = rng.choice([100, 1000, "2500"])
        if rng.random() < 0.15:
            d["amount"] = rng.choice([10, 900, "1000"])
        if not d and rng.random() < 0.5:
            return None  # type: ignore[return-value]
        return d

    def malformed(item: dict) -> bytes:
        kind = rng.randrange(9)
        ev = base_event("visit.registered", item, {})
        if kind == 0:
            return _dump(ev)[:-7]  # truncated JSON
        if kind == 1:
            del ev["occurred_at"]
        elif kind == 2:
            del ev["id"]
        elif kind == 3:
            ev["type"] = rng.choice(["item.merged", "sms.received", "Form.Submitted"])
        elif kind == 4:
            ev["id"] = ["evt"]
        elif kind == 5:
            ev["occurred_at"] = rng.choice([1767225600, "2026-11-05T10:00:00", "yesterday"])
        elif kind == 6:
            del ev["item"]
            ev["items"] = rng.choice([[], "x", {"entity": "deal"}])
        elif kind == 7:
            ev["data"] = rng.choice([[1, 2], "text"])
        elif kind == 8:
            ev["type"] = "item.updated"
            ev["data"] = {"changes": ["TITLE"]}
        return _dump(ev)

    def item_of(tr: dict) -> dict:
        return {
            "tenant": tr["tenant"],
            "entity": tr["item"]["entity"],
            "id": tr["item"]["id"],
            "category": tr["category"],
        }

    known_items = [it for it in items if it["known"]] or items
    hot_items = known_items[: max(1, len(known_items) // 15)]
    code_types = {
        "RESP_CHANGED": "item.updated",
        "FIELD_CHANGED": "item.updated",
        "WEBFORM": "form.submitted",
        "CALLBACK": "form.submitted",
        "DOCUMENT_CREATE": "document.created",
        "DOCUMENT_VIEW": "document.opened",
        "VISIT": "visit.registered",
        "RESOURCE_BOOKING": "resource.booked",
        "EMAIL": "email.received",
        "EMAIL_SENT": "email.sent",
        "EMAIL_READ": "email.read",
        "EMAIL_LINK": "email.link_clicked",
        "CALL": "call.incoming",
        "OUTGOING_CALL": "call.outgoing",
        "MISSED_CALL": "call.missed",
        "OPENLINE": "chat.started",
        "OPENLINE_MSG": "chat.message",
        "OPENLINE_ANSWER": "chat.answered",
        "OPENLINE_ANSWER_CTRL": "chat.answered",
        "TASK_STATUS": "task.status_changed",
        "WEBHOOK": "webhook",
        "APP": "app.trigger",
        "ORDER_PAID": "order.paid",
    }
    useful_types: dict[str, list[str]] = {}
    for (tenant, _tid), rec in sorted(triggers.items()):
        t = code_types[rec["code"]]
        if t != "item.updated":
            useful_types.setdefault(tenant, []).append(t)

    def pick_type(tenant: str) -> str:
        if useful_types.get(tenant) and rng.random() < 0.7:
            return rng.choice(useful_types[tenant])
        return rng.choice(ACTIVITY_TYPES)

    gone: set[tuple] = set()  # items the generator has deleted (and not re-created)
    for _ in range(n_events):
        # echoes that are due
        due = [p for p in pending_echoes if p[0] <= len(events)]
        pending_echoes[:] = [p for p in pending_echoes if p[0] > len(events)]
        for _, tr in due:
            it = item_of(tr)
            stage = tr["to_stage"]
            if rng.random() < 0.1:
                stage = rng.choice(pipelines[(tr["tenant"], tr["item"]["entity"], tr["category"])])
            emit(
                base_event(
                    "item.stage_changed",
                    it,
                    {"stage": stage, "category": tr["category"], "transition_id": tr["id"]},
                )
            )
        if echoed_late and rng.random() < 0.05:
            tr = echoed_late.pop(0)
            it = item_of(tr)
            emit(
                base_event(
                    "item.stage_changed", it, {"stage": tr["to_stage"], "transition_id": tr["id"]}
                )
            )
        # an echo of a move older than the item's echo window (or right at its edge)
        ripe = [h for h in held_echoes if moves[key_of(h[1])] - h[0] >= ECHO_WINDOW - 1]
        if ripe and rng.random() < 0.3:
            held = ripe[0]
            held_echoes.remove(held)
            tr = held[1]
            emit(
                base_event(
                    "item.stage_changed",
                    item_of(tr),
                    {"stage": tr["to_stage"], "transition_id": tr["id"]},
                )
            )

        r = rng.random()
        hot = rng.random() < hot_share
        if hot:
            item = rng.choice(hot_items)
        else:
            item = rng.choice(known_items) if rng.random() < 0.9 else rng.choice(items)
        ikey = (item["tenant"], item["entity"], str(item["id"]))
        past = history.get(ikey, [])
        if old_retries and hot and r < 0.03 and len(past) > SEEN_WINDOW:
            # a producer retry of an old event of the item: beyond its seen window, at its
            # edge, or inside it
            events.append(rng.choice(past[: len(past) - 4]))
            oracle.feed(events[-1])
        elif hot and r < 0.12:
            # the CRM moves a hot item back to its first stage: it can move again
            first = pipelines[(item["tenant"], item["entity"], item["category"])][0]
            emit(base_event("item.stage_changed", item, {"stage": first}))
        elif r < 0.04 and emitted_events:
            # a producer retry, verbatim, soon after the original (within its seen window)
            events.append(rng.choice(emitted_events[-8:]))
            oracle.feed(events[-1])
        elif r < 0.07:
            raw = malformed(item)
            events.append(raw)
            oracle.feed(raw)
        elif r < 0.22:
            changes = {
                f: _random_value(rng, f) for f in rng.sample(FIELD_POOL, k=rng.randint(1, 3))
            }
            if rng.random() < 0.05:
                changes = {}
            hint = "stage" if not item["known"] and rng.random() < 0.5 else None
            emit(base_event("item.updated", item, {"changes": changes}, hint))
        elif r < 0.28:
            stages = pipelines[(item["tenant"], item["entity"], item["category"])]
            data: dict[str, Any] = {"stage": rng.choice(stages)}
            if rng.random() < 0.1:
                # moved to another pipeline of the same entity, when there is one
                others = [
                    k
                    for k in pipe_keys
                    if k[0] == item["tenant"]
                    and k[1] == item["entity"]
                    and k[2] != item["category"]
                ]
                if others:
                    k = rng.choice(others)
                    data = {"stage": rng.choice(pipelines[k]), "category": k[2]}
            elif rng.random() < 0.1:
                data["transition_id"] = "not-one-of-ours"
            emit(base_event("item.stage_changed", item, data))
        elif r < 0.30:
            gone.add(ikey)
            emit(base_event("item.deleted", item, None))
        elif r < 0.33 or (ikey in gone and rng.random() < 0.4):
            gone.discard(ikey)
            emit(base_event("item.created", item, created_data(item)))
        elif r < 0.43:
            # a multi-item event: a contact's open items
            same = [i for i in items if i["tenant"] == item["tenant"]]
            chosen = rng.sample(same, k=min(len(same), rng.randint(2, 3)))
            etype = pick_type(item["tenant"])
            ev = base_event(etype, item, activity_data(etype))
            del ev["item"]
            ev["items"] = [
                ref(i, "stage" if not i["known"] and rng.random() < 0.5 else None) for i in chosen
            ]
            if rng.random() < 0.1:  # an item named twice, the same way: decided once
                ev["items"].append(dict(ev["items"][0]))
            emit(ev)
        elif r < 0.47:
            # an item nobody has heard of, with or without a hint
            ghost = dict(item)
            ghost["id"] = f"ghost-{rng.randrange(10 * n_items + 1)}"
            etype = pick_type(item["tenant"])
            hint = rng.choice(["stage", "stage", "category", None])
            emit(base_event(etype, ghost, activity_data(etype), hint))
        else:
            etype = pick_type(item["tenant"])
            hint = "stage" if not item["known"] and rng.random() < 0.5 else None
            emit(base_event(etype, item, activity_data(etype), hint))

    return automation, events
