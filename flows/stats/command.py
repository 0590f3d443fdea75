"""The settings of the statistics job and `crm-triggers stats`.

Each option is declared once with `option(...)` (see `flows.options`); the
Kafka client, recovery, cluster and pacing options are the live job's own
declarations (`flows.settings`).
"""

from __future__ import annotations

import logging
import re
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.recovery import RecoveryConfig, init_db_dir

from connectors.kafka import TopicPlan, Topics, admin_client, masked, topic_partitions
from flows.options import Reader, Settings, env_name, option, redefault
from flows.settings import (
    DEFAULT_ENGINE,
    STATS_TOPIC,
    KafkaClientSettings,
    RunOptions,
    StatsTopicOption,
    TopicSettings,
    engine_of,
    topic_name,
)
from state.errors import ConfigError, SourceError

HISTORY_TOPIC = Topics.history

DEFAULT_WINDOW = timedelta(hours=1)
DEFAULT_ALLOWED_LATENESS = timedelta(minutes=10)


def stats_topic_plans(partitions: int, topic: str = STATS_TOPIC) -> list[TopicPlan]:
    """What `topics create` adds for this job: the stats topic, keyed by pipeline."""
    return [TopicPlan(topic, partitions)]


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(minimum: timedelta) -> Reader:
    """A reader of `90s`, `10m`, `1h`, `1d`, `1.5h` or plain seconds, at least `minimum`."""

    def read(name: str, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            length = value
        else:
            match = _DURATION.fullmatch(str(value))
            if match is None:
                raise ConfigError(
                    f"{name}: expected a duration like 90s, 10m, 1h or 1d, got {value!r}"
                )
            length = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
        if length < minimum:
            raise ConfigError(
                f"{name}: must be at least {minimum.total_seconds():g} s, got {value!r}"
            )
        return length

    return read


@dataclass(frozen=True, repr=False)
class StatsTopicSettings(StatsTopicOption):
    history_topic: str = option(
        HISTORY_TOPIC,
        "stage-history records in, keyed by item (default: {default})",
        metavar="TOPIC",
        read=topic_name,
    )
    dead_letter_topic: str = redefault(TopicSettings, "dead_letter_topic", Topics.dead_letters)

    def check(self) -> None:
        if self.history_topic in (self.stats_topic, self.dead_letter_topic):
            raise ConfigError("--history-topic: must differ from the stats and dead-letter topics")


@dataclass(frozen=True, repr=False)
class WindowSettings(Settings):
    window: timedelta = option(
        DEFAULT_WINDOW,
        "length of the tumbling windows, aligned to the epoch: 90s, 10m, 1h, 1d (default: 1h)",
        metavar="DURATION",
        read=duration(timedelta(seconds=1)),
    )
    allowed_lateness: timedelta = option(
        DEFAULT_ALLOWED_LATENESS,
        "how far behind its pipeline's latest `at` a record still counts in its window "
        "(default: 10m)",
        metavar="DURATION",
        read=duration(timedelta(0)),
    )
    engine: str = option(
        DEFAULT_ENGINE,
        "stays step: native (compiled, default) or python (the reference)",
        read=engine_of,
    )


@dataclass(frozen=True, repr=False)
class StatsSettings(RunOptions, WindowSettings, StatsTopicSettings, KafkaClientSettings):
    """The statistics job: the history topic in, window records out."""

    recovery_dir: str | None = option(
        None,
        "keep window state and offsets here and resume from them after a crash; an empty or "
        "missing folder is set up",
        metavar="DIR",
        env="stats_recovery_dir",
    )


def command(settings: StatsSettings) -> int:
    """Run `crm-triggers stats`: check the topics, then run the job until Ctrl-C."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kafka = settings.kafka
    admin = admin_client(kafka)
    for name in ("history_topic", "stats_topic", "dead_letter_topic"):
        try:
            topic_partitions(admin, getattr(settings, name), kafka.brokers)
        except SourceError as missing:
            raise ConfigError(f"--{name.replace('_', '-')} ({env_name(name)}): {missing}") from None
    options = f" with {masked(kafka.options)}" if kafka.options else ""
    sys.stderr.write(
        f"crm-triggers stats: live on {kafka.brokers}{options}: "
        f"{settings.history_topic} -> {settings.stats_topic}, {settings.dead_letter_topic}; "
        f"window {settings.window}, allowed lateness {settings.allowed_lateness}; "
        f"recovery: {settings.recovery_dir or 'off'}; engine {settings.engine}\n"
    )
    run_stats(settings)
    return 0


def recovery_config(settings: StatsSettings) -> RecoveryConfig | None:
    """The recovery store of the job; an empty or missing directory is made one first."""
    if settings.recovery_dir is None:
        return None
    folder = Path(settings.recovery_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        init_db_dir(folder, settings.recovery_partitions)
    return RecoveryConfig(str(folder), timedelta(seconds=settings.backup_interval))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_stats(settings: StatsSettings) -> None:
    """Run the statistics job in this process (one of a cluster with process_id and addresses).

    SIGTERM stops it like Ctrl-C: at once, resuming from the last snapshot. Not the
    clean stop of `run`: ending the input would close every open window early.
    """
    from flows.live import run_in_cluster
    from flows.stats.dataflow import stats_flow

    flow = stats_flow(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    run_in_cluster(flow, settings, recovery_config(settings))
