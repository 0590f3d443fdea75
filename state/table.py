"""The trigger table and pipelines, versioned by `updated_at`.

An event is decided against the table as it stood at its `occurred_at`; a
what-if table keeps only the latest version of each record and puts it in
force from the beginning. Decisions read a `PipelineView`: one pipeline and
its triggers by code, already ordered, built once per interval of time in
which nothing of the tenant's automation changed.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from state.model import BEGINNING, END, AutomationRecord, Pipeline, Rejection, Trigger

_Version = tuple[datetime, int, Pipeline | Trigger | None]


@dataclass(frozen=True, slots=True)
class Candidate:
    position: int
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class PipelineView:
    """A pipeline and its triggers by code, ordered by stage position, sort, id."""

    pipeline: Pipeline
    by_code: Mapping[str, tuple[Candidate, ...]]
    positions: Mapping[str, int]


class TriggerTable:
    """Pipelines and triggers of every tenant, with their history."""

    def __init__(self, what_if: bool = False) -> None:
        self.what_if = what_if
        self._pipelines: dict[tuple[str, str, str], list[_Version]] = {}
        self._triggers: dict[tuple[str, str], list[_Version]] = {}
        self._tenant_triggers: dict[str, set[tuple[str, str]]] = {}
        self._changes: dict[str, list[datetime]] = {}
        self._views: dict[str, dict[tuple[str, str, int], PipelineView | None]] = {}
        self._last: dict[tuple[str, str, str], tuple[datetime, datetime, PipelineView | None]] = {}
        self._applied = 0
        self.watched_fields: frozenset[str] = frozenset()

    def apply(self, record: AutomationRecord) -> Rejection | None:
        """Add a version; a Rejection leaves the table as it was."""
        if isinstance(record, Trigger):
            rejection = self._check_trigger(record)
            if rejection is not None:
                return rejection
            if record.condition is not None:
                self.watched_fields |= record.condition.item_fields
            self._tenant_triggers.setdefault(record.tenant, set()).add((record.tenant, record.id))
            self._add(self._triggers, (record.tenant, record.id), record.updated_at, record)
        elif isinstance(record, Pipeline):
            key = (record.tenant, record.entity, record.category)
            self._add(self._pipelines, key, record.updated_at, record)
        elif record.kind == "trigger":
            self._add(self._triggers, (record.tenant, *record.key), record.updated_at, None)
        else:
            self._add(self._pipelines, (record.tenant, *record.key), record.updated_at, None)
        self._views.pop(record.tenant, None)
        self._last.clear()
        return None

    def view(self, tenant: str, entity: str, category: str, at: datetime) -> PipelineView | None:
        """The pipeline and triggers in force at `at`, or None if the pipeline is not."""
        last = self._last.get((tenant, entity, category))
        if last is not None and last[0] <= at < last[1]:
            return last[2]
        return self.view_span(tenant, entity, category, at)[2]

    def view_span(
        self, tenant: str, entity: str, category: str, at: datetime
    ) -> tuple[datetime, datetime, PipelineView | None]:
        """`view`, with the interval [start, end) around `at` in which it stays the same."""
        views = self._views.get(tenant)
        if views is None:
            views = self._views[tenant] = {}
        changes = self._changes.get(tenant)
        interval = bisect_right(changes, at) if changes else 0
        key = (entity, category, interval)
        view = views.get(key, _UNBUILT)
        if view is _UNBUILT:
            view = views[key] = self._build_view(tenant, entity, category, at)
        # Events come mostly in time order: remember the interval this one fell in.
        start = changes[interval - 1] if changes and interval else BEGINNING
        end = changes[interval] if changes and interval < len(changes) else END
        span = (start, end, view)
        self._last[(tenant, entity, category)] = span  # type: ignore[assignment]
        return span  # type: ignore[return-value]

    def trigger_versions(self, tenant: str) -> dict[str, list[tuple[datetime, Trigger | None]]]:
        """Every kept version of the tenant's triggers by id, oldest first (None: deleted).

        What `explain` shows of triggers that are not candidates (not in force yet, deleted);
        a what-if table keeps the latest version only, in force from the beginning.
        """
        return {
            key[1]: [(at, value) for at, _, value in self._triggers[key]]  # type: ignore[misc]
            for key in sorted(self._tenant_triggers.get(tenant, ()))
        }

    def _check_trigger(self, trigger: Trigger) -> Rejection | None:
        """The trigger's stage must be in its pipeline, when the pipeline is known.

        Checked against the version in force at the trigger's `updated_at`, or the
        earliest one if none is yet (what-if: the latest). A pipeline not known at all
        may still arrive: such a trigger is kept, and cannot fire while its stage is
        not in the pipeline an event sees.
        """
        versions = self._pipelines.get((trigger.tenant, trigger.entity, trigger.category))
        if not versions:
            return None
        if self.what_if:
            pipeline = versions[-1][2]
        else:
            pipeline = _version_at(versions, trigger.updated_at) or versions[0][2]
        if isinstance(pipeline, Pipeline) and trigger.stage not in pipeline.positions:
            stages = ", ".join(s.id for s in pipeline.stages)
            return Rejection(
                "invalid_automation",
                f"trigger {trigger.id}: stage {trigger.stage!r} is not in pipeline "
                f"{trigger.entity}/{trigger.category} (stages: {stages})",
            )
        return None

    def _add(
        self,
        store: dict,
        key: tuple[str, ...],
        updated_at: datetime,
        value: Pipeline | Trigger | None,
    ) -> None:
        self._applied += 1
        versions = store.setdefault(key, [])
        if self.what_if:
            # Latest by updated_at wins; on a tie the later record does.
            if not versions or updated_at >= versions[-1][0]:
                versions[:] = [(updated_at, self._applied, value)]
            return
        insort(versions, (updated_at, self._applied, value), key=lambda v: (v[0], v[1]))
        if updated_at != BEGINNING:
            changes = self._changes.setdefault(key[0], [])
            if updated_at not in changes:
                insort(changes, updated_at)

    def _build_view(
        self, tenant: str, entity: str, category: str, at: datetime
    ) -> PipelineView | None:
        when = None if self.what_if else at
        pipeline = _version_at(self._pipelines.get((tenant, entity, category)), when)
        if not isinstance(pipeline, Pipeline):
            return None
        positions = pipeline.positions
        by_code: dict[str, list[Candidate]] = {}
        for key in self._tenant_triggers.get(tenant, ()):
            trigger = _version_at(self._triggers[key], when)
            if (
                isinstance(trigger, Trigger)
                and trigger.entity == entity
                and trigger.category == category
                and trigger.stage in positions
            ):
                by_code.setdefault(trigger.code, []).append(
                    Candidate(positions[trigger.stage], trigger)
                )
        ordered = {
            code: tuple(sorted(cands, key=lambda c: (c.position, c.trigger.sort, c.trigger.id)))
            for code, cands in by_code.items()
        }
        return PipelineView(pipeline, ordered, positions)

    def __getstate__(self) -> dict:
        # Views are a cache: rebuilt on demand after recovery.
        state = {name: getattr(self, name) for name in _STATE}
        state["_views"] = {}
        state["_last"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)


_UNBUILT = object()

_STATE = (
    "what_if",
    "_pipelines",
    "_triggers",
    "_tenant_triggers",
    "_changes",
    "_views",
    "_applied",
    "watched_fields",
)


def _version_at(versions: list[_Version] | None, at: datetime | None) -> Pipeline | Trigger | None:
    """The version in force at `at` (`None`: the latest), or None."""
    if not versions:
        return None
    if at is None:
        return versions[-1][2]
    index = bisect_right(versions, at, key=lambda v: v[0])
    return versions[index - 1][2] if index else None
