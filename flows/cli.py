"""The `crm-triggers` command line.

Each subcommand is one row of `COMMANDS`: the settings class whose options it
takes (flags, variables and help come from there, see `flows.options`), the
function that runs it, and its help. To add a subcommand, add a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bytewax.testing import run_main

from analytics.cli import DiffSettings, ReportSettings
from analytics.cli import diff as analytics_diff
from analytics.cli import report as analytics_report
from connectors.jsonl import ReplayInputs, check_outputs
from connectors.kafka import masked, reach, topic_partitions
from connectors.summary import Summary, print_summary
from flows import logs
from flows.explain import ExplainSettings
from flows.explain import run as explain
from flows.kafka_commands import produce, tail, topics_create
from flows.options import Settings, env_name
from flows.recovery_store import recovery_store
from flows.replay import replay_flow
from flows.settings import (
    PROGRESS_MIN_BYTES,
    TOPIC_OPTIONS,
    LiveSettings,
    ProduceSettings,
    ReplaySettings,
    TailSettings,
    TopicsCreateSettings,
)
from flows.stats.command import StatsSettings
from flows.stats.command import command as stats
from flows.workers import replay_in_processes
from state.errors import ConfigError, CrmTriggersError, SourceError

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def replay(settings: ReplaySettings) -> int:
    inputs = ReplayInputs.from_paths(settings.automation, settings.events)
    check_outputs(settings.outputs(), [*settings.automation, *settings.events])
    progress = sys.stderr.isatty() and inputs.total_bytes() >= PROGRESS_MIN_BYTES
    settings = dataclasses.replace(settings, progress=progress)
    result: list[Summary] = []

    def report(summary: Summary) -> None:
        result.append(summary)
        print_summary(summary)

    try:
        if settings.processes > 1:
            replay_in_processes(settings, settings.processes, report)
        else:
            run_main(replay_flow(settings, report))
    except Exception as failed:
        raise project_error(failed) from None
    if settings.dlq is None and result and result[0].dead_letters:
        sys.stderr.write("note: dead letters were counted but not kept; use --dlq FILE\n")
    return 0


def project_error(error: Exception) -> Exception:
    """The project's own error inside what Bytewax raised (it wraps what a step raised)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, CrmTriggersError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def run(settings: LiveSettings) -> int:
    logs.setup(settings.log_format)
    if settings.recovery_dir is not None:
        recovery_store(settings.recovery_dir, settings.key_groups)  # refused before anything
    kafka, topics = settings.kafka, settings.topics
    admin = reach(kafka)
    for option, topic in zip(TOPIC_OPTIONS, topics.all(), strict=True):
        try:
            topic_partitions(admin, topic, kafka.brokers)
        except SourceError as missing:
            raise ConfigError(
                f"--{option.replace('_', '-')} ({env_name(option)}): {missing}"
            ) from None
    options = f" with {masked(kafka.options)}" if kafka.options else ""
    metrics = f"; metrics on :{settings.metrics_port}" if settings.metrics_port is not None else ""
    logs.notable(
        "start",
        f"live on {kafka.brokers}{options}: "
        f"{topics.events} + {topics.automation} -> {topics.transitions}, "
        f"{topics.history}, {topics.dead_letters}; "
        f"recovery: {settings.recovery_dir or 'off'}{metrics}",
        brokers=kafka.brokers,
        kafka_options=masked(kafka.options),
        topics=dataclasses.asdict(topics),
        recovery_dir=settings.recovery_dir,
        key_groups=settings.key_groups,
        metrics_port=settings.metrics_port,
    )
    from flows.live import run_live  # imports Bytewax's runtime only for this command

    run_live(settings)
    logs.notable("stop", "stopped")
    return 0


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: the settings it takes, what runs it, and its help."""

    settings: type[Settings]
    runs: Callable[[Any], int]
    help: str
    description: str


COMMANDS: dict[str, Command] = {
    "replay": Command(
        ReplaySettings,
        replay,
        help="decide JSON Lines event logs against an automation log",
        description="Replay event logs: transitions to --out, dead letters to --dlq, "
        "the stage history to --history, a summary to stderr.",
    ),
    "topics create": Command(
        TopicsCreateSettings,
        topics_create,
        help="create the job's topics (existing ones are left as they are)",
        description="Create the events, automation (compacted), transitions, stage-history "
        "and dead-letter topics, and the statistics job's crm.stage-stats. Re-running is fine: "
        "existing topics are reported, not changed.",
    ),
    "run": Command(
        LiveSettings,
        run,
        help="run the live job: Kafka in, Kafka out",
        description="Decide the events topic against the automation topic, live; write "
        "transitions, the stage history and dead letters to their topics and running counts "
        "to stderr. Stop it with Ctrl-C. Without --recovery-dir every start reads the events topic "
        "from --start-from again.",
    ),
    "produce": Command(
        ProduceSettings,
        produce,
        help="write JSON Lines records into a topic, keyed",
        description="Produce each line of FILE as one record: automation records keyed "
        "trigger/<tenant>/<id> or pipeline/<tenant>/<entity>/<category>, events keyed "
        "<tenant>/<entity>/<id> of their (first) item. A line that cannot be read gets a "
        "null key, so the job dead-letters it.",
    ),
    "tail": Command(
        TailSettings,
        tail,
        help="print transitions (or dead letters) as they arrive",
        description="Follow a topic and print one readable line per record.",
    ),
    "explain": Command(
        ExplainSettings,
        explain,
        help="why an item did or did not move, event by event",
        description="Decide one item's events as replay does and print its timeline: per "
        "event the outcome, and per trigger code every candidate in decision order with "
        "why it did or did not apply.",
    ),
    "stats": Command(
        StatsSettings,
        stats,
        help="live statistics of the stage-history topic, per pipeline and window",
        description="Read the stage-history topic and write one record per pipeline and closed "
        "event-time window (entries, moves, fires, time in stage with a mergeable histogram) "
        "to the stats topic; records for a closed window as late records. Ctrl-C stops it.",
    ),
    "report": Command(
        ReportSettings,
        analytics_report,
        help="funnels, time in stage, moves, trigger fires, cohorts from stage history",
        description="Funnels, time in stage, moves, trigger fires, stalled items and weekly "
        "cohorts from stage-history (and transition) logs. "
        "FILE: .jsonl, .jsonl.gz, a folder of them, -, or kafka:TOPIC with --brokers.",
    ),
    "diff": Command(
        DiffSettings,
        analytics_diff,
        help="what changed between two transition logs (a what-if against the current table)",
        description="Join two transition logs by id: added, removed, changed transitions, "
        "fires per trigger, the from/to matrix; with history, items whose last stage differs "
        "and the change in Reached and time in stage.",
    ),
}
"""Every subcommand, in the order `--help` lists them; "GROUP ACTION" for a nested one."""

GROUPS = {"topics": "create the job's Kafka topics"}
"""The help of each group of nested subcommands."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crm-triggers", description="CRM stage triggers as a streaming job."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        group, _, action = name.rpartition(" ")
        where = commands
        if group:
            if group not in groups:
                nested = commands.add_parser(group, help=GROUPS[group])
                groups[group] = nested.add_subparsers(
                    dest=f"{group}_command", required=True, metavar="ACTION"
                )
            where = groups[group]
        sub = where.add_parser(action, help=command.help, description=command.description)
        command.settings.add_arguments(sub)
        sub.set_defaults(run_command=command)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command: Command = args.run_command
    logs.setup()
    try:
        return command.runs(command.settings.from_args(args, os.environ))
    except ConfigError as bad:
        sys.stderr.write(f"crm-triggers: error: {bad}\n")
        return EXIT_USAGE
    except CrmTriggersError as failed:
        sys.stderr.write(f"crm-triggers: failed: {failed}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
