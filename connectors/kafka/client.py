"""How the job talks to a Kafka cluster: where it is, librdkafka options, and errors.

`KafkaSettings` carries the brokers and librdkafka options passed straight
through (SASL, TLS, ids); the consumer and producer configurations add the
settings the job's guarantees rest on. `ClientErrors` is the error policy of a
client: transient errors are logged, permanent ones kept to be raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
)

from state.errors import SourceError

log = logging.getLogger("crm_triggers.kafka")
librdkafka_log = logging.getLogger("crm_triggers.librdkafka")
"""librdkafka's own log lines go through Python's logging (throttled there), not to stderr."""


METADATA_TIMEOUT_S = 15.0
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
    # Once the local queue holds queued.min.messages (100k), librdkafka postpones the next
    # fetch by this long (default 1000 ms): a reader faster than that idles most of each
    # second (one partition read at 100k records/s, 250k with 10 ms). Memory is unchanged:
    # the queue's bounds are.
    "fetch.queue.backoff.ms": 10,
}
_PERMANENT_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


_CONNECTION_ERRORS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})
"""Errors that mean the brokers cannot be reached (yet): the client retries on its own."""


class KafkaMessage(Protocol):
    """What the job reads of a confluent-kafka `Message` (which Python code cannot build)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


def consume(consumer: Consumer, count: int, timeout: float) -> list[KafkaMessage]:
    return cast(list[KafkaMessage], consumer.consume(count, timeout))


# Settings -------------------------------------------------------------------------------


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


# Errors of a client ---------------------------------------------------------------------


class ClientErrors:
    """librdkafka's client-level errors: transient ones logged, permanent ones kept to raise."""

    def __init__(self, client: str, kind: type[Exception] = SourceError) -> None:
        self.client = client
        self.kind = kind
        self.permanent: KafkaError | None = None
        self.lost_since: float | None = None
        self.errors_while_lost = 0

    def __call__(self, error: KafkaError) -> None:
        if error.fatal() or error.code() in _PERMANENT_ERRORS:
            self.permanent = self.permanent or error
            log.error("%s: %s", self.client, error.str())
            return
        if error.code() in _CONNECTION_ERRORS:
            if self.lost_since is None:
                self.lost_since = time.monotonic()
                self.errors_while_lost = 0
                log.warning(
                    "%s: broker lost: %s (retrying)",
                    self.client,
                    error.str(),
                    extra={"event": "broker_lost", "fields": {"client": self.client}},
                )
            self.errors_while_lost += 1
            return
        log.warning("%s: %s (retrying)", self.client, error.str())

    def recovered(self) -> None:
        """The client read or delivered again: say once that the broker is back."""
        if self.lost_since is None:
            return
        lost = time.monotonic() - self.lost_since
        self.lost_since = None
        log.warning(
            "%s: broker back after %.1f s (%d connection errors meanwhile)",
            self.client,
            lost,
            self.errors_while_lost,
            extra={
                "event": "broker_back",
                "fields": {"client": self.client, "lost_s": round(lost, 1)},
            },
        )

    def raise_permanent(self) -> None:
        if self.permanent is not None:
            raise self.kind(f"{self.client}: {self.permanent.str()}")


def message_error(error: KafkaError, where: str, offset: int) -> None:
    """Raise for a record-level error that retrying will not fix; log the others."""
    if error.code() == KafkaError._AUTO_OFFSET_RESET:
        raise SourceError(
            f"{where}: offset {offset} is out of range ({error.str()}): the records were "
            "deleted by retention before the job read them. To skip to what is left, run "
            "with --kafka-option auto.offset.reset=earliest"
        )
    if error.fatal() or not error.retriable():
        raise SourceError(f"{where}: {error.str()}")
    log.warning("%s: %s (retrying)", where, error.str())
