"""The compiled board against the reference `Board`: the same raw lines, the same outcomes.

Both engines are driven as the dataflow drives them (`flows.dataflow.decide_parcels`):
the Python `Board` decodes each record with `connectors.records.decode_event`, the
`NativeBoard` decides whole parcels of raw bytes. Each call's `Decisions` must be the
same: transitions byte for byte, dead letters (code, message, record, origin, item)
byte for byte, and the counts by reason.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.raw import AUTOMATION, EVENTS
from connectors.records import decode_event, transition_json
from flows.dataflow import Decisions, FlowSettings, Parcel, decide_parcels
from state import native
from state.board import Board
from state.codes import EVENT_TYPES, LIFECYCLE, PARAMS, codes_for
from state.conditions import OPERATORS
from state.model import transition_id
from state.native import NativeBoard
from state.table import TriggerTable
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.skipif(not native.available(), reason="crm_triggers_native not built")

SOURCE = "events.jsonl"

# Vocabulary -------------------------------------------------------------------------------

# Repeated entries weigh the draw toward records that meet each other.
TENANTS = ["default", "default", "default", "acme"]
ENTITIES = ["deal", "deal", "deal", "lead"]
CATEGORIES: list[Any] = ["0", "0", "0", "0", "1", 7]
STAGE_POOL: list[Any] = ["NEW", "PREP", "PROPOSAL", "WON", "LOSE", "Étape", 7, "ステージ"]
ITEM_IDS: list[Any] = ["1", 2, "2", "ü-3"]
EVENT_IDS: list[Any] = [*(f"e-{n}" for n in range(20)), 20, "é-21"]
TRIGGER_IDS: list[Any] = ["t-1", "t-2", "t-3", "t-4", "t-5", 6]
ITEM_FIELDS = ["OPPORTUNITY", "TITLE", "UF_SCORE", "ASSIGNED_BY_ID", "STAGE_ID"]
EVENT_KEYS = [
    "form_id",
    "callback",
    "template_id",
    "url",
    "line",
    "text",
    "status",
    "code",
    "app_id",
    "answer_time_sec",
    "amount",
]
LIFECYCLE_TYPES = sorted(LIFECYCLE)
ALL_TYPES = sorted(EVENT_TYPES)
EVENT_TIMES = [
    "2026-11-01T00:00:00Z",
    "2026-11-08T09:30:00+05:30",
    "2026-11-12T00:00:00.5Z",
    "2026-11-15T00:00:00Z",
    "2026-11-18T23:59:59.999999-00:00",
    "2026-11-22T10:00:00.123+01:00",
    "2026-11-28T12:00:00Z",
]
AUTOMATION_TIMES: list[str | None] = [
    None,
    None,
    None,
    None,
    "2026-11-05T00:00:00Z",
    "2026-11-15T00:00:00Z",
    "2026-11-20T00:00:00+01:00",
]
BIG = 2**130  # exact as a float, beyond 64 (and 128) bits
SCALARS: list[Any] = [
    0,
    1,
    5,
    5.0,
    5.5,
    -3,
    -0.0,
    1000,
    "1000",
    "5",
    " 5 ",
    "5.0",
    "1e3",
    ".5",
    "abc",
    "ABC",
    "price",
    "Straße",
    "STRASSE",
    "été",
    "ÉTÉ",
    "İ",
    "",
    None,
    True,
    False,
    2**63,
    2**70,
    BIG,
    9007199254740993,
    1e300,
]
VALUES: list[Any] = [*SCALARS, [], ["abc", 5], [["x"]], {}, {"a": 1}]

DATA_VALUES: dict[str, list[Any]] = {
    "form_id": ["1", 1, 1.0, "2", BIG, 2**64, "é", True, None],
    "callback": [True, True, "true", False, None],
    "template_id": ["1", 1, "t", None],
    "url": ["https://ex.com/a", "HTTPS://EX.COM/", "ÿ", "", 5, None],
    "line": ["1", 1, 1.0, "2", -1, None],
    "text": ["What is the PRICE?", "PRÉCIS", "STRASSE", "Die Straße", "İstanbul", "", 5],
    "status": ["1", 1, "2", 2.0, "é"],
    "code": ["1", "2", 1, "é"],
    "app_id": ["1", "2", 1, "é"],
}
"""Values of the event data keys that trigger params read: near what params expect."""
scalars = st.sampled_from(SCALARS)
values = st.sampled_from(VALUES)


def dumps(obj: Any, ascii_only: bool = False) -> bytes:
    """JSON as a producer might write it: stdlib json keeps integers beyond 64 bits."""
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":")).encode()


# Automation -------------------------------------------------------------------------------


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, Any]:
    stages = draw(st.lists(st.sampled_from(STAGE_POOL), min_size=3, max_size=7, unique=True))
    record: dict[str, Any] = {
        "kind": "pipeline",
        "entity": draw(st.sampled_from(ENTITIES)),
        "category": draw(st.sampled_from(CATEGORIES)),
        "stages": [
            {"id": s, "semantic": draw(st.sampled_from(["process", "success", "failure"]))}
            for s in stages
        ],
    }
    _common(draw, record)
    return record


def _common(draw: st.DrawFn, record: dict[str, Any]) -> None:
    tenant = draw(st.sampled_from([None, *TENANTS]))
    if tenant is not None:
        record["tenant"] = tenant
    updated_at = draw(st.sampled_from(AUTOMATION_TIMES))
    if updated_at is not None:
        record["updated_at"] = updated_at


PARAM_VALUES: dict[str, list[Any]] = {
    "eq": ["1", 1, 1.0, "2", "é", BIG, 2**64, -1, "", None],
    "prefix": ["https://ex.com/", "HTTPS://", "ÿ", "", None],
    "substring": ["price", "PRÉ", "straße", "ss", "İ", "i̇", "", None],
    "fields": [["OPPORTUNITY"], ["TITLE", "STAGE_ID"], ["ASSIGNED_BY_ID"], [], None],
}


@st.composite
def clauses(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from([*ITEM_FIELDS[:3], *(f"event.{k}" for k in EVENT_KEYS[-6:])]))
    op = draw(st.sampled_from(sorted(OPERATORS)))
    clause: dict[str, Any] = {"field": field, "op": op}
    if op in ("in", "!in"):
        clause["value"] = draw(st.lists(values, max_size=3))
    elif op == "between":
        clause["value"] = draw(st.lists(scalars, min_size=2, max_size=2))
    elif op in ("empty", "!empty"):
        if draw(st.booleans()):
            clause["value"] = draw(scalars)
    else:
        clause["value"] = draw(scalars)
    return clause


conditions = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.just({"any": []}),
    st.builds(
        lambda groups: {"any": groups}, st.lists(st.lists(clauses(), max_size=3), max_size=3)
    ),
)


@st.composite
def triggers(draw: st.DrawFn, stages: list[Any]) -> dict[str, Any]:
    code = draw(st.sampled_from(sorted(PARAMS)))
    record: dict[str, Any] = {
        "kind": "trigger",
        "id": draw(st.sampled_from(TRIGGER_IDS)),
        "entity": draw(st.sampled_from(ENTITIES)),
        "category": draw(st.sampled_from(CATEGORIES)),
        "stage": draw(st.sampled_from([*stages[1:], *stages[1:], *STAGE_POOL])),
        "code": code,
    }
    params = {
        name: draw(st.sampled_from(PARAM_VALUES[how]))
        for name, how in PARAMS[code].items()
        if draw(st.booleans())
    }
    if params or draw(st.booleans()):
        record["params"] = params
    if draw(st.booleans()):
        record["allow_backwards"] = draw(st.booleans())
    if draw(st.booleans()):
        record["sort"] = draw(st.integers(-1, 2))
    condition = draw(conditions)
    if condition is not None:
        record["condition"] = condition
    _common(draw, record)
    return record


@st.composite
def deletions(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        record: dict[str, Any] = {
            "kind": "trigger",
            "id": draw(st.sampled_from(TRIGGER_IDS)),
            "deleted": True,
        }
    else:
        record = {
            "kind": "pipeline",
            "entity": draw(st.sampled_from(ENTITIES)),
            "category": draw(st.sampled_from(CATEGORIES)),
            "deleted": True,
        }
    _common(draw, record)
    return record


# Events -----------------------------------------------------------------------------------


@st.composite
def item_refs(draw: st.DrawFn, stages: list[Any]) -> dict[str, Any]:
    ref: dict[str, Any] = {
        "entity": draw(st.sampled_from(ENTITIES)),
        "id": draw(st.sampled_from(ITEM_IDS)),
    }
    hint = draw(st.integers(0, 3))
    if hint >= 2:
        ref["stage"] = draw(st.sampled_from([*stages, *stages, *STAGE_POOL, "GHOST"]))
    if hint in (1, 3):
        ref["category"] = draw(st.sampled_from(CATEGORIES))
    return ref


@st.composite
def event_data(
    draw: st.DrawFn, etype: str, tenant: str, refs: list[dict[str, Any]], stages: list[Any]
) -> Any:
    data: dict[str, Any] = {}
    if etype in ("item.created", "item.stage_changed"):
        data["stage"] = draw(st.sampled_from([*stages, *stages, *STAGE_POOL]))
        if draw(st.booleans()):
            data["category"] = draw(st.sampled_from(CATEGORIES))
    if etype == "item.created" and draw(st.integers(0, 3)):
        data["fields"] = draw(
            st.dictionaries(st.sampled_from([*ITEM_FIELDS, "OTHER"]), values, max_size=4)
        )
    if etype == "item.stage_changed" and draw(st.booleans()):
        # An echo: the transition id of this item for some event id, often one of ours.
        ref = draw(st.sampled_from(refs))
        eid = draw(st.sampled_from(EVENT_IDS))
        data["transition_id"] = transition_id(tenant, ref["entity"], str(ref["id"]), str(eid))
    if etype == "item.updated":
        data["changes"] = draw(
            st.dictionaries(st.sampled_from([*ITEM_FIELDS, "OTHER"]), values, max_size=3)
        )
    else:
        for key in EVENT_KEYS:
            if key not in data and draw(st.booleans()):
                pool = DATA_VALUES.get(key, VALUES)
                data[key] = draw(st.sampled_from(pool))
    if not data and draw(st.booleans()):
        return None
    return data


@st.composite
def events(draw: st.DrawFn, types: list[str], stages: list[Any]) -> dict[str, Any]:
    """An event, mostly of `types` (those some trigger listens to), items mostly on `stages`."""
    if types and draw(st.integers(0, 3)):
        etype = draw(st.sampled_from(types))
    else:
        etype = draw(st.sampled_from([*ALL_TYPES, *LIFECYCLE_TYPES[:2]]))
    tenant = draw(st.sampled_from([None, None, *TENANTS]))
    refs = [draw(item_refs(stages))]
    if not draw(st.integers(0, 3)):
        refs += draw(st.lists(item_refs(stages), min_size=1, max_size=2))
        if draw(st.booleans()):
            refs.append(refs[0])  # an item named twice
    record: dict[str, Any] = {
        "id": draw(st.sampled_from(EVENT_IDS)),
        "type": etype,
        "occurred_at": draw(st.sampled_from(EVENT_TIMES)),
    }
    if tenant is not None:
        record["tenant"] = tenant
    if len(refs) == 1 and draw(st.integers(0, 3)):
        record["item"] = refs[0]
    else:
        record["items"] = refs
    data = draw(event_data(etype, tenant or "default", refs, stages))
    if data is not None:
        record["data"] = data
    return record


TYPES_OF_CODE = {
    code: [t for t in ALL_TYPES if code in codes_for(t, {"changes": {"ASSIGNED_BY_ID": 1}})]
    or ["form.submitted"]  # CALLBACK: a form with data.callback true
    for code in PARAMS
}


@st.composite
def event_lines(draw: st.DrawFn, automation: list[dict[str, Any]]) -> list[bytes]:
    """A log of events as raw lines, with producer retries of earlier lines verbatim."""
    types = [t for r in automation if "code" in r for t in TYPES_OF_CODE.get(r["code"], ())]
    stages = [s["id"] for s in automation[0]["stages"]]
    log = draw(st.lists(events(types, stages), min_size=3, max_size=30))
    # Most items are created first, as the CRM would tell.
    for ref in draw(st.lists(item_refs(stages), min_size=1, max_size=6)):
        birth = draw(events(["item.created"] * 20, stages))
        birth.pop("items", None)
        stage = draw(st.sampled_from([stages[0], stages[0], *stages]))
        birth["data"] = {**(birth.get("data") or {}), "stage": stage}
        if draw(st.integers(0, 3)):  # mostly on the main pipeline
            ref = {"entity": "deal", "id": ref["id"]}
            birth.pop("tenant", None)
            birth["data"].pop("category", None)
        log.insert(0, {**birth, "type": "item.created", "item": ref})
    lines = [dumps(e, draw(st.booleans())) for e in log]
    for _ in range(draw(st.integers(0, 3))):
        if lines:
            at = draw(st.integers(0, len(lines)))
            lines.insert(at, draw(st.sampled_from(lines)))
    return lines


# Driving both engines ---------------------------------------------------------------------


@dataclass
class Engines:
    """A Python and a native board for each key group, fed the same parcels."""

    settings: FlowSettings
    python: list[Board]
    native: list[NativeBoard]
    seq: int = 0

    @classmethod
    def new(
        cls,
        what_if: bool = False,
        key_groups: int = 1,
        seen_window: int = 32,
        max_record_bytes: int = 1 << 20,
    ) -> Engines:
        flow = FlowSettings(
            key_groups=key_groups,
            seen_window=seen_window,
            what_if=what_if,
            max_record_bytes=max_record_bytes,
        )
        return cls(
            flow,
            [
                Board(
                    TriggerTable(what_if),
                    seen_window,
                    decode_event,
                    transition_json,
                    max_record_bytes,
                )
                for _ in range(key_groups)
            ],
            [
                NativeBoard(TriggerTable(what_if), decode_event, seen_window, max_record_bytes)
                for _ in range(key_groups)
            ],
        )

    def feed(self, stream: str, raws: Sequence[bytes], chunk: int = 1 << 30) -> None:
        """Send records in parcels of at most `chunk` to every group; both must agree."""
        for start in range(0, len(raws), chunk):
            part = list(raws[start : start + chunk])
            seqs = range(self.seq, self.seq + len(part))
            self.seq += len(part)
            for group in range(self.settings.key_groups):
                parcel = Parcel(group, stream, SOURCE, None, seqs, [s + 1 for s in seqs], part)
                python = decide_parcels(self.python[group], [parcel], self.settings)
                compiled = decide_parcels(self.native[group], [parcel], self.settings)
                assert comparable(compiled) == comparable(python), (stream, part)
        self.assert_same_items()

    def automate(self, records: Sequence[dict[str, Any] | bytes], chunk: int = 1 << 30) -> None:
        self.feed(AUTOMATION, [r if isinstance(r, bytes) else dumps(r) for r in records], chunk)

    def events(self, raws: Sequence[bytes], chunk: int = 1 << 30) -> None:
        self.feed(EVENTS, raws, chunk)

    def assert_same_items(self) -> None:
        for python, compiled in zip(self.python, self.native, strict=True):
            assert len(compiled) == len(python.items)
            for key, state in python.items.items():
                assert native_item(compiled, key) == python_item(state), key


def comparable(decisions: Decisions) -> tuple[Any, ...]:
    """A step's outputs as plain values: what the sinks would write, and the counts."""
    return (
        decisions.transitions,
        [(order, letter.item, letter.to_json()) for order, letter in decisions.dead_letters],
        dict(+decisions.tally),
    )


def python_item(state: Any) -> tuple[Any, ...]:
    """An item of the Python board: category, stage, watched fields, seen ids, echoes."""
    echoes = len(state.echoes) // 2 if state.echoes else 0
    return (state.category, state.stage, state.field_map(), len(state.seen) // 8, echoes)


def native_item(board: NativeBoard, key: str) -> tuple[Any, ...] | None:
    """The same of the native board, whose field values are JSON text."""
    found = board.core.item(key)
    if found is None:
        return None
    category, stage, fields, seen, echoes = found
    return (category, stage, {n: json.loads(v) for n, v in fields}, seen, echoes)


# Known records ----------------------------------------------------------------------------

PIPELINE = {
    "kind": "pipeline",
    "entity": "deal",
    "stages": [
        {"id": "NEW", "semantic": "process"},
        {"id": "PREP", "semantic": "process"},
        {"id": 7, "semantic": "process"},
        {"id": "WON", "semantic": "success"},
        {"id": "LOSE", "semantic": "failure"},
    ],
}
VISIT = {"kind": "trigger", "id": "t-visit", "entity": "deal", "stage": "PREP", "code": "VISIT"}


def trigger(trigger_id: str, stage: Any, code: str) -> dict[str, Any]:
    return {"kind": "trigger", "id": trigger_id, "entity": "deal", "stage": stage, "code": code}


TRIGGERS = [
    VISIT,
    {**trigger("t-form", "WON", "WEBFORM"), "params": {"form_id": BIG}},
    {**trigger("t-call", 7, "CALL"), "params": {"line": "1"}},
    {**trigger("t-chat", "WON", "OPENLINE_MSG"), "params": {"text": "Straße"}},
    {
        **trigger("t-answer", "WON", "OPENLINE_ANSWER_CTRL"),
        "condition": {"any": [[{"field": "event.answer_time_sec", "op": "<=", "value": 60}]]},
    },
    {
        **trigger("t-field", "LOSE", "FIELD_CHANGED"),
        "allow_backwards": True,
        "condition": {"any": [[{"field": "OPPORTUNITY", "op": "contain", "value": "890"}]]},
    },
    {
        **trigger("t-paid", "WON", "ORDER_PAID"),
        "condition": {"any": [[{"field": "event.amount", "op": "contain", "value": "890"}]]},
    },
    {**trigger("t-link", "WON", "EMAIL_LINK"), "params": {"url": "https://ex.com/"}},
    {
        **trigger("t-task", "WON", "TASK_STATUS"),
        "params": {"status": 2},
        "condition": {"any": [[{"field": "event.status", "op": "in", "value": [2, "x"]}]]},
    },
]
CREATED = {
    "id": "e-1",
    "type": "item.created",
    "occurred_at": "2026-11-20T00:00:00Z",
    "item": {"entity": "deal", "id": "42"},
    "data": {"stage": "NEW", "fields": {"OPPORTUNITY": 1000, "TITLE": "Big"}},
}
DROP = object()
"""A field value that removes the field: `event(tenant=DROP)`."""


def event(**fields: Any) -> dict[str, Any]:
    """A visit of deal 42 (which VISIT moves), with fields changed, added or dropped."""
    record: dict[str, Any] = {
        "id": "e-2",
        "type": "visit.registered",
        "occurred_at": "2026-11-25T10:00:00Z",
        "item": {"entity": "deal", "id": "42"},
        "data": {},
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not DROP}


# 1. The differential property ---------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[str, list[bytes]]]:
    """Automation and events as the runs of records a source hands over, in order.

    Most automation comes first; some arrives between events (the board must then
    forget what it cached of the table).
    """
    # One pipeline that most items are on: default/deal/0, in force from the start.
    main = draw(pipelines())
    main.update(entity="deal", category=draw(st.sampled_from(["0", 0, None])))
    main.pop("tenant", None)
    main.pop("updated_at", None)
    stages = [s["id"] for s in main["stages"]]
    records = st.one_of(pipelines(), *[triggers(stages)] * 6, deletions())
    automation = [main, *draw(st.lists(records, max_size=14))]
    lines = draw(event_lines(automation))
    placed: list[tuple[int, int, str, bytes]] = []
    for order, record in enumerate(automation):
        at = 0 if draw(st.integers(0, 2)) else draw(st.integers(0, len(lines)))
        placed.append((at, order, AUTOMATION, dumps(record, draw(st.booleans()))))
    placed.extend((at, len(automation) + at, EVENTS, raw) for at, raw in enumerate(lines))
    placed.sort(key=lambda p: (p[0], p[2] != AUTOMATION, p[1]))
    runs: list[tuple[str, list[bytes]]] = []
    for _, _, stream, raw in placed:
        if runs and runs[-1][0] == stream:
            runs[-1][1].append(raw)
        else:
            runs.append((stream, [raw]))
    return runs


@settings(max_examples=150, deadline=None, database=None)
@given(
    runs=scenarios(),
    what_if=st.booleans(),
    key_groups=st.sampled_from([1, 1, 2]),
    seen_window=st.sampled_from([1, 2, 32]),
    chunk=st.integers(1, 8),
)
def test_the_native_board_decides_generated_logs_as_the_reference(
    runs: list[tuple[str, list[bytes]]],
    what_if: bool,
    key_groups: int,
    seen_window: int,
    chunk: int,
) -> None:
    engines = Engines.new(what_if, key_groups, seen_window)
    for stream, raws in runs:
        engines.feed(stream, raws, chunk)


@settings(max_examples=8, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), what_if=st.booleans(), chunk=st.sampled_from([1, 7, 500]))
def test_the_native_board_decides_realistic_scenarios_as_the_reference(
    seed: int, what_if: bool, chunk: int
) -> None:
    automation, events = random_scenario(seed, n_events=200, n_items=20)
    engines = Engines.new(what_if)
    engines.automate(automation)
    engines.events(events, chunk)


def test_a_what_if_table_decides_with_the_latest_versions_on_both_engines() -> None:
    """An explicit what-if case: a later trigger version is in force for an earlier event."""
    engines = Engines.new(what_if=True)
    engines.automate(
        [
            PIPELINE,
            {**VISIT, "updated_at": "2026-12-01T00:00:00Z"},
            {**VISIT, "stage": "WON", "updated_at": "2026-12-02T00:00:00Z"},
        ]
    )
    engines.events([dumps(CREATED), dumps(event(id="e-2"))])
    moved = engines.python[0].items["default/deal/42"].stage
    assert moved == "WON"


# 2. Raw input at the edge -----------------------------------------------------------------

HINT = {"entity": "deal", "id": "42", "category": "0", "stage": "NEW"}
ESCAPES = 'a"b\\c\n\t\x00\x1f\x7f\u2028é😀'
VISIT_LINE = dumps(event())


def with_data(etype: str, data: Any, **fields: Any) -> bytes:
    return dumps(event(type=etype, data=data, **fields))


EDGE_LINES: dict[str, bytes] = {
    # ids
    "id-int": dumps(event(id=7)),
    "id-float": dumps(event(id=5.0)),
    "id-float-fraction": dumps(event(id=5.5)),
    "id-bool": dumps(event(id=True)),
    "id-empty": dumps(event(id="")),
    "id-null": dumps(event(id=None)),
    "id-missing": dumps(event(id=DROP)),
    "id-negative": dumps(event(id=-1)),
    "id-64-bits": dumps(event(id=2**64)),
    "id-big": dumps(event(id=2**70)),
    "id-escapes": dumps(event(id=ESCAPES)),
    "item-id-int": dumps(event(item={"entity": "deal", "id": 42})),
    "item-id-float": dumps(event(item={"entity": "deal", "id": 42.0})),
    "item-id-bool": dumps(event(item={"entity": "deal", "id": True})),
    "item-id-empty": dumps(event(item={"entity": "deal", "id": ""})),
    "item-id-big": dumps(event(item={**HINT, "id": 2**70})),
    "item-id-escapes": dumps(event(item={**HINT, "id": ESCAPES})),
    "item-id-escapes-ascii": dumps(event(item={**HINT, "id": ESCAPES}), ascii_only=True),
    "item-stage-int": dumps(event(item={**HINT, "id": "43", "stage": 7})),
    "item-category-int": dumps(event(item={**HINT, "id": "43", "category": 0})),
    "item-category-float": dumps(event(item={**HINT, "id": "43", "category": 0.0})),
    "item-stage-empty": dumps(event(item={**HINT, "id": "43", "stage": ""})),
    "item-stage-unknown": dumps(event(item={**HINT, "id": "43", "stage": "GHOST"})),
    "item-category-only": dumps(event(item={"entity": "deal", "id": "43", "category": "0"})),
    "item-not-object": dumps(event(item="deal/42")),
    # tenant
    "tenant-null": dumps(event(tenant=None)),
    "tenant-empty": dumps(event(tenant="")),
    "tenant-slash": dumps(event(tenant="a/b")),
    "tenant-int": dumps(event(tenant=5)),
    "tenant-default": dumps(event(tenant="default")),
    "tenant-other": dumps(event(tenant="ténant", item=HINT)),
    # item and items
    "item-and-items": dumps(event(items=[HINT])),
    "items-empty": dumps(event(item=DROP, items=[])),
    "items-null-item-set": dumps(event(items=None)),
    "items-not-list": dumps(event(item=DROP, items="x")),
    "items-not-objects": dumps(event(item=DROP, items=[5])),
    "items-one": dumps(event(item=DROP, items=[{"entity": "deal", "id": "42"}])),
    "items-repeated": dumps(
        event(item=DROP, items=[{"entity": "deal", "id": "42"}, {"entity": "deal", "id": 42}])
    ),
    "items-with-hints": dumps(event(item=DROP, items=[HINT, {**HINT, "id": "44"}, HINT])),
    "items-same-id-other-hint": dumps(event(item=DROP, items=[HINT, {**HINT, "stage": "WON"}])),
    "items-unknown-without-hint": dumps(event(item=DROP, items=[{"entity": "deal", "id": "9"}])),
    "neither-item-nor-items": dumps(event(item=DROP)),
    "entity-slash": dumps(event(item={"entity": "de/al", "id": "42"})),
    "entity-empty": dumps(event(item={"entity": "", "id": "42"})),
    "entity-int": dumps(event(item={"entity": 5, "id": "42"})),
    "entity-missing": dumps(event(item={"id": "42"})),
    # data
    "data-list": dumps(event(data=[1])),
    "data-string": dumps(event(data="x")),
    "data-null": dumps(event(data=None)),
    "data-number": dumps(event(data=5)),
    "data-missing": dumps(event(data=DROP)),
    # lifecycle data
    "created-without-stage": with_data("item.created", {"fields": {}}),
    "created-stage-int": with_data("item.created", {"stage": 7}),
    "created-stage-float": with_data("item.created", {"stage": 7.0}),
    "created-stage-empty": with_data("item.created", {"stage": ""}),
    "created-stage-bool": with_data("item.created", {"stage": True}),
    "created-stage-unknown": with_data("item.created", {"stage": "GHOST"}),
    "created-category-int": with_data("item.created", {"stage": "NEW", "category": 3}),
    "created-category-empty": with_data("item.created", {"stage": "NEW", "category": ""}),
    "created-category-float": with_data("item.created", {"stage": "NEW", "category": 3.5}),
    "created-fields-null": with_data("item.created", {"stage": "NEW", "fields": None}),
    "created-fields-list": with_data("item.created", {"stage": "NEW", "fields": []}),
    "created-fields-string": with_data("item.created", {"stage": "NEW", "fields": "x"}),
    "created-fields-big": with_data(
        "item.created", {"stage": "NEW", "fields": {"OPPORTUNITY": 123456789012345678901234567890}}
    ),
    "created-data-null": with_data("item.created", None),
    "updated-without-changes": with_data("item.updated", {}),
    "updated-changes-null": with_data("item.updated", {"changes": None}),
    "updated-changes-list": with_data("item.updated", {"changes": ["OPPORTUNITY"]}),
    "updated-changes-empty": with_data("item.updated", {"changes": {}}),
    "updated-changes-big": with_data(
        "item.updated", {"changes": {"OPPORTUNITY": 123456789012345678901234567890}}
    ),
    "updated-changes-float": with_data("item.updated", {"changes": {"OPPORTUNITY": 1890.5}}),
    "updated-changes-string": with_data("item.updated", {"changes": {"OPPORTUNITY": "É890"}}),
    "updated-responsible": with_data("item.updated", {"changes": {"ASSIGNED_BY_ID": 5}}),
    "stage-changed-without-stage": with_data("item.stage_changed", {}),
    "stage-changed-stage-int": with_data("item.stage_changed", {"stage": 7}),
    "stage-changed-category-int": with_data("item.stage_changed", {"stage": "WON", "category": 3}),
    "stage-changed-transition-int": with_data(
        "item.stage_changed", {"stage": "PREP", "transition_id": 5}
    ),
    "stage-changed-transition-empty": with_data(
        "item.stage_changed", {"stage": "PREP", "transition_id": ""}
    ),
    "stage-changed-transition-null": with_data(
        "item.stage_changed", {"stage": "PREP", "transition_id": None}
    ),
    "stage-changed-echo": with_data(
        "item.stage_changed",
        {"stage": "PREP", "transition_id": transition_id("default", "deal", "42", "e-move")},
    ),
    "stage-changed-echo-other-stage": with_data(
        "item.stage_changed",
        {"stage": "WON", "transition_id": transition_id("default", "deal", "42", "e-move")},
    ),
    "deleted": with_data("item.deleted", None),
    "deleted-unknown-item": with_data("item.deleted", None, item={"entity": "deal", "id": "9"}),
    # activity data that the native board reads itself
    "form-big-id": with_data("form.submitted", {"form_id": BIG}),
    "form-big-id-as-float": with_data("form.submitted", {"form_id": float(BIG)}),
    "form-big-id-as-string": with_data("form.submitted", {"form_id": str(BIG)}),
    "form-callback-string": with_data("form.submitted", {"form_id": BIG, "callback": "true"}),
    "call-line-float": with_data("call.incoming", {"line": 1.0}),
    "call-line-exponent": b'{"id":"e-2","type":"call.incoming","occurred_at":"2026-11-25T10:00:00Z"'
    b',"item":{"entity":"deal","id":"42"},"data":{"line":1e0}}',
    "call-line-huge-float": with_data("call.incoming", {"line": 1e300}),
    "call-line-negative-zero": with_data("call.incoming", {"line": -0.0}),
    "call-line-bool": with_data("call.incoming", {"line": True}),
    "chat-text-upper": with_data("chat.message", {"text": "STRASSE"}),
    "chat-text-exact": with_data("chat.message", {"text": "Die Straße"}),
    "chat-text-upper-sharp": with_data("chat.message", {"text": "DIE STRAẞE"}),
    "chat-text-not-string": with_data("chat.message", {"text": 5}),
    "answer-time-big": with_data("chat.answered", {"answer_time_sec": 2**70}),
    "answer-time-string": with_data("chat.answered", {"answer_time_sec": " 60 "}),
    "answer-time-float": with_data("chat.answered", {"answer_time_sec": 59.999}),
    "answer-time-nonascii-digits": with_data("chat.answered", {"answer_time_sec": "\uff160"}),
    "paid-amount-big": with_data("order.paid", {"amount": 123456789012345678901234567890}),
    "paid-amount-float": with_data("order.paid", {"amount": 1.890e-5}),
    "paid-amount-list": with_data("order.paid", {"amount": [1890]}),
    "link-url": with_data("email.link_clicked", {"url": "https://ex.com/a"}),
    "link-url-not-string": with_data("email.link_clicked", {"url": 5}),
    "task-status-int": with_data("task.status_changed", {"status": 2}),
    "task-status-float": with_data("task.status_changed", {"status": 2.0}),
    "task-status-string": with_data("task.status_changed", {"status": "2"}),
    # occurred_at
    **{
        f"time-{text}": dumps(event(occurred_at=text))
        for text in [
            "2026-11-25T10:00:00+05:30",
            "2026-11-25T10:00:00-00:00",
            "2026-11-25T10:00:00",
            "2026-11-25 10:00:00Z",
            "2026-11-25t10:00:00z",
            "2026-11-25T10:00Z",
            "2026-11-25T10Z",
            "2026-11-25",
            "2026-11-25T10:00:00+0530",
            "2026-11-25T10:00:00+05",
            "2026-11-25T10:00:00+05:30:15",
            "2026-11-25T10:00:00,5Z",
            "20261125T100000Z",
            "2026-W48-3T10:00:00Z",
            *(f"2026-11-25T10:00:00.{'123456789'[:n]}Z" for n in range(1, 10)),
            "2026-11-25T10:00:00.Z",
            "2024-02-30T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T23:59:60Z",
            "0001-01-01T00:00:00+05:00",
            "0001-01-01T00:00:00-05:00",
            "9999-12-31T23:59:59-05:00",
            "2026-11-25T10:00:00+24:00",
            "2026-11-25T10:00:00+23:59",
            "\uff12026-11-25T10:00:00Z",  # a full-width digit
            "",
        ]
    },
    "time-int": dumps(event(occurred_at=1767225600)),
    "time-null": dumps(event(occurred_at=None)),
    # types
    "type-unknown": dumps(event(type="item.merged")),
    "type-case": dumps(event(type="Visit.Registered")),
    "type-empty": dumps(event(type="")),
    "type-int": dumps(event(type=5)),
    "type-missing": dumps(event(type=DROP)),
    # duplicate keys: JSON parsers keep the last one
    "duplicate-id": b'{"id":"e-9",' + VISIT_LINE[1:],
    "duplicate-type": VISIT_LINE[:-1] + b',"type":"webhook"}',
    "duplicate-item": VISIT_LINE[:-1] + b',"item":{"entity":"deal","id":"43","stage":"NEW"}}',
    "duplicate-data-key": b'{"id":"e-2","type":"call.incoming","occurred_at":"2026-11-25T10:00:00Z"'
    b',"item":{"entity":"deal","id":"42"},"data":{"line":"1","line":"2"}}',
    "duplicate-change": b'{"id":"e-2","type":"item.updated","occurred_at":"2026-11-25T10:00:00Z"'
    b',"item":{"entity":"deal","id":"42"},"data":{"changes":{"OPPORTUNITY":1890,"OPPORTUNITY":1}}}',
    "duplicate-item-key": b'{"id":"e-2","type":"visit.registered",'
    b'"occurred_at":"2026-11-25T10:00:00Z"'
    b',"item":{"entity":"deal","id":"42","id":"43","stage":"NEW"}}',
    # bytes
    "utf8-invalid-in-string": VISIT_LINE.replace(b"e-2", b"e-\xff"),
    "utf8-invalid-outside-string": VISIT_LINE + b"\xff",
    "utf8-overlong": VISIT_LINE.replace(b"e-2", b"e-\xc0\xaf"),
    "utf8-bom": b"\xef\xbb\xbf" + VISIT_LINE,
    "surrogate-lone": VISIT_LINE.replace(b"e-2", b"e-\\ud800"),
    "surrogate-pair": VISIT_LINE.replace(b"e-2", b"e-\\ud83d\\ude00"),
    "escaped-ascii": VISIT_LINE.replace(b"e-2", b"\\u0065-\\u0032"),
    "escaped-nul": VISIT_LINE.replace(b"e-2", b"e-\\u0000"),
    "whitespace-around": b" \t" + VISIT_LINE + b"\r\n ",
    "trailing-garbage": VISIT_LINE + b" x",
    "two-objects": VISIT_LINE + VISIT_LINE,
    "truncated": VISIT_LINE[:-3],
    "not-json": b"not json",
    "empty": b"",
    "json-list": b"[]",
    "json-null": b"null",
    "json-string": b'"visit"',
    "json-empty-object": b"{}",
    "nan": VISIT_LINE.replace(b'"data":{}', b'"data":{"amount":NaN}'),
    "deep-nesting": VISIT_LINE.replace(
        b'"data":{}', b'"data":{"x":' + b"[" * 600 + b"]" * 600 + b"}"
    ),
}


def _prelude() -> Engines:
    engines = Engines.new()
    engines.automate([PIPELINE, *TRIGGERS])
    engines.events([dumps(CREATED)])
    return engines


FOLLOW_UP = [
    dumps(event(id="e-move")),
    dumps(event(id="e-3", type="item.updated", data={"changes": {"OPPORTUNITY": 1890}})),
    dumps(event(id="e-4", type="order.paid", data={"amount": 1890})),
]


def test_a_record_without_bytes_is_the_same_dead_letter_on_both_engines() -> None:
    engines = _prelude()
    engines.events([None, *FOLLOW_UP])  # type: ignore[list-item]  # a Kafka tombstone
    python = decide_parcels(
        engines.python[0], [Parcel(0, EVENTS, SOURCE, None, [90], [91], [None])], engines.settings
    )
    assert [letter.code for _, letter in python.dead_letters] == ["invalid_record"]


@pytest.mark.parametrize(
    "raw",
    [pytest.param(raw, id=name) for name, raw in EDGE_LINES.items()],
)
def test_an_edge_case_line_has_the_same_outcome_on_both_engines(raw: bytes) -> None:
    engines = _prelude()
    engines.events([raw])
    engines.events([raw])  # a retry of the same record
    engines.events(FOLLOW_UP)  # and the items go on the same
    engines.events([raw, *FOLLOW_UP], chunk=2)


@pytest.mark.parametrize("over", [-1, 0, 1])
def test_the_record_size_limit_is_the_same_on_both_engines(over: int) -> None:
    line = dumps(event(item=HINT))
    engines = Engines.new(max_record_bytes=len(line) - over)
    engines.automate([PIPELINE, VISIT])
    engines.events([line, line, b" " * (len(line) - over + 1)])
    assert (engines.python[0].items.get("default/deal/42") is None) == (over == 1)


# Minimal reproducers of the differences found (see the report of this file's author).

MINIMAL_PIPELINE = {"kind": "pipeline", "entity": "deal", "stages": [{"id": "NEW"}, {"id": "WON"}]}
MINIMAL_CREATED = {
    "id": "c",
    "type": "item.created",
    "occurred_at": "2026-11-25T10:00:00Z",
    "item": {"entity": "deal", "id": "1"},
    "data": {"stage": "NEW"},
}


def test_an_integer_param_beyond_128_bits_matches_on_both_engines() -> None:
    engines = Engines.new()
    form = {"kind": "trigger", "id": "t", "entity": "deal", "stage": "WON", "code": "WEBFORM"}
    engines.automate([MINIMAL_PIPELINE, {**form, "params": {"form_id": 2**127}}])
    engines.events([dumps(MINIMAL_CREATED)])
    engines.events(
        [
            b'{"id":"f","type":"form.submitted","occurred_at":"2026-11-25T10:00:00Z",'
            b'"item":{"entity":"deal","id":"1"},"data":{"form_id":170141183460469231731687303715884105728}}'
        ]
    )


def test_an_event_before_the_first_instant_sees_no_pipeline_on_both_engines() -> None:
    engines = Engines.new()
    visit = {"kind": "trigger", "id": "t", "entity": "deal", "stage": "WON", "code": "VISIT"}
    engines.automate([MINIMAL_PIPELINE, visit])
    engines.events([dumps(MINIMAL_CREATED)])
    engines.events(
        [
            b'{"id":"v","type":"visit.registered","occurred_at":"0001-01-01T00:00:00+00:01",'
            b'"item":{"entity":"deal","id":"1"}}'
        ]
    )


MUTATIONS: list[Callable[[dict[str, Any], Any], None]] = [
    lambda r, v: r.update(id=v),
    lambda r, v: r.update(tenant=v),
    lambda r, v: r.update(occurred_at=v),
    lambda r, v: r.update(type=v),
    lambda r, v: r.update(data=v),
    lambda r, v: r.update(item=v),
    lambda r, v: r.update(items=v),
    lambda r, v: r.pop(sorted(r)[len(repr(v)) % len(r)], None) if r else None,
    lambda r, v: r.get("item", {}).update(id=v) if isinstance(r.get("item"), dict) else None,
    lambda r, v: r.get("item", {}).update(stage=v) if isinstance(r.get("item"), dict) else None,
    lambda r, v: r["data"].update(stage=v) if isinstance(r.get("data"), dict) else None,
    lambda r, v: r["data"].update(changes=v) if isinstance(r.get("data"), dict) else None,
    lambda r, v: r["data"].update(fields=v) if isinstance(r.get("data"), dict) else None,
    lambda r, v: r["data"].update(transition_id=v) if isinstance(r.get("data"), dict) else None,
]
ODD_VALUES: list[Any] = [
    *VALUES,
    7,
    "7",
    "NEW",
    "PREP",
    "a/b",
    "2026-11-25T10:00:00",
    "2026-11-25T10:00:00+05:30",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00-05:00",
    "2024-02-29T00:00:00Z",
    {"entity": "deal", "id": "42"},
    {"entity": "deal", "id": 42, "stage": "NEW"},
    [{"entity": "deal", "id": "42"}, {"entity": "deal", "id": "43", "stage": 7}],
    {"OPPORTUNITY": 1890},
    "item.created",
    "item.updated",
    "item.stage_changed",
    "item.merged",
]


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A line near a valid event, with fields changed and sometimes bytes damaged."""
    record = event(type=draw(st.sampled_from(ALL_TYPES)), data={"stage": "PREP"})
    for _ in range(draw(st.integers(1, 3))):
        draw(st.sampled_from(MUTATIONS))(record, draw(st.sampled_from(ODD_VALUES)))
    raw = dumps(record, draw(st.booleans()))
    damage = draw(st.integers(0, 9))
    if damage == 0 and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif damage == 1:
        raw = b'{"id":"e-9",' + raw[1:] if raw.startswith(b"{") and len(raw) > 2 else raw
    elif damage == 2:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b" ", b"\\", b'"'])) + raw[at:]
    return raw


@settings(max_examples=200, deadline=None, database=None)
@given(lines=st.lists(mutated_lines(), min_size=1, max_size=6), chunk=st.integers(1, 4))
def test_mutated_lines_have_the_same_outcomes_on_both_engines(
    lines: list[bytes], chunk: int
) -> None:
    engines = _prelude()
    engines.events(lines, chunk)
    engines.events(FOLLOW_UP)


# 3. Snapshots ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, database=None)
@given(runs=scenarios(), cut=st.integers(0, 40), what_if=st.booleans())
def test_a_restored_native_board_decides_on_as_the_original(
    runs: list[tuple[str, list[bytes]]], cut: int, what_if: bool
) -> None:
    records = [(stream, raw) for stream, raws in runs for raw in raws]
    engines = Engines.new(what_if)
    for stream, raw in records[:cut]:
        engines.feed(stream, [raw])
    restored = pickle.loads(pickle.dumps(engines.native[0], protocol=pickle.HIGHEST_PROTOCOL))
    reference = pickle.loads(pickle.dumps(engines.python[0]))
    after = Engines(engines.settings, [reference], [restored], engines.seq)
    after.assert_same_items()
    for stream, raw in records[cut:]:
        engines.feed(stream, [raw])  # the original board against the reference
        after.feed(stream, [raw])  # the restored board against a copy of it


def _snapshot() -> tuple[NativeBoard, bytes]:
    engines = _prelude()
    engines.events([dumps(event(id="e-move"))])
    board = engines.native[0]
    return board, board.__getstate__()["items"]


def _names_end(items: bytes) -> int:
    """Where the item count starts in a dump: after the format, the names and their count."""
    at = 8
    for _ in range(struct.unpack_from("<I", items, 4)[0]):
        at += 4 + struct.unpack_from("<I", items, at)[0]
    return at


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda b: b"",
    "truncated-header": lambda b: b[:3],
    "truncated-by-one": lambda b: b[:-1],
    "truncated-half": lambda b: b[: len(b) // 2],
    "trailing-byte": lambda b: b + b"\x00",
    "other-format": lambda b: struct.pack("<I", 2) + b[4:],
    "name-not-utf8": lambda b: b[:12] + b"\xff" + b[13:],
    "more-names-than-written": lambda b: b[:4] + struct.pack("<I", 10_000) + b[8:],
    "more-items-than-written": lambda b: (
        b[: _names_end(b)] + struct.pack("<I", 7) + b[_names_end(b) + 4 :]
    ),
    "not-bytes-of-a-board": lambda b: pickle.dumps({"items": 1}),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_a_corrupted_snapshot_fails_loudly(corrupt: Callable[[bytes], bytes]) -> None:
    board, items = _snapshot()
    state = {**board.__getstate__(), "items": corrupt(items)}
    snapshot = pickle.dumps(_Snapshot(state))
    with pytest.raises(ValueError, match="not a snapshot of this version"):
        pickle.loads(snapshot)


class _Snapshot:
    """Pickles as a NativeBoard with the given state, as a recovery store would hold it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.state,))


def _restore(state: dict[str, Any]) -> NativeBoard:
    board = NativeBoard.__new__(NativeBoard)
    board.__setstate__(state)
    return board


def test_a_snapshot_naming_a_stage_it_does_not_hold_fails_loudly() -> None:
    board, items = _snapshot()
    at = _names_end(items) + 4  # the first item: its key, category and stage
    key_length = struct.unpack_from("<I", items, at)[0]
    stage_at = at + 4 + key_length + 4
    damaged = items[:stage_at] + struct.pack("<I", 1_000_000) + items[stage_at + 4 :]
    with pytest.raises(ValueError, match="not a snapshot of this version"):
        pickle.loads(pickle.dumps(_Snapshot({**board.__getstate__(), "items": damaged})))
