"""The stage history (spec 6.1), rule by rule, written the same by both engines.

Every log here is decided by the Python board and by the compiled one; the history
lines must be the same bytes, and are then checked against the rule they illustrate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.raw import AUTOMATION, EVENTS
from connectors.records import decode_event, history_json, transition_json
from flows.dataflow import FlowSettings, Parcel, decide_parcels
from state import native
from state.board import Board
from state.model import TRANSITION_NAMESPACE, history_id, id_name, transition_id
from state.native import NativeBoard
from state.table import TriggerTable

pytestmark = pytest.mark.skipif(not native.available(), reason="needs the compiled engine")

SOURCE = "log.jsonl"
PIPELINE = {
    "kind": "pipeline",
    "entity": "deal",
    "category": "0",
    "stages": [
        {"id": "NEW", "semantic": "process"},
        {"id": "PREP", "semantic": "process"},
        {"id": "WON", "semantic": "success"},
        {"id": "LOSE", "semantic": "failure"},
    ],
}
VISIT = {"kind": "trigger", "id": "t-17", "entity": "deal", "stage": "PREP", "code": "VISIT"}
HISTORY_KEYS = [
    "id",
    "tenant",
    "item",
    "category",
    "stage",
    "from_stage",
    "semantic",
    "kind",
    "at",
    "event",
    "transition_id",
    "trigger",
]


def ev(
    event_id: str, etype: str, minute: int = 0, item: str | dict[str, Any] = "42", **extra: Any
) -> bytes:
    """An event of deal `item` (or of the item reference `item`, a hint)."""
    record: dict[str, Any] = {
        "id": event_id,
        "type": etype,
        "occurred_at": f"2026-11-25T10:{minute:02d}:00Z",
        "item": item if isinstance(item, dict) else {"entity": "deal", "id": item},
        "data": {},
    }
    record.update(extra)
    return json.dumps(record).encode()


def created(event_id: str, stage: str = "NEW", minute: int = 0, **extra: Any) -> bytes:
    return ev(event_id, "item.created", minute, data={"stage": stage, "fields": {}}, **extra)


def moved(event_id: str, stage: str, minute: int = 0, **data: Any) -> bytes:
    return ev(event_id, "item.stage_changed", minute, data={"stage": stage, **data})


def decide_both(
    automation: Sequence[dict[str, Any]], events: Sequence[bytes], what_if: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(history records, transitions) of a log: the same bytes from both engines."""
    settings = FlowSettings(key_groups=1, what_if=what_if, history=True)
    autos = [json.dumps(r).encode() for r in automation]
    outputs = []
    for board in (
        Board(TriggerTable(what_if), 32, decode_event, transition_json),
        NativeBoard(TriggerTable(what_if), decode_event),
    ):
        board.write_history(history_json)
        parcels = [
            Parcel(0, AUTOMATION, SOURCE, None, range(len(autos)), range(len(autos)), autos),
            Parcel(
                0,
                EVENTS,
                SOURCE,
                None,
                range(100, 100 + len(events)),
                range(len(events)),
                list(events),
            ),
        ]
        decided = decide_parcels(board, parcels, settings)
        assert decided.tally["history"] == len(decided.history)
        outputs.append(
            ([line for _, (_, line) in decided.history], [t for _, (_, t) in decided.transitions])
        )
    assert outputs[0] == outputs[1]
    history, transitions = outputs[0]
    return [json.loads(line) for line in history], [json.loads(t) for t in transitions]


def stages(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(h["kind"], h["from_stage"], h["stage"], h["event"]["id"]) for h in history]


def test_a_life_of_an_item_writes_each_stage_it_begins() -> None:
    history, transitions = decide_both(
        [PIPELINE, VISIT],
        [
            created("e-1"),
            ev("e-2", "visit.registered", 1),  # our move NEW -> PREP
            moved("e-3", "PREP", 2, transition_id=transition_id("default", "deal", "42", "e-2")),
            moved("e-4", "WON", 3),  # a person moved it
            moved("e-5", "WON", 4),  # names the stage it is on
            ev("e-6", "item.deleted", 5),
            ev("e-7", "visit.registered", 6),  # on a deleted item
            ev("e-8", "item.deleted", 7),  # deleted again
            moved("e-9", "NEW", 8),  # a stage change of a deleted item
            created("e-10", "PREP", 9),  # back
            ev("e-10", "item.created", 9, data={"stage": "NEW"}),  # a producer retry
        ],
    )
    assert stages(history) == [
        ("created", None, "NEW", "e-1"),
        ("trigger", "NEW", "PREP", "e-2"),
        ("crm", "PREP", "WON", "e-4"),
        ("deleted", "WON", "WON", "e-6"),
        ("created", None, "PREP", "e-10"),
    ]
    assert [h["semantic"] for h in history] == [
        "process",
        "process",
        "success",
        "success",
        "process",
    ]
    ours = history[1]
    assert list(ours) == HISTORY_KEYS
    [transition] = transitions
    assert ours["transition_id"] == transition["id"]
    assert ours["trigger"] == {"id": "t-17", "code": "VISIT"} == transition["trigger"]
    assert ours["at"] == transition["event"]["occurred_at"] == "2026-11-25T10:01:00Z"
    assert ours["event"] == {"id": "e-2", "type": "visit.registered"}
    for record in (history[0], *history[2:]):
        assert record["transition_id"] is None and record["trigger"] is None


def test_a_hint_makes_the_item_known_before_its_own_move() -> None:
    hint = {"entity": "deal", "id": "42", "category": "0", "stage": "NEW"}
    history, _ = decide_both([PIPELINE, VISIT], [ev("e-1", "visit.registered", item=hint)])
    assert stages(history) == [("created", None, "NEW", "e-1"), ("trigger", "NEW", "PREP", "e-1")]
    assert history[0]["id"] != history[1]["id"]


def test_a_hinted_event_that_is_rejected_writes_nothing() -> None:
    bad_hint = {"entity": "deal", "id": "42", "category": "0", "stage": "NOWHERE"}
    history, _ = decide_both([PIPELINE, VISIT], [ev("e-1", "visit.registered", item=bad_hint)])
    assert history == []


def test_a_hint_without_a_pipeline_is_known_with_no_semantic() -> None:
    hint = {"entity": "deal", "id": "42", "category": "9", "stage": "NEW"}
    history, _ = decide_both([PIPELINE], [ev("e-1", "visit.registered", item=hint)])
    assert stages(history) == [("created", None, "NEW", "e-1")]
    assert (history[0]["category"], history[0]["semantic"]) == ("9", None)


def test_item_created_of_a_known_item_writes_created_from_nowhere() -> None:
    history, _ = decide_both([PIPELINE], [created("e-1"), created("e-2", "WON", 1)])
    assert stages(history) == [("created", None, "NEW", "e-1"), ("created", None, "WON", "e-2")]


def test_a_first_stage_change_makes_the_item_known() -> None:
    history, _ = decide_both([PIPELINE], [moved("e-1", "PREP")])
    assert stages(history) == [("created", None, "PREP", "e-1")]


def test_a_move_into_another_category_carries_it() -> None:
    other = {**PIPELINE, "category": "5", "stages": [{"id": "C5:NEW", "semantic": "process"}]}
    history, _ = decide_both(
        [PIPELINE, other],
        [created("e-1"), moved("e-2", "C5:NEW", 1, category="5"), moved("e-3", "C5:NEW", 2)],
    )
    assert stages(history) == [("created", None, "NEW", "e-1"), ("crm", "NEW", "C5:NEW", "e-2")]
    assert (history[1]["category"], history[1]["semantic"]) == ("5", "process")


def test_deleting_an_unknown_item_and_dead_letters_write_nothing() -> None:
    history, _ = decide_both(
        [PIPELINE, VISIT],
        [
            ev("e-1", "item.deleted"),
            ev("e-2", "visit.registered", item="7"),  # unknown, no hint: a dead letter
            b"{not json",
            ev("e-3", "form.submitted", item="8"),
        ],
    )
    assert history == []


def test_an_event_naming_several_items_writes_in_list_order() -> None:
    hints = [{"entity": "deal", "id": i, "category": "0", "stage": "NEW"} for i in ("3", "1", "2")]
    record = json.loads(ev("e-1", "visit.registered"))
    del record["item"]
    record["items"] = hints
    history, _ = decide_both([PIPELINE, VISIT], [json.dumps(record).encode()])
    assert [(h["item"]["id"], h["kind"]) for h in history] == [
        (i, kind) for i in ("3", "1", "2") for kind in ("created", "trigger")
    ]


def test_the_semantic_is_that_of_the_pipeline_version_in_force_at_the_event() -> None:
    later = {
        **PIPELINE,
        "stages": [
            {**s, "semantic": "failure"} if s["id"] == "PREP" else s for s in PIPELINE["stages"]
        ],
        "updated_at": "2026-11-25T10:30:00Z",
    }
    log = [
        created("e-1"),
        moved("e-2", "PREP", 10),
        moved("e-3", "NEW", 20),
        moved("e-4", "PREP", 40),
    ]
    history, _ = decide_both([PIPELINE, later], log)
    assert [h["semantic"] for h in history] == ["process", "process", "process", "failure"]
    what_if, _ = decide_both([PIPELINE, later], log, what_if=True)
    assert [h["semantic"] for h in what_if] == ["process", "failure", "process", "failure"]


def test_a_stage_the_pipeline_lacks_has_no_semantic() -> None:
    history, _ = decide_both([PIPELINE], [created("e-1", "ELSEWHERE")])
    assert (history[0]["stage"], history[0]["semantic"]) == ("ELSEWHERE", None)


def test_history_ids_are_a_function_of_the_item_event_and_kind() -> None:
    history, _ = decide_both([PIPELINE], [created("e-1"), ev("e-2", "item.deleted", 1)])
    assert [h["id"] for h in history] == [
        history_id("default", "deal", "42", "e-1", "created"),
        history_id("default", "deal", "42", "e-2", "deleted"),
    ]
    again, _ = decide_both([PIPELINE], [created("e-1"), ev("e-2", "item.deleted", 1)])
    assert again == history


# Injective ids ------------------------------------------------------------------------------


def test_ids_that_could_not_collide_keep_their_value() -> None:
    name = "acme\x1fdeal\x1f42\x1fevt-9f2"
    assert id_name("acme", "deal", "42", "evt-9f2") == name
    assert transition_id("acme", "deal", "42", "evt-9f2") == str(
        uuid.uuid5(TRANSITION_NAMESPACE, name)
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("c", "deal", "1\x1fx", "e"), ("c\x1fdeal", "1", "x", "e")),  # the reported pair
        (("a", "b", "c", "d\x1fe"), ("a", "b", "c\x1fd", "e")),
        (("a", "", "c", "d"), ("a\x1f", "c", "d", "")),
        (("\x1f1", "a", "b", "c"), ("", "1\x1fa", "b", "c")),
        (("é", "b", "c", "\x1f"), ("é\x1f", "b", "c", "")),
    ],
)
def test_different_parts_never_share_an_id_name(
    one: tuple[str, ...], other: tuple[str, ...]
) -> None:
    assert id_name(*one) != id_name(*other)
    assert transition_id(*one) != transition_id(*other)


def test_the_colliding_pair_of_items_gets_two_transition_ids_on_both_engines() -> None:
    """Tenant c / item 1\\x1fx and tenant c\\x1fdeal / entity 1 / item x, one event id."""
    pairs = [("c", "deal", "1\x1fx"), ("c\x1fdeal", "1", "x")]
    automation = []
    events = []
    for tenant, entity, item in pairs:
        automation.append({**PIPELINE, "tenant": tenant, "entity": entity})
        automation.append({**VISIT, "tenant": tenant, "entity": entity})
        hint = {"entity": entity, "id": item, "category": "0", "stage": "NEW"}
        events.append(ev("evt-1", "visit.registered", tenant=tenant, item=hint))
    history, transitions = decide_both(automation, events)
    ids = [t["id"] for t in transitions]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert ids == [
        transition_id("c", "deal", "1\x1fx", "evt-1"),
        transition_id("c\x1fdeal", "1", "x", "evt-1"),
    ]
    assert len({h["id"] for h in history}) == len(history) == 4


def parts_of(name: str) -> tuple[str, ...]:
    """The parts an id name was made of (the inverse of `id_name`)."""
    if not name.startswith("\x1f"):
        return tuple(name.split("\x1f"))
    raw, parts = name.encode()[1:], []
    while raw:
        length, _, raw = raw.partition(b"\x1f")
        parts.append(raw[: int(length)].decode())
        raw = raw[int(length) :]
    return tuple(parts)


PART = st.text(alphabet=["a", "1", "\x1f", "é", "\x00"], max_size=4)


@settings(max_examples=300, deadline=None, database=None)
@given(parts=st.lists(PART, min_size=4, max_size=5).filter(lambda p: p[0] != ""))
def test_an_id_name_gives_its_parts_back(parts: list[str]) -> None:
    """Decodable, so injective: different parts never share a name."""
    assert parts_of(id_name(*parts)) == tuple(parts)


@settings(max_examples=40, deadline=None, database=None)
@given(
    tenant=PART.filter(bool),
    entity=PART.filter(bool),
    item=PART.filter(bool),
    event_id=PART.filter(bool),
)
def test_both_engines_make_the_same_ids_of_any_names(
    tenant: str, entity: str, item: str, event_id: str
) -> None:
    automation = [
        {**PIPELINE, "tenant": tenant, "entity": entity},
        {**VISIT, "tenant": tenant, "entity": entity},
    ]
    hint = {"entity": entity, "id": item, "category": "0", "stage": "NEW"}
    history, transitions = decide_both(
        automation, [ev(event_id, "visit.registered", tenant=tenant, item=hint)]
    )
    assert [t["id"] for t in transitions] == [transition_id(tenant, entity, item, event_id)]
    assert [h["id"] for h in history] == [
        history_id(tenant, entity, item, event_id, kind) for kind in ("created", "trigger")
    ]
