"""Why an item did or did not move: one decision of the `Board`, step by step.

`explain_decision` runs `Board.decide` itself with a `Recorder` as its observer,
so the trace is the decision that replay makes, not a second copy of the
rules. The Recorder only writes down what the candidate loop reports; the
details (which param differed, which clause failed and the value it read) are
read back with the same functions the loop called (`params_match`,
`Clause.holds`), one param or clause at a time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from state.board import BACKWARDS, CONDITION, PARAMS, SAME_STAGE, Board
from state.codes import LIFECYCLE, codes_for, params_match
from state.model import BEGINNING, Event, ItemRef, Rejection, Transition, Trigger
from state.table import Candidate, PipelineView

# Verdicts of a trigger, in the words the output uses.
FIRED = "fired"
NOT_REACHED = "not_reached"  # after the one that fired: never tried
NOT_IN_FORCE = "not_in_force"  # its first version starts after the event
DELETED = "deleted"  # deleted before the event
OTHER_VERSION = "other_version"  # in force then, on another pipeline or code
STAGE_NOT_IN_PIPELINE = "stage_not_in_pipeline"
NOT_CANDIDATES = (NOT_IN_FORCE, DELETED, OTHER_VERSION, STAGE_NOT_IN_PIPELINE)
"""Verdicts of triggers of the pipeline and code that were not candidates at the time."""
VERDICTS = (
    FIRED,
    SAME_STAGE,
    BACKWARDS,
    PARAMS,
    CONDITION,
    NOT_REACHED,
    NOT_IN_FORCE,
    DELETED,
    OTHER_VERSION,
    STAGE_NOT_IN_PIPELINE,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One trigger and why it did or did not move the item.

    `detail`: for `params`, `{"params": [{"param", "expected", "got"}]}`; for
    `condition`, `{"clauses": [{"group", "field", "op", "value", "saw"}]}` (per OR
    group, the clause that failed); for `not_in_force` `{"from": time}`, for
    `deleted` `{"at": time}`, for `other_version` `{"entity", "category", "code"}`.
    """

    trigger: Trigger
    position: int | None  # its stage's position in the pipeline; None: not in it
    verdict: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CodeTrial:
    """One code the event can fire: its candidates in decision order, then the others."""

    code: str
    tried: bool  # False: an earlier code moved the item
    verdicts: tuple[Verdict, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One (event, item) decision: what it did to the item and why."""

    event: Event
    outcome: str  # "moved", a `Decided` reason, or "dead_letter"
    category: str | None  # the item's, after the event (before it for a dead letter)
    stage_before: str | None  # None: unknown or deleted
    stage_after: str | None
    stages: tuple[str, ...] = ()  # that pipeline's stage ids, in order
    transition: Transition | None = None
    rejection: Rejection | None = None
    codes: tuple[CodeTrial, ...] = ()


class Recorder:
    """A `DecisionObserver` that keeps what the candidate loop told it, per code."""

    def __init__(self) -> None:
        self.view: PipelineView | None = None
        self.reports: dict[str, list[tuple[Candidate, str, dict[str, Any] | None]]] = {}

    def trying(self, code: str, view: PipelineView, position: int) -> None:
        self.view = view
        self.reports[code] = []

    def skipped(self, candidate: Candidate, reason: str, fields: Mapping[str, Any] | None) -> None:
        copy = None if fields is None else dict(fields)  # the board changes them later
        self.reports[next(reversed(self.reports))].append((candidate, reason, copy))


def _fires_codes(event_type: str) -> bool:
    return event_type not in LIFECYCLE or event_type == "item.updated"


def explain_decision(board: Board, event: Event, ref: ItemRef, key: str) -> Step:
    """Decide (event, item) on `board`, as replay does, and say why it came out so."""
    before = board.items.get(key)
    # Copied now: the board changes the item's state in place.
    category = None if before is None else before.category
    stage_before = None if before is None else before.stage
    if before is None and ref.stage is not None and _fires_codes(event.type):
        category, stage_before = ref.category or "0", ref.stage  # decided from the hint
    recorder = Recorder()
    board.observer = recorder
    try:
        outcome = board.decide(event, ref, key)
    finally:
        board.observer = None
    if type(outcome) is Rejection:
        return Step(event, "dead_letter", category, stage_before, stage_before, rejection=outcome)
    after = board.items.get(key)
    stage_after = None if after is None else after.stage
    if after is not None:
        category = after.category  # the pipeline the event was decided in
    view = recorder.view
    if view is None and after is not None and stage_after is not None:
        view = board.table.view(event.tenant, ref.entity, after.category, event.at)
    trials = _trials(board, event, ref, recorder, outcome) if recorder.reports else ()
    moved = type(outcome) is Transition
    return Step(
        event,
        "moved" if moved else outcome.reason,  # type: ignore[union-attr]
        category,
        stage_before,
        stage_after,
        () if view is None else tuple(s.id for s in view.pipeline.stages),
        outcome if moved else None,  # type: ignore[arg-type]
        None,
        trials,
    )


def _trials(
    board: Board, event: Event, ref: ItemRef, recorder: Recorder, outcome: Any
) -> tuple[CodeTrial, ...]:
    view = recorder.view
    assert view is not None
    fired = outcome.trigger_id if type(outcome) is Transition else None
    out = []
    for code in codes_for(event.type, event.data):
        if code not in recorder.reports:
            out.append(CodeTrial(code, False, ()))
            continue
        why = {id(c): (reason, fields) for c, reason, fields in recorder.reports[code]}
        verdicts = []
        reached = True
        for candidate in view.by_code.get(code, ()):
            trigger = candidate.trigger
            if id(candidate) in why:
                reason, fields = why[id(candidate)]
                detail = _detail(trigger, reason, fields, event.data)
                verdicts.append(Verdict(trigger, candidate.position, reason, detail))
            elif reached and trigger.id == fired:
                verdicts.append(Verdict(trigger, candidate.position, FIRED))
                reached = False
            else:
                verdicts.append(Verdict(trigger, candidate.position, NOT_REACHED))
        verdicts.extend(_not_candidates(board, event, ref, view, code))
        out.append(CodeTrial(code, True, tuple(verdicts)))
    return tuple(out)


def _detail(
    trigger: Trigger, reason: str, fields: Mapping[str, Any] | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    if reason == PARAMS:
        differed = []
        for name, (how, expected) in trigger.params.items():
            if not params_match({name: (how, expected)}, data):
                got = sorted(data.get("changes") or {}) if how in ("fields", "any_field") else None
                differed.append(
                    {
                        "param": name,
                        "expected": list(expected) if isinstance(expected, tuple) else expected,
                        "got": got if got is not None else data.get(name),
                    }
                )
        return {"params": differed}
    if reason == CONDITION and trigger.condition is not None:
        failed = trigger.condition.failed_clauses(fields or {}, data)
        return {
            "clauses": [
                {"group": g, "field": c.field, "op": c.op, "value": c.value, "saw": saw}
                for g, c, saw in failed
            ]
        }
    return {}


def _not_candidates(
    board: Board, event: Event, ref: ItemRef, view: PipelineView, code: str
) -> list[Verdict]:
    """Triggers of this pipeline and code that were not candidates at the event's time."""
    pipeline = view.pipeline
    candidates = {c.trigger.id for c in view.by_code.get(code, ())}
    what_if = board.table.what_if
    out = []
    for trigger_id, versions in board.table.trigger_versions(event.tenant).items():
        if trigger_id in candidates:
            continue
        ours = [
            (at, t)
            for at, t in versions
            if t is not None
            and t.entity == ref.entity
            and t.category == pipeline.category
            and t.code == code
        ]
        if not ours:
            continue
        index = len(versions) if what_if else bisect_right(versions, event.at, key=lambda v: v[0])
        then = versions[index - 1] if index else None
        example = ours[-1][1]
        if then is None:
            first_at, first = ours[0]
            verdict = Verdict(first, _position(view, first), NOT_IN_FORCE, {"from": first_at})
        elif then[1] is None:
            verdict = Verdict(example, _position(view, example), DELETED, {"at": then[0]})
        elif then[1] in (t for _, t in ours):
            verdict = Verdict(then[1], None, STAGE_NOT_IN_PIPELINE)
        else:
            other = then[1]
            detail = {"entity": other.entity, "category": other.category, "code": other.code}
            verdict = Verdict(example, _position(view, example), OTHER_VERSION, detail)
        out.append(verdict)
    return out


def _position(view: PipelineView, trigger: Trigger) -> int | None:
    return view.positions.get(trigger.stage)


def time_text(at: datetime) -> str:
    """A time as RFC 3339 (UTC `Z`); the beginning of time as "the beginning"."""
    if at == BEGINNING:
        return "the beginning"
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
