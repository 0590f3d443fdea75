"""Unit tests of the reference oracle on tiny scenarios taken from the spec text."""

from __future__ import annotations

import orjson

from .oracle import decide, transition_id
from .randlog import random_scenario

STAGES = [
    {"id": "NEW", "semantic": "process"},
    {"id": "PREPARATION", "semantic": "process"},
    {"id": "PROPOSAL", "semantic": "process"},
    {"id": "WON", "semantic": "success"},
    {"id": "LOSE", "semantic": "failure"},
]


def j(obj) -> bytes:
    return orjson.dumps(obj)


def pipeline(**kw) -> bytes:
    rec = {
        "kind": "pipeline",
        "tenant": "acme",
        "entity": "deal",
        "category": "0",
        "stages": STAGES,
    }
    rec.update(kw)
    return j(rec)


def trigger(tid, stage, code="WEBFORM", **kw) -> bytes:
    rec = {
        "kind": "trigger",
        "tenant": "acme",
        "id": tid,
        "entity": "deal",
        "category": "0",
        "stage": stage,
        "code": code,
    }
    rec.update(kw)
    return j(rec)


_n = [0]


def event(etype, item_id="42", data=None, at="2026-11-25T10:00:00Z", eid=None, **kw) -> bytes:
    _n[0] += 1
    rec = {
        "id": eid or f"e{_n[0]}",
        "type": etype,
        "tenant": "acme",
        "occurred_at": at,
        "item": {"entity": "deal", "id": item_id},
    }
    if data is not None:
        rec["data"] = data
    rec.update(kw)
    return j(rec)


def created(item_id="42", stage="NEW", fields=None, at="2026-11-20T00:00:00Z", **kw) -> bytes:
    return event(
        "item.created",
        item_id,
        {"category": "0", "stage": stage, "fields": fields or {}},
        at=at,
        **kw,
    )


def moves(transitions):
    return [
        (t["item"]["id"], t["from_stage"], t["to_stage"], t["trigger"]["id"]) for t in transitions
    ]


def test_forward_move_and_record_shape():
    auto = [
        pipeline(),
        trigger(
            "t-17",
            "PREPARATION",
            params={"form_id": "12"},
            condition={"any": [[{"field": "OPPORTUNITY", "op": ">", "value": 1000}]]},
        ),
    ]
    evs = [
        created(fields={"OPPORTUNITY": 5000}),
        event("form.submitted", data={"form_id": "12"}, eid="evt-9f2"),
    ]
    trs, dls = decide(auto, evs)
    assert dls == []
    assert trs == [
        {
            "id": transition_id("acme", "deal", "42", "evt-9f2"),
            "tenant": "acme",
            "item": {"entity": "deal", "id": "42"},
            "category": "0",
            "from_stage": "NEW",
            "to_stage": "PREPARATION",
            "direction": "forward",
            "trigger": {"id": "t-17", "code": "WEBFORM"},
            "event": {
                "id": "evt-9f2",
                "type": "form.submitted",
                "occurred_at": "2026-11-25T10:00:00Z",
            },
        }
    ]
    # wrong form or failing condition: nothing
    trs, _ = decide(
        auto,
        [created(fields={"OPPORTUNITY": 5000}), event("form.submitted", data={"form_id": "13"})],
    )
    assert trs == []
    trs, _ = decide(
        auto,
        [created(fields={"OPPORTUNITY": 1000}), event("form.submitted", data={"form_id": "12"})],
    )
    assert trs == []


def test_trigger_on_current_stage_never_fires_and_one_move_per_event():
    auto = [
        pipeline(),
        trigger("a", "NEW", allow_backwards=True),
        trigger("b", "PROPOSAL"),
        trigger("c", "PREPARATION"),
    ]
    trs, _ = decide(auto, [created(), event("form.submitted")])
    assert moves(trs) == [("42", "NEW", "PREPARATION", "c")]
    # already on PREPARATION: c is on the current stage; a needs backwards (it has it)
    trs, _ = decide(auto, [created(stage="PREPARATION"), event("form.submitted")])
    assert moves(trs) == [("42", "PREPARATION", "NEW", "a")]
    assert trs[0]["direction"] == "backward"


def test_backwards_needs_allow_backwards_and_is_tried_first():
    auto = [pipeline(), trigger("back", "NEW"), trigger("later", "WON")]
    trs, _ = decide(auto, [created(stage="PREPARATION"), event("form.submitted")])
    assert moves(trs) == [("42", "PREPARATION", "WON", "later")]
    auto = [pipeline(), trigger("back", "NEW", allow_backwards=True), trigger("later", "WON")]
    trs, _ = decide(auto, [created(stage="PREPARATION"), event("form.submitted")])
    assert moves(trs) == [("42", "PREPARATION", "NEW", "back")]
    # same stage: sort, then id
    auto = [
        pipeline(),
        trigger("z", "WON", sort=0),
        trigger("y", "WON", sort=1),
        trigger("x", "WON", sort=1),
    ]
    trs, _ = decide(auto, [created(), event("form.submitted")])
    assert trs[0]["trigger"]["id"] == "z"
    auto = [pipeline(), trigger("y", "WON", sort=1), trigger("x", "WON", sort=1)]
    trs, _ = decide(auto, [created(), event("form.submitted")])
    assert trs[0]["trigger"]["id"] == "x"


def test_final_stages_are_ordinary_positions():
    auto = [
        pipeline(),
        trigger("lose", "LOSE", code="EMAIL"),
        trigger("reopen", "NEW", code="CALL"),
    ]
    trs, _ = decide(auto, [created(stage="WON"), event("email.received"), event("call.incoming")])
    assert moves(trs) == [("42", "WON", "LOSE", "lose")]
    assert trs[0]["direction"] == "forward"
    auto = [pipeline(), trigger("reopen", "NEW", code="CALL", allow_backwards=True)]
    trs, _ = decide(auto, [created(stage="LOSE"), event("call.incoming")])
    assert moves(trs) == [("42", "LOSE", "NEW", "reopen")]


def test_versions_by_time_and_what_if():
    auto = [
        pipeline(),
        trigger("t", "PREPARATION", code="EMAIL", updated_at="2026-11-10T00:00:00Z"),
        trigger("t", "PROPOSAL", code="EMAIL", updated_at="2026-11-20T00:00:00+02:00"),
        trigger("gone", "WON", code="CALL", updated_at="2026-11-01T00:00:00Z"),
        j(
            {
                "kind": "trigger",
                "tenant": "acme",
                "id": "gone",
                "deleted": True,
                "updated_at": "2026-11-15T00:00:00Z",
            }
        ),
    ]
    evs = [
        created("1", at="2026-11-01T00:00:00Z"),
        created("2", at="2026-11-01T00:00:00Z"),
        event("email.received", "1", at="2026-11-09T23:59:59Z"),  # not yet in force
        event("email.received", "1", at="2026-11-10T00:00:00Z"),  # in force (<=)
        event("call.incoming", "1", at="2026-11-12T00:00:00Z"),  # gone still exists
        event("email.received", "2", at="2026-11-19T22:00:00Z"),
    ]  # v2 (22:00Z) in force
    trs, dls = decide(auto, evs)
    assert dls == []
    assert moves(trs) == [
        ("1", "NEW", "PREPARATION", "t"),
        ("1", "PREPARATION", "WON", "gone"),
        ("2", "NEW", "PROPOSAL", "t"),
    ]
    # what-if: latest versions from the beginning, deletions honoured
    trs, _ = decide(auto, evs, what_if=True)
    assert moves(trs) == [("1", "NEW", "PROPOSAL", "t"), ("2", "NEW", "PROPOSAL", "t")]


def test_invalid_automation_keeps_previous_version():
    auto = [
        pipeline(),
        trigger("t", "PREPARATION", code="EMAIL"),
        trigger("t", "PREPARATION", code="NOPE", updated_at="2026-11-01T00:00:00Z"),
        trigger("u", "NOWHERE", code="EMAIL"),
        trigger("v", "WON", code="EMAIL", condition={"any": [{"field": "X"}]}),
        trigger("w", "WON", code="EMAIL", updated_at="2026-11-01T00:00:00"),
        b"{not json",
    ]
    trs, dls = decide(auto, [created(), event("email.received")])
    assert moves(trs) == [("42", "NEW", "PREPARATION", "t")]
    assert [(d["code"], d["source"], d["index"]) for d in dls] == [
        ("invalid_automation", "automation", 2),
        ("invalid_automation", "automation", 3),
        ("invalid_automation", "automation", 4),
        ("invalid_automation", "automation", 5),
        ("invalid_json", "automation", 6),
    ]


def test_duplicates_ignored_but_dead_letters_not_seen():
    auto = [
        pipeline(),
        trigger("t", "PREPARATION", code="EMAIL"),
        trigger("u", "PROPOSAL", code="EMAIL"),
    ]
    ev = event("email.received", eid="dup")
    trs, dls = decide(auto, [created(), ev, ev])
    assert moves(trs) == [("42", "NEW", "PREPARATION", "t")]
    # first delivery is an unknown_item dead letter; after item.created the retry is decided
    trs, dls = decide(auto, [ev, created(), ev, ev])
    assert [d["code"] for d in dls] == ["unknown_item"]
    assert dls[0]["item"] == "acme/deal/42" and dls[0]["index"] == 0
    assert moves(trs) == [("42", "NEW", "PREPARATION", "t")]


def test_deleted_items_are_noops_until_created():
    auto = [pipeline(), trigger("t", "PREPARATION", code="EMAIL")]
    evs = [
        created(),
        event("item.deleted"),
        event("email.received"),
        event("item.stage_changed", data={"stage": "PROPOSAL"}),
        created(stage="NEW"),
        event("email.received"),
    ]
    trs, dls = decide(auto, evs)
    assert dls == []
    assert moves(trs) == [("42", "NEW", "PREPARATION", "t")]
    assert trs[0]["event"]["id"] == orjson.loads(evs[-1])["id"]
    # deleting an unknown item records it: later events are no-ops, not unknown_item
    trs, dls = decide(auto, [event("item.deleted", "9"), event("email.received", "9")])
    assert trs == [] and dls == []


def test_unknown_item_with_and_without_hint_and_unknown_stage():
    auto = [pipeline(), trigger("t", "PREPARATION", code="EMAIL")]
    hinted = j(
        {
            "id": "h1",
            "type": "email.received",
            "tenant": "acme",
            "occurred_at": "2026-11-25T10:00:00Z",
            "item": {"entity": "deal", "id": "7", "category": "0", "stage": "NEW"},
        }
    )
    bare = j(
        {
            "id": "h2",
            "type": "email.received",
            "tenant": "acme",
            "occurred_at": "2026-11-25T10:00:00Z",
            "item": {"entity": "deal", "id": "8", "category": "0"},
        }
    )
    badstage = j(
        {
            "id": "h3",
            "type": "email.received",
            "tenant": "acme",
            "occurred_at": "2026-11-25T10:00:00Z",
            "item": {"entity": "deal", "id": "9", "stage": "MARS"},
        }
    )
    trs, dls = decide(auto, [hinted, bare, badstage])
    assert moves(trs) == [("7", "NEW", "PREPARATION", "t")]
    assert [(d["code"], d["item"]) for d in dls] == [
        ("unknown_item", "acme/deal/8"),
        ("unknown_stage", "acme/deal/9"),
    ]
    # item.stage_changed creates an unknown item; a missing pipeline is a counted no-op
    trs, dls = decide(
        auto,
        [
            event("item.stage_changed", "5", {"stage": "NEW"}),
            event("email.received", "5"),
            event(
                "email.received",
                "6",
                item={"entity": "deal", "id": "6", "category": "3", "stage": "X"},
            ),
        ],
    )
    assert moves(trs) == [("5", "NEW", "PREPARATION", "t")] and dls == []


def test_code_order_callback_then_webform_and_item_updated():
    auto = [
        pipeline(),
        trigger("web", "PREPARATION", code="WEBFORM"),
        trigger("cb", "WON", code="CALLBACK"),
    ]
    trs, _ = decide(auto, [created(), event("form.submitted", data={"callback": True})])
    assert moves(trs) == [("42", "NEW", "WON", "cb")]
    trs, _ = decide(auto, [created(), event("form.submitted", data={})])
    assert moves(trs) == [("42", "NEW", "PREPARATION", "web")]
    auto = [
        pipeline(),
        trigger("f", "PREPARATION", code="FIELD_CHANGED"),
        trigger("r", "WON", code="RESP_CHANGED"),
        trigger("s", "PROPOSAL", code="FIELD_CHANGED", params={"fields": ["STAGE_ID"]}),
    ]
    trs, _ = decide(
        auto, [created(), event("item.updated", data={"changes": {"ASSIGNED_BY_ID": 3}})]
    )
    assert moves(trs) == [("42", "NEW", "WON", "r")]
    trs, _ = decide(
        auto,
        [
            created(stage="WON"),
            event("item.updated", data={"changes": {"ASSIGNED_BY_ID": 3, "STAGE_ID": "X"}}),
        ],
    )
    assert trs == []  # RESP_CHANGED has no later trigger; FIELD_CHANGED ignores both fields


def test_conditions_numeric_vs_string_and_between_inclusive():
    def fires(fields, clause, data=None):
        auto = [
            pipeline(),
            trigger("t", "PREPARATION", code="EMAIL", condition={"any": [[clause]]}),
        ]
        trs, _ = decide(auto, [created(fields=fields), event("email.received", data=data)])
        return bool(trs)

    assert fires({"A": "10"}, {"field": "A", "op": ">", "value": 9})  # numbers: 10 > 9
    assert not fires({"A": "10x"}, {"field": "A", "op": ">", "value": "9"})  # strings
    assert fires({"A": "1000.0"}, {"field": "A", "op": "=", "value": 1000})
    assert fires({"A": 5}, {"field": "A", "op": "between", "value": [5, 10]})
    assert fires({"A": 10}, {"field": "A", "op": "between", "value": [5, "10"]})
    assert not fires({"A": 11}, {"field": "A", "op": "between", "value": [5, 10]})
    assert not fires({}, {"field": "A", "op": "<", "value": 5})  # empty makes < false
    assert fires({"A": None}, {"field": "A", "op": "empty"})
    assert fires({"A": "Big Deal"}, {"field": "A", "op": "contain", "value": "big"})
    assert fires({"A": "Big"}, {"field": "A", "op": "!contain", "value": "x"})
    assert fires({"A": "7"}, {"field": "A", "op": "in", "value": [1, 7]})
    assert fires({"A": "8"}, {"field": "A", "op": "!in", "value": [1, 7]})
    assert fires(
        {}, {"field": "event.answer_time_sec", "op": "<=", "value": 60}, {"answer_time_sec": 60}
    )
    assert not fires(
        {}, {"field": "event.answer_time_sec", "op": "<=", "value": 60}, {"answer_time_sec": 61}
    )


def test_tenants_are_isolated_and_echo_handling():
    auto = [pipeline(), trigger("t", "PREPARATION", code="EMAIL"), pipeline(tenant="other")]
    ev_other = j(
        {
            "id": "x",
            "type": "email.received",
            "tenant": "other",
            "occurred_at": "2026-11-25T10:00:00Z",
            "item": {"entity": "deal", "id": "42"},
            "data": {},
        }
    )
    crt_other = j(
        {
            "id": "c",
            "type": "item.created",
            "tenant": "other",
            "occurred_at": "2026-11-20T10:00:00Z",
            "item": {"entity": "deal", "id": "42"},
            "data": {"stage": "NEW"},
        }
    )
    trs, dls = decide(auto, [created(), crt_other, ev_other])
    assert trs == [] and dls == []
    # echo confirming, then a person's move adopted
    e1 = event("email.received", eid="m1")
    tid = transition_id("acme", "deal", "42", "m1")
    trs, dls = decide(
        [*auto, trigger("b", "NEW", code="CALL", allow_backwards=True)],
        [
            created(),
            e1,
            event("item.stage_changed", data={"stage": "PREPARATION", "transition_id": tid}),
            event("item.stage_changed", data={"stage": "PROPOSAL"}),
            event("call.incoming"),
        ],
    )
    assert moves(trs) == [("42", "NEW", "PREPARATION", "t"), ("42", "PROPOSAL", "NEW", "b")]


def test_record_level_dead_letters():
    auto = [pipeline()]
    evs = [
        b"{oops",
        j(
            {
                "type": "email.received",
                "occurred_at": "2026-11-25T10:00:00Z",
                "item": {"entity": "deal", "id": "1"},
            }
        ),
        j(
            {
                "id": "q",
                "type": "fax.received",
                "occurred_at": "2026-11-25T10:00:00Z",
                "item": {"entity": "deal", "id": "1"},
            }
        ),
        j(
            {
                "id": "q",
                "type": "email.received",
                "occurred_at": "2026-11-25T10:00:00",
                "item": {"entity": "deal", "id": "1"},
            }
        ),
        j(
            {
                "id": "big",
                "type": "email.received",
                "occurred_at": "2026-11-25T10:00:00Z",
                "item": {"entity": "deal", "id": "1"},
                "data": {"pad": "x" * 600},
            }
        ),
    ]
    _, dls = decide(auto, evs, max_record_bytes=500)
    assert [(d["code"], d["index"], d["item"]) for d in dls if d["source"] == "events"] == [
        ("invalid_json", 0, None),
        ("invalid_record", 1, None),
        ("unknown_event_type", 2, None),
        ("invalid_record", 3, None),
        ("too_large", 4, None),
    ]


def test_random_scenario_is_deterministic():
    for seed in (1, 7, 42):
        a1, e1 = random_scenario(seed, 300, 30)
        a2, e2 = random_scenario(seed, 300, 30)
        assert a1 == a2 and e1 == e2
        assert all(isinstance(x, bytes) for x in a1 + e1)
        out1 = decide(a1, e1)
        out2 = decide(a2, e2)
        assert out1 == out2
        assert decide(a1, e1, what_if=True) == decide(a2, e2, what_if=True)
    assert random_scenario(1, 300, 30) != random_scenario(2, 300, 30)
