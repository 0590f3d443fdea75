"""The automation log as it stood at as-of: stage orders and triggers in force.

Read with the job's own parser (`connectors.records.parse_automation`), so a
record the job would reject is left out here too (and counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.jsonl import read_lines
from connectors.records import load_json, parse_automation
from state.model import Deletion, Pipeline, Rejection, Trigger

PipelineKey = tuple[str, str, str]


@dataclass
class AutomationAsOf:
    """Latest version (by `updated_at`, later read on a tie) of each record at or
    before as-of, deletions honoured."""

    pipelines: dict[PipelineKey, Pipeline] = field(default_factory=dict)
    triggers: dict[tuple[str, str], Trigger] = field(default_factory=dict)
    rejected: int = 0

    @property
    def stage_rows(self) -> list[tuple[str, str, str, str, int, str]]:
        return [
            (p.tenant, p.entity, p.category, s.id, position, s.semantic)
            for p in self.pipelines.values()
            for position, s in enumerate(p.stages)
        ]


def automation_as_of(paths: Sequence[str], as_of: datetime | None) -> AutomationAsOf:
    """The automation in force at `as_of` (naive means UTC; everything, when unknown)."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    latest: dict[tuple[str, ...], tuple[datetime, Pipeline | Trigger | Deletion]] = {}
    rejected = 0
    for _, _, line in read_lines(list(paths)):
        obj = load_json(line)
        record = obj if isinstance(obj, Rejection) else parse_automation(obj)
        if isinstance(record, Rejection):
            rejected += 1
            continue
        if as_of is not None and record.updated_at > as_of:
            continue
        key = _key(record)
        held = latest.get(key)
        if held is None or record.updated_at >= held[0]:
            latest[key] = (record.updated_at, record)
    result = AutomationAsOf(rejected=rejected)
    for _, record in latest.values():
        if isinstance(record, Pipeline):
            result.pipelines[(record.tenant, record.entity, record.category)] = record
        elif isinstance(record, Trigger):
            result.triggers[(record.tenant, record.id)] = record
    return result


def _key(record: Pipeline | Trigger | Deletion) -> tuple[str, ...]:
    if isinstance(record, Pipeline):
        return ("pipeline", record.tenant, record.entity, record.category)
    if isinstance(record, Trigger):
        return ("trigger", record.tenant, record.id)
    return (record.kind, record.tenant, *record.key)
