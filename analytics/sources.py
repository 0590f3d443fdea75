"""Where the analytics read from: JSON Lines files, standard input, or a Kafka topic.

DuckDB reads files itself (`.jsonl`, `.jsonl.gz`). Standard input and topics are
first copied to a temporary `.jsonl` file, so every input is a list of paths.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.jsonl import STDIO, expand
from state.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from connectors.kafka import KafkaSettings

KAFKA_PREFIX = "kafka:"


@dataclass
class Inputs:
    """Turns the names given on the command line into local files, in order."""

    kafka: KafkaSettings | None = None
    """The cluster of kafka:TOPIC inputs (None: --brokers was not given)."""
    scratch: str | None = None

    def paths(self, name: str) -> list[str]:
        """The files `name` stands for; ConfigError if it cannot be read."""
        if name.startswith(KAFKA_PREFIX):
            return [self._topic(name[len(KAFKA_PREFIX) :])]
        if name == STDIO:
            return [self._stdin()]
        files = expand(name)
        for path in files:
            try:
                with open(path, "rb") as readable:
                    readable.read(1)
            except OSError as failed:
                raise ConfigError(f"{path}: cannot be read ({failed.strerror})") from None
        return files

    def _scratch_file(self, stem: str) -> str:
        if self.scratch is None:
            self.scratch = tempfile.mkdtemp(prefix="crm-triggers-report-")
        handle, path = tempfile.mkstemp(prefix=stem, suffix=".jsonl", dir=self.scratch)
        os.close(handle)
        return path

    def _stdin(self) -> str:
        path = self._scratch_file("stdin-")
        with open(path, "wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        return path

    def _topic(self, topic: str) -> str:
        """The topic's values from its beginning to its current end, one per line."""
        if not topic:
            raise ConfigError("kafka:TOPIC: the topic name is missing")
        if self.kafka is None:
            raise ConfigError(f"kafka:{topic}: give --brokers HOST:PORT (or CRM_TRIGGERS_BROKERS)")
        from connectors.kafka import read_topic

        path = self._scratch_file(f"topic-{topic.replace('/', '_')}-")
        try:
            with open(path, "wb") as copy:
                for message in read_topic(self.kafka, topic, from_beginning=True, until_end=True):
                    value = message.value()
                    if value is not None:
                        copy.write(value.replace(b"\n", b" ") + b"\n")
        except SourceError as unreadable:
            raise ConfigError(f"kafka:{topic}: {unreadable}") from None
        return path

    def close(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


@contextmanager
def opened_inputs(kafka: KafkaSettings | None) -> Iterator[Inputs]:
    inputs = Inputs(kafka)
    try:
        yield inputs
    finally:
        inputs.close()
