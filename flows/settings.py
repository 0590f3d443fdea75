"""Every setting of the job, each declared once (see `flows.options`).

To add an option, add a field declared with `option(...)` to the settings class
of the commands that take it (`EngineSettings` for replay and run, `RunOptions`
for run, ...): its flag, its `CRM_TRIGGERS_` variable, its help line and its
check follow. Bad values fail at start with the setting's name and what was
expected.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from connectors.kafka.config import DEFAULT_BATCH_SIZE, KafkaSettings, Topics, masked
from connectors.kafka.pacing import DEFAULT_CYCLE_MS
from connectors.records import DEFAULT_MAX_RECORD_BYTES
from flows.dataflow import DEFAULT_KEY_GROUPS
from flows.options import (
    Settings,
    env_name,
    items,
    non_negative_int,
    option,
    positive_int,
    redefault,
    seconds,
)
from state import native
from state.board import DEFAULT_SEEN_WINDOW
from state.errors import ConfigError

PROGRESS_MIN_BYTES = 20 << 20

ENGINES = ("native", "python")
DEFAULT_ENGINE = "native"


def engine_of(name: str, value: str | None) -> str:
    """The decision engine: the compiled board (default) or the Python reference."""
    engine = (value or DEFAULT_ENGINE).strip().lower()
    if engine not in ENGINES:
        raise ConfigError(f"{name}: expected one of {', '.join(ENGINES)}, got {value!r}")
    if engine == "native" and not native.available():
        raise ConfigError(
            f"{name}: the compiled engine (module crm_triggers_native) is not installed; "
            "build it with `make install` (needs Rust's cargo), or choose --engine python"
        )
    return engine


def parse_brokers(name: str, value: Any) -> str:
    """`host:port[,host:port...]`, or ConfigError naming the setting."""
    if not value or not str(value).strip():
        raise ConfigError(f"{name}: required, host:port[,host:port...] of the Kafka cluster")
    brokers = [b.strip() for b in str(value).split(",") if b.strip()]
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{name}: expected host:port, got {broker!r}")
    return ",".join(brokers)


_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def topic_name(name: str, value: Any) -> str:
    if not _TOPIC_NAME.fullmatch(value):
        raise ConfigError(
            f"{name}: {value!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; "
            "at most 249)"
        )
    return str(value)


# The settings of the commands ----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class EngineSettings(Settings):
    """Settings of the decision step, shared by replay and live runs."""

    key_groups: int = option(
        DEFAULT_KEY_GROUPS,
        "key groups the items are spread over (replay default 1, run 64)",
        read=positive_int,
    )
    seen_window: int = option(
        DEFAULT_SEEN_WINDOW,
        "event ids remembered per item to drop producer retries",
        read=positive_int,
    )
    max_record_bytes: int = option(
        DEFAULT_MAX_RECORD_BYTES, "larger records are dead letters (too_large)", read=positive_int
    )
    engine: str = option(
        DEFAULT_ENGINE,
        "decision engine: native (compiled, default) or python (the reference)",
        read=engine_of,
    )


REPLAY_KEY_GROUPS = 1
"""A replay keeps no recovery store, so it needs no more groups than workers: with
one, events go to their group undecoded and are decoded once (docs/performance.md)."""


@dataclass(frozen=True, repr=False)
class EventLogs(Settings):
    """The inputs of a decision: the automation log and the event logs (replay, explain)."""

    automation: tuple[str, ...] = option(
        (),
        "automation log: .jsonl, .jsonl.gz, a folder of them, or -",
        metavar="FILE",
        many=True,
        separator=os.pathsep,
        cli_env=False,
        required="the automation log",
    )
    events: tuple[str, ...] = option(
        (),
        "event log (repeatable; several are merged by occurred_at)",
        metavar="FILE",
        many=True,
        separator=os.pathsep,
        cli_env=False,
        required="at least one event log",
    )


@dataclass(frozen=True, repr=False)
class ReplayFiles(EventLogs):
    out: str = option(
        "-", "transitions as JSON Lines (default: stdout)", metavar="FILE", cli_env=False
    )
    dlq: str | None = option(None, "dead letters as JSON Lines", metavar="FILE", cli_env=False)
    history: str | None = option(
        None,
        "stage history as JSON Lines (spec 6.1): each stage an item begins, in input order",
        metavar="FILE",
        cli_env=False,
    )
    what_if: bool = option(
        False,
        "the latest version of every automation record, in force from the beginning",
        switch=True,
        cli_env=False,
    )
    progress: bool = False

    def outputs(self) -> dict[str, str | None]:
        """Each output file by its option: checked at start (none may be an input)."""
        return {"--out": self.out, "--dlq": self.dlq, "--history": self.history}


def _rereadable(path: str) -> bool:
    """Whether every process of a replay can read `path` itself: a file or a folder, not
    standard input, a FIFO or a device, which give their bytes once."""
    if path == "-":
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True  # reported as unreadable by the reader, with its one line
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, repr=False)
class ReplayWorkers(Settings):
    workers: int = option(
        0,
        "processes deciding the replay, each the items of its own share, output as one "
        "process writes it (default: 0, one per core; 1 when an input is standard input "
        "or a FIFO)",
        metavar="N",
        read=non_negative_int,
    )


@dataclass(frozen=True, repr=False)
class ReplaySettings(EngineSettings, ReplayWorkers, ReplayFiles):
    key_groups: int = redefault(EngineSettings, "key_groups", REPLAY_KEY_GROUPS)

    @property
    def processes(self) -> int:
        """How many processes decide this replay: one per core unless `workers` says;
        one when an input is standard input, a FIFO or a device, which give their bytes once."""
        if not all(map(_rereadable, (*self.automation, *self.events))):
            return 1
        return self.workers or cores()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplaySettings:
        return cls.build({**cls.env_values(env), "progress": sys.stderr.isatty()})


# The job owns these: offsets live in snapshots, and delivery rests on acks from all replicas.
_OWNED_KAFKA_OPTIONS = {
    "bootstrap.servers": "use --brokers (CRM_TRIGGERS_BROKERS)",
    "enable.auto.commit": "offsets are kept in the recovery snapshots, never committed",
    "enable.auto.offset.store": "offsets are kept in the recovery snapshots, never committed",
    "enable.partition.eof": "the job sets it where it needs it",
    "enable.idempotence": "the producer must be idempotent so retries never duplicate",
    "acks": "the job needs acks=all: a record counts as written once all replicas have it",
}


def parse_kafka_options(pairs: list[str], config_file: str | None) -> dict[str, str]:
    """librdkafka options from a properties file and KEY=VALUE pairs (pairs win)."""
    options: dict[str, str] = {}
    if config_file:
        name = f"--kafka-config ({env_name('kafka_config')})"
        try:
            with open(config_file, encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    line = line.strip()
                    if not line or line.startswith(("#", "!")):
                        continue
                    key, sep, value = line.partition("=")
                    if not sep or not key.strip():
                        raise ConfigError(
                            f"{name}: {config_file} line {number}: expected KEY=VALUE"
                        )
                    options[key.strip()] = value.strip()
        except OSError as bad:
            raise ConfigError(f"{name}: cannot read {config_file}: {bad.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{name}: {config_file} is not a text file of KEY=VALUE lines (not UTF-8)"
            ) from None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            # Nothing of the value is shown, it may be a secret: only a name before ':' or ' '.
            name = re.split(r"[:\s]", pair.strip(), maxsplit=1)[0]
            shown = f"{name!r} " if name and name != pair.strip() else ""
            raise ConfigError(
                f"--kafka-option ({env_name('kafka_options')}): expected KEY=VALUE, "
                f"got an option {shown}without '='"
            )
        options[key.strip()] = value.strip()
    for key, value in options.items():
        why = _OWNED_KAFKA_OPTIONS.get(key)
        if why is None:
            continue
        fine = (key == "acks" and value in ("all", "-1")) or (
            key == "enable.idempotence" and value.lower() == "true"
        )
        if not fine:
            raise ConfigError(f"Kafka option {key}: cannot be set ({why})")
    return options


@dataclass(frozen=True, repr=False)
class KafkaClientSettings(Settings):
    """Where the cluster is and how to talk to it: shared by every Kafka command.

    `repr` shows the librdkafka options masked (`kafka_options`), never as given.
    """

    brokers: str = option(
        "", "Kafka bootstrap servers", metavar="HOST:PORT[,...]", read=parse_brokers
    )
    kafka_option: tuple[str, ...] = option(
        (),
        "a librdkafka option passed straight through (SASL, TLS, client.id...); repeatable "
        "[{env}, ';'-separated]. Prefer --kafka-config for secrets: command lines are "
        "visible to other users",
        metavar="KEY=VALUE",
        many=True,
        env="kafka_options",
        repr=False,
    )
    kafka_config: str | None = option(None, "librdkafka options as KEY=VALUE lines", metavar="FILE")

    def check(self) -> None:
        _ = self.kafka_options  # a bad option or an unreadable file fails at start

    @cached_property
    def kafka_options(self) -> dict[str, str]:
        return parse_kafka_options(list(self.kafka_option), self.kafka_config)

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(self.brokers, dict(self.kafka_options))

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, kafka_options={masked(self.kafka_options)})"


@dataclass(frozen=True, repr=False)
class TopicSettings(Settings):
    events_topic: str = option(
        Topics.events,
        "events in, keyed by item (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )
    automation_topic: str = option(
        Topics.automation,
        "pipelines and triggers, compacted (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )
    transitions_topic: str = option(
        Topics.transitions,
        "stage transitions out, keyed by item (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )
    dead_letter_topic: str = option(
        Topics.dead_letters,
        "records that could not take effect (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )
    history_topic: str = option(
        Topics.history,
        "stage history out, keyed by item (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )

    def check(self) -> None:
        names = {name: getattr(self, name) for name in TOPIC_OPTIONS}
        if len(set(names.values())) < len(names):
            raise ConfigError(f"topics: the {len(names)} topics must differ, got {names}")

    @property
    def topics(self) -> Topics:
        return Topics(
            self.events_topic,
            self.automation_topic,
            self.transitions_topic,
            self.dead_letter_topic,
            self.history_topic,
        )


LOG_FORMATS = ("text", "json")


def port_number(name: str, value: Any) -> int:
    number = positive_int(name, value) if str(value).strip() != "0" else 0
    if number > 65535:
        raise ConfigError(f"{name}: expected a port number (0-65535), got {value!r}")
    return number


TOPIC_OPTIONS = (
    "events_topic",
    "automation_topic",
    "transitions_topic",
    "dead_letter_topic",
    "history_topic",
)
START_FROM = ("beginning", "end")
DECIDE_IN = ("groups", "partitions")
DEFAULT_SNAPSHOT_INTERVAL = 10
DEFAULT_SUMMARY_INTERVAL = 10.0
STATS_TOPIC = "crm.stage-stats"
"""Where the statistics job (`crm-triggers stats`) writes its window records."""


@dataclass(frozen=True, repr=False)
class RunOptions(Settings):
    """Recovery, cluster and pacing of the live job."""

    recovery_dir: str | None = option(
        None,
        "keep state and offsets here and resume from them after a crash; an empty or "
        "missing folder is set up",
        metavar="DIR",
    )
    recovery_partitions: int = option(
        1,
        "files of a new recovery folder (default: {default}; at least the total worker count "
        "spreads the writes)",
        metavar="N",
        read=positive_int,
    )
    snapshot_interval: int = option(
        DEFAULT_SNAPSHOT_INTERVAL,
        "seconds between snapshots (Bytewax epochs); a restart replays at most this "
        "much input (default: {default})",
        metavar="SECONDS",
        read=positive_int,
    )
    backup_interval: int = option(
        0,
        "keep older snapshots this long, if the recovery folder is backed up (default: {default})",
        metavar="SECONDS",
        read=non_negative_int,
    )
    workers: int = option(
        1, "worker threads in this process (default: {default})", metavar="N", read=positive_int
    )
    process_id: int | None = option(
        None,
        "this process's index in a cluster of processes",
        metavar="I",
        read=non_negative_int,
    )
    addresses: tuple[str, ...] = option(
        (),
        "every process of the cluster, in process-id order",
        metavar="HOST:PORT;...",
        read=items,
    )
    start_from: str = option(
        "beginning",
        "where events start when there is no snapshot (default: {default})",
        choices=START_FROM,
    )
    until_end: bool = option(
        False,
        "stop once every partition has been read to its end (catch-up runs, benchmarks)",
        switch=True,
    )
    batch_size: int = option(
        DEFAULT_BATCH_SIZE,
        "records read from a partition at once, at most (default: {default})",
        metavar="N",
        read=positive_int,
    )
    cycle_ms: int = option(
        DEFAULT_CYCLE_MS,
        "a worker's cycle (read, decide, write) is kept near this many milliseconds by "
        "reading fewer records per partition when it is behind; 0: always --batch-size "
        "(default: {default})",
        metavar="MS",
        read=non_negative_int,
    )
    summary_interval: float = option(
        DEFAULT_SUMMARY_INTERVAL,
        "seconds between progress lines on stderr (default: {default})",
        metavar="SECONDS",
        read=seconds,
    )
    metrics_port: int | None = option(
        None,
        "serve Prometheus metrics on /metrics and health on /healthz and /readyz at this port "
        "(default: off)",
        metavar="PORT",
        read=port_number,
    )
    log_format: str = option(
        "text",
        "log lines as text, or json (one object a line) for log shippers (default: {default})",
        choices=LOG_FORMATS,
    )
    decide_in: str = option(
        "groups",
        "where events are decided: key groups (events routed to them across workers) or "
        "the events partitions that read them (nothing crosses workers; an event naming "
        "several items must be written as one copy per item) (default: {default})",
        choices=DECIDE_IN,
    )

    def check(self) -> None:
        if (self.process_id is None) != (not self.addresses):
            raise ConfigError(
                f"--process-id ({env_name('process_id')}) and --addresses "
                f"({env_name('addresses')}): give both, for a cluster of processes, or neither"
            )


@dataclass(frozen=True, repr=False)
class LiveSettings(EngineSettings, RunOptions, TopicSettings, KafkaClientSettings):
    """The live job: Kafka in, Kafka out, optionally recovered from a directory of snapshots."""


@dataclass(frozen=True, repr=False)
class StatsTopicOption(Settings):
    """The statistics job's output topic: written by `stats`, made by `topics create`, read
    by `tail --stats`."""

    stats_topic: str = option(
        STATS_TOPIC,
        "the statistics job's window and late records (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )


# Kafka tools for people: options only ever given as flags, but declared the same way.


@dataclass(frozen=True, repr=False)
class TopicsCreateSettings(StatsTopicOption, TopicSettings, KafkaClientSettings):
    partitions: int = option(
        3,
        "partitions of the events, transitions, stage-history and dead-letter topics "
        "(default: {default})",
        env=None,
        type=int,
        read=positive_int,
    )
    automation_partitions: int = option(
        1,
        "partitions of the automation topic (default: {default}, which keeps pipelines ahead of "
        "their triggers)",
        env=None,
        type=int,
        read=positive_int,
    )
    replication_factor: int = option(
        -1,
        "replicas of each partition (default: the broker's default.replication.factor)",
        env=None,
        type=int,
    )


@dataclass(frozen=True, repr=False)
class ProduceSettings(KafkaClientSettings):
    topic: str = option("", "topic to write to", env=None, required="the topic to write to")
    file: str | None = option(
        None,
        "a .jsonl or .jsonl.gz file, a folder of them, or - for stdin",
        metavar="FILE",
        env=None,
        positional=True,
    )
    tombstone: tuple[str, ...] = option(
        (),
        "write a tombstone (null value) under KEY, e.g. trigger/acme/t-17: it deletes "
        "that record as of now; repeatable",
        metavar="KEY",
        many=True,
        env=None,
    )
    per_item: bool = option(
        False,
        "write an event naming several items as one copy per item, keyed by that item, "
        "so each item's events stay in its own partition (the job decides them alike)",
        switch=True,
        env=None,
    )

    def check(self) -> None:
        if self.file is None and not self.tombstone:
            raise ConfigError("produce: give a FILE of JSON Lines, or --tombstone KEY")


@dataclass(frozen=True, repr=False)
class TailSettings(StatsTopicOption, KafkaClientSettings):
    topic: str = option(
        Topics.transitions,
        "topic to follow (default: the transitions topic)",
        env="transitions_topic",
        show_env=False,
    )
    from_beginning: bool = option(
        False, "start at the oldest record, not the end", switch=True, env=None
    )
    max: int | None = option(None, "stop after N records", metavar="N", type=int, env=None)
    timeout: float | None = option(
        None, "stop after S seconds without a new record", metavar="S", type=float, env=None
    )
    raw: bool = option(False, "print the records as they are", switch=True, env=None)
    stats: bool = option(
        False,
        "print the statistics job's closed windows as a table (from --stats-topic)",
        switch=True,
        env=None,
    )
