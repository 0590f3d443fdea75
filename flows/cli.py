"""The `crm-triggers` command line.

Each subcommand is one row of `COMMANDS`: the settings class whose options it
takes (flags, variables and help come from there, see `flows.options`), the
function that runs it, and its help. To add a subcommand, add a row.

A row names its settings and its runner as "module:attribute", imported only
when that command is chosen: a replay never loads DuckDB, confluent-kafka,
the metrics server or the statistics job, and `crm-triggers --help` loads none
of them (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from flows import logs
from flows.runtime import tune_gc
from state.errors import ConfigError, CrmTriggersError, SourceError

if TYPE_CHECKING:
    from connectors.summary import Summary
    from flows.options import Settings
    from flows.settings import LiveSettings, ReplaySettings

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def replay(settings: ReplaySettings) -> int:
    tune_gc()  # before the imports below: some 40k objects, 40 young collections otherwise
    from bytewax.testing import run_main

    from connectors.jsonl import ReplayInputs, check_outputs
    from connectors.summary import print_summary
    from flows.replay import replay_flow
    from flows.settings import PROGRESS_MIN_BYTES

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
            from flows.workers import replay_in_processes

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
    from connectors.kafka import masked, reach, topic_partitions
    from flows.options import env_name
    from flows.recovery_store import recovery_store
    from flows.settings import TOPIC_OPTIONS

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
    """A subcommand: its settings class and the function that runs it, each as
    "module:attribute" (imported when the command is chosen), and its help."""

    settings: str
    runs: str
    help: str
    description: str

    def settings_class(self) -> type[Settings]:
        return cast("type[Settings]", _attribute(self.settings))

    def runner(self) -> Callable[[Any], int]:
        return cast("Callable[[Any], int]", _attribute(self.runs))


def _attribute(where: str) -> Any:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


COMMANDS: dict[str, Command] = {
    "replay": Command(
        "flows.settings:ReplaySettings",
        "flows.cli:replay",
        help="decide JSON Lines event logs against an automation log",
        description="Replay event logs: transitions to --out, dead letters to --dlq, "
        "the stage history to --history, a summary to stderr.",
    ),
    "topics create": Command(
        "flows.settings:TopicsCreateSettings",
        "flows.kafka_commands:topics_create",
        help="create the job's topics (existing ones are left as they are)",
        description="Create the events, automation (compacted), transitions, stage-history "
        "and dead-letter topics, and the statistics job's crm.stage-stats. Re-running is fine: "
        "existing topics are reported, not changed.",
    ),
    "run": Command(
        "flows.settings:LiveSettings",
        "flows.cli:run",
        help="run the live job: Kafka in, Kafka out",
        description="Decide the events topic against the automation topic, live; write "
        "transitions, the stage history and dead letters to their topics and running counts "
        "to stderr. Stop it with Ctrl-C. Without --recovery-dir every start reads the events topic "
        "from --start-from again.",
    ),
    "produce": Command(
        "flows.settings:ProduceSettings",
        "flows.kafka_commands:produce",
        help="write JSON Lines records into a topic, keyed",
        description="Produce each line of FILE as one record: automation records keyed "
        "trigger/<tenant>/<id> or pipeline/<tenant>/<entity>/<category>, events keyed "
        "<tenant>/<entity>/<id> of their (first) item. A line that cannot be read gets a "
        "null key, so the job dead-letters it.",
    ),
    "tail": Command(
        "flows.settings:TailSettings",
        "flows.kafka_commands:tail",
        help="print transitions (or dead letters) as they arrive",
        description="Follow a topic and print one readable line per record.",
    ),
    "explain": Command(
        "flows.explain:ExplainSettings",
        "flows.explain:run",
        help="why an item did or did not move, event by event",
        description="Decide one item's events as replay does and print its timeline: per "
        "event the outcome, and per trigger code every candidate in decision order with "
        "why it did or did not apply.",
    ),
    "stats": Command(
        "flows.stats.command:StatsSettings",
        "flows.stats.command:command",
        help="live statistics of the stage-history topic, per pipeline and window",
        description="Read the stage-history topic and write one record per pipeline and closed "
        "event-time window (entries, moves, fires, time in stage with a mergeable histogram) "
        "to the stats topic; records for a closed window as late records. Ctrl-C stops it.",
    ),
    "report": Command(
        "analytics.cli:ReportSettings",
        "analytics.cli:report",
        help="funnels, time in stage, moves, trigger fires, cohorts from stage history",
        description="Funnels, time in stage, moves, trigger fires, stalled items and weekly "
        "cohorts from stage-history (and transition) logs. "
        "FILE: .jsonl, .jsonl.gz, a folder of them, -, or kafka:TOPIC with --brokers.",
    ),
    "diff": Command(
        "analytics.cli:DiffSettings",
        "analytics.cli:diff",
        help="what changed between two transition logs (a what-if against the current table)",
        description="Join two transition logs by id: added, removed, changed transitions, "
        "fires per trigger, the from/to matrix; with history, items whose last stage differs "
        "and the change in Reached and time in stage.",
    ),
}
"""Every subcommand, in the order `--help` lists them; "GROUP ACTION" for a nested one."""

GROUPS = {"topics": "create the job's Kafka topics"}
"""The help of each group of nested subcommands."""


class Subcommands(argparse._SubParsersAction):
    """Subcommands whose options are declared once one is chosen, so that parsing (or
    printing the help of) one command imports its settings' module and no other's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared: set[str] = set()

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name = values[0]
        chosen = self._name_parser_map.get(name)
        command = chosen.get_default("run_command") if chosen is not None else None
        if chosen is not None and command is not None and name not in self.declared:
            command.settings_class().add_arguments(chosen)
            self.declared.add(name)
        super().__call__(parser, namespace, values, option_string)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crm-triggers", description="CRM stage triggers as a streaming job."
    )
    commands = top.add_subparsers(
        dest="command", required=True, metavar="COMMAND", action=Subcommands
    )
    groups: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        group, _, action = name.rpartition(" ")
        where = commands
        if group:
            if group not in groups:
                nested = commands.add_parser(group, help=GROUPS[group])
                groups[group] = nested.add_subparsers(
                    dest=f"{group}_command", required=True, metavar="ACTION", action=Subcommands
                )
            where = groups[group]
        sub = where.add_parser(action, help=command.help, description=command.description)
        sub.set_defaults(run_command=command)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command: Command = args.run_command
    logs.setup()
    try:
        return command.runner()(command.settings_class().from_args(args, os.environ))
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
