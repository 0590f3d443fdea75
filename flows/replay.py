"""The replay job: automation and event logs from JSON Lines files.

Run it with the command line (`crm-triggers replay ...`) or with Bytewax's
runner, settings from the environment:

    CRM_TRIGGERS_AUTOMATION=samples/automation.jsonl \\
    CRM_TRIGGERS_EVENTS=samples/events.jsonl \\
    python -m bytewax.run flows.replay:flow
"""

from __future__ import annotations

import os
from collections.abc import Callable

from bytewax.dataflow import Dataflow

from connectors.jsonl import OrderedFileSink, ReplayInputs, ReplaySource
from connectors.summary import Summary, SummarySink, print_summary
from flows.dataflow import FlowSettings, build_flow
from flows.runtime import tune_gc
from flows.settings import ReplaySettings


def replay_flow(
    settings: ReplaySettings, report: Callable[[Summary], None] = print_summary
) -> Dataflow:
    """The replay job over `settings`' files; `report` receives the summary at the end."""
    tune_gc()
    inputs = ReplayInputs.from_paths(settings.automation, settings.events, settings.progress)
    return build_flow(
        # The compiled board reads the lines of a block where they lie; with several
        # key groups the records are routed first, as a list.
        ReplaySource(inputs, compiled=settings.engine == "native" and settings.key_groups == 1),
        OrderedFileSink(settings.out),
        OrderedFileSink(settings.dlq),
        SummarySink(report),
        flow_settings(settings),
        history=OrderedFileSink(settings.history) if settings.history is not None else None,
    )


def flow_settings(settings: ReplaySettings, process_group: int | None = None) -> FlowSettings:
    """The dataflow's settings of a replay; `process_group`: of one of several processes."""
    return FlowSettings(
        key_groups=settings.key_groups,
        seen_window=settings.seen_window,
        what_if=settings.what_if,
        max_record_bytes=settings.max_record_bytes,
        engine=settings.engine,
        history=settings.history is not None,
        process_group=process_group,
    )


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.replay:flow` reads `flow`: build it from the environment.
    if name == "flow":
        return replay_flow(ReplaySettings.from_env(os.environ))
    raise AttributeError(name)
