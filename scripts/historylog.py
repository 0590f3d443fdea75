#!/usr/bin/env python3
"""Generate stage-history (spec 6.1) and transition (spec 2.3) logs at scale.

    python scripts/historylog.py DIR --records 10000000 [--seed 7] [--days 120]

Writes DIR/automation.jsonl, DIR/history.jsonl and DIR/transitions.jsonl and
prints a one-line summary. The same arguments give the same bytes.

Model: several tenants (acme the busiest), each with deal pipelines (two for
the larger tenants), leads and a smart process; triggers on most stages. Items
are created through the period with a weekday rhythm and walk their pipeline:
each stay lasts a log-normal time typical of its stage (minutes to weeks);
then a trigger moves the item on (mostly forward, sometimes skipping a stage,
sometimes back to an earlier stage where the trigger allows it), or a person
moves it in the CRM (forward, back, to a final stage, or into another deal
pipeline), or it is deleted, or it simply waits past the end (an open stay).
Won and lost items mostly stay closed; a few are reopened. Records are written
in decision order (by `at`, input order on ties), as a replay writes them.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

NAMESPACE = uuid.UUID("0c3a2f8e-5d41-4b7a-9e26-8f1d4c6b2a90")
P, S, F = "process", "success", "failure"

PIPELINES = {
    ("deal", "0"): [
        ("NEW", P),
        ("PREPARATION", P),
        ("PREPAYMENT_INVOICE", P),
        ("EXECUTING", P),
        ("FINAL_INVOICE", P),
        ("WON", S),
        ("LOSE", F),
        ("APOLOGY", F),
    ],
    ("deal", "1"): [
        ("C1:NEW", P),
        ("C1:PREPARATION", P),
        ("C1:EXECUTING", P),
        ("C1:WON", S),
        ("C1:LOSE", F),
    ],
    ("lead", "0"): [("NEW", P), ("IN_PROCESS", P), ("PROCESSED", P), ("CONVERTED", S), ("JUNK", F)],
    ("dynamic_128", "0"): [
        ("DT128_1:NEW", P),
        ("DT128_1:CHECK", P),
        ("DT128_1:APPROVED", P),
        ("DT128_1:SUCCESS", S),
        ("DT128_1:FAIL", F),
    ],
}
# Median stay (hours) on a process stage, by position in the pipeline.
MEDIAN_HOURS = [6.0, 40.0, 70.0, 120.0, 30.0]
CODES = [
    "WEBFORM",
    "CALL",
    "EMAIL_READ",
    "OPENLINE",
    "DOCUMENT_VIEW",
    "FIELD_CHANGED",
    "ORDER_PAID",
    "TASK_STATUS",
    "MISSED_CALL",
    "WEBHOOK",
]
EVENT_TYPES = {
    "WEBFORM": "form.submitted",
    "CALL": "call.incoming",
    "EMAIL_READ": "email.read",
    "OPENLINE": "chat.started",
    "DOCUMENT_VIEW": "document.opened",
    "FIELD_CHANGED": "item.updated",
    "ORDER_PAID": "order.paid",
    "TASK_STATUS": "task.status_changed",
    "MISSED_CALL": "call.missed",
    "WEBHOOK": "webhook",
}
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "soylent"]


@dataclass
class Trigger:
    id: str
    code: str
    stage: int
    allow_backwards: bool


@dataclass
class Pipeline:
    tenant: str
    entity: str
    category: str
    stages: list[tuple[str, str]]
    triggers: list[Trigger]


@dataclass
class Item:
    pipeline: Pipeline
    id: str
    stage: int
    events: int = 0


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_pipelines(rng: random.Random, tenants: int) -> list[tuple[Pipeline, float]]:
    out = []
    for t in range(tenants):
        name = TENANTS[t] if t < len(TENANTS) else f"tenant-{t + 1}"
        weight = 1.0 / (t + 1)
        keys = list(PIPELINES) if t < 2 else [("deal", "0"), ("lead", "0")]
        number = 0
        for key in keys:
            stages = PIPELINES[key]
            triggers = []
            for position, (_, semantic) in enumerate(stages):
                if position == 0 or semantic == F:
                    continue
                for _ in range(rng.randint(1, 3)):
                    number += 1
                    triggers.append(
                        Trigger(f"t-{number}", rng.choice(CODES), position, rng.random() < 0.15)
                    )
            share = {"deal": 0.45, "lead": 0.35, "dynamic_128": 0.2}[key[0]]
            if key == ("deal", "1"):
                share = 0.15
            out.append((Pipeline(name, key[0], key[1], stages, triggers), weight * share))
    return out


def automation_lines(pipelines: list[tuple[Pipeline, float]], start: int) -> list[bytes]:
    lines = []
    for p, _ in pipelines:
        lines.append(
            orjson.dumps(
                {
                    "kind": "pipeline",
                    "tenant": p.tenant,
                    "entity": p.entity,
                    "category": p.category,
                    "stages": [{"id": s, "semantic": m} for s, m in p.stages],
                    "updated_at": iso(start - 86400 * 30),
                }
            )
        )
        for t in p.triggers:
            lines.append(
                orjson.dumps(
                    {
                        "kind": "trigger",
                        "tenant": p.tenant,
                        "id": t.id,
                        "entity": p.entity,
                        "category": p.category,
                        "stage": p.stages[t.stage][0],
                        "code": t.code,
                        "params": {"code": "stage-ready"} if t.code == "WEBHOOK" else {},
                        "allow_backwards": t.allow_backwards,
                        "sort": 0,
                        "updated_at": iso(start - 86400 * 30),
                    }
                )
            )
        # A trigger that is in force but (almost) never fires: no item matches it.
        lines.append(
            orjson.dumps(
                {
                    "kind": "trigger",
                    "tenant": p.tenant,
                    "id": f"t-idle-{p.entity}-{p.category}",
                    "entity": p.entity,
                    "category": p.category,
                    "stage": p.stages[1][0],
                    "code": "WEBHOOK",
                    "params": {"code": "never"},
                    "updated_at": iso(start),
                }
            )
        )
    return lines


class Writer:
    def __init__(self, folder: Path) -> None:
        self.history = open(folder / "history.jsonl", "wb", buffering=1 << 22)  # noqa: SIM115
        self.transitions = open(folder / "transitions.jsonl", "wb", buffering=1 << 22)  # noqa: SIM115
        self.records = 0
        self.moves = 0

    def record(
        self,
        item: Item,
        at: int,
        kind: str,
        stage: int,
        from_stage: int | None,
        event_type: str,
        trigger: Trigger | None = None,
        category: str | None = None,
        backward: bool = False,
    ) -> None:
        p = item.pipeline
        item.events += 1
        event_id = f"e-{item.id}-{item.events}"
        key = f"{p.tenant}/{p.entity}/{item.id}/{event_id}"
        transition_id = None
        if trigger is not None:
            transition_id = str(uuid.uuid5(NAMESPACE, key))
            self.transitions.write(
                orjson.dumps(
                    {
                        "id": transition_id,
                        "tenant": p.tenant,
                        "item": {"entity": p.entity, "id": item.id},
                        "category": p.category,
                        "from_stage": p.stages[from_stage][0] if from_stage is not None else None,
                        "to_stage": p.stages[stage][0],
                        "direction": "backward" if backward else "forward",
                        "trigger": {"id": trigger.id, "code": trigger.code},
                        "event": {"id": event_id, "type": event_type, "occurred_at": iso(at)},
                    }
                )
                + b"\n"
            )
            self.moves += 1
        self.history.write(
            orjson.dumps(
                {
                    "id": str(uuid.uuid5(NAMESPACE, key + "/" + kind)),
                    "tenant": p.tenant,
                    "item": {"entity": p.entity, "id": item.id},
                    "category": category if category is not None else p.category,
                    "stage": p.stages[stage][0],
                    "from_stage": None if from_stage is None else p.stages[from_stage][0],
                    "semantic": p.stages[stage][1],
                    "kind": kind,
                    "at": iso(at),
                    "event": {"id": event_id, "type": event_type},
                    "transition_id": transition_id,
                    "trigger": None
                    if trigger is None
                    else {"id": trigger.id, "code": trigger.code},
                }
            )
            + b"\n"
        )
        self.records += 1

    def close(self) -> None:
        self.history.close()
        self.transitions.close()


def stay_seconds(rng: random.Random, position: int, semantic: str) -> int:
    # A closed item, if it comes back at all, does so weeks later.
    hours = 24 * 20.0 if semantic != P else MEDIAN_HOURS[min(position, len(MEDIAN_HOURS) - 1)]
    return max(1, int(3600 * hours * math.exp(rng.gauss(0, 1.1))))


def weekday_factor(seconds: int) -> float:
    day = datetime.fromtimestamp(seconds, UTC)
    return 0.25 if day.weekday() >= 5 else 1.0


def generate(folder: Path, records: int, seed: int, days: int, tenants: int) -> Writer:
    rng = random.Random(seed)
    start = int(datetime(2026, 8, 3, tzinfo=UTC).timestamp())
    end = start + days * 86400
    pipelines = make_pipelines(rng, tenants)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "automation.jsonl").write_bytes(
        b"\n".join(automation_lines(pipelines, start)) + b"\n"
    )
    weights = [w for _, w in pipelines]
    # About 3.2 history records per item: creations arrive as a Poisson stream.
    items = max(1, int(records / 3.2))
    gap = (end - start) / items
    writer = Writer(folder)
    queue: list[tuple[int, int, Item]] = []
    order = 0
    next_created = float(start)
    created = 0
    while writer.records < records:
        if next_created < end and (not queue or next_created <= queue[0][0]):
            at = int(next_created)
            next_created += rng.expovariate(1.0) * gap / weekday_factor(at)
            created += 1
            pipeline = rng.choices(pipelines, weights)[0][0]
            item = Item(pipeline, str(100000 + created), 0)
            writer.record(item, at, "created", 0, None, "item.created")
            order += 1
            heapq.heappush(queue, (at + stay_seconds(rng, 0, P), order, item))
        elif queue:
            at, _, item = heapq.heappop(queue)
            if at < end:  # else it waits past the end: an open stay
                order += 1
                step(rng, writer, item, at, queue, order)
        else:
            break
    writer.close()
    return writer


def step(
    rng: random.Random,
    writer: Writer,
    item: Item,
    at: int,
    queue: list[tuple[int, int, Item]],
    order: int,
) -> None:
    """The item's next history record after its stay, and when the one after is due."""
    p = item.pipeline
    stages = p.stages
    here = item.stage
    semantic = stages[here][1]
    success = next(i for i, (_, m) in enumerate(stages) if m == S)
    failures = [i for i, (_, m) in enumerate(stages) if m == F]
    roll = rng.random()
    if semantic != P:
        if roll < 0.85:
            return  # closed for good
        target = rng.randrange(0, success)  # reopened by a person
        writer.record(item, at, "crm", target, here, "item.stage_changed")
        item.stage = target
    elif roll < 0.02:
        writer.record(item, at, "deleted", here, here, "item.deleted")
        return
    elif roll < 0.60:
        forward = [t for t in p.triggers if t.stage > here and t.stage <= success]
        near = [t for t in forward if t.stage == min(x.stage for x in forward)] if forward else []
        pool = forward if rng.random() < 0.12 else near
        back = [t for t in p.triggers if t.allow_backwards and t.stage < here]
        if back and rng.random() < 0.06:
            pool = back
        if not pool:
            return
        trigger = rng.choice(pool)
        kind_type = EVENT_TYPES[trigger.code]
        writer.record(
            item,
            at,
            "trigger",
            trigger.stage,
            here,
            kind_type,
            trigger,
            backward=trigger.stage < here,
        )
        item.stage = trigger.stage
    elif roll < 0.72:
        target = rng.choice(failures)
        writer.record(item, at, "crm", target, here, "item.stage_changed")
        item.stage = target
    elif roll < 0.93:
        target = min(here + 1 + (rng.random() < 0.2), success)
        writer.record(item, at, "crm", target, here, "item.stage_changed")
        item.stage = target
    elif roll < 0.97 and here > 0:
        target = rng.randrange(0, here)
        writer.record(item, at, "crm", target, here, "item.stage_changed")
        item.stage = target
    else:
        # A quiet item: nothing happens for a long while, it is looked at again later.
        heapq.heappush(queue, (at + stay_seconds(rng, 3, P) * 3, order, item))
        return
    heapq.heappush(queue, (at + stay_seconds(rng, item.stage, stages[item.stage][1]), order, item))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--tenants", type=int, default=5)
    args = parser.parse_args()
    done = generate(args.folder, args.records, args.seed, args.days, args.tenants)
    sys.stderr.write(
        f"{args.folder}: {done.records:,} history records, {done.moves:,} transitions\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
