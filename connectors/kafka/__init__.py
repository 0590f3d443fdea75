"""Kafka topics as the job's source and sinks, on confluent-kafka.

- `config`: where the cluster is, the topics, librdkafka options (secrets masked).
- `client`: the error policy of a client.
- `keys`: the Kafka key of each record (events by item, automation by what it names).
- `admin`: look up, create and delete the job's topics.
- `source`: the events and automation topics as a Bytewax source; `read_topic`.
- `sink`: topics as Bytewax sinks through one idempotent producer per worker;
  `produce_records`.

Every public name is importable from `connectors.kafka` itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connectors.summary import Summary, SummarySink, print_line, progress_line
from connectors.tombstones import tombstone_record

if TYPE_CHECKING:
    from connectors.kafka.admin import (
        TopicPlan,
        admin_client,
        create_topics,
        delete_topics,
        is_compacted,
        reach,
        topic_partitions,
        topic_plans,
    )
    from connectors.kafka.client import METADATA_TIMEOUT_S, ClientErrors, KafkaMessage, consume
    from connectors.kafka.config import (
        DEFAULT_BATCH_SIZE,
        MASK,
        SECRET_MARKERS,
        KafkaSettings,
        Topics,
        is_secret,
        masked,
    )
    from connectors.kafka.keys import automation_key, event_key, per_item_copies, record_key
    from connectors.kafka.sink import (
        KafkaSink,
        KafkaSinkPartition,
        Produced,
        Producers,
        WorkerProducer,
        produce_records,
    )
    from connectors.kafka.source import (
        BEHIND_WAIT,
        IDLE_WAIT,
        AutomationPartition,
        EventsPartition,
        KafkaSource,
        Reading,
        caught_up_marker,
        read_topic,
    )

_MODULES = ("config", "admin", "client", "keys", "sink", "source")
"""Where the names of `__all__` live, searched in this order when a name is first asked
for, a module imported only when the ones before it lack the name: the command line
reads `config`'s defaults without loading confluent-kafka, which only a command that
talks to Kafka needs."""


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module in _MODULES:
            home = importlib.import_module(f"{__name__}.{module}")
            if hasattr(home, name):
                value = getattr(home, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PeriodicSummarySink(SummarySink):
    """The summary sink with progress lines, in the argument order it had here before."""

    def __init__(
        self,
        interval: float,
        progress: Callable[[str], None] = print_line,
        final: Callable[[Summary], None] | None = None,
    ) -> None:
        super().__init__(final, progress, interval)


__all__ = [
    "BEHIND_WAIT",
    "DEFAULT_BATCH_SIZE",
    "IDLE_WAIT",
    "MASK",
    "METADATA_TIMEOUT_S",
    "SECRET_MARKERS",
    "AutomationPartition",
    "ClientErrors",
    "EventsPartition",
    "KafkaMessage",
    "KafkaSettings",
    "KafkaSink",
    "KafkaSinkPartition",
    "KafkaSource",
    "PeriodicSummarySink",
    "Produced",
    "Producers",
    "Reading",
    "TopicPlan",
    "Topics",
    "WorkerProducer",
    "admin_client",
    "automation_key",
    "caught_up_marker",
    "consume",
    "create_topics",
    "delete_topics",
    "event_key",
    "is_compacted",
    "is_secret",
    "masked",
    "per_item_copies",
    "print_line",
    "produce_records",
    "progress_line",
    "reach",
    "read_topic",
    "record_key",
    "tombstone_record",
    "topic_partitions",
    "topic_plans",
]
