"""Every setting of the job, each declared once, read from command-line flags and the environment.

A setting is a field of a frozen settings dataclass declared with `option(...)`:
its default, its help and how its text is read. From that one declaration come
its flag (`seen_window`: `--seen-window`), its environment variable
(`CRM_TRIGGERS_SEEN_WINDOW`), its line in `--help` and the check of its value.
A flag wins over its variable. Bad values fail at start with the setting's name
and what was expected.

To add an option, add a field declared with `option(...)` to the settings class
of the commands that take it (`EngineSettings` for replay and run, `RunOptions`
for run, ...): the command line, the environment and the help follow from it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from connectors.kafka import DEFAULT_BATCH_SIZE, KafkaSettings, Topics, masked
from connectors.records import DEFAULT_MAX_RECORD_BYTES
from flows.dataflow import DEFAULT_KEY_GROUPS
from state import native
from state.board import DEFAULT_SEEN_WINDOW
from state.errors import ConfigError

PREFIX = "CRM_TRIGGERS_"
PROGRESS_MIN_BYTES = 20 << 20


def env_name(option: str) -> str:
    return PREFIX + option.upper().replace("-", "_")


# Readers of a value: (label naming the setting, value as given) -> value, or ConfigError.
Reader = Callable[[str, Any], Any]


def positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


def non_negative_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
    return number


def seconds(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or number != number:
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}")
    return number


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def split_env_list(value: str | None, separator: str = ";") -> list[str]:
    """A list from an environment variable (';'-separated unless said otherwise)."""
    return [part.strip() for part in (value or "").split(separator) if part.strip()]


def items(name: str, value: Any) -> tuple[str, ...]:
    """A list given as a list, or as one ';'-separated text."""
    return tuple(split_env_list(value) if isinstance(value, str) else value)


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


def one_of(*choices: str) -> Reader:
    def read(name: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{name}: expected one of {choices}, got {value!r}")
        return str(value)

    return read


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


# The declaration of an option -------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """How a settings field is given: its flag, its variable and its help."""

    help: str
    """The help line; `{env}` marks where the variable is named, else it is appended."""
    read: Reader | None = None
    """Checks and converts the value (the default too); None keeps the text as it is."""
    metavar: str | None = None
    many: bool = False
    """A repeatable flag; its variable is a list separated by `separator`."""
    separator: str = ";"
    switch: bool = False
    """A flag without a value; its variable is 1, true, yes or on."""
    env: str | None = ""
    """The variable's option name: "" for this option's own, None for no variable."""
    cli_env: bool = True
    """Whether the command line falls back on the variable (replay's files do not)."""
    show_env: bool = True
    required: str | None = None
    """Why the setting is needed, if it has no default."""
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    """argparse's own conversion, for options only ever given as flags."""
    positional: bool = False


OPTION = "crm_triggers.option"


def option(default: Any, help: str, *, repr: bool = True, **how: Any) -> Any:
    """A settings field given by a flag and an environment variable (see `Option`).

    `repr=False` keeps a value that may hold a secret out of the settings' `repr`.
    """
    return field(default=default, metadata={OPTION: Option(help, **how)}, repr=repr)


def redefault(owner: type, name: str, default: Any) -> Any:
    """The option `name` of `owner` with another default, for a command that differs."""
    [found] = [f for f in fields(owner) if f.name == name]
    return field(default=default, metadata=found.metadata, repr=found.repr)


S = TypeVar("S", bound="Settings")


@dataclass(frozen=True, repr=False)
class Settings:
    """The base of every settings class: built from flags, the environment or a mapping."""

    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__name__}({shown})"

    @classmethod
    def options(cls) -> Iterator[tuple[Field[Any], Option]]:
        for f in fields(cls):
            spec = f.metadata.get(OPTION)
            if spec is not None:
                yield f, spec

    @staticmethod
    def variable(f: Field[Any], spec: Option) -> str | None:
        if spec.env is None:
            return None
        return env_name(spec.env or f.name)

    @classmethod
    def label(cls, f: Field[Any], spec: Option) -> str:
        variable = cls.variable(f, spec)
        flag_name = f.name if spec.positional else "--" + f.name.replace("_", "-")
        return f"{flag_name} ({variable})" if variable else flag_name

    @classmethod
    def build(cls: type[S], values: Mapping[str, Any]) -> S:
        """The settings from values by field name (text or typed; None or "" for the default)."""
        given: dict[str, Any] = {}
        for f in fields(cls):
            spec = f.metadata.get(OPTION)
            value = values.get(f.name)
            if spec is None:
                if value is not None:
                    given[f.name] = value
                continue
            if value is None or value == "" or (spec.many and not value):
                if spec.required:
                    raise ConfigError(f"{cls.label(f, spec)}: required, {spec.required}")
                value = f.default if f.default is not MISSING else None
            if value is not None and spec.read is not None:
                value = spec.read(cls.label(f, spec), value)
            elif spec.many and value is not None:
                value = tuple(value)
            given[f.name] = value
        return cls(**given)

    @classmethod
    def env_values(cls, env: Mapping[str, str], only_cli: bool = False) -> dict[str, Any]:
        """Each option's value in the environment, by field name (absent ones left out)."""
        out: dict[str, Any] = {}
        for f, spec in cls.options():
            variable = cls.variable(f, spec)
            if variable is None or (only_cli and not spec.cli_env):
                continue
            text = env.get(variable)
            if text is None:
                continue
            if spec.many:
                out[f.name] = split_env_list(text, spec.separator)
            elif spec.switch:
                out[f.name] = flag(text)
            else:
                out[f.name] = text
        return out

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        """The settings from environment variables alone (for `python -m bytewax.run`)."""
        return cls.build(cls.env_values(env))

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, env: Mapping[str, str], **more: Any) -> S:
        """The settings from parsed flags, each falling back on its variable."""
        values = cls.env_values(env, only_cli=True)
        for f, _ in cls.options():
            given = getattr(args, f.name, None)
            if given is not None:
                values[f.name] = given
        return cls.build({**values, **more})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One argument per option, in field order, with its help and variable."""
        for f, spec in cls.options():
            variable = cls.variable(f, spec)
            shown = variable if variable and spec.cli_env and spec.show_env else None
            default = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
            help_text = spec.help.replace("{default}", default)
            if "{env}" in help_text:
                help_text = help_text.replace("{env}", shown or "")
            elif shown:
                help_text += f" [{shown}]"
            kwargs: dict[str, Any] = {"help": help_text}
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            if spec.positional:
                parser.add_argument(f.name, nargs="?", **kwargs)
                continue
            if spec.switch:
                kwargs.update(action="store_true", default=None)
            else:
                if spec.many:
                    kwargs["action"] = "append"
                if spec.choices is not None:
                    kwargs["choices"] = spec.choices
                if spec.type is not None:
                    kwargs["type"] = spec.type
            if spec.required and not (spec.cli_env and variable):
                kwargs["required"] = True
            parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


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
class ReplayFiles(Settings):
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
    out: str = option(
        "-", "transitions as JSON Lines (default: stdout)", metavar="FILE", cli_env=False
    )
    dlq: str | None = option(None, "dead letters as JSON Lines", metavar="FILE", cli_env=False)
    what_if: bool = option(
        False,
        "the latest version of every automation record, in force from the beginning",
        switch=True,
        cli_env=False,
    )
    progress: bool = False


@dataclass(frozen=True, repr=False)
class ReplaySettings(EngineSettings, ReplayFiles):
    key_groups: int = redefault(EngineSettings, "key_groups", REPLAY_KEY_GROUPS)

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
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            # Only the key is shown: the value may be a secret.
            raise ConfigError(
                f"--kafka-option ({env_name('kafka_options')}): expected KEY=VALUE, "
                f"got {key.strip()!r} without '='"
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

    def check(self) -> None:
        names = {name: getattr(self, name) for name in TOPIC_OPTIONS}
        if len(set(names.values())) < len(names):
            raise ConfigError(f"topics: the four topics must differ, got {names}")

    @property
    def topics(self) -> Topics:
        return Topics(
            self.events_topic, self.automation_topic, self.transitions_topic, self.dead_letter_topic
        )


TOPIC_OPTIONS = ("events_topic", "automation_topic", "transitions_topic", "dead_letter_topic")
START_FROM = ("beginning", "end")
DEFAULT_SNAPSHOT_INTERVAL = 10
DEFAULT_SUMMARY_INTERVAL = 10.0


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
        read=one_of(*START_FROM),
    )
    until_end: bool = option(
        False,
        "stop once every partition has been read to its end (catch-up runs, benchmarks)",
        switch=True,
    )
    batch_size: int = option(
        DEFAULT_BATCH_SIZE,
        "records read from a partition at once (default: {default})",
        metavar="N",
        read=positive_int,
    )
    summary_interval: float = option(
        DEFAULT_SUMMARY_INTERVAL,
        "seconds between progress lines on stderr (default: {default})",
        metavar="SECONDS",
        read=seconds,
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


# Kafka tools for people: options only ever given as flags, but declared the same way.


@dataclass(frozen=True, repr=False)
class TopicsCreateSettings(TopicSettings, KafkaClientSettings):
    partitions: int = option(
        3,
        "partitions of the events, transitions and dead-letter topics (default: {default})",
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

    def check(self) -> None:
        if self.file is None and not self.tombstone:
            raise ConfigError("produce: give a FILE of JSON Lines, or --tombstone KEY")


@dataclass(frozen=True, repr=False)
class TailSettings(KafkaClientSettings):
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
