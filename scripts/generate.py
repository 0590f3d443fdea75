#!/usr/bin/env python3
"""Generate realistic CRM activity for crm-triggers: automation records and events.

Writes ``DIR/automation.jsonl`` (pipelines and triggers, spec 2.1) and
``DIR/events.jsonl`` (spec 2.2), or ``.jsonl.gz`` with ``--gzip``, and prints a
one-line summary to stderr. Output is a pure function of the arguments: the same
seed gives the same bytes on every run (gzip headers carry no time or name).

Model of activity
-----------------
* Tenants. Several CRM accounts ("acme", "globex", "initech", ...) share the
  stream; activity is skewed towards the first ones (acme ~ half). Only acme has
  every pipeline (two deal pipelines, leads, smart process ``dynamic_128``);
  the others have fewer. Every tenant's automation is in force before the first
  event; a few triggers get a second version and one is deleted mid-period.
* Time. Events are spread over ``--days`` days by a daily rhythm in UTC: busy in
  working hours 9-18, a shoulder in the morning and evening, quiet at night,
  a quarter of the traffic on weekends, and some day-to-day noise. The whole set
  of timestamps is drawn first and sorted, so ``occurred_at`` never decreases
  from one line to the next.
* Items. Each item (lead, deal, smart-process item) is announced by an
  ``item.created`` on the first stage of its pipeline before any other event
  names it. Creations are front-loaded so that there is something to act on
  early. The first ``--hot-items`` fraction of items to be created are "hot"
  (key accounts): together they receive ~30% of activity. Everything else is
  drawn with a recency bias (a deal is busy right after it appears, then goes
  quiet), which gives a long tail and items that stall.
* Activity. Each remaining event picks a tenant, an item and an event type from
  a mix like a real CRM: mostly mail and calls, then chats and field changes,
  then forms, documents, visits, bookings, tasks, webhooks, apps, payments.
  Parameters (form ids, phone and chat lines, URL prefixes, document templates,
  task statuses, webhook and app codes) are drawn about half the time from the
  values the tenant's triggers listen for, so that a few percent of events move
  an item. Each item has a preferred phone line and chat line, like a customer
  who always calls the same number.
* People. Managers move items by hand (``item.stage_changed`` without
  ``transition_id``), mostly forward, sometimes straight to won or lost, rarely
  back or into another pipeline; a closed item gets little further activity.
  A few items are deleted, and a few late events still arrive for them.
* Edge cases a producer really makes: events naming ``items`` (a client's mail
  that concerns 2-3 open items), producer retries (the same line written twice
  in a row), events for items created before the log began (with a hint of
  their category and stage), and malformed records at ``--malformed-rate``
  (not JSON, invalid UTF-8, missing ``occurred_at``/``type``, unknown event
  types, an id that is a list, a time without zone, an item without entity, an
  unknown item without a hint).

``--events N`` is the number of lines in the events file, retries and
malformed lines included.
"""

from __future__ import annotations

import argparse
import gzip
import os
import queue
import random
import sys
import threading
import time
from bisect import bisect
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import accumulate

import orjson

HOUR_MS = 3_600_000

# Share of activity that goes to hot items when a tenant has any.
HOT_SHARE = 0.30
# Share of producer retries (a line written twice) among event lines.
RETRY_RATE = 0.002
# Share of activity about items created before the log began (sent with a hint).
LEGACY_RATE = 0.004
# Share of contact-bound events (mail, calls, chats, visits) that name several items.
MULTI_RATE = 0.04
# Share of activity that still arrives for a deleted item.
LATE_FOR_DELETED_RATE = 0.0015

# --------------------------------------------------------------------------------------
# Automation blueprints
# --------------------------------------------------------------------------------------
# The tables below are kept one row per line on purpose (fmt: off): they read as data.
# fmt: off

P, S, F = "process", "success", "failure"

DEAL0_FULL = [("NEW", P), ("PREPARATION", P), ("PREPAYMENT_INVOICE", P), ("EXECUTING", P),
              ("WON", S), ("LOSE", F)]
DEAL1_ACME = [("C1:NEW", P), ("C1:PREPARATION", P), ("C1:EXECUTING", P), ("C1:WON", S),
              ("C1:LOSE", F)]
DEAL0_GLOBEX = [("NEW", P), ("PREPARATION", P), ("PREPAYMENT_INVOICE", P), ("WON", S),
                ("LOSE", F)]
DEAL1_GLOBEX = [("C1:NEW", P), ("C1:NEGOTIATION", P), ("C1:CONTRACT", P), ("C1:WON", S),
                ("C1:LOSE", F)]
DEAL0_SMALL = [("NEW", P), ("EXECUTING", P), ("WON", S), ("LOSE", F)]
LEAD = [("NEW", P), ("IN_PROCESS", P), ("PROCESSED", P), ("CONVERTED", S), ("JUNK", F)]
DYNAMIC_128 = [("DT128_1:NEW", P), ("DT128_1:PREPARATION", P), ("DT128_1:CLIENT", P),
               ("DT128_1:SUCCESS", S), ("DT128_1:FAIL", F)]


def cond(*clauses: tuple) -> dict:
    """One AND-group condition: cond(("OPPORTUNITY", ">", 1000), ...)."""
    return {"any": [[{"field": f, "op": op, "value": v} for f, op, v in clauses]]}


# Trigger rows: (id, entity, category, stage, code, params, options).
ACME_TRIGGERS = [
    ("t-1", "lead", "0", "IN_PROCESS", "WEBFORM", {"form_id": "12"}, {}),
    ("t-2", "lead", "0", "IN_PROCESS", "CALLBACK", {"form_id": "14"}, {"sort": 10}),
    ("t-3", "lead", "0", "IN_PROCESS", "CALL", {"line": "8800"}, {}),
    ("t-4", "lead", "0", "IN_PROCESS", "OPENLINE", {"line": "1"}, {"sort": 20}),
    ("t-5", "lead", "0", "PROCESSED", "EMAIL", {},
     {"condition": cond(("SOURCE_ID", "in", ["EMAIL", "WEB"]))}),
    ("t-6", "lead", "0", "JUNK", "EMAIL_LINK", {"url": "https://acme.example/unsubscribe"}, {}),
    ("t-7", "lead", "0", "IN_PROCESS", "MISSED_CALL", {"line": "8800"}, {"sort": 30}),
    ("t-8", "deal", "0", "PREPARATION", "RESP_CHANGED", {}, {}),
    ("t-9", "deal", "0", "PREPARATION", "OUTGOING_CALL", {"line": "8800"}, {"sort": 5}),
    # A client who writes again reopens a deal that was lost or moved on.
    ("t-10", "deal", "0", "PREPARATION", "EMAIL", {},
     {"allow_backwards": True, "sort": 100,
      "condition": cond(("OPPORTUNITY", ">=", 2000), ("SOURCE_ID", "!=", "OTHER"))}),
    ("t-11", "deal", "0", "PREPARATION", "EMAIL_LINK", {"url": "https://acme.example/pricing"},
     {"sort": 10}),
    ("t-12", "deal", "0", "PREPAYMENT_INVOICE", "DOCUMENT_CREATE", {"template_id": "3"},
     {"condition": cond(("OPPORTUNITY", ">", 1000))}),
    ("t-13", "deal", "0", "EXECUTING", "DOCUMENT_VIEW", {"template_id": "3"}, {}),
    ("t-14", "deal", "0", "EXECUTING", "FIELD_CHANGED", {"fields": ["UF_CRM_CONTRACT_SIGNED"]},
     {"condition": cond(("UF_CRM_CONTRACT_SIGNED", "=", "Y"))}),
    ("t-15", "deal", "0", "EXECUTING", "TASK_STATUS", {"status": "5"}, {"sort": 50}),
    ("t-16", "deal", "0", "WON", "ORDER_PAID", {}, {}),
    ("t-17", "deal", "1", "C1:PREPARATION", "OPENLINE_MSG", {"line": "2", "text": "invoice"}, {}),
    ("t-18", "deal", "1", "C1:PREPARATION", "OPENLINE_ANSWER_CTRL", {"line": "2"},
     {"condition": cond(("event.answer_time_sec", "<=", 60))}),
    ("t-19", "deal", "1", "C1:EXECUTING", "APP",
     {"app_id": "local.5f1a2b", "code": "delivery_done"}, {}),
    ("t-20", "deal", "1", "C1:WON", "WEBHOOK", {"code": "erp_paid"}, {}),
    ("t-21", "deal", "1", "C1:PREPARATION", "EMAIL_READ", {}, {"sort": 10}),
    ("t-22", "deal", "1", "C1:PREPARATION", "CALL", {"line": "8801"}, {}),
    ("t-23", "dynamic_128", "1", "DT128_1:PREPARATION", "VISIT", {}, {}),
    ("t-24", "dynamic_128", "1", "DT128_1:PREPARATION", "EMAIL_SENT", {}, {"sort": 5}),
    ("t-25", "dynamic_128", "1", "DT128_1:PREPARATION", "OPENLINE_ANSWER", {"line": "3"}, {}),
    ("t-26", "dynamic_128", "1", "DT128_1:CLIENT", "RESOURCE_BOOKING", {}, {}),
]

GLOBEX_TRIGGERS = [
    ("t-1", "lead", "0", "IN_PROCESS", "WEBFORM", {"form_id": "7"}, {}),
    # An inbound call on the sales line pulls a deal back into preparation.
    ("t-2", "deal", "0", "PREPARATION", "CALL", {"line": "100"}, {"allow_backwards": True}),
    ("t-3", "deal", "1", "C1:NEGOTIATION", "OPENLINE_ANSWER_CTRL", {"line": "5"},
     {"condition": cond(("event.answer_time_sec", "<=", 120))}),
]

SMALL_TRIGGERS = [
    ("t-1", "deal", "0", "WON", "WEBHOOK", {"code": "invoice_paid"}, {}),
    ("t-2", "lead", "0", "IN_PROCESS", "MISSED_CALL", {"line": "300"}, {"sort": 5}),
]

# (trigger id, fraction of the period, changed fields): second versions, acme/globex only.
TRIGGER_VERSIONS = {
    "acme": [
        ("t-12", 0.40, {"condition": cond(("OPPORTUNITY", ">", 5000))}),
        ("t-9", 0.50, {"stage": "PREPAYMENT_INVOICE"}),
        ("t-11", 0.55, {"params": {"url": "https://acme.example/pricing/enterprise"}}),
    ],
    "globex": [("t-1", 0.60, {"params": {"form_id": "8"}})],
}
# (trigger id, fraction of the period): deletions.
TRIGGER_DELETIONS = {"acme": [("t-22", 0.50)]}
# A new trigger table an administrator drafts after the period (dated the day after
# it): in force for no event of the log, so a replay ignores it, while a what-if
# replay applies it from the beginning. Changes of existing triggers, new triggers
# (blueprint rows) and deletions.
PROPOSED_CHANGES = {
    "acme": [
        ("t-12", {"condition": cond(("OPPORTUNITY", ">", 500))}),
        ("t-13", {"params": {"template_id": "4"}}),
        ("t-3", {"params": {"line": "8801"}}),
    ],
}
PROPOSED_TRIGGERS = {
    "acme": [
        ("t-27", "deal", "0", "PREPARATION", "EMAIL_READ", {}, {"sort": 20}),
        ("t-28", "lead", "0", "PROCESSED", "CALL", {"line": "8800"}, {"sort": 5}),
    ],
}
PROPOSED_DELETIONS = {"acme": ["t-7"]}

ALL_CODES = [
    "RESP_CHANGED", "FIELD_CHANGED", "WEBFORM", "CALLBACK", "DOCUMENT_CREATE", "DOCUMENT_VIEW",
    "VISIT", "RESOURCE_BOOKING", "EMAIL", "EMAIL_SENT", "EMAIL_READ", "EMAIL_LINK", "CALL",
    "OUTGOING_CALL", "MISSED_CALL", "OPENLINE", "OPENLINE_MSG", "OPENLINE_ANSWER",
    "OPENLINE_ANSWER_CTRL", "TASK_STATUS", "WEBHOOK", "APP", "ORDER_PAID",
]
# The first tenant alone exercises every trigger code, so even --tenants 1 covers them all.
assert sorted({row[4] for row in ACME_TRIGGERS}) == sorted(ALL_CODES)

TENANT_NAMES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "soylent",
                "cyberdyne", "tyrell", "wonka", "vandelay"]

# Blueprints: pipelines, triggers, item mix per pipeline (weights), users, phone/chat lines
# and noise values that no trigger listens for. Tenants past "globex" use SMALL_BLUEPRINT.
BLUEPRINTS = {
    "acme": {
        "pipelines": [("deal", "0", DEAL0_FULL), ("deal", "1", DEAL1_ACME), ("lead", "0", LEAD),
                      ("dynamic_128", "1", DYNAMIC_128)],
        "mix": {("lead", "0"): 35, ("deal", "0"): 35, ("deal", "1"): 15, ("dynamic_128", "1"): 15},
        "triggers": ACME_TRIGGERS,
        "users": ["1", "3", "7", "12", "15", "21", "24"],
        "lines": ["8800", "8801", "8802", "74951234567"],
        "chat_lines": ["1", "2", "3", "4"],
        "forms": ["3", "12", "21"], "callback_forms": ["14", "15"],
        "templates": ["1", "2", "3", "5"],
    },
    "globex": {
        "pipelines": [("deal", "0", DEAL0_GLOBEX), ("deal", "1", DEAL1_GLOBEX),
                      ("lead", "0", LEAD)],
        "mix": {("lead", "0"): 40, ("deal", "0"): 40, ("deal", "1"): 20},
        "triggers": GLOBEX_TRIGGERS,
        "users": ["1", "2", "9", "11"],
        "lines": ["100", "101", "4420795551234"],
        "chat_lines": ["5", "6"],
        "forms": ["7", "8", "9"], "callback_forms": ["10"],
        "templates": ["1", "4"],
    },
}
SMALL_BLUEPRINT = {
    "pipelines": [("deal", "0", DEAL0_SMALL), ("lead", "0", LEAD)],
    "mix": {("lead", "0"): 40, ("deal", "0"): 60},
    "triggers": SMALL_TRIGGERS,
    "users": ["1", "4", "5"],
    "lines": ["300", "301"],
    "chat_lines": ["1"],
    "forms": ["1", "2"], "callback_forms": ["4"],
    "templates": ["1", "2"],
}

# --------------------------------------------------------------------------------------
# Activity mix and vocabularies
# --------------------------------------------------------------------------------------

# Relative weights of activity types (item.created is scheduled separately).
ACTIVITY_MIX = [
    ("email.received", 11.0), ("email.sent", 14.0), ("email.read", 8.0),
    ("email.link_clicked", 4.0),
    ("call.incoming", 8.0), ("call.outgoing", 10.0), ("call.missed", 4.0),
    ("chat.started", 3.5), ("chat.message", 10.0), ("chat.answered", 3.5),
    ("item.updated", 9.0), ("item.stage_changed", 2.5), ("item.deleted", 0.15),
    ("form.submitted", 2.2), ("document.created", 1.4), ("document.opened", 1.6),
    ("visit.registered", 2.2), ("resource.booked", 0.7), ("task.status_changed", 2.2),
    ("webhook", 1.0), ("app.trigger", 0.8), ("order.paid", 0.6),
]
# Leads have no documents or orders in the CRM: those turn into an outgoing mail.
LEAD_REMAP = {"document.created": "email.sent", "document.opened": "email.sent",
              "order.paid": "email.sent"}
# Events bound to a contact rather than to one item: these may name several items.
CONTACT_BOUND = {"email.received", "call.incoming", "chat.message", "visit.registered"}
# Event types that a malformed record is derived from (no lifecycle: no state to undo).
PLAIN_ACTIVITY = ["email.received", "email.sent", "call.incoming", "call.outgoing",
                  "chat.message", "form.submitted", "visit.registered", "webhook"]

SOURCES = ["CALL", "EMAIL", "WEB", "WEBFORM", "CALLBACK", "ADVERTISING", "PARTNER",
           "RECOMMENDATION", "REPEAT_SALE", "OTHER"]
PRODUCTS = ["CRM licences", "Support plan", "Onboarding", "Hardware refresh", "Cloud storage",
            "Consulting", "Training", "Integration", "Annual renewal", "Pilot project"]
COMPANIES = ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Adatum", "Litware",
             "Proseware", "Woodgrove", "Lucerne", "Alpine Ski", "Blue Yonder", "Coho Winery"]
FIRST_NAMES = ["Anna", "Boris", "Chen", "Dana", "Elif", "Farid", "Grace", "Hugo", "Ines",
               "Jonas", "Kira", "Luis", "Maya", "Noah", "Olga", "Pavel", "Rosa", "Sven"]
SUBJECTS = ["Re: quote", "Question about pricing", "Meeting next week", "Invoice", "Contract draft",
            "Re: Re: delivery date", "Thanks!", "Follow-up", "Request for a demo", "Out of office"]
CHAT_TEXTS = ["Hello, is anyone there?", "Can you send the invoice again?", "What is the price?",
              "I need the INVOICE for last month", "When will it be delivered?", "thanks",
              "Do you have this in stock?", "Please call me back", "Invoice #4411 is wrong",
              "Can I change my order?", "ok", "Where is my parcel?", "Is there a discount?"]
COMMENTS = ["Client asked for a discount", "Waiting for budget approval", "Sent revised offer",
            "Decision maker on vacation", "Competitor is cheaper", "Ready to sign"]
PAGES = ["/", "/pricing", "/pricing/enterprise", "/blog/crm-tips", "/contacts", "/webinar",
         "/cases", "/docs/api", "/careers"]
LINK_SUFFIXES = ["", "?utm_source=mail", "?utm_campaign=oct&utm_source=newsletter", "/", "#plans",
                 "/enterprise", "?ref=signature"]
TASK_STATUSES = ["1", "2", "3", "4", "5", "5", "5", "6", "7"]  # Bitrix24: 5 = completed
RESOURCES = ["room-1", "room-2", "demo-stand", "engineer-visit", "van-3"]
WEBHOOK_NOISE = ["sync_contacts", "erp_shipped", "billing_overdue", "ping"]
APP_NOISE = [("local.5f1a2b", "stock_low"), ("app.telephony", "record_ready"),
             ("local.9c0d11", "delivery_done")]
UNKNOWN_TYPES = ["email.bounced", "call.transferred", "sms.received", "item.merged", "Email.Sent"]
# Not JSON at all, not an object, or not UTF-8 (UTF-16 with a BOM, Latin-1).
GARBAGE_LINES = [b"--- producer restarted ---", b"<html><body>502 Bad Gateway</body></html>",
                 b"null", b"[1, 2, 3]", b"\xff\xfeb\x00a\x00d\x00 \x00u\x00t\x00f\x00",
                 b"Caf\xe9 order \xab paid \xbb"]

# fmt: on


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


def parse_start(text: str) -> datetime:
    """Parse --start as an aware UTC datetime (a time without zone is taken as UTC)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    """Format a datetime as RFC 3339 UTC with seconds (automation records)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_weight(dt: datetime) -> float:
    """Relative activity of one UTC hour: office hours busy, nights and weekends quiet."""
    h = dt.hour
    if 9 <= h < 18:
        w = 0.8 if h == 13 else 1.0  # lunch dip
    elif h in (7, 8, 18, 19, 20):
        w = 0.35
    elif h in (6, 21, 22):
        w = 0.15
    else:
        w = 0.05
    if dt.weekday() >= 5:
        w *= 0.25
    return w


def draw_times(rng: random.Random, n: int, start: datetime, days: int) -> list[int]:
    """N event times (ms since epoch), sorted, following the daily rhythm."""
    start_ms = int(start.timestamp() * 1000)
    hours = days * 24
    day_noise = [rng.uniform(0.8, 1.2) for _ in range(days)]
    weights = [hour_weight(start + timedelta(hours=k)) * day_noise[k // 24] for k in range(hours)]
    cum = list(accumulate(weights))
    total = cum[-1]
    rand = rng.random
    last = hours - 1
    times = [
        start_ms + min(bisect(cum, rand() * total), last) * HOUR_MS + int(rand() * HOUR_MS)
        for _ in range(n)
    ]
    times.sort()
    return times


class TimeFormatter:
    """Tables to format epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" cheaply.

    Hour prefixes are computed once for the whole period; minutes, seconds and
    milliseconds come from small lookup tables, so no strftime runs per event.
    The event loop in generate() inlines __call__ for speed.
    """

    def __init__(self, start: datetime, days: int) -> None:
        base = start.replace(minute=0, second=0, microsecond=0)
        self.base_ms = int(base.timestamp() * 1000)
        self.prefixes = [
            (base + timedelta(hours=k)).strftime("%Y-%m-%dT%H:") for k in range(days * 24 + 2)
        ]
        self.mmss = [f"{s // 60:02d}:{s % 60:02d}" for s in range(3600)]
        self.millis = [f".{m:03d}Z" for m in range(1000)]

    def __call__(self, ms: int) -> str:
        h, rem = divmod(ms - self.base_ms, HOUR_MS)
        s, m = divmod(rem, 1000)
        return self.prefixes[h] + self.mmss[s] + self.millis[m]


# --------------------------------------------------------------------------------------
# Tenants, pipelines, triggers
# --------------------------------------------------------------------------------------


class Pipeline:
    """An (entity, category) pipeline: ordered stage ids and where the final stages are."""

    __slots__ = ("category", "entity", "n_process", "stages")

    def __init__(self, entity: str, category: str, stages: list[tuple[str, str]]) -> None:
        self.entity = entity
        self.category = category
        self.stages = [s for s, _ in stages]
        self.n_process = sum(1 for _, sem in stages if sem == P)


class Item:
    """The generator's own view of one CRM item (it does not know what triggers did)."""

    __slots__ = (
        "alive",
        "chat_line",
        "closed",
        "hot",
        "line",
        "pipeline",
        "ref",
        "stage_idx",
        "tenant",
    )

    def __init__(
        self, tenant: Tenant, pipeline: Pipeline, ref: dict, line: str, chat_line: str
    ) -> None:
        self.tenant = tenant
        self.pipeline = pipeline
        self.ref = ref
        self.stage_idx = 0
        self.alive = True
        self.closed = False
        self.hot = False
        self.line = line
        self.chat_line = chat_line


class Tenant:
    """One CRM account: its pipelines, triggers, vocabularies and items."""

    def __init__(self, name: str, blueprint: dict, weight: float) -> None:
        self.name = name
        self.weight = weight
        self.domain = f"https://{name}.example"
        self.pipelines = {(e, c): Pipeline(e, c, st) for e, c, st in blueprint["pipelines"]}
        self.mix = list(blueprint["mix"].items())
        self.mix_cum = list(accumulate(w for _, w in self.mix))
        self.triggers = blueprint["triggers"]
        self.users = blueprint["users"]
        self.items: list[Item] = []
        self.hot: list[Item] = []
        self.legacy: list[Item] = []
        self.next_id = {"deal": 1000, "lead": 1000, "dynamic_128": 1}
        self.next_legacy_id = 999
        self.build_pools(blueprint)

    def build_pools(self, bp: dict) -> None:
        """Collect the values triggers listen for ("m_*") next to values they do not.

        Every version of a trigger counts: events keep matching after a change of params.
        """
        by_id = {row[0]: row for row in self.triggers}
        listened = [(row[4], row[5]) for row in self.triggers]
        listened += [
            (by_id[tid][4], ch["params"])
            for tid, _, ch in TRIGGER_VERSIONS.get(self.name, [])
            if "params" in ch
        ]

        def match(key: str, *codes: str) -> list:
            vals: list = []
            for code, params in listened:
                if code in codes and key in params and params[key] not in vals:
                    vals.append(params[key])
            return vals

        self.m_forms = match("form_id", "WEBFORM")
        self.m_callback_forms = match("form_id", "CALLBACK")
        self.forms = bp["forms"] + self.m_forms
        self.callback_forms = bp["callback_forms"] + self.m_callback_forms
        self.m_lines = match("line", "CALL", "OUTGOING_CALL", "MISSED_CALL")
        self.lines = bp["lines"] + [x for x in self.m_lines if x not in bp["lines"]]
        self.m_chat_lines = match(
            "line", "OPENLINE", "OPENLINE_MSG", "OPENLINE_ANSWER", "OPENLINE_ANSWER_CTRL"
        )
        self.chat_lines = bp["chat_lines"] + [
            x for x in self.m_chat_lines if x not in bp["chat_lines"]
        ]
        self.m_urls = match("url", "EMAIL_LINK")
        self.urls = [self.domain + p for p in PAGES]
        self.m_templates = match("template_id", "DOCUMENT_CREATE", "DOCUMENT_VIEW")
        self.templates = bp["templates"]
        self.m_statuses = match("status", "TASK_STATUS")
        self.m_webhooks = match("code", "WEBHOOK")
        self.m_apps = [(p["app_id"], p["code"]) for code, p in listened if code == "APP"]


def make_tenants(count: int) -> list[Tenant]:
    """Tenants by name, heaviest first (Zipf-like weights: acme ~ half of the traffic)."""
    tenants = []
    for i in range(count):
        name = TENANT_NAMES[i] if i < len(TENANT_NAMES) else f"tenant-{i + 1}"
        tenants.append(Tenant(name, BLUEPRINTS.get(name, SMALL_BLUEPRINT), 1.0 / (i + 1) ** 1.3))
    return tenants


def automation_records(tenants: list[Tenant], start: datetime, days: int) -> list[dict]:
    """Pipelines and triggers: initial versions before the first event, then mid-period changes."""
    records = []
    # Initial setup two weeks before the log starts, one record a minute, in tenant order.
    t0 = start - timedelta(days=14)
    step = 0
    for tenant in tenants:
        for p in tenant.pipelines.values():
            stages = [
                {"id": s, "semantic": (P if i < p.n_process else (S if i == p.n_process else F))}
                for i, s in enumerate(p.stages)
            ]
            records.append(
                {
                    "kind": "pipeline",
                    "tenant": tenant.name,
                    "entity": p.entity,
                    "category": p.category,
                    "stages": stages,
                    "updated_at": iso(t0 + timedelta(minutes=step)),
                }
            )
            step += 1
        for row in tenant.triggers:
            records.append(trigger_record(tenant.name, row, t0 + timedelta(minutes=step)))
            step += 1
    period = timedelta(days=days)

    def office_hours(frac: float, minutes: int) -> datetime:
        # An administrator edits rules at work: that day (UTC), 10:00 plus a few minutes.
        day = (start + period * frac).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(day + timedelta(hours=10, minutes=minutes), start)

    later = []
    for tenant in tenants:
        rows = {r[0]: r for r in tenant.triggers}
        for k, (tid, frac, changes) in enumerate(TRIGGER_VERSIONS.get(tenant.name, [])):
            rec = trigger_record(tenant.name, rows[tid], office_hours(frac, 7 + 13 * k))
            rec.update(changes)
            later.append(rec)
        for tid, frac in TRIGGER_DELETIONS.get(tenant.name, []):
            later.append(
                {
                    "kind": "trigger",
                    "tenant": tenant.name,
                    "id": tid,
                    "deleted": True,
                    "updated_at": iso(office_hours(frac, 200)),
                }
            )
    proposed_at = (start + period).replace(hour=0, minute=0, second=0, microsecond=0)
    proposed_at += timedelta(days=1, hours=10)
    for tenant in tenants:
        rows = {r[0]: r for r in tenant.triggers}
        minute = 0
        for tid, changes in PROPOSED_CHANGES.get(tenant.name, []):
            minute += 1
            rec = trigger_record(tenant.name, rows[tid], proposed_at + timedelta(minutes=minute))
            rec.update(changes)
            later.append(rec)
        for row in PROPOSED_TRIGGERS.get(tenant.name, []):
            minute += 1
            later.append(trigger_record(tenant.name, row, proposed_at + timedelta(minutes=minute)))
        for tid in PROPOSED_DELETIONS.get(tenant.name, []):
            minute += 1
            later.append(
                {
                    "kind": "trigger",
                    "tenant": tenant.name,
                    "id": tid,
                    "deleted": True,
                    "updated_at": iso(proposed_at + timedelta(minutes=minute)),
                }
            )
    # Second versions are written whole (upserts); keep the key order of the first version.
    for rec in later:
        rec["updated_at"] = rec.pop("updated_at")
    later.sort(key=lambda r: r["updated_at"])
    return records + later


def trigger_record(tenant: str, row: tuple, at: datetime) -> dict:
    """One trigger record from a blueprint row."""
    tid, entity, category, stage, code, params, opts = row
    rec = {
        "kind": "trigger",
        "tenant": tenant,
        "id": tid,
        "entity": entity,
        "category": category,
        "stage": stage,
        "code": code,
        "params": dict(params),
        "allow_backwards": opts.get("allow_backwards", False),
        "sort": opts.get("sort", 0),
    }
    if "condition" in opts:
        rec["condition"] = opts["condition"]
    rec["updated_at"] = iso(at)
    return rec


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------


class ActivityGenerator:
    """Builds event dicts one at a time, in time order, keeping a light view of each item."""

    def __init__(
        self,
        rng: random.Random,
        tenants: list[Tenant],
        n_items: int,
        hot_frac: float,
        malformed_rate: float,
    ) -> None:
        self.rng = rng
        self.tenants = tenants
        self.tenant_cum = list(accumulate(t.weight for t in tenants))
        self.n_items = n_items
        self.n_hot = round(n_items * hot_frac) if hot_frac > 0 else 0
        if hot_frac > 0 and n_items > 0:
            self.n_hot = max(1, self.n_hot)
        self.malformed_rate = malformed_rate
        self.created = 0
        self.deleted: list[Item] = []
        self.types = [t for t, _ in ACTIVITY_MIX]
        self.type_cum = list(accumulate(w for _, w in ACTIVITY_MIX))
        self.n_events = 0
        self.counts: Counter[str] = Counter()
        self.extras: Counter[str] = Counter()
        self.builders = {
            "email.received": self.email_received,
            "email.sent": self.email_sent,
            "email.read": self.email_read,
            "email.link_clicked": self.email_link,
            "call.incoming": self.call,
            "call.outgoing": self.call,
            "call.missed": self.call,
            "chat.started": self.chat_started,
            "chat.message": self.chat_message,
            "chat.answered": self.chat_answered,
            "item.updated": self.item_updated,
            "form.submitted": self.form_submitted,
            "document.created": self.document,
            "document.opened": self.document,
            "visit.registered": self.visit,
            "resource.booked": self.resource_booked,
            "task.status_changed": self.task_status,
            "webhook": self.webhook,
            "app.trigger": self.app_trigger,
            "order.paid": self.order_paid,
        }

    # -- helpers ------------------------------------------------------------------------

    def new_id(self) -> str:
        """Unique event ids in line order: evt-1, evt-2, ..."""
        self.n_events += 1
        return f"evt-{self.n_events}"

    def pick(self, seq: list):
        return seq[int(self.rng.random() * len(seq))]

    def pick_matching(self, matching: list, other: list, p: float = 0.5):
        """A value a trigger listens for with probability p (if there is one), else any."""
        if matching and self.rng.random() < p:
            return self.pick(matching)
        return self.pick(other)

    def any_tenant(self) -> Tenant:
        """A tenant by weight."""
        return self.tenants[bisect(self.tenant_cum, self.rng.random() * self.tenant_cum[-1])]

    def tenant_with_items(self) -> Tenant | None:
        """A tenant by weight that has created items; None while there are none at all."""
        t = self.any_tenant()
        if not t.items:
            # Early on only some tenants have items: fall back to any that has.
            with_items = [x for x in self.tenants if x.items]
            return self.pick(with_items) if with_items else None
        return t

    def pick_item(self, tenant: Tenant) -> Item | None:
        """Hot items take HOT_SHARE; otherwise recent items are far likelier (long tail)."""
        rand = self.rng.random
        items = tenant.items
        n = len(items)
        for _ in range(6):
            if tenant.hot and rand() < HOT_SHARE:
                item = tenant.hot[int(rand() * len(tenant.hot))]
            else:
                # P(one of the newest k of n) = (k/n)^(1/3): 10% newest get ~46% of picks.
                item = items[n - 1 - int(n * rand() ** 3)]
            # Closed items get little further activity; key accounts stay busy regardless.
            if item.alive and (not item.closed or item.hot or rand() < 0.2):
                return item
        return None

    def amount(self):
        """A deal amount: lognormal around 2000; some CRMs send it as a decimal string."""
        x = int(round(self.rng.lognormvariate(7.6, 1.1), -1))
        return f"{x:.2f}" if self.rng.random() < 0.1 else x

    # -- lifecycle --------------------------------------------------------------------

    def create_item(self, ts: str, make_hot: bool) -> dict:
        """A new item on the first stage of a pipeline chosen by the tenant's mix."""
        rng = self.rng
        tenant = self.any_tenant()
        key = tenant.mix[bisect(tenant.mix_cum, rng.random() * tenant.mix_cum[-1])][0]
        pipeline = tenant.pipelines[key]
        entity = pipeline.entity
        num = tenant.next_id[entity]
        tenant.next_id[entity] = num + 1 + (rng.random() < 0.05)  # ids skip now and then
        ref = {"entity": entity, "id": str(num)}
        item = Item(
            tenant,
            pipeline,
            ref,
            self.pick_matching(tenant.m_lines, tenant.lines, 0.6),
            self.pick_matching(tenant.m_chat_lines, tenant.chat_lines, 0.6),
        )
        tenant.items.append(item)
        if make_hot:
            item.hot = True
            tenant.hot.append(item)
        self.created += 1
        company = self.pick(COMPANIES)
        fields: dict = {"TITLE": f"{self.pick(PRODUCTS)} for {company}"}
        if entity == "lead":
            fields["NAME"] = self.pick(FIRST_NAMES)
            fields["COMPANY_TITLE"] = company
            if rng.random() < 0.7:  # many leads come without an amount
                fields["OPPORTUNITY"] = self.amount()
        else:
            fields["OPPORTUNITY"] = self.amount()
            fields["CONTACT_ID"] = str(rng.randrange(100, 9000))
        if "OPPORTUNITY" in fields:
            fields["CURRENCY_ID"] = "USD" if rng.random() < 0.8 else "EUR"
        fields["SOURCE_ID"] = self.pick(SOURCES)
        fields["ASSIGNED_BY_ID"] = self.pick(tenant.users)
        if entity == "deal":
            fields["UF_CRM_CONTRACT_SIGNED"] = "N"
        return {
            "id": self.new_id(),
            "type": "item.created",
            "tenant": tenant.name,
            "occurred_at": ts,
            "item": ref,
            "data": {"category": pipeline.category, "stage": pipeline.stages[0], "fields": fields},
        }

    def stage_changed(self, item: Item) -> dict:
        """A manager moves the item: mostly on, sometimes to won/lost, rarely back or across."""
        rng = self.rng
        p = item.pipeline
        idx = item.stage_idx
        r = rng.random()
        other = item.tenant.pipelines.get((p.entity, "1" if p.category == "0" else "0"))
        if other is not None and p.entity == "deal" and r < 0.02 and not item.closed:
            # Moved into the other deal pipeline: its first stage.
            item.pipeline = other
            item.stage_idx = 0
            return {"stage": other.stages[0], "category": other.category}
        if idx >= p.n_process:
            new = int(rng.random() * p.n_process)  # reopened
        elif r < 0.55:
            new = idx + 1  # next stage (may be the success stage)
        elif r < 0.70:
            new = p.n_process  # won
        elif r < 0.90:
            new = p.n_process + 1  # lost
        else:
            new = max(0, idx - 1) if idx > 0 else 1
        item.stage_idx = new
        item.closed = new >= p.n_process
        data = {"stage": p.stages[new]}
        if rng.random() < 0.5:
            data["category"] = p.category
        return data

    def item_updated(self, item: Item, tenant: Tenant) -> dict:
        """One or two field changes; a fifth of updates reassign the item."""
        rng = self.rng
        changes: dict = {}
        if rng.random() < 0.2:
            changes["ASSIGNED_BY_ID"] = self.pick(tenant.users)
        for _ in range(1 + (rng.random() < 0.3)):
            r = rng.random()
            if r < 0.35:
                changes["OPPORTUNITY"] = self.amount()
            elif r < 0.55:
                changes["COMMENTS"] = self.pick(COMMENTS)
            elif r < 0.70 and item.ref["entity"] == "deal":
                changes["UF_CRM_CONTRACT_SIGNED"] = "Y" if rng.random() < 0.8 else "N"
            elif r < 0.80:
                changes["SOURCE_ID"] = self.pick(SOURCES)
            elif r < 0.90:
                changes["TITLE"] = f"{self.pick(PRODUCTS)} for {self.pick(COMPANIES)}"
            else:
                changes["PHONE"] = f"+1555{rng.randrange(1000000, 9999999)}"
        return {"changes": changes}

    # -- activity data ------------------------------------------------------------------

    def email_received(self, item: Item, tenant: Tenant) -> dict:
        return {
            "from": f"{self.pick(FIRST_NAMES).lower()}@{self.pick(COMPANIES).lower()}.example",
            "subject": self.pick(SUBJECTS),
        }

    def email_sent(self, item: Item, tenant: Tenant) -> dict:
        return {"subject": self.pick(SUBJECTS), "author_id": self.pick(tenant.users)}

    def email_read(self, item: Item, tenant: Tenant) -> dict:
        return {"message_id": str(self.rng.randrange(10**6, 10**7))}

    def email_link(self, item: Item, tenant: Tenant) -> dict:
        base = self.pick_matching(tenant.m_urls, tenant.urls, 0.5)
        return {"url": base + self.pick(LINK_SUFFIXES)}

    def call(self, item: Item, tenant: Tenant, kind: str) -> dict:
        line = item.line if self.rng.random() < 0.85 else self.pick(tenant.lines)
        dur = 0 if kind == "call.missed" else int(self.rng.lognormvariate(4.5, 1.0))
        return {
            "line": line,
            "call_id": f"c{self.rng.randrange(10**8, 10**9)}",
            "duration_sec": dur,
        }

    def chat_line(self, item: Item, tenant: Tenant) -> str:
        return item.chat_line if self.rng.random() < 0.85 else self.pick(tenant.chat_lines)

    def chat_started(self, item: Item, tenant: Tenant) -> dict:
        return {"line": self.chat_line(item, tenant), "text": self.pick(CHAT_TEXTS)}

    def chat_message(self, item: Item, tenant: Tenant) -> dict:
        return {"line": self.chat_line(item, tenant), "text": self.pick(CHAT_TEXTS)}

    def chat_answered(self, item: Item, tenant: Tenant) -> dict:
        # Median ~45 s, long tail to hours: about 60% answered within a minute.
        wait = int(self.rng.lognormvariate(3.8, 1.0))
        return {
            "line": self.chat_line(item, tenant),
            "operator_id": self.pick(tenant.users),
            "answer_time_sec": wait,
        }

    def form_submitted(self, item: Item, tenant: Tenant) -> dict:
        if self.rng.random() < 0.2:
            return {
                "form_id": self.pick_matching(tenant.m_callback_forms, tenant.callback_forms),
                "callback": True,
                "phone": f"+1555{self.rng.randrange(1000000, 9999999)}",
            }
        return {"form_id": self.pick_matching(tenant.m_forms, tenant.forms)}

    def document(self, item: Item, tenant: Tenant) -> dict:
        return {
            "template_id": self.pick_matching(tenant.m_templates, tenant.templates),
            "document_id": str(self.rng.randrange(1, 50000)),
        }

    def visit(self, item: Item, tenant: Tenant) -> dict:
        return {"url": self.pick(tenant.urls), "visitor_id": f"v-{self.rng.randrange(10**6)}"}

    def resource_booked(self, item: Item, tenant: Tenant) -> dict:
        return {"resource_id": self.pick(RESOURCES), "duration_min": self.pick([30, 60, 90, 120])}

    def task_status(self, item: Item, tenant: Tenant) -> dict:
        status = self.pick_matching(tenant.m_statuses, TASK_STATUSES, 0.3)
        return {"task_id": str(self.rng.randrange(1, 90000)), "status": status}

    def webhook(self, item: Item, tenant: Tenant) -> dict:
        return {
            "code": self.pick_matching(tenant.m_webhooks, WEBHOOK_NOISE),
            "payload": {"ref": f"ERP-{self.rng.randrange(10**5)}"},
        }

    def app_trigger(self, item: Item, tenant: Tenant) -> dict:
        app_id, code = self.pick_matching(tenant.m_apps, APP_NOISE)
        return {"app_id": app_id, "code": code}

    def order_paid(self, item: Item, tenant: Tenant) -> dict:
        return {
            "order_id": str(self.rng.randrange(1, 30000)),
            "amount": self.amount(),
            "currency": "USD",
        }

    # -- events -----------------------------------------------------------------------

    def activity(self, ts: str) -> dict | None:
        """One customer or CRM event for an existing item (or a legacy/deleted one)."""
        rng = self.rng
        tenant = self.tenant_with_items()
        etype = self.types[bisect(self.type_cum, rng.random() * self.type_cum[-1])]
        r = rng.random()
        if tenant is None:  # no item created yet (or --items 0): only legacy items exist
            return self.legacy_event(ts, self.any_tenant(), etype)
        if r < LEGACY_RATE:
            return self.legacy_event(ts, tenant, etype)
        if r < LEGACY_RATE + LATE_FOR_DELETED_RATE and self.deleted:
            item = self.pick(self.deleted)
            tenant = item.tenant
            etype = self.pick(["email.received", "email.read", "call.incoming", "webhook"])
        else:
            item = self.pick_item(tenant)
            if item is None:
                return None
        if item.ref["entity"] == "lead":
            etype = LEAD_REMAP.get(etype, etype)
        if etype == "item.deleted" and item.hot:  # key accounts are not deleted
            etype = "item.updated"
        ev = {"id": self.new_id(), "type": etype, "tenant": tenant.name, "occurred_at": ts}
        if etype == "item.stage_changed":
            ev["item"] = item.ref
            ev["data"] = self.stage_changed(item)
        elif etype == "item.deleted":
            item.alive = False
            self.deleted.append(item)
            ev["item"] = item.ref
        else:
            refs = (
                self.related_items(item)
                if etype in CONTACT_BOUND and rng.random() < MULTI_RATE
                else None
            )
            if refs:
                ev["items"] = refs
                self.extras["multi"] += 1
            else:
                ev["item"] = item.ref
            if etype.startswith("call."):
                ev["data"] = self.call(item, tenant, etype)
            else:
                ev["data"] = self.builders[etype](item, tenant)
        return ev

    def related_items(self, item: Item) -> list[dict] | None:
        """The open items of one client: this one plus one or two others of the tenant."""
        refs = [item.ref]
        for _ in range(1 + (self.rng.random() < 0.4)):
            other = self.pick_item(item.tenant)
            if other is not None and other.ref not in refs:
                refs.append(other.ref)
        return refs if len(refs) > 1 else None

    def legacy_event(self, ts: str, tenant: Tenant, etype: str) -> dict:
        """An event for an item created before the log began: the producer adds a hint."""
        rng = self.rng
        if etype.startswith("item.") or etype in (
            "order.paid",
            "document.created",
            "document.opened",
        ):
            etype = "email.received"
        cap = max(20, self.n_items // 50)  # legacy items per tenant
        if len(tenant.legacy) < cap and (not tenant.legacy or rng.random() < 0.5):
            key = tenant.mix[bisect(tenant.mix_cum, rng.random() * tenant.mix_cum[-1])][0]
            p = tenant.pipelines[key]
            stage = p.stages[int(rng.random() * p.n_process)]
            ref = {
                "entity": p.entity,
                "id": str(tenant.next_legacy_id),
                "category": p.category,
                "stage": stage,
            }
            tenant.next_legacy_id -= 1 + int(rng.random() * 7)
            item = Item(tenant, p, ref, self.pick(tenant.lines), self.pick(tenant.chat_lines))
            tenant.legacy.append(item)
        else:
            item = self.pick(tenant.legacy)
        self.extras["hinted"] += 1
        data = (
            self.call(item, tenant, etype)
            if etype.startswith("call.")
            else self.builders[etype](item, tenant)
        )
        return {
            "id": self.new_id(),
            "type": etype,
            "tenant": tenant.name,
            "occurred_at": ts,
            "item": item.ref,
            "data": data,
        }

    def malformed(self, ts: str) -> bytes:
        """A record that must end in the dead-letter output, shaped like real producer bugs."""
        rng = self.rng
        tenant = self.tenant_with_items()
        item = self.pick_item(tenant) if tenant else None
        if tenant is None or item is None:
            return b"--- producer restarted ---"
        etype = self.pick(PLAIN_ACTIVITY)
        data = (
            self.call(item, tenant, etype)
            if etype.startswith("call.")
            else self.builders[etype](item, tenant)
        )
        ev = {
            "id": self.new_id(),
            "type": etype,
            "tenant": tenant.name,
            "occurred_at": ts,
            "item": item.ref,
            "data": data,
        }
        kind = self.pick(
            [
                "not_json",
                "truncated",
                "no_occurred_at",
                "no_type",
                "unknown_type",
                "id_list",
                "naive_time",
                "item_no_entity",
                "unknown_item",
            ]
        )
        self.extras["malformed"] += 1
        self.extras[f"malformed.{kind}"] += 1
        if kind == "not_json":
            return self.pick(GARBAGE_LINES)
        if kind == "truncated":  # a line cut short by a crashed producer
            line = orjson.dumps(ev)
            return line[: max(5, int(len(line) * rng.uniform(0.2, 0.9)))]
        if kind == "no_occurred_at":
            del ev["occurred_at"]
        elif kind == "no_type":
            del ev["type"]
        elif kind == "unknown_type":
            ev["type"] = self.pick(UNKNOWN_TYPES)
        elif kind == "id_list":
            ev["id"] = [ev["id"]]
        elif kind == "naive_time":
            ev["occurred_at"] = ts[:-1] if rng.random() < 0.5 else ts[:19].replace("T", " ")
        elif kind == "item_no_entity":
            ev["item"] = {"id": item.ref["id"]}
        elif kind == "unknown_item":  # never created, and no hint to go by
            ev["item"] = {"entity": item.ref["entity"], "id": str(rng.randrange(900000, 999999))}
        return orjson.dumps(ev)


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


class LineWriter:
    """Writes lines in big chunks; with gzip, compresses on a background thread.

    zlib releases the GIL, so on a multi-core machine compression overlaps with
    generation. Level 1: test data favours speed over size (level 6 is ~3x slower for
    ~25% smaller files). The gzip header has mtime 0 and no file name: identical bytes
    per seed.
    """

    CHUNK_LINES = 8192

    def __init__(self, path: str, use_gzip: bool) -> None:
        self.raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=1)
            if use_gzip
            else self.raw
        )
        self.buf: list[bytes] = []
        self.queue: queue.Queue | None = None
        self.thread = None
        if use_gzip:
            self.queue = queue.Queue(maxsize=8)
            self.thread = threading.Thread(target=self._drain, daemon=True)
            self.thread.start()

    def _drain(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            self.out.write(chunk)

    def write(self, line: bytes) -> None:
        self.buf.append(line)
        if len(self.buf) >= self.CHUNK_LINES:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        self.buf.append(b"")
        chunk = b"\n".join(self.buf)
        self.buf = []
        if self.queue is not None:
            self.queue.put(chunk)
        else:
            self.out.write(chunk)

    def close(self) -> None:
        self.flush()
        if self.queue is not None:
            self.queue.put(None)
            self.thread.join()
        if self.out is not self.raw:
            self.out.close()
        self.raw.close()


def creation_positions(rng: random.Random, n_events: int, n_items: int) -> list[int]:
    """Line positions of the item.created events: front-loaded, all within 95% of the stream.

    Position of item k ~ 0.95 N (k/M)^1.25, jittered: creations are densest at the start
    so that early activity has items to land on, and keep coming until near the end.
    """
    span = 0.95 * n_events
    pos = [int(span * ((k + rng.random()) / n_items) ** 1.25) for k in range(n_items)]
    pos[0] = 0
    pos.sort()
    return pos


def generate(args: argparse.Namespace) -> tuple[Counter, Counter, int]:
    """Write both files; return (counts by type, extras, lines written)."""
    rng = random.Random(args.seed)
    start = parse_start(args.start)
    tenants = make_tenants(args.tenants)
    suffix = ".jsonl.gz" if args.gzip else ".jsonl"
    os.makedirs(args.out, exist_ok=True)

    auto = LineWriter(os.path.join(args.out, "automation" + suffix), args.gzip)
    for rec in automation_records(tenants, start, args.days):
        auto.write(orjson.dumps(rec))
    auto.close()

    n = args.events
    # Items need room: at most half of the lines are creations. With --items 0 every
    # item predates the log, so every event carries a hint.
    n_items = min(args.items, n // 2)
    times = draw_times(rng, n, start, args.days)
    fmt = TimeFormatter(start, args.days)
    gen = ActivityGenerator(rng, tenants, n_items, args.hot_items, args.malformed_rate)
    create_at = creation_positions(rng, n, n_items) if n_items else []

    out = LineWriter(os.path.join(args.out, "events" + suffix), args.gzip)
    # The loop runs once per line: locals and inlined formatting instead of calls.
    dumps = orjson.dumps
    rand = rng.random
    counts = gen.counts
    malformed_rate = args.malformed_rate
    base_ms, prefixes, mmss, millis = fmt.base_ms, fmt.prefixes, fmt.mmss, fmt.millis
    buf = out.buf
    chunk = out.CHUNK_LINES
    j = 0  # next item to create
    last_line = None
    for i in range(n):
        if len(buf) >= chunk:
            out.flush()
            buf = out.buf
        h, rem = divmod(times[i] - base_ms, HOUR_MS)
        sec, ms = divmod(rem, 1000)
        ts = prefixes[h] + mmss[sec] + millis[ms]
        if last_line is not None and rand() < RETRY_RATE:
            # Producer retry: the same bytes again, right after (same occurred_at, so the
            # file stays ordered by time).
            buf.append(last_line)
            gen.extras["retries"] += 1
            last_line = None
            continue
        if j < n_items and (create_at[j] <= i or gen.created == 0):
            ev = gen.create_item(ts, make_hot=j < gen.n_hot)
            j += 1
        elif rand() < malformed_rate:
            buf.append(gen.malformed(ts))
            last_line = None
            continue
        else:
            ev = gen.activity(ts)
            if ev is None:  # nothing open to act on: create an item if any is left
                ev = (
                    gen.create_item(ts, make_hot=j < gen.n_hot)
                    if j < n_items
                    else gen.legacy_event(ts, gen.any_tenant(), "email.received")
                )
                j += ev["type"] == "item.created"
        counts[ev["type"]] += 1
        last_line = dumps(ev)
        buf.append(last_line)
    out.close()
    return counts, gen.extras, n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--events", type=int, default=20000, help="lines in events file")
    ap.add_argument("--items", type=int, default=2000, help="items created")
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--start", default="2026-10-01T00:00:00Z", help="first possible event time")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--malformed-rate", type=float, default=0.003)
    ap.add_argument(
        "--hot-items",
        type=float,
        default=0.01,
        help="fraction of items that receive ~30%% of activity",
    )
    ap.add_argument("--gzip", action="store_true", help="write .jsonl.gz")
    args = ap.parse_args(argv)
    if args.events < 0 or args.items < 0 or args.tenants < 1 or args.days < 1:
        ap.error("--events and --items must be >= 0, --tenants and --days >= 1")
    if not 0 <= args.malformed_rate <= 1 or not 0 <= args.hot_items <= 1:
        ap.error("--malformed-rate and --hot-items must be within [0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    counts, extras, lines = generate(args)
    by_type = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(
        f"generate: {lines} lines to {args.out} in {time.perf_counter() - t0:.1f}s: {by_type} "
        f"retries={extras['retries']} malformed={extras['malformed']} "
        f"hinted={extras['hinted']} multi={extras['multi']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
