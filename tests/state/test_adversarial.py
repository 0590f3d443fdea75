"""Crafted records that once crashed a run, exhausted its memory or split the engines.

Each case is fed to both engines as the dataflow feeds them (`Engines` of
`test_native`), which must give the same outputs byte for byte; the tests then say
which outcome that is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.records import decode_event
from state.codes import MAX_DEPTH, MAX_ITEMS
from state.model import Rejection
from tests.state.test_native import (
    MINIMAL_CREATED,
    MINIMAL_PIPELINE,
    Engines,
    dumps,
)

pytestmark = pytest.mark.skipif(
    not __import__("state.native").native.available(), reason="crm_triggers_native not built"
)

VISIT = {"kind": "trigger", "id": "t", "entity": "deal", "stage": "WON", "code": "VISIT"}
AT = "2026-11-25T10:00:00Z"


def visit(data: str = "{}", item: str = '{"entity":"deal","id":"1"}', eid: str = "v") -> bytes:
    """A visit of deal 1 with `data` and `item` as raw JSON text."""
    return (
        f'{{"id":"{eid}","type":"visit.registered","occurred_at":"{AT}",'
        f'"item":{item},"data":{data}}}'
    ).encode()


def engines_with(*automation: dict[str, Any]) -> Engines:
    engines = Engines.new()
    engines.automate([MINIMAL_PIPELINE, *automation])
    engines.events([dumps(MINIMAL_CREATED)])
    return engines


def codes_of(engines: Engines, raws: list[bytes]) -> list[str]:
    """Dead-letter codes of the Python engine for `raws` (the native one agrees: `feed`)."""
    from flows.dataflow import Parcel, decide_parcels

    parcel = Parcel(0, "events", "events.jsonl", None, range(len(raws)), range(len(raws)), raws)
    engines.events(raws)
    again = decide_parcels(engines.python[0], [parcel], engines.settings)
    return [letter.code for _, letter in again.dead_letters]


# 1. Dead-letter amplification -----------------------------------------------------------


def _many(count: int) -> bytes:
    refs = [{"entity": "deal", "id": f"u{n}"} for n in range(count)]
    return dumps({"id": "m", "type": "visit.registered", "occurred_at": AT, "items": refs})


def test_an_event_naming_more_items_than_the_limit_is_one_dead_letter_on_both_engines() -> None:
    engines = engines_with(VISIT)
    raw = _many(MAX_ITEMS + 1)
    engines.events([raw])
    decisions = _decide(engines, [raw])
    assert [(letter.code, letter.item) for _, letter in decisions.dead_letters] == [
        ("too_many_items", None)
    ]
    assert f"at most {MAX_ITEMS}" in decisions.dead_letters[0][1].message
    assert decisions.tally["dlq.too_many_items"] == 1
    assert "extra_items" not in decisions.tally  # rejected whole: it counts once


def test_an_event_naming_as_many_items_as_the_limit_is_decided_item_by_item() -> None:
    engines = engines_with(VISIT)
    raw = _many(MAX_ITEMS)
    engines.events([raw])
    decisions = _decide(engines, [raw])
    assert {letter.code for _, letter in decisions.dead_letters} == {"unknown_item"}
    assert len(decisions.dead_letters) == MAX_ITEMS
    assert decisions.tally["extra_items"] == MAX_ITEMS - 1


def test_a_10k_item_line_writes_one_dead_letter_of_its_own_size() -> None:
    raw = _many(10_000)
    rejection = decode_event(raw)
    assert rejection == Rejection(
        "too_many_items", f"items: the event names 10000 items, at most {MAX_ITEMS} are read"
    )


def _decide(engines: Engines, raws: list[bytes]) -> Any:
    from flows.dataflow import Parcel, decide_parcels

    parcel = Parcel(0, "events", "events.jsonl", None, range(len(raws)), range(len(raws)), raws)
    fresh = Engines.new()
    fresh.automate([MINIMAL_PIPELINE, VISIT])
    return decide_parcels(fresh.python[0], [parcel], fresh.settings)


# 3. Deeply nested conditions ------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH - 6, MAX_DEPTH - 5, 130, 300, 5000])
def test_a_deeply_nested_condition_is_invalid_automation_at_load_on_both_engines(
    levels: int,
) -> None:
    # The record, condition, any, group and clause are 5 levels: `levels` more inside.
    value = "[" * levels + "]" * levels
    deep = json.dumps({**VISIT, "id": "deep", "condition": {"any": [[{"field": "TITLE"}]]}})
    raw = deep.replace('"TITLE"}', f'"TITLE", "op": "in", "value": {value}}}').encode()
    engines = Engines.new()
    engines.automate([MINIMAL_PIPELINE, VISIT, raw])  # both engines agree, or this fails
    engines.events([dumps(MINIMAL_CREATED), visit()])  # and nothing crashes when deciding
    from flows.dataflow import Parcel, decide_parcels

    parcel = Parcel(0, "automation", "automation.jsonl", None, [0], [1], [raw])
    letters = decide_parcels(Engines.new().python[0], [parcel], engines.settings).dead_letters
    if levels + 5 <= MAX_DEPTH:
        assert letters == []
    else:
        assert [letter.code for _, letter in letters] == ["invalid_automation"]
        assert f"deeper than {MAX_DEPTH} levels" in letters[0][1].message
    assert engines.python[0].items["default/deal/1"].stage == "WON"


# 4. Non-finite numbers and lone surrogates ----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        '{"x":1e400}',
        '{"x":-1e400}',
        '{"x":1E999}',
        '{"x":1.5e308}',  # finite: decided
        '{"x":"\\ud800"}',
        '{"x":"\\udc00x"}',
        '{"x":["\\ud83d"]}',
        '{"x":"\\ud83d\\ude00"}',  # a pair: decided
        '{"x":' + "1" * 400 + "}",  # an integer, exact at any length: decided
    ],
)
def test_a_number_beyond_range_or_a_lone_surrogate_is_invalid_json_on_both_engines(
    data: str,
) -> None:
    engines = engines_with(VISIT)
    codes = codes_of(engines, [visit(data)])
    decided = "1.5e308" in data or "\\ude00" in data or "1111" in data
    assert codes == ([] if decided else ["invalid_json"])


@pytest.mark.parametrize("value", ["1e400", "1" * 400, "123456789012345678901234567890"])
def test_item_fields_out_of_float_range_do_not_crash_a_condition_python_evaluates(
    value: str,
) -> None:
    # "é" is beyond the native engine's case folding: Python evaluates the condition,
    # reading the item's fields as the native board kept them.
    clause = {"field": "OPPORTUNITY", "op": "contain", "value": "é"}
    engines = engines_with({**VISIT, "condition": {"any": [[clause]]}})
    created = dumps({**MINIMAL_CREATED, "id": "c2", "item": {"entity": "deal", "id": "2"}})
    fields = b'"stage":"NEW","fields":{"OPPORTUNITY":' + value.encode() + b"}"
    created = created.replace(b'"stage":"NEW"', fields)
    engines.events([created, visit(item='{"entity":"deal","id":"2"}')])


# 5. Deep nesting in event data ----------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH - 2, MAX_DEPTH - 1, 200, 1000, 100_000])
def test_event_data_nested_beyond_the_limit_is_invalid_record_on_both_engines(
    levels: int,
) -> None:
    engines = engines_with(VISIT)
    # The record's braces are level 1 and data's level 2: `levels` arrays inside data.
    data = '{"x":' + "[" * levels + "]" * levels + "}"
    codes = codes_of(engines, [visit(data)])
    assert codes == ([] if levels + 2 <= MAX_DEPTH else ["invalid_record"])


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    data = '{"x":"' + "[{" * 5000 + '\\"' + "[" * 100 + '"}'
    assert type(decode_event(visit(data))) is not Rejection


# 6. Large integer ids -------------------------------------------------------------------

BIG_ID = "123456789012345678901234567890"


@pytest.mark.parametrize("ref_key", ["item", "items"])
def test_a_large_integer_id_reads_the_same_under_item_and_items(ref_key: str) -> None:
    engines = Engines.new()
    engines.automate([MINIMAL_PIPELINE, VISIT])
    ref = '{"entity":"deal","id":' + BIG_ID + "}"
    created = (
        f'{{"id":"c","type":"item.created","occurred_at":"{AT}",'
        f'"{ref_key}":{ref if ref_key == "item" else "[" + ref + "]"},"data":{{"stage":"NEW"}}}}'
    ).encode()
    other = "items" if ref_key == "item" else "item"
    moved = (
        f'{{"id":"v","type":"visit.registered","occurred_at":"{AT}",'
        f'"{other}":{ref if other == "item" else "[" + ref + ", " + ref + "]"}}}'
    ).encode()
    engines.events([created, moved])
    assert engines.python[0].items[f"default/deal/{BIG_ID}"].stage == "WON"
    event = decode_event(moved)
    assert type(event) is not Rejection and event.items[0].id == BIG_ID
