"""The job's topics: look them up, create them, delete them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import (
    KafkaError,
    KafkaException,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors.kafka.client import METADATA_TIMEOUT_S
from connectors.kafka.config import KafkaSettings, Topics, masked
from state.errors import ConfigError, CrmTriggersError, SourceError


def admin_client(kafka: KafkaSettings) -> AdminClient:
    """An admin client; an unknown or invalid librdkafka option is a ConfigError."""
    try:
        return AdminClient(kafka.client_config())
    except KafkaException as bad:
        raise ConfigError(f"Kafka options {masked(kafka.options)}: {bad.args[0]}") from None


REACH_TIMEOUT_S = 5.0
"""How long a command for people waits for the cluster before it says it cannot reach it."""


def reach(kafka: KafkaSettings, timeout: float = REACH_TIMEOUT_S) -> AdminClient:
    """An admin client of a cluster that answered; ConfigError (one line) if none did."""
    admin = admin_client(kafka)
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as bad:
        error = bad.args[0]
        why = error.str() if isinstance(error, KafkaError) else str(error)
        raise ConfigError(
            f"--brokers {kafka.brokers}: cannot reach the Kafka cluster within {timeout:g} s "
            f"({why}); is it running, and is the address right?"
        ) from None
    return admin


def topic_partitions(
    admin: AdminClient, topic: str, brokers: str, kind: type[CrmTriggersError] = SourceError
) -> list[int]:
    """The partition ids of a topic; `kind` (SourceError) if it does not exist or cannot be seen."""
    try:
        metadata = admin.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    except KafkaException as bad:
        raise kind(f"cannot reach the Kafka cluster at {brokers}: {bad.args[0]}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        why = found.error.str() if found is not None and found.error is not None else "not found"
        raise kind(
            f"topic {topic!r} on {brokers}: {why}; create the topics with "
            f"`crm-triggers topics create --brokers {brokers}`"
        )
    return sorted(found.partitions)


def is_compacted(kafka: KafkaSettings, topic: str) -> bool:
    """Whether a topic keeps the latest record per key (`cleanup.policy` has `compact`)."""
    admin = admin_client(kafka)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(METADATA_TIMEOUT_S)
    except KafkaException as bad:
        raise SourceError(f"topic {topic!r} on {kafka.brokers}: {bad.args[0].str()}") from None
    policy = configs.get("cleanup.policy")
    return policy is not None and "compact" in (policy.value or "")


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_plans(topics: Topics, partitions: int, automation_partitions: int = 1) -> list[TopicPlan]:
    """The job's topics: events, transitions and stage history keyed by item, automation
    compacted.

    The automation topic has one partition by default: a trigger is checked against
    its pipeline when applied, so pipelines must stay ahead of their triggers.
    """
    return [
        TopicPlan(topics.events, partitions),
        TopicPlan(topics.automation, automation_partitions, {"cleanup.policy": "compact"}),
        TopicPlan(topics.transitions, partitions),
        TopicPlan(topics.dead_letters, partitions),
        TopicPlan(topics.history, partitions),
    ]


def create_topics(
    kafka: KafkaSettings, plans: list[TopicPlan], replication_factor: int = -1
) -> list[str]:
    """Create the topics that do not exist yet; one line per topic saying what happened."""
    admin = reach(kafka)
    futures = admin.create_topics(
        [NewTopic(p.name, p.partitions, replication_factor, config=dict(p.config)) for p in plans],
        operation_timeout=METADATA_TIMEOUT_S,
    )
    report = []
    for plan in plans:
        try:
            futures[plan.name].result()
            report.append(f"{plan.name}: created, {plan.partitions} partitions")
        except KafkaException as bad:
            error = bad.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"topic {plan.name!r}: {error.str()}") from None
            have = len(topic_partitions(admin, plan.name, kafka.brokers))
            note = "" if have == plan.partitions else f" (asked for {plan.partitions})"
            report.append(f"{plan.name}: exists, {have} partitions{note}")
    _await_metadata(admin, plans)
    return report


def _await_metadata(admin: AdminClient, plans: list[TopicPlan]) -> None:
    """Return once the broker's metadata shows every planned topic with its partitions.

    A topic is created on the controller first; a client that asks a broker for it
    right away can still be told it is unknown. Waiting here means a `run` or a
    sink started just after `topics create` finds its topics.
    """
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    waiting = {plan.name for plan in plans}
    while waiting and time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(timeout=METADATA_TIMEOUT_S)
        except KafkaException:
            return  # the callers' own look-ups report an unreachable cluster
        for name in list(waiting):
            found = metadata.topics.get(name)
            if found is not None and found.error is None and found.partitions:
                waiting.discard(name)
        if waiting:
            time.sleep(0.05)


def delete_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    admin = admin_client(kafka)  # kept alive until the futures are done
    futures = admin.delete_topics(list(names), operation_timeout=METADATA_TIMEOUT_S)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as bad:
            if bad.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
