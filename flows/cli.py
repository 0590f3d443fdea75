"""The `crm-triggers` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from bytewax.testing import run_main

from analytics.cli import COMMANDS as ANALYTICS_COMMANDS
from analytics.cli import add_commands as add_analytics_commands
from connectors.jsonl import ReplayInputs, expand, read_lines
from connectors.kafka import (
    Topics,
    admin_client,
    create_topics,
    is_compacted,
    masked,
    produce_records,
    read_topic,
    record_key,
    topic_partitions,
    topic_plans,
)
from connectors.summary import Summary, print_summary
from flows.replay import replay_flow
from flows.settings import (
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SUMMARY_INTERVAL,
    PROGRESS_MIN_BYTES,
    START_FROM,
    TOPIC_OPTIONS,
    KafkaClientSettings,
    LiveSettings,
    ReplaySettings,
    TopicSettings,
    env_name,
    split_env_list,
)
from state.errors import ConfigError, CrmTriggersError, SourceError

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _engine_options(parser: argparse.ArgumentParser) -> None:
    for option, what in (
        ("key-groups", "key groups the items are spread over (replay default 1, run 64)"),
        ("seen-window", "event ids remembered per item to drop producer retries"),
        ("max-record-bytes", "larger records are dead letters (too_large)"),
        ("engine", "decision engine: native (compiled, default) or python (the reference)"),
    ):
        parser.add_argument(
            f"--{option}",
            default=os.environ.get(env_name(option)),
            help=f"{what} [{env_name(option)}]",
        )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crm-triggers", description="CRM stage triggers as a streaming job."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay = commands.add_parser(
        "replay",
        help="decide JSON Lines event logs against an automation log",
        description="Replay event logs: transitions to --out, dead letters to --dlq, "
        "a summary to stderr.",
    )
    replay.add_argument(
        "--automation",
        action="append",
        required=True,
        metavar="FILE",
        help="automation log: .jsonl, .jsonl.gz, a folder of them, or -",
    )
    replay.add_argument(
        "--events",
        action="append",
        required=True,
        metavar="FILE",
        help="event log (repeatable; several are merged by occurred_at)",
    )
    replay.add_argument(
        "--out", default="-", metavar="FILE", help="transitions as JSON Lines (default: stdout)"
    )
    replay.add_argument("--dlq", metavar="FILE", help="dead letters as JSON Lines")
    replay.add_argument(
        "--what-if",
        action="store_true",
        help="the latest version of every automation record, in force from the beginning",
    )
    _engine_options(replay)
    _live_commands(commands)
    add_analytics_commands(commands)
    return top


def _env(option: str) -> str | None:
    return os.environ.get(env_name(option))


def _kafka_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--brokers",
        default=_env("brokers"),
        metavar="HOST:PORT[,...]",
        help=f"Kafka bootstrap servers [{env_name('brokers')}]",
    )
    parser.add_argument(
        "--kafka-option",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka option passed straight through (SASL, TLS, client.id...); "
        f"repeatable [{env_name('kafka_options')}, ';'-separated]. Prefer --kafka-config "
        "for secrets: command lines are visible to other users",
    )
    parser.add_argument(
        "--kafka-config",
        default=_env("kafka_config"),
        metavar="FILE",
        help=f"librdkafka options as KEY=VALUE lines [{env_name('kafka_config')}]",
    )


def _topic_options(parser: argparse.ArgumentParser) -> None:
    for option, default, what in (
        ("events-topic", Topics.events, "events in, keyed by item"),
        ("automation-topic", Topics.automation, "pipelines and triggers, compacted"),
        ("transitions-topic", Topics.transitions, "stage transitions out, keyed by item"),
        ("dead-letter-topic", Topics.dead_letters, "records that could not take effect"),
    ):
        parser.add_argument(
            f"--{option}",
            default=_env(option),
            metavar="TOPIC",
            help=f"{what} (default: {default}) [{env_name(option)}]",
        )


def _live_commands(commands: Any) -> None:
    topics = commands.add_parser("topics", help="create the job's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topic_commands.add_parser(
        "create",
        help="create the four topics (existing ones are left as they are)",
        description="Create the events, automation (compacted), transitions and dead-letter "
        "topics. Re-running is fine: existing topics are reported, not changed.",
    )
    _kafka_client_options(create)
    _topic_options(create)
    create.add_argument(
        "--partitions",
        type=int,
        default=3,
        help="partitions of the events, transitions and dead-letter topics (default: 3)",
    )
    create.add_argument(
        "--automation-partitions",
        type=int,
        default=1,
        help="partitions of the automation topic (default: 1, which keeps pipelines "
        "ahead of their triggers)",
    )
    create.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="replicas of each partition (default: the broker's default.replication.factor)",
    )

    run = commands.add_parser(
        "run",
        help="run the live job: Kafka in, Kafka out",
        description="Decide the events topic against the automation topic, live; write "
        "transitions and dead letters to their topics and running counts to stderr. "
        "Stop it with Ctrl-C. Without --recovery-dir every start reads the events topic "
        "from --start-from again.",
    )
    _kafka_client_options(run)
    _topic_options(run)
    run.add_argument(
        "--recovery-dir",
        default=_env("recovery_dir"),
        metavar="DIR",
        help="keep state and offsets here and resume from them after a crash; an empty "
        f"or missing folder is set up [{env_name('recovery_dir')}]",
    )
    run.add_argument(
        "--recovery-partitions",
        default=_env("recovery_partitions"),
        metavar="N",
        help="files of a new recovery folder (default: 1; at least the total worker count "
        f"spreads the writes) [{env_name('recovery_partitions')}]",
    )
    run.add_argument(
        "--snapshot-interval",
        default=_env("snapshot_interval"),
        metavar="SECONDS",
        help=f"seconds between snapshots (Bytewax epochs); a restart replays at most this "
        f"much input (default: {DEFAULT_SNAPSHOT_INTERVAL}) [{env_name('snapshot_interval')}]",
    )
    run.add_argument(
        "--backup-interval",
        default=_env("backup_interval"),
        metavar="SECONDS",
        help="keep older snapshots this long, if the recovery folder is backed up "
        f"(default: 0) [{env_name('backup_interval')}]",
    )
    run.add_argument(
        "--workers",
        default=_env("workers"),
        metavar="N",
        help=f"worker threads in this process (default: 1) [{env_name('workers')}]",
    )
    run.add_argument(
        "--process-id",
        default=_env("process_id"),
        metavar="I",
        help=f"this process's index in a cluster of processes [{env_name('process_id')}]",
    )
    run.add_argument(
        "--addresses",
        default=None,
        metavar="HOST:PORT;...",
        help=f"every process of the cluster, in process-id order [{env_name('addresses')}]",
    )
    run.add_argument(
        "--start-from",
        default=_env("start_from"),
        choices=START_FROM,
        help="where events start when there is no snapshot (default: beginning) "
        f"[{env_name('start_from')}]",
    )
    run.add_argument(
        "--until-end",
        action="store_true",
        default=None,
        help="stop once every partition has been read to its end (catch-up runs, "
        f"benchmarks) [{env_name('until_end')}]",
    )
    run.add_argument(
        "--batch-size",
        default=_env("batch_size"),
        metavar="N",
        help=f"records read from a partition at once (default: 4096) [{env_name('batch_size')}]",
    )
    run.add_argument(
        "--summary-interval",
        default=_env("summary_interval"),
        metavar="SECONDS",
        help=f"seconds between progress lines on stderr (default: {DEFAULT_SUMMARY_INTERVAL:g}) "
        f"[{env_name('summary_interval')}]",
    )
    _engine_options(run)

    produce = commands.add_parser(
        "produce",
        help="write JSON Lines records into a topic, keyed",
        description="Produce each line of FILE as one record: automation records keyed "
        "trigger/<tenant>/<id> or pipeline/<tenant>/<entity>/<category>, events keyed "
        "<tenant>/<entity>/<id> of their (first) item. A line that cannot be read gets a "
        "null key, so the job dead-letters it.",
    )
    _kafka_client_options(produce)
    produce.add_argument("--topic", required=True, help="topic to write to")
    produce.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="a .jsonl or .jsonl.gz file, a folder of them, or - for stdin",
    )
    produce.add_argument(
        "--tombstone",
        action="append",
        metavar="KEY",
        help="write a tombstone (null value) under KEY, e.g. trigger/acme/t-17: it deletes "
        "that record as of now; repeatable",
    )

    tail = commands.add_parser(
        "tail",
        help="print transitions (or dead letters) as they arrive",
        description="Follow a topic and print one readable line per record.",
    )
    _kafka_client_options(tail)
    tail.add_argument(
        "--topic",
        default=_env("transitions_topic") or Topics.transitions,
        help="topic to follow (default: the transitions topic)",
    )
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not the end"
    )
    tail.add_argument("--max", type=int, metavar="N", help="stop after N records")
    tail.add_argument(
        "--timeout", type=float, metavar="S", help="stop after S seconds without a new record"
    )
    tail.add_argument("--raw", action="store_true", help="print the records as they are")


def replay(args: argparse.Namespace) -> int:
    values = dict(vars(args))
    inputs = ReplayInputs.from_paths(args.automation, args.events)
    values["progress"] = sys.stderr.isatty() and inputs.total_bytes() >= PROGRESS_MIN_BYTES
    settings = ReplaySettings.build(values)
    result: list[Summary] = []

    def report(summary: Summary) -> None:
        result.append(summary)
        print_summary(summary)

    run_main(replay_flow(settings, report))
    if settings.dlq is None and result and result[0].dead_letters:
        sys.stderr.write("note: dead letters were counted but not kept; use --dlq FILE\n")
    return 0


def _client_values(args: argparse.Namespace) -> dict[str, Any]:
    values = dict(vars(args))
    if not values.get("kafka_option"):
        values["kafka_option"] = split_env_list(_env("kafka_options"))
    return values


def _client(args: argparse.Namespace) -> KafkaClientSettings:
    return KafkaClientSettings(**KafkaClientSettings.client_fields(_client_values(args)))


def topics_create(args: argparse.Namespace) -> int:
    for option in ("partitions", "automation_partitions"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')}: expected a positive integer")
    client = _client(args)
    names = TopicSettings(**TopicSettings.topic_fields(vars(args))).topics
    plans = topic_plans(names, args.partitions, args.automation_partitions)
    for line in create_topics(client.kafka, plans, args.replication_factor):
        print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    values = _client_values(args)
    if values.get("addresses") is None:
        values["addresses"] = split_env_list(_env("addresses"))
    else:
        values["addresses"] = split_env_list(values["addresses"])
    if values.get("until_end") is None:
        values["until_end"] = (_env("until_end") or "").lower() in ("1", "true", "yes", "on")
    settings = LiveSettings.build(values)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kafka, topics = settings.kafka, settings.topics
    admin = admin_client(kafka)
    for option, topic in zip(TOPIC_OPTIONS, topics.all(), strict=True):
        try:
            topic_partitions(admin, topic, kafka.brokers)
        except SourceError as missing:
            raise ConfigError(
                f"--{option.replace('_', '-')} ({env_name(option)}): {missing}"
            ) from None
    options = f" with {masked(kafka.options)}" if kafka.options else ""
    sys.stderr.write(
        f"crm-triggers: live on {kafka.brokers}{options}: "
        f"{topics.events} + {topics.automation} -> {topics.transitions}, "
        f"{topics.dead_letters}; recovery: {settings.recovery_dir or 'off'}\n"
    )
    from flows.live import run_live  # imports Bytewax's runtime only for this command

    run_live(settings)
    return 0


def produce(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.file is None and not args.tombstone:
        raise ConfigError("produce: give a FILE of JSON Lines, or --tombstone KEY")
    records: Iterator[tuple[bytes | None, bytes | None]]
    if args.tombstone:
        records = iter([(key.encode(), None) for key in args.tombstone])
    else:
        files = expand(args.file)
        compacted = is_compacted(client.kafka, args.topic)
        records = ((record_key(line, compacted), line) for _, _, line in read_lines(files))
    done = produce_records(client.kafka, args.topic, records)
    note = f" ({done.without_key} without a key)" if done.without_key else ""
    sys.stderr.write(f"crm-triggers: produced {done.records} records to {args.topic}{note}\n")
    return 0


def describe(value: bytes | None) -> str:
    """One readable line for a transition or a dead letter; anything else as it is."""
    if value is None:
        return "(tombstone)"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")
    if type(record) is dict and "to_stage" in record:
        item, trigger, event = (
            record.get("item", {}),
            record.get("trigger", {}),
            record.get("event", {}),
        )
        return (
            f"{event.get('occurred_at')}  {record.get('tenant')}  "
            f"{item.get('entity')}/{item.get('id')}  "
            f"{record.get('from_stage')} -> {record.get('to_stage')}  "
            f"trigger {trigger.get('id')} ({trigger.get('code')})  "
            f"event {event.get('id')} ({event.get('type')})"
        )
    if type(record) is dict and "code" in record and "origin" in record:
        origin = record["origin"]
        where = (
            f"{origin.get('topic')}[{origin.get('partition')}]@{origin.get('offset')}"
            if "topic" in origin
            else f"{origin.get('file')}:{origin.get('line')}"
        )
        return f"DEAD LETTER {record['code']} at {where}: {record.get('message')}"
    return value.decode("utf-8", "replace")


def tail(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.max is not None and args.max < 1:
        return 0
    messages = read_topic(
        client.kafka, args.topic, from_beginning=args.from_beginning, idle_timeout=args.timeout
    )
    for shown, message in enumerate(messages, 1):
        value = message.value()
        line = (value or b"").decode("utf-8", "replace") if args.raw else describe(value)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if args.max is not None and shown >= args.max:
            break
    return 0


COMMANDS = {"replay": replay, "run": run, "produce": produce, "tail": tail, **ANALYTICS_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "topics":
            return topics_create(args)
        return COMMANDS[args.command](args)
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
