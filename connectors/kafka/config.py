"""Where the Kafka cluster is, the job's topics and librdkafka options: plain values.

`KafkaSettings` carries the brokers and librdkafka options passed straight
through (SASL, TLS, ids); the consumer and producer configurations add the
settings the job's guarantees rest on. Nothing here loads confluent-kafka: the
command line declares its options from these defaults without the client
library, which only the Kafka commands import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

librdkafka_log = logging.getLogger("crm_triggers.librdkafka")
"""librdkafka's own log lines go through Python's logging (throttled there), not to stderr."""

DEFAULT_BATCH_SIZE = 4096
"""Records a source partition hands the dataflow at most at once."""

SECRET_MARKERS = ("password", "secret", "key", "token", "sasl")
MASK = "***"

# A consumer never commits: where to resume is in the snapshots.
_FORCED_CONSUMER = {"enable.auto.commit": False, "enable.auto.offset.store": False}
# Settings the delivery guarantee rests on; anything else may be overridden.
_FORCED_PRODUCER = {"enable.idempotence": True, "acks": "all"}
_PRODUCER_DEFAULTS = {
    "client.id": "crm-triggers",
    "partitioner": "murmur2_random",  # the Java client's partitioner: same key, same partition
    "linger.ms": 5,
    "batch.size": 1 << 20,
    "batch.num.messages": 10_000,
}
_CONSUMER_DEFAULTS = {
    "client.id": "crm-triggers",
    "group.id": "crm-triggers",  # required by librdkafka; nothing is committed under it
    "auto.offset.reset": "error",  # a resume offset lost to retention stops the job loudly
    # Once a partition's prefetch queue holds queued.min.messages (100,000), librdkafka
    # puts off its next fetch by this long (1,000 ms by default): a worker deciding more
    # than about 100k events/s of one partition drains the queue first and then waits.
    "fetch.queue.backoff.ms": 10,
}


# Settings and topics ------------------------------------------------------------------


def is_secret(option: str) -> bool:
    """Whether a librdkafka option may hold a secret (its value is never shown)."""
    name = option.lower()
    return any(marker in name for marker in SECRET_MARKERS)


def masked(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (MASK if is_secret(k) else v) for k, v in options.items()}


@dataclass(frozen=True)
class KafkaSettings:
    """Where the cluster is, and librdkafka options passed straight through (SASL, TLS, ids).

    `repr` masks every option whose name suggests a secret, so logging this is safe.
    """

    brokers: str
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KafkaSettings(brokers={self.brokers!r}, options={masked(self.options)!r})"

    def client_config(self) -> dict[str, Any]:
        return {**self.options, "bootstrap.servers": self.brokers, "logger": librdkafka_log}

    def consumer_config(self, partition_eof: bool) -> dict[str, Any]:
        return {
            **_CONSUMER_DEFAULTS,
            **self.client_config(),
            **_FORCED_CONSUMER,
            "enable.partition.eof": partition_eof,
        }

    def producer_config(self) -> dict[str, Any]:
        return {**_PRODUCER_DEFAULTS, **self.client_config(), **_FORCED_PRODUCER}


@dataclass(frozen=True)
class Topics:
    events: str = "crm.events"
    automation: str = "crm.automation"
    transitions: str = "crm.stage-transitions"
    dead_letters: str = "crm.dead-letter"
    history: str = "crm.stage-history"

    def all(self) -> tuple[str, str, str, str, str]:
        return (self.events, self.automation, self.transitions, self.dead_letters, self.history)
