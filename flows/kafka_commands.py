"""The Kafka commands for people: `topics create`, `produce` and `tail`."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import orjson

from connectors.jsonl import expand, read_lines
from connectors.kafka import (
    create_topics,
    is_compacted,
    per_item_copies,
    produce_records,
    reach,
    read_topic,
    record_key,
    topic_plans,
)
from flows.settings import ProduceSettings, TailSettings, TopicsCreateSettings


def topics_create(settings: TopicsCreateSettings) -> int:
    from flows.stats.command import stats_topic_plans  # the statistics job's package: heavy

    plans = topic_plans(settings.topics, settings.partitions, settings.automation_partitions)
    plans += stats_topic_plans(settings.partitions, settings.stats_topic)
    for line in create_topics(settings.kafka, plans, settings.replication_factor):
        print(line)
    return 0


def produce(settings: ProduceSettings) -> int:
    reach(settings.kafka)
    records: Iterator[tuple[bytes | None, bytes | None]]
    if settings.tombstone or settings.file is None:  # one of them is given (ProduceSettings)
        records = iter([(key.encode(), None) for key in settings.tombstone])
    else:
        files = expand(settings.file)
        compacted = is_compacted(settings.kafka, settings.topic)
        lines = (line for _, _, line in read_lines(files))
        if settings.per_item and not compacted:
            records = (copy for line in lines for copy in per_item_copies(line))
        else:
            records = ((record_key(line, compacted), line) for line in lines)
    done = produce_records(settings.kafka, settings.topic, records)
    note = f" ({done.without_key} without a key)" if done.without_key else ""
    sys.stderr.write(f"crm-triggers: produced {done.records} records to {settings.topic}{note}\n")
    return 0


def describe(value: bytes | None) -> str:
    """One readable line for a transition, a stage history record or a dead letter;
    anything else as it is."""
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
    if type(record) is dict and "kind" in record and "stage" in record:
        item, event, trigger = (
            record.get("item", {}),
            record.get("event", {}),
            record.get("trigger"),
        )
        by = f"  trigger {trigger.get('id')} ({trigger.get('code')})" if trigger else ""
        return (
            f"{record.get('at')}  {record.get('tenant')}  {item.get('entity')}/{item.get('id')}  "
            f"{record.get('kind')}: {record.get('from_stage') or '-'} -> {record.get('stage')} "
            f"({record.get('semantic') or 'unknown'}){by}  event {event.get('id')} "
            f"({event.get('type')})"
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def visible(line: str) -> str:
    """The line with control characters escaped (`\\x1b`): a record cannot move the cursor,
    clear the screen or hide text in a terminal."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], line)


def tail(settings: TailSettings) -> int:
    if settings.max is not None and settings.max < 1:
        return 0
    reach(settings.kafka)
    if settings.stats and not settings.raw:
        return tail_stats(settings)
    messages = read_topic(
        settings.kafka,
        settings.stats_topic if settings.stats else settings.topic,
        from_beginning=settings.from_beginning,
        idle_timeout=settings.timeout,
    )
    for shown, message in enumerate(messages, 1):
        value = message.value()
        line = (value or b"").decode("utf-8", "replace") if settings.raw else describe(value)
        sys.stdout.write(visible(line) + "\n")
        sys.stdout.flush()
        if settings.max is not None and shown >= settings.max:
            break
    return 0


def tail_stats(settings: TailSettings) -> int:
    """`tail --stats`: each closed window as it arrives, under one header; late records
    one line each. `--max` counts window and late records."""
    from flows.stats.table import header, late_line, window_lines

    messages = read_topic(
        settings.kafka,
        settings.stats_topic,
        from_beginning=settings.from_beginning,
        idle_timeout=settings.timeout,
    )
    headed = False
    for shown, message in enumerate(messages, 1):
        try:
            record = orjson.loads(message.value() or b"null")
        except orjson.JSONDecodeError:
            record = None
        kind = record.get("kind") if type(record) is dict else None
        if kind == "window":
            lines = window_lines(record) if headed else [*header(), *window_lines(record)]
            headed = True
        elif kind == "late":
            lines = [late_line(record)]
        else:
            lines = [f"(not a stats record) {describe(message.value())}"]
        sys.stdout.write("\n".join(map(visible, lines)) + "\n")
        sys.stdout.flush()
        if settings.max is not None and shown >= settings.max:
            break
    return 0
