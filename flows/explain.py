"""`crm-triggers explain`: one item's timeline, each decision with its reasons.

Reads the inputs as replay does (the same readers, merge and decoders), applies
the whole automation log, then decides only the item's own events on the
reference `Board` with an observer (`state.explain`): an item's decisions depend
on its own events and the automation alone. Lines that cannot name the item are
skipped before they are decoded (a byte test on the item id); the others are
decoded and checked exactly.
"""

from __future__ import annotations

import gzip
import re
import sys
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.deadletter import Origin
from connectors.jsonl import ReplayInputs, merge_by_time, read_line_blocks, read_lines
from connectors.records import (
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_TENANT,
    decode_event,
    load_json,
    parse_automation,
    transition_json,
)
from flows.options import option, positive_int
from flows.settings import EventLogs
from state.board import DEFAULT_SEEN_WINDOW, Board
from state.codes import id_text
from state.errors import ConfigError
from state.explain import (
    BACKWARDS,
    CONDITION,
    DELETED,
    FIRED,
    NOT_IN_FORCE,
    NOT_REACHED,
    OTHER_VERSION,
    PARAMS,
    SAME_STAGE,
    STAGE_NOT_IN_PIPELINE,
    CodeTrial,
    Step,
    Verdict,
    explain_decision,
    time_text,
)
from state.model import Rejection, item_key
from state.table import TriggerTable

WIDTH = 100
FORMATS = ("text", "json")


@dataclass(frozen=True, repr=False)
class ExplainSettings(EventLogs):
    """`crm-triggers explain`: the inputs as in replay, the item, and the engine's windows."""

    item: str = option(
        "",
        "the item, e.g. acme/deal/42",
        metavar="TENANT/ENTITY/ID",
        cli_env=False,
        required="the item to explain",
    )
    what_if: bool = option(
        False,
        "the latest version of every automation record, in force from the beginning",
        switch=True,
        cli_env=False,
    )
    format: str = option("text", "default: text", choices=FORMATS, cli_env=False)
    seen_window: int = option(
        DEFAULT_SEEN_WINDOW,
        "event ids remembered per item, as given to replay",
        read=positive_int,
    )
    max_record_bytes: int = option(
        DEFAULT_MAX_RECORD_BYTES,
        "larger records are dead letters (too_large), as in replay",
        read=positive_int,
    )


@dataclass(frozen=True, slots=True)
class ItemName:
    tenant: str
    entity: str
    id: str

    @property
    def key(self) -> str:
        return item_key(self.tenant, self.entity, self.id)


def parse_item(text: str) -> ItemName:
    """`TENANT/ENTITY/ID` (the id may hold '/'); ConfigError says what is expected."""
    parts = text.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"--item: expected TENANT/ENTITY/ID (e.g. default/deal/42), got {text!r}")
    return ItemName(*parts)


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """An event record rejected whole (a dead letter) that names the item."""

    rejection: Rejection
    event_id: Any
    event_type: Any
    occurred_at: Any


@dataclass
class Timeline:
    """The item's decisions in input order, and what the automation log held."""

    item: ItemName
    what_if: bool
    automation_applied: int = 0
    automation_rejected: int = 0
    entries: list[tuple[Origin, Step | RejectedRecord]] = field(default_factory=list)
    final: tuple[str, str | None] | None = None  # (category, stage or None: deleted)

    @property
    def moves(self) -> int:
        return sum(1 for _, e in self.entries if isinstance(e, Step) and e.transition)


_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT_ID = re.compile(rb'"id"[ \t\r]*:[ \t\r]*-?[0-9]*[.eE]')  # within one line


@dataclass(frozen=True)
class LineFilter:
    """Which lines can name an item: a byte test that is true of all of them (and a few more).

    A line names the id as its bytes unless the JSON spells it otherwise: with an
    escape (a backslash), or, for an integer id, as a number with a fraction or an
    exponent (`42.0`, `4.2e1`); lines that may do so are kept too.
    """

    item_id: str

    @property
    def needle(self) -> bytes:
        return self.item_id.encode()

    @property
    def numeric(self) -> bool:
        return _INTEGER.fullmatch(self.item_id) is not None

    def __call__(self, line: bytes) -> bool:
        return bool(self.kept([line]))

    def kept(self, lines: list[bytes]) -> list[int]:
        """Indices of the lines of a block that may name the item, in order.

        The block is searched as one string (C loops); only the hits cost Python
        work, each mapped to its line by counting the line ends before it.
        """
        joined = b"\n".join(lines)
        hits = _hits(joined, self.needle)
        if b"\\" in joined:
            hits.extend(_hits(joined, b"\\"))
        if self.numeric:
            hits.extend(match.start() for match in _FLOAT_ID.finditer(joined))
        if not hits:
            return []
        hits.sort()
        out: list[int] = []
        line, counted = 0, 0
        for at in hits:  # few: count the line ends between one hit and the next
            line += joined.count(b"\n", counted, at)
            counted = at
            if not out or out[-1] != line:
                out.append(line)
        return out


def _hits(joined: bytes, needle: bytes) -> list[int]:
    """Where `needle` occurs in a block: at most one offset per line."""
    out = []
    find = joined.find
    at = find(needle)
    while at != -1:
        out.append(at)
        end = find(b"\n", at)
        if end == -1:
            break
        at = find(needle, end)
    return out


def line_filter(item_id: str) -> LineFilter:
    return LineFilter(item_id)


def item_lines(inputs: ReplayInputs, keep: LineFilter) -> Iterator[tuple[str, int, bytes]]:
    """The event lines `keep` keeps, in replay's order (merged by time if several)."""
    if len(inputs.events) == 1:
        for path, numbers, lines in read_line_blocks(inputs.events[0]):
            for index in keep.kept(lines):
                yield path, numbers[index], lines[index]
        return
    for path, number, line in merge_by_time([read_lines(group) for group in inputs.events]):
        if keep(line):
            yield path, number, line


def _names_item(obj: Any, item: ItemName) -> bool:
    """Whether a rejected record can be read as naming the item (a lenient reading)."""
    if type(obj) is not dict:
        return False
    tenant = obj.get("tenant")
    if (DEFAULT_TENANT if tenant is None else tenant) != item.tenant:
        return False
    refs = [obj.get("item"), *(obj["items"] if type(obj.get("items")) is list else ())]
    return any(
        type(ref) is dict and ref.get("entity") == item.entity and id_text(ref.get("id")) == item.id
        for ref in refs
    )


def build_timeline(
    inputs: ReplayInputs,
    item: ItemName,
    what_if: bool = False,
    seen_window: int = DEFAULT_SEEN_WINDOW,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Timeline:
    """Decide the item's events as replay does, each with its explanation."""
    board = Board(TriggerTable(what_if), seen_window)
    timeline = Timeline(item, what_if)
    for _, _, line in read_lines(inputs.automation):
        obj = load_json(line, max_record_bytes)
        record = obj if type(obj) is Rejection else parse_automation(obj)
        rejection = record if type(record) is Rejection else board.apply(record)  # type: ignore[arg-type]
        if rejection is None:
            timeline.automation_applied += 1
        else:
            timeline.automation_rejected += 1
    key = item.key
    for path, number, line in item_lines(inputs, line_filter(item.id)):
        origin = Origin(file=path, line=number)
        event = decode_event(line, max_record_bytes)
        if type(event) is Rejection:
            obj = load_json(line, max_record_bytes)
            if _names_item(obj, item):
                rejected = RejectedRecord(
                    event, obj.get("id"), obj.get("type"), obj.get("occurred_at")
                )
                timeline.entries.append((origin, rejected))
            continue
        if event.tenant != item.tenant:  # type: ignore[union-attr]
            continue
        for ref in event.items:  # type: ignore[union-attr]
            if ref.entity == item.entity and ref.id == item.id:
                step = explain_decision(board, event, ref, key)  # type: ignore[arg-type]
                timeline.entries.append((origin, step))
    state = board.items.get(key)
    if state is not None:
        timeline.final = (state.category, state.stage)
    return timeline


def run(settings: ExplainSettings) -> int:
    """The command: the timeline on stdout; 2 (ConfigError) on bad usage or input."""
    item = parse_item(settings.item)
    inputs = ReplayInputs.from_paths(list(settings.automation), list(settings.events))
    try:
        timeline = build_timeline(
            inputs, item, settings.what_if, settings.seen_window, settings.max_record_bytes
        )
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as unreadable:
        raise ConfigError(f"an input could not be read: {unreadable}") from None
    json_out = settings.format == "json"
    out = timeline_json(timeline) if json_out else render_text(timeline).encode()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


# JSON ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return time_text(value)
    raise TypeError(type(value).__name__)


def timeline_json(timeline: Timeline) -> bytes:
    """The timeline as one JSON object (shape in the README, "explain")."""
    item = timeline.item
    final = None
    if timeline.final is not None:
        category, stage = timeline.final
        final = {"category": category, "stage": stage, "deleted": stage is None}
    document = {
        "item": {"tenant": item.tenant, "entity": item.entity, "id": item.id},
        "what_if": timeline.what_if,
        "automation": {
            "applied": timeline.automation_applied,
            "rejected": timeline.automation_rejected,
        },
        "found": bool(timeline.entries),
        "events": len(timeline.entries),
        "moves": timeline.moves,
        "final": final,
        "timeline": [_entry_json(origin, entry) for origin, entry in timeline.entries],
    }
    return orjson.dumps(document, default=_jsonable, option=orjson.OPT_INDENT_2) + b"\n"


def _entry_json(origin: Origin, entry: Step | RejectedRecord) -> dict[str, Any]:
    if isinstance(entry, RejectedRecord):
        return {
            "event": {
                "id": entry.event_id,
                "type": entry.event_type,
                "occurred_at": entry.occurred_at,
            },
            "origin": origin.as_dict(),
            "outcome": "dead_letter",
            "category": None,
            "stage_before": None,
            "stage_after": None,
            "stages": [],
            "transition": None,
            "dead_letter": {"code": entry.rejection.code, "message": entry.rejection.message},
            "codes": [],
        }
    event = entry.event
    return {
        "event": {"id": event.id, "type": event.type, "occurred_at": event.occurred_at},
        "origin": origin.as_dict(),
        "outcome": entry.outcome,
        "category": entry.category,
        "stage_before": entry.stage_before,
        "stage_after": entry.stage_after,
        "stages": list(entry.stages),
        "transition": None
        if entry.transition is None
        else orjson.loads(transition_json(entry.transition)),
        "dead_letter": None
        if entry.rejection is None
        else {"code": entry.rejection.code, "message": entry.rejection.message},
        "codes": [_trial_json(trial) for trial in entry.codes],
    }


def _trial_json(trial: CodeTrial) -> dict[str, Any]:
    return {
        "code": trial.code,
        "tried": trial.tried,
        "triggers": [
            {
                "id": v.trigger.id,
                "stage": v.trigger.stage,
                "position": v.position,
                "sort": v.trigger.sort,
                "allow_backwards": v.trigger.allow_backwards,
                "verdict": v.verdict,
                **v.detail,
            }
            for v in trial.verdicts
        ],
    }


# Text ---------------------------------------------------------------------------------

_OUTCOMES = {
    "no_match": "no move: no trigger applied",
    "updated": "fields updated; no trigger applied",
    "confirmed": "the CRM confirmed our earlier move (an echo): nothing changes",
    "duplicate": "duplicate: this event id was already decided for the item (a retry); ignored",
    "item_deleted": "ignored: the item is deleted (until an item.created brings it back)",
}

_MARKS = {FIRED: "=>", NOT_REACHED: " -"}


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return orjson.dumps(value, default=_jsonable).decode()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _given(value: Any) -> str:
    """A field of a rejected record as it came: missing ones as "?"."""
    return "?" if value is None else value if type(value) is str else _show(value)


def _why(verdict: Verdict, fired_by: str | None) -> str:
    kind, detail = verdict.verdict, verdict.detail
    if kind == FIRED:
        return "FIRED"
    if kind == SAME_STAGE:
        return "on the item's current stage: a trigger there never fires"
    if kind == BACKWARDS:
        return "an earlier stage, and the trigger may not move items back"
    if kind == PARAMS:
        return "; ".join(
            f"param {p['param']}: wants {_show(p['expected'])}, the event has {_show(p['got'])}"
            for p in detail["params"]
        )
    if kind == CONDITION:
        groups = detail["clauses"]
        parts = [
            f"{c['field']} {c['op']} {_show(c['value'])} failed (saw {_show(c['saw'])})"
            for c in groups
        ]
        prefix = "condition: " if len(groups) == 1 else "condition, every OR group failed: "
        return prefix + "; ".join(parts)
    if kind == NOT_REACHED:
        return f"not tried: {fired_by} fired first"
    if kind == NOT_IN_FORCE:
        return f"not in force yet (from {time_text(detail['from'])})"
    if kind == DELETED:
        return f"deleted (at {time_text(detail['at'])})"
    if kind == OTHER_VERSION:
        return (
            f"its version then was on {detail['entity']}/{detail['category']}, "
            f"code {detail['code']}"
        )
    if kind == STAGE_NOT_IN_PIPELINE:
        return "its stage is not in the pipeline as it stood then"
    return kind


def _step_lines(entry: Step) -> list[str]:
    lines = []
    where = "" if entry.category is None else f" ({entry.event.items[0].entity}/{entry.category})"
    outcome = entry.outcome
    if entry.transition is not None:
        move = entry.transition
        lines.append(
            f"MOVED {move.from_stage} -> {move.to_stage} ({move.direction}) by trigger "
            f"{move.trigger_id} ({move.trigger_code})"
        )
        lines.append(f"transition {move.id}")
    elif entry.rejection is not None:
        lines.append(f"DEAD LETTER {entry.rejection.code}: {entry.rejection.message}")
    elif outcome == "created":
        lines.append(f"created on {entry.stage_after}")
    elif outcome == "stage_changed":
        before = "unknown" if entry.stage_before is None else entry.stage_before
        lines.append(f"stage set by the CRM: {before} -> {entry.stage_after}")
    elif outcome == "deleted":
        lines.append("item deleted")
    elif outcome == "no_pipeline":
        lines.append(f"no move: the item's pipeline{where} is not in force at this time")
    else:
        lines.append(_OUTCOMES.get(outcome, outcome))
    if entry.codes and entry.stages and entry.stage_before in entry.stages:
        position = entry.stages.index(entry.stage_before)
        shown = (f"[{stage}]" if stage == entry.stage_before else stage for stage in entry.stages)
        lines.append(
            f"item on stage {position + 1} of {len(entry.stages)}{where}: " + " ".join(shown)
        )
    fired_by = None if entry.transition is None else entry.transition.trigger_id
    for trial in entry.codes:
        if not trial.tried:
            lines.append(f"{trial.code}: not tried (an earlier code moved the item)")
            continue
        if not trial.verdicts:
            lines.append(f"{trial.code}: no trigger with this code on this pipeline")
            continue
        lines.append(f"{trial.code}:")
        width = max(len(v.trigger.id) for v in trial.verdicts)
        stage_width = max(len(v.trigger.stage) for v in trial.verdicts)
        for verdict in trial.verdicts:
            mark = _MARKS.get(verdict.verdict, " x" if verdict.position is not None else " .")
            if verdict.verdict in (NOT_IN_FORCE, DELETED, OTHER_VERSION, STAGE_NOT_IN_PIPELINE):
                mark = " ."
            head = (
                f"  {mark} {verdict.trigger.id:<{width}}  {verdict.trigger.stage:<{stage_width}}"
                f"  sort {verdict.trigger.sort:<3} "
            )
            lines.extend(_wrapped(head, _why(verdict, fired_by), WIDTH - 4))
    return lines


def _wrapped(head: str, text: str, width: int) -> list[str]:
    indent = " " * min(len(head), width // 2)
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=head,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=True,
    ) or [head]


def render_text(timeline: Timeline) -> str:
    """The timeline for a person: one block per event, candidates indented."""
    item = timeline.item
    mode = (
        "what-if (the latest version of each, in force from the beginning)"
        if timeline.what_if
        else "each event decided by the rules in force at its time"
    )
    out = [f"item {item.key}"]
    out.extend(
        _wrapped(
            "automation: ",
            f"{timeline.automation_applied} records applied, "
            f"{timeline.automation_rejected} rejected; {mode}",
            WIDTH,
        )
    )
    if not timeline.entries:
        out.append(f"no event of the input names item {item.key}")
        return "\n".join(out) + "\n"
    if timeline.final is None:
        now = "not known to the job"
    elif timeline.final[1] is None:
        now = "deleted"
    else:
        now = f"on {timeline.final[1]} ({item.entity}/{timeline.final[0]})"
    count = len(timeline.entries)
    out.append(f"{_plural(count, 'event')}, {_plural(timeline.moves, 'move')}; now {now}")
    legend = "marks: => fired, x did not apply, - not tried, . not a candidate at that time"
    out.append(legend)
    for number, (origin, entry) in enumerate(timeline.entries, 1):
        out.append("")
        if isinstance(entry, RejectedRecord):
            shown = (_given(entry.occurred_at), _given(entry.event_type), _given(entry.event_id))
            head = f"#{number}  " + "  ".join(shown)
            body = [f"DEAD LETTER {entry.rejection.code}: {entry.rejection.message}"]
        else:
            event = entry.event
            head = f"#{number}  {event.occurred_at}  {event.type}  {event.id}"
            body = _step_lines(entry)
        where = f"({origin.file}:{origin.line})"
        if len(head) + 2 + len(where) <= WIDTH:
            out.append(f"{head}  {where}")
        else:
            out.extend([head, f"    {where}"])
        for line in body:
            if line.startswith("  "):
                out.append("    " + line)
            else:
                out.extend(_wrapped("    ", line, WIDTH))
    return "\n".join(out) + "\n"
