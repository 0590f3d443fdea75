"""The live job: events and automation from Kafka, transitions and dead letters to Kafka.

    Kafka events ──────┐
                       ├─> read ─> route ─> decide (per key group) ─> transitions ──> Kafka
    Kafka automation ──┘                                           ─> stage history > Kafka
                                                                   ─> dead letters ─> Kafka
                                                                   ─> tallies ──────> stderr

Run it with the command line (`crm-triggers run --brokers HOST:PORT ...`) or with
Bytewax's runner, settings from the environment (`-i/-a` for a cluster of
processes; `-r DIR -s SECONDS -b SECONDS` for recovery, the directory made
first with `python -m bytewax.recovery DIR PARTITIONS`):

    CRM_TRIGGERS_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.live:flow
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir

from connectors.kafka import KafkaSink, KafkaSource, Producers, Reading
from connectors.summary import Summary, SummarySink, print_line, print_summary
from flows import stop
from flows.dataflow import FlowSettings, build_flow
from flows.logs import progress_log, summary_log
from flows.metrics import JOB, JobMetrics, serve
from flows.partitioned import PartitionTasks, build_partitioned_flow, check_store
from flows.recovery_store import recovery_store
from flows.runtime import LIVE_GC_YOUNG, tune_gc
from flows.settings import LiveSettings
from state.errors import CrmTriggersError


def live_flow(
    settings: LiveSettings,
    progress: Callable[[str], None] = print_line,
    final: Callable[[Summary], None] | None = print_summary,
    snapshots: bool | None = None,
    metrics: JobMetrics | None = None,
) -> Dataflow:
    """The live job; `snapshots` (default: when a recovery directory is set) keeps state.

    With `metrics`, the job feeds them (see `flows.metrics`); the source stops, as at
    the end of its input, once a stop is requested (`flows.stop`).
    """
    tune_gc(young=LIVE_GC_YOUNG)
    producers = Producers(settings.kafka)
    topics = settings.topics
    if metrics is not None:
        metrics.name_topics(topics.events, topics.automation)
    keep = settings.recovery_dir is not None if snapshots is None else snapshots
    if settings.decide_in == "partitions":
        return partitioned_flow(settings, producers, progress, final, snapshots, metrics)
    return build_flow(
        KafkaSource(settings.kafka, topics.events, topics.automation, reading(settings, metrics)),
        KafkaSink(
            producers, topics.transitions, None if metrics is None else metrics.transitions_written
        ),
        KafkaSink(producers, topics.dead_letters),
        SummarySink(
            final,
            progress,
            settings.summary_interval,
            None if metrics is None else metrics.add_tally,
            JOB.log_snapshot if keep else None,
        ),
        FlowSettings(
            history=True,
            key_groups=settings.key_groups,
            seen_window=settings.seen_window,
            max_record_bytes=settings.max_record_bytes,
            engine=settings.engine,
            snapshots=keep,
            await_automation=True,
        ),
        history=KafkaSink(producers, topics.history),
    )


def reading(settings: LiveSettings, metrics: JobMetrics | None) -> Reading:
    """How the live job reads its topics, whichever way it decides them; a requested stop
    ends its sources as at the end of their input."""
    return Reading(
        batch_size=settings.batch_size,
        until_end=settings.until_end,
        start_at_end=settings.start_from == "end",
        cycle_ms=settings.cycle_ms,
        observer=metrics,
        stop=stop.requested,
    )


def partitioned_flow(
    settings: LiveSettings,
    producers: Producers,
    progress: Callable[[str], None],
    final: Callable[[Summary], None] | None,
    snapshots: bool | None,
    metrics: JobMetrics | None = None,
) -> Dataflow:
    """The live job decided in the events partitions that read it (`flows.partitioned`),
    with the same metrics and clean stop as the key groups'."""
    keep = settings.recovery_dir is not None if snapshots is None else snapshots
    flow_settings = FlowSettings(
        history=True,
        key_groups=1,
        seen_window=settings.seen_window,
        max_record_bytes=settings.max_record_bytes,
        engine=settings.engine,
        snapshots=keep,
        await_automation=True,
    )
    tasks = PartitionTasks(
        settings.kafka,
        settings.topics,
        producers,
        flow_settings,
        reading(settings, metrics),
        metrics,
    )
    summary = SummarySink(
        final,
        progress,
        settings.summary_interval,
        None if metrics is None else metrics.add_tally,
        JOB.log_snapshot if keep else None,
    )
    return build_partitioned_flow(tasks, summary)


def recovery_config(settings: LiveSettings) -> RecoveryConfig | None:
    """The recovery store of a run; an empty or missing directory is made one first.

    The store records the `--key-groups` it was made with (they decide which group
    owns an item); resuming it with another count is refused (`recovery_store`).
    """
    if settings.recovery_dir is None:
        return None
    folder = recovery_store(settings.recovery_dir, settings.key_groups)
    if not any(p.name.endswith(".sqlite3") for p in folder.iterdir()):
        init_db_dir(folder, settings.recovery_partitions)
    check_store(folder, settings.decide_in)
    return RecoveryConfig(str(folder), timedelta(seconds=settings.backup_interval))


def run_live(settings: LiveSettings) -> None:
    """Run the live job in this process (one of a cluster with process_id and addresses).

    SIGINT or SIGTERM stops it cleanly: the sources end as at the end of their input,
    the sinks flush, the last snapshot is written (with recovery) and the summary
    printed. A second signal exits at once (130), as a crash would.
    """
    metrics = None
    if settings.metrics_port is not None:
        metrics = JOB
        serve(metrics, settings.metrics_port)
    final = print_summary if settings.log_format == "text" else summary_log
    flow = live_flow(settings, progress=progress_log, final=final, metrics=metrics)
    stop.install()
    run_in_cluster(flow, settings, recovery_config(settings))


def run_in_cluster(flow: Dataflow, settings: Any, recovery: RecoveryConfig | None) -> None:
    """Run `flow` as this process of the cluster `settings` names (`workers`, `process_id`,
    `addresses`, `snapshot_interval`), with the project's error or the interrupt unwrapped."""
    try:
        cli_main(
            flow,
            workers_per_process=settings.workers,
            process_id=settings.process_id,
            addresses=list(settings.addresses) or None,
            epoch_interval=timedelta(seconds=settings.snapshot_interval),
            recovery_config=recovery,
        )
    except Exception as failed:
        # Bytewax wraps what a step raised, and the interrupt of a single worker.
        cause = _first_cause(failed)
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if isinstance(cause, CrmTriggersError):
            raise cause from None
        raise


def _first_cause(error: BaseException) -> BaseException | None:
    """The first interrupt or project error in an exception's chain of causes."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt | CrmTriggersError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _bytewax_recovery_requested(argv: list[str], env: Mapping[str, str]) -> bool:
    """Whether `python -m bytewax.run` was given a recovery directory (-r or its variable)."""
    return bool(env.get("BYTEWAX_RECOVERY_DIRECTORY")) or any(
        arg in ("-r", "--recovery-directory") or arg.startswith("--recovery-directory=")
        for arg in argv
    )


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.live:flow` reads `flow`: build it from the environment.
    if name == "flow":
        settings = LiveSettings.from_env(os.environ)
        snapshots = settings.recovery_dir is not None or _bytewax_recovery_requested(
            sys.argv, os.environ
        )
        return live_flow(settings, snapshots=snapshots)
    raise AttributeError(name)
