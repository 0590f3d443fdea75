"""One vocabulary for both engines: Python's table, handed to the compiled board and checked.

`state.codes` owns the event types, codes and params; `state/native.py` hands the
table to `crm_triggers_native.configure` at import and checks that the compiled
module knows the same operators, param rules, reasons and note kinds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from state import native
from state.board import REASONS
from state.codes import EVENT_TYPES, PARAM_RULES, PARAMS, type_table
from state.conditions import OPERATORS

ROOT = Path(__file__).resolve().parents[2]

needs_native = pytest.mark.skipif(not native.available(), reason="crm_triggers_native not built")


@needs_native
def test_the_compiled_module_knows_what_python_knows() -> None:
    import crm_triggers_native as compiled

    assert native.problem() is None
    assert sorted(compiled.OPERATORS) == sorted(OPERATORS)
    assert list(compiled.PARAM_RULES) == list(PARAM_RULES)
    assert list(compiled.REASONS) == list(REASONS)
    assert list(compiled.NOTE_KINDS) == list(native.NOTE_KINDS)
    assert set(compiled.SPECIAL_TYPES) <= EVENT_TYPES
    assert set(compiled.SPECIAL_CODES) <= set(PARAMS)


def _module_like_the_compiled_one(**changes: object) -> SimpleNamespace:
    import crm_triggers_native as compiled

    names = ["OPERATORS", "PARAM_RULES", "REASONS", "NOTE_KINDS", "SPECIAL_TYPES"]
    names += ["SPECIAL_CODES", "NEVER_WATCHED"]
    values = {name: getattr(compiled, name) for name in names}
    values["configure"] = compiled.configure
    values.update(changes)
    return SimpleNamespace(**values)


@needs_native
def test_a_module_that_knows_the_same_names_matches() -> None:
    assert native._mismatch(_module_like_the_compiled_one()) is None


@needs_native
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPERATORS", sorted(OPERATORS - {"between"})),
        ("REASONS", list(reversed(REASONS))),
        ("PARAM_RULES", [*PARAM_RULES, "regex"]),
        ("NOTE_KINDS", ["transition"]),
    ],
)
def test_a_module_that_knows_other_names_is_refused_by_name(name: str, value: object) -> None:
    problem = native._mismatch(_module_like_the_compiled_one(**{name: value}))
    assert problem is not None
    assert name in problem


@needs_native
def test_another_table_is_refused_once_one_is_handed_over() -> None:
    import crm_triggers_native as compiled

    types, codes = type_table()
    compiled.configure(types, codes)  # the same table again: accepted
    with pytest.raises(ValueError, match="another table"):
        compiled.configure([*types, ("test.pinged", ["VISIT"])], codes)
    with pytest.raises(ValueError, match="unknown code NOPE"):
        compiled.configure([("test.pinged", ["NOPE"])], codes)
    problem = native._mismatch(
        _module_like_the_compiled_one(configure=lambda *_: compiled.configure([], []))
    )
    assert problem is not None and "lacks the event type" in problem


# The recipe of docs/engine.md, done for real: a one-to-one code is two rows in state/codes.py.

RECIPE_ROWS = (
    ('    "order.paid": ("ORDER_PAID",),\n', '    "test.pinged": ("TEST_PING",),\n'),
    ('    "ORDER_PAID": {},\n', '    "TEST_PING": {"channel": "eq"},\n'),
)

RECIPE_RUN = textwrap.dedent(
    """
    import json
    import state.codes
    assert state.codes.__file__.startswith(sys.argv[1]), state.codes.__file__
    from connectors.raw import AUTOMATION, EVENTS
    from flows.dataflow import FlowSettings, Parcel, decide_parcels, new_board

    automation = [
        {"kind": "pipeline", "entity": "deal", "stages": [
            {"id": "NEW", "semantic": "process"}, {"id": "PINGED", "semantic": "process"}]},
        {"kind": "trigger", "id": "t-ping", "entity": "deal", "stage": "PINGED",
         "code": "TEST_PING", "params": {"channel": 7}},
    ]
    item = {"entity": "deal", "id": "42"}
    at = "2026-11-25T10:00:00Z"
    events = [
        {"id": "e-1", "type": "item.created", "occurred_at": at, "item": item,
         "data": {"stage": "NEW"}},
        {"id": "e-2", "type": "test.pinged", "occurred_at": at, "item": item,
         "data": {"channel": "8"}},
        {"id": "e-3", "type": "test.pinged", "occurred_at": at, "item": item,
         "data": {"channel": "7"}},
    ]
    out = {}
    for engine in ("python", "native"):
        settings = FlowSettings(key_groups=1, engine=engine)
        board = new_board(settings)
        lines = [json.dumps(r).encode() for r in automation]
        decide_parcels(board, [Parcel(0, AUTOMATION, "a", None, [0, 1], [1, 2], lines)], settings)
        raws = [json.dumps(e).encode() for e in events]
        parcel = Parcel(0, EVENTS, "e", None, [2, 3, 4], [1, 2, 3], raws)
        decided = decide_parcels(board, [parcel], settings)
        out[engine] = {
            "transitions": [json.loads(line) for _, (_, line) in decided.transitions],
            "dead_letters": len(decided.dead_letters),
            "tally": dict(decided.tally),
        }
    print(json.dumps(out))
    """
)


@needs_native
def test_a_new_one_to_one_code_is_two_rows_in_state_codes(tmp_path: Path) -> None:
    copy = tmp_path / "state"
    shutil.copytree(ROOT / "state", copy, ignore=shutil.ignore_patterns("__pycache__"))
    codes = copy / "codes.py"
    text = codes.read_text()
    for anchor, row in RECIPE_ROWS:
        assert text.count(anchor) == 1, anchor
        text = text.replace(anchor, anchor + row)
    codes.write_text(text)
    script = "import sys\nsys.path[:0] = [sys.argv[1], sys.argv[2]]\n" + RECIPE_RUN
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    import json

    out = json.loads(done.stdout)
    assert out["python"] == out["native"]
    (move,) = out["native"]["transitions"]
    assert move["trigger"] == {"id": "t-ping", "code": "TEST_PING"}
    assert move["event"]["type"] == "test.pinged"
    assert move["event"]["id"] == "e-3"
    assert (move["from_stage"], move["to_stage"]) == ("NEW", "PINGED")
    assert out["native"]["tally"]["no_match"] == 1  # e-2: channel 8 is not the trigger's 7
    assert out["native"]["dead_letters"] == 0
