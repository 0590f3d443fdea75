"""Live statistics: the stage-history topic in, one record per pipeline and window out.

One module per concern: `records` (decoding history records), `stays` (each
item's open stay, the facts a record adds, counted into chunks), `figures`
(what a window counts), `windows` (the event-time clock, the records written),
`dataflow` (the steps, the Kafka source and sinks), `command` (settings and
`crm-triggers stats`) and `table` (`crm-triggers tail --stats`).

Run it with the command line (`crm-triggers stats --brokers HOST:PORT ...`) or
with Bytewax's runner, settings from the environment (`-i/-a` for a cluster of
processes; `-r DIR -s SECONDS -b 0` for recovery, the folder made first with
`python -m bytewax.recovery DIR PARTITIONS`):

    CRM_TRIGGERS_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.stats:flow
"""

from __future__ import annotations

import os

from bytewax.dataflow import Dataflow

from flows.stats.command import (
    DEFAULT_ALLOWED_LATENESS,
    DEFAULT_WINDOW,
    HISTORY_TOPIC,
    STATS_TOPIC,
    StatsSettings,
    command,
    duration,
    run_stats,
    stats_topic_plans,
)
from flows.stats.dataflow import HistorySource, StatsOutput, build_stats_flow, stats_flow
from flows.stats.figures import EPOCH, WindowFigures
from flows.stats.records import (
    HistoryRecord,
    InvalidHistoryError,
    batches_of,
    decode_batch,
    parse_history,
)
from flows.stats.stays import Chunk, Fact, OpenStay, StaysLogic, stay_facts
from flows.stats.table import stats_table
from flows.stats.windows import LatenessClock, late_record, window_id_of, window_record

__all__ = [
    "DEFAULT_ALLOWED_LATENESS",
    "DEFAULT_WINDOW",
    "EPOCH",
    "HISTORY_TOPIC",
    "STATS_TOPIC",
    "Chunk",
    "Fact",
    "HistoryRecord",
    "HistorySource",
    "InvalidHistoryError",
    "LatenessClock",
    "OpenStay",
    "StatsOutput",
    "StatsSettings",
    "StaysLogic",
    "WindowFigures",
    "batches_of",
    "build_stats_flow",
    "command",
    "decode_batch",
    "duration",
    "late_record",
    "parse_history",
    "run_stats",
    "stats_flow",
    "stats_table",
    "stats_topic_plans",
    "stay_facts",
    "window_id_of",
    "window_record",
]


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.stats:flow` reads `flow`: build it from the environment.
    if name == "flow":
        return stats_flow(StatsSettings.from_env(os.environ))
    raise AttributeError(name)
