"""How the job's clients handle Kafka's errors, and what they read of a message.

`ClientErrors` is the error policy of a client: transient errors are logged,
permanent ones kept to be raised. Where the cluster is and the librdkafka
options are plain values in `connectors.kafka.config`.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
)

from state.errors import SourceError

log = logging.getLogger("crm_triggers.kafka")


METADATA_TIMEOUT_S = 15.0
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
