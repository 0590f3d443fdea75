"""Every setting of the job, built in one place from command-line flags and the environment.

Each option has an environment variable (`CRM_TRIGGERS_<NAME>`); a flag wins
over its variable. Bad values fail at start with the setting's name and the fix.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


ENGINES = ("native", "python")
DEFAULT_ENGINE = "native"


def engine_of(value: str | None) -> str:
    """The decision engine: the compiled board (default) or the Python reference."""
    engine = (value or DEFAULT_ENGINE).strip().lower()
    label = "--engine (CRM_TRIGGERS_ENGINE)"
    if engine not in ENGINES:
        raise ConfigError(f"{label}: expected one of {', '.join(ENGINES)}, got {value!r}")
    if engine == "native" and not native.available():
        raise ConfigError(
            f"{label}: the compiled engine (module crm_triggers_native) is not installed; "
            "build it with `make install` (needs Rust's cargo), or choose --engine python"
        )
    return engine


@dataclass(frozen=True)
class EngineSettings:
    """Settings of the decision step, shared by replay and live runs."""

    key_groups: int = DEFAULT_KEY_GROUPS  # CRM_TRIGGERS_KEY_GROUPS
    seen_window: int = DEFAULT_SEEN_WINDOW  # CRM_TRIGGERS_SEEN_WINDOW
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES  # CRM_TRIGGERS_MAX_RECORD_BYTES
    engine: str = DEFAULT_ENGINE  # CRM_TRIGGERS_ENGINE

    @staticmethod
    def fields_from(
        values: Mapping[str, Any], key_groups: int = DEFAULT_KEY_GROUPS
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"engine": engine_of(values.get("engine"))}
        for name, default in (
            ("key_groups", key_groups),
            ("seen_window", DEFAULT_SEEN_WINDOW),
            ("max_record_bytes", DEFAULT_MAX_RECORD_BYTES),
        ):
            value = values.get(name)
            out[name] = (
                default if value is None else positive_int(f"--{name.replace('_', '-')}", value)
            )
        return out


REPLAY_KEY_GROUPS = 1
"""A replay keeps no recovery store, so it needs no more groups than workers: with
one, events go to their group undecoded and are decoded once (docs/performance.md)."""


@dataclass(frozen=True)
class ReplaySettings(EngineSettings):
    automation: tuple[str, ...] = ()  # CRM_TRIGGERS_AUTOMATION (os.pathsep-separated)
    events: tuple[str, ...] = ()  # CRM_TRIGGERS_EVENTS (os.pathsep-separated)
    out: str = "-"  # CRM_TRIGGERS_OUT
    dlq: str | None = None  # CRM_TRIGGERS_DLQ
    what_if: bool = False  # CRM_TRIGGERS_WHAT_IF
    progress: bool = False
    key_groups: int = REPLAY_KEY_GROUPS  # CRM_TRIGGERS_KEY_GROUPS

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> ReplaySettings:
        if not values.get("automation"):
            raise ConfigError(
                "--automation (CRM_TRIGGERS_AUTOMATION): required, the automation log"
            )
        if not values.get("events"):
            raise ConfigError("--events (CRM_TRIGGERS_EVENTS): required, at least one event log")
        return cls(
            automation=tuple(values["automation"]),
            events=tuple(values["events"]),
            out=values.get("out") or "-",
            dlq=values.get("dlq"),
            what_if=bool(values.get("what_if")),
            progress=bool(values.get("progress")),
            **cls.fields_from(values, key_groups=REPLAY_KEY_GROUPS),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplaySettings:
        def paths(name: str) -> list[str]:
            return [p for p in env.get(env_name(name), "").split(os.pathsep) if p]

        return cls.build(
            {
                "automation": paths("automation"),
                "events": paths("events"),
                "out": env.get(env_name("out")),
                "dlq": env.get(env_name("dlq")),
                "what_if": flag(env.get(env_name("what_if"))),
                "progress": sys.stderr.isatty(),
                "key_groups": env.get(env_name("key_groups")),
                "seen_window": env.get(env_name("seen_window")),
                "max_record_bytes": env.get(env_name("max_record_bytes")),
                "engine": env.get(env_name("engine")),
            }
        )


START_FROM = ("beginning", "end")
DEFAULT_SNAPSHOT_INTERVAL = 10
DEFAULT_SUMMARY_INTERVAL = 10.0
# The job owns these: offsets live in snapshots, and delivery rests on acks from all replicas.
_OWNED_KAFKA_OPTIONS = {
    "bootstrap.servers": "use --brokers (CRM_TRIGGERS_BROKERS)",
    "enable.auto.commit": "offsets are kept in the recovery snapshots, never committed",
    "enable.auto.offset.store": "offsets are kept in the recovery snapshots, never committed",
    "enable.partition.eof": "the job sets it where it needs it",
    "enable.idempotence": "the producer must be idempotent so retries never duplicate",
    "acks": "the job needs acks=all: a record counts as written once all replicas have it",
}


def parse_brokers(value: Any) -> str:
    """`host:port[,host:port...]`, or ConfigError naming the setting."""
    name = f"--brokers ({env_name('brokers')})"
    if not value or not str(value).strip():
        raise ConfigError(f"{name}: required, host:port[,host:port...] of the Kafka cluster")
    brokers = [b.strip() for b in str(value).split(",") if b.strip()]
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{name}: expected host:port, got {broker!r}")
    return ",".join(brokers)


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


def split_env_list(value: str | None) -> list[str]:
    """A ';'-separated list from an environment variable."""
    return [part.strip() for part in (value or "").split(";") if part.strip()]


@dataclass(frozen=True)
class KafkaClientSettings:
    """Where the cluster is and how to talk to it: shared by every Kafka command."""

    brokers: str = ""  # CRM_TRIGGERS_BROKERS
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    # CRM_TRIGGERS_KAFKA_OPTIONS (KEY=VALUE;KEY=VALUE), CRM_TRIGGERS_KAFKA_CONFIG (a file)

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(self.brokers, dict(self.kafka_options))

    @staticmethod
    def client_fields(values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "brokers": parse_brokers(values.get("brokers")),
            "kafka_options": parse_kafka_options(
                list(values.get("kafka_option") or ()), values.get("kafka_config")
            ),
        }

    @staticmethod
    def client_env(env: Mapping[str, str]) -> dict[str, Any]:
        return {
            "brokers": env.get(env_name("brokers")),
            "kafka_option": split_env_list(env.get(env_name("kafka_options"))),
            "kafka_config": env.get(env_name("kafka_config")),
        }


@dataclass(frozen=True)
class TopicSettings:
    events_topic: str = Topics.events  # CRM_TRIGGERS_EVENTS_TOPIC
    automation_topic: str = Topics.automation  # CRM_TRIGGERS_AUTOMATION_TOPIC
    transitions_topic: str = Topics.transitions  # CRM_TRIGGERS_TRANSITIONS_TOPIC
    dead_letter_topic: str = Topics.dead_letters  # CRM_TRIGGERS_DEAD_LETTER_TOPIC

    @property
    def topics(self) -> Topics:
        return Topics(
            self.events_topic, self.automation_topic, self.transitions_topic, self.dead_letter_topic
        )

    @staticmethod
    def topic_fields(values: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for name in TOPIC_OPTIONS:
            value = values.get(name) or getattr(TopicSettings, name)
            if not _TOPIC_NAME.fullmatch(value):
                raise ConfigError(
                    f"--{name.replace('_', '-')} ({env_name(name)}): {value!r} is not a Kafka "
                    "topic name (letters, digits, '.', '_', '-'; at most 249)"
                )
            out[name] = value
        if len(set(out.values())) < len(out):
            raise ConfigError(f"topics: the four topics must differ, got {out}")
        return out

    @staticmethod
    def topic_env(env: Mapping[str, str]) -> dict[str, str | None]:
        return {name: env.get(env_name(name)) for name in TOPIC_OPTIONS}


TOPIC_OPTIONS = ("events_topic", "automation_topic", "transitions_topic", "dead_letter_topic")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def non_negative_number(name: str, value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or number != number:
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}")
    return number


@dataclass(frozen=True)
class LiveSettings(EngineSettings, KafkaClientSettings, TopicSettings):
    """The live job: Kafka in, Kafka out, optionally recovered from a directory of snapshots."""

    recovery_dir: str | None = None  # CRM_TRIGGERS_RECOVERY_DIR
    recovery_partitions: int = 1  # CRM_TRIGGERS_RECOVERY_PARTITIONS (used when creating it)
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL  # CRM_TRIGGERS_SNAPSHOT_INTERVAL
    backup_interval: int = 0  # CRM_TRIGGERS_BACKUP_INTERVAL
    workers: int = 1  # CRM_TRIGGERS_WORKERS (per process)
    process_id: int | None = None  # CRM_TRIGGERS_PROCESS_ID
    addresses: tuple[str, ...] = ()  # CRM_TRIGGERS_ADDRESSES (';'-separated host:port)
    start_from: str = "beginning"  # CRM_TRIGGERS_START_FROM
    until_end: bool = False  # CRM_TRIGGERS_UNTIL_END
    batch_size: int = DEFAULT_BATCH_SIZE  # CRM_TRIGGERS_BATCH_SIZE
    summary_interval: float = DEFAULT_SUMMARY_INTERVAL  # CRM_TRIGGERS_SUMMARY_INTERVAL

    def __repr__(self) -> str:
        shown = {k: v for k, v in vars(self).items() if k != "kafka_options"}
        return f"LiveSettings({shown}, kafka_options={masked(self.kafka_options)})"

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> LiveSettings:
        start_from = values.get("start_from") or "beginning"
        if start_from not in START_FROM:
            raise ConfigError(
                f"--start-from ({env_name('start_from')}): expected one of {START_FROM}, "
                f"got {start_from!r}"
            )
        process_id = values.get("process_id")
        addresses = tuple(values.get("addresses") or ())
        if (process_id is None or process_id == "") != (not addresses):
            raise ConfigError(
                f"--process-id ({env_name('process_id')}) and --addresses "
                f"({env_name('addresses')}): give both, for a cluster of processes, or neither"
            )
        summary_interval = non_negative_number(
            f"--summary-interval ({env_name('summary_interval')})",
            values.get("summary_interval"),
            DEFAULT_SUMMARY_INTERVAL,
        )
        fields: dict[str, Any] = {
            **cls.fields_from(values),
            **cls.client_fields(values),
            **cls.topic_fields(values),
        }
        return cls(
            recovery_dir=values.get("recovery_dir") or None,
            recovery_partitions=_int_or(values, "recovery_partitions", 1),
            snapshot_interval=_int_or(values, "snapshot_interval", DEFAULT_SNAPSHOT_INTERVAL),
            backup_interval=_int_or(values, "backup_interval", 0, minimum=0),
            workers=_int_or(values, "workers", 1),
            process_id=None if not addresses else _int_or(values, "process_id", 0, minimum=0),
            addresses=addresses,
            start_from=start_from,
            until_end=bool(values.get("until_end")),
            batch_size=_int_or(values, "batch_size", DEFAULT_BATCH_SIZE),
            summary_interval=summary_interval,
            **fields,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LiveSettings:
        def get(name: str) -> str | None:
            return env.get(env_name(name))

        return cls.build(
            {
                **cls.client_env(env),
                **cls.topic_env(env),
                "recovery_dir": get("recovery_dir"),
                "recovery_partitions": get("recovery_partitions"),
                "snapshot_interval": get("snapshot_interval"),
                "backup_interval": get("backup_interval"),
                "workers": get("workers"),
                "process_id": get("process_id"),
                "addresses": split_env_list(get("addresses")),
                "start_from": get("start_from"),
                "until_end": flag(get("until_end")),
                "batch_size": get("batch_size"),
                "summary_interval": get("summary_interval"),
                "key_groups": get("key_groups"),
                "seen_window": get("seen_window"),
                "max_record_bytes": get("max_record_bytes"),
                "engine": get("engine"),
            }
        )


def _int_or(values: Mapping[str, Any], name: str, default: int, minimum: int = 1) -> int:
    value = values.get(name)
    if value is None or value == "":
        return default
    label = f"--{name.replace('_', '-')} ({env_name(name)})"
    if minimum >= 1:
        return positive_int(label, value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < minimum:
        raise ConfigError(f"{label}: expected an integer >= {minimum}, got {value!r}")
    return number
