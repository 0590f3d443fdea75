"""The two windows of an item (docs/decisions.md, "Echoes" and "Duplicates") at their bounds.

Each scenario runs on both engines, fed the same parcels (`Engines`: they must agree
record by record), and on the reference oracle, which states the documented rules on
its own; then the test says what the documented rule gives. Bounds are tested at
window - 1, window and window + 1.

The item moves on every event: a visit moves it to B, an email back to A (allowed to
move backwards), a call to C.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from connectors.raw import EVENTS
from connectors.records import decode_event
from flows.dataflow import Parcel, decide_parcels
from state import native
from state.board import DEFAULT_SEEN_WINDOW, ECHO_WINDOW
from state.explain import explain_decision
from state.model import Event, transition_id
from tests.reference import oracle
from tests.reference.oracle import Oracle
from tests.state.test_native import SOURCE, Engines, comparable, dumps

pytestmark = pytest.mark.skipif(not native.available(), reason="crm_triggers_native not built")

W = ECHO_WINDOW
KEY = ("default", "deal", "42")
AUTOMATION: list[dict[str, Any]] = [
    {
        "kind": "pipeline",
        "entity": "deal",
        "stages": [
            {"id": "A", "semantic": "process"},
            {"id": "B", "semantic": "process"},
            {"id": "C", "semantic": "process"},
        ],
    },
    {"kind": "trigger", "id": "t-a", "entity": "deal", "stage": "A", "code": "EMAIL",
     "allow_backwards": True},
    {"kind": "trigger", "id": "t-b", "entity": "deal", "stage": "B", "code": "VISIT",
     "allow_backwards": True},
    {"kind": "trigger", "id": "t-c", "entity": "deal", "stage": "C", "code": "CALL"},
]  # fmt: skip
MOVES = {"A": "visit.registered", "B": "email.received"}
"""The event that moves an item on this stage (A to B, B to A)."""


class Run:
    """Both engines and the oracle, fed one event at a time; outputs kept in order."""

    def __init__(self) -> None:
        self.engines = Engines.new()
        self.engines.automate(AUTOMATION)
        self.oracle = Oracle([orjson.dumps(r) for r in AUTOMATION])
        self.transitions: list[dict[str, Any]] = []
        self.tally: Counter[str] = Counter()
        self.n = 0

    def feed(self, etype: str, data: dict[str, Any] | None = None, event_id: str | None = None):
        """Decide one event for item 42; returns its transition, or its outcome's reason."""
        self.n += 1
        raw = dumps(
            {
                "id": event_id or f"e-{self.n}",
                "type": etype,
                "occurred_at": f"2026-11-25T10:{self.n // 60 % 60:02d}:{self.n % 60:02d}Z",
                "item": {"entity": "deal", "id": "42"},
                "data": data or {},
            }
        )
        engines = self.engines
        parcel = Parcel(0, EVENTS, SOURCE, None, [engines.seq], [engines.seq + 1], [raw])
        engines.seq += 1
        python = decide_parcels(engines.python[0], [parcel], engines.settings)
        compiled = decide_parcels(engines.native[0], [parcel], engines.settings)
        assert comparable(compiled) == comparable(python)
        engines.assert_same_items()
        expected = self.oracle.feed(raw)
        moved = [orjson.loads(line) for _, (_, line) in python.transitions]
        assert moved == expected
        self.transitions += moved
        self.tally += python.tally
        assert not python.dead_letters
        if moved:
            return moved[0]
        (reason,) = (r for r in python.tally if r != "history")  # one outcome; history apart
        return reason

    @property
    def stage(self) -> str:
        state = self.engines.python[0].items["/".join(KEY)]
        assert state.stage == self.oracle.items[KEY].stage
        return state.stage

    def move(self) -> dict[str, Any]:
        """One move of ours (A to B or B to A)."""
        moved = self.feed(MOVES[self.stage])
        assert isinstance(moved, dict)
        return moved

    def echo(self, move: dict[str, Any], stage: str | None = None) -> Any:
        data = {"stage": stage or move["to_stage"], "transition_id": move["id"]}
        return self.feed("item.stage_changed", data)


def started() -> Run:
    run = Run()
    assert run.feed("item.created", {"stage": "A"}) == "created"
    return run


# Echoes --------------------------------------------------------------------------------


@pytest.mark.parametrize("moves", [W - 1, W, W + 1, 3 * W])
def test_echoes_of_every_move_arriving_late_confirm_them_all(moves: int) -> None:
    """A CRM that applies our moves with lag echoes each in order, however many came first."""
    run = started()
    made = [run.move() for _ in range(moves)]
    last = run.stage

    assert [run.echo(m) for m in made] == ["confirmed"] * moves
    assert run.stage == last
    assert run.move()["from_stage"] == last


@pytest.mark.parametrize(("depth", "adopted"), [(W - 1, True), (W, True), (W + 1, False)])
def test_an_echo_naming_another_stage_is_adopted_while_its_move_is_remembered(
    depth: int, adopted: bool
) -> None:
    """`depth`: the echoed move and the moves after it. Older than the memory, it is ours,
    superseded by the later moves the CRM has yet to apply."""
    run = started()
    made = [run.move() for _ in range(depth)]
    last = run.stage

    outcome = run.echo(made[0], stage="C")

    assert outcome == ("stage_changed" if adopted else "confirmed")
    assert run.stage == ("C" if adopted else last)


@pytest.mark.parametrize(
    ("moves", "adopted"), [(0, True), (W - 1, True), (W, False), (W + 1, False)]
)
def test_a_transition_id_not_ours_is_adopted_until_the_memory_is_full(
    moves: int, adopted: bool
) -> None:
    """While the item has made fewer moves than the memory holds, every move of ours is in
    it: an id that is not there is not ours. Once full, it may be one of ours, older."""
    run = started()
    for _ in range(moves):
        run.move()
    last = run.stage

    outcome = run.feed("item.stage_changed", {"stage": "C", "transition_id": "not-ours"})

    assert outcome == ("stage_changed" if adopted else "confirmed")
    assert run.stage == ("C" if adopted else last)


def test_a_stage_change_without_transition_id_is_always_adopted() -> None:
    run = started()
    for _ in range(W + 1):
        run.move()

    assert run.feed("item.stage_changed", {"stage": "C"}) == "stage_changed"
    assert run.stage == "C"


def test_the_echo_memory_survives_deletion_and_creation() -> None:
    run = started()
    made = [run.move() for _ in range(W + 1)]
    assert run.feed("item.deleted") == "deleted"
    assert run.feed("item.created", {"stage": "A"}) == "created"

    assert run.echo(made[0], stage="C") == "confirmed"  # older than the memory
    assert run.echo(made[-1], stage="C") == "stage_changed"
    assert run.stage == "C"


# Retries older than the seen window ------------------------------------------------------


def beyond_the_seen_window(run: Run, depth: int) -> dict[str, Any]:
    """A visit that moves the item A to B, later moves, a call that moves it to C as the
    visit's `depth`-th last move, and between them enough events that the visit's id
    leaves the seen window."""
    original = run.feed("visit.registered", event_id="visit-1")
    assert isinstance(original, dict) and original["to_stage"] == "B"
    for _ in range(depth - 2):
        run.move()
    for _ in range(DEFAULT_SEEN_WINDOW):
        assert run.feed("item.updated", {"changes": {}}) == "updated"
    assert run.feed("call.incoming")["to_stage"] == "C"
    assert len(run.transitions) - run.transitions.index(original) == depth
    return original


@pytest.mark.parametrize("depth", [2, W - 1, W])
def test_an_old_retry_of_a_move_in_memory_is_a_duplicate(depth: int) -> None:
    """The retry would move C to B under the visit's transition id: it is not made."""
    run = started()
    beyond_the_seen_window(run, depth)
    moves = len(run.transitions)

    assert run.feed("visit.registered", event_id="visit-1") == "duplicate"
    assert run.stage == "C"
    ids = [t["id"] for t in run.transitions]
    assert len(ids) == len(set(ids)) == moves


def test_an_old_retry_beyond_both_windows_is_decided_again_with_the_same_id() -> None:
    """The documented limit: past the seen window and the move memory, a retry is decided
    again; its transition has the original's id and other stages."""
    run = started()
    original = beyond_the_seen_window(run, W + 1)

    again = run.feed("visit.registered", event_id="visit-1")

    assert isinstance(again, dict)
    assert again["id"] == original["id"] == transition_id(*KEY, "visit-1")
    assert (again["from_stage"], again["to_stage"]) == ("C", "B")


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_retry_is_a_duplicate_up_to_the_seen_window(extra: int) -> None:
    """An event that did not move the item: remembered for exactly `--seen-window` events."""
    run = started()
    assert run.feed("form.submitted", event_id="form-1") == "no_match"
    for _ in range(DEFAULT_SEEN_WINDOW - 1 + extra):
        run.feed("item.updated", {"changes": {}})

    expected = "duplicate" if extra < 1 else "no_match"
    assert run.feed("form.submitted", event_id="form-1") == expected


def test_the_oracle_states_the_windows_of_the_engines() -> None:
    assert (oracle.SEEN_WINDOW, oracle.ECHO_WINDOW) == (DEFAULT_SEEN_WINDOW, ECHO_WINDOW)


# An item named twice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        ([None, "A"], ("unknown_item", None)),
        (["A", None], ("moved", "B")),
        (["A", "B"], ("moved", "B")),
        (["B", "A"], ("moved", "A")),
    ],
)
def test_an_item_named_twice_is_decided_once_with_its_first_mention(
    hints: list[str | None], expected: tuple[str, str | None]
) -> None:
    """A visit names item 42 twice with other stage hints (or none): one outcome, the first
    mention's. (On B, the visit's trigger is on the item's stage: no move, so an email.)"""
    run = Run()
    refs = [{"entity": "deal", "id": "42"} | ({"stage": h} if h else {}) for h in hints]
    etype = "email.received" if hints[0] == "B" else "visit.registered"
    raw = dumps({"id": "e-1", "type": etype, "occurred_at": "2026-11-25T10:00:00Z", "items": refs})
    engines = run.engines
    parcel = Parcel(0, EVENTS, SOURCE, None, [engines.seq], [engines.seq + 1], [raw])
    python = decide_parcels(engines.python[0], [parcel], engines.settings)
    compiled = decide_parcels(engines.native[0], [parcel], engines.settings)
    assert comparable(compiled) == comparable(python)
    engines.assert_same_items()
    assert [orjson.loads(t) for _, (_, t) in python.transitions] == run.oracle.feed(raw)

    outcome, stage = expected
    if outcome == "unknown_item":
        assert [letter.code for _, letter in python.dead_letters] == ["unknown_item"]
        assert python.transitions == []
        assert engines.python[0].items == {}
    else:
        assert python.dead_letters == []
        [(_, (_, line))] = python.transitions
        assert orjson.loads(line)["to_stage"] == stage
        assert python.tally["extra_items"] == 0


def test_explain_says_an_old_retry_of_a_move_is_a_duplicate() -> None:
    """`explain` decides with the Python board: the retry's outcome, no candidate list."""
    run = started()
    beyond_the_seen_window(run, W)
    board = run.engines.python[0]
    retry = decode_event(dumps(
        {"id": "visit-1", "type": "visit.registered", "occurred_at": "2026-11-26T10:00:00Z",
         "item": {"entity": "deal", "id": "42"}}
    ))  # fmt: skip
    assert isinstance(retry, Event)

    step = explain_decision(board, retry, retry.items[0], "/".join(KEY))

    assert (step.outcome, step.stage_before, step.stage_after) == ("duplicate", "C", "C")
    assert step.transition is None and step.codes == ()
