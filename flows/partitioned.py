"""The live job decided where its events are read: one task per events partition.

    Kafka events partition p ──┐
                               ├─> task p: read, decide ──> transitions, stage history,
    Kafka automation (all) ────┘   (the board of p)          dead letters ──> Kafka
                                                          └─> tallies ──────> summary

Events are keyed by item, so all of an item's events are in one partition: the
task of that partition keeps the item's state, in the partition's own snapshot
(as Kafka Streams keeps a task's state with its input partition). Every task
reads the automation topic itself (the trigger table is small) and reads no
event before it has read that topic to its end. A task writes its outputs
through its worker's producer and waits for their acknowledgement when its
snapshot is taken, so a snapshot never covers an output the broker has not got.
Nothing crosses between workers but the tallies.

An event naming several items must be written as one copy per item (`produce
--per-item`): decided in one partition, the other items' state would be split
from their own events'. With more than one events partition, such an event is
an `invalid_record` dead letter naming the fix.

With `metrics` (`--metrics-port`) the tasks feed the job's metrics as the key
groups do; once a stop is requested (`flows.stop`) every task ends as at the end
of its input: its counts handed on, its outputs acknowledged, its last snapshot
taken.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.deadletter import DeadLetter
from connectors.kafka import (
    AutomationPartition,
    EventsPartition,
    KafkaSettings,
    Producers,
    Reading,
    Topics,
    WorkerProducer,
    admin_client,
    topic_partitions,
)
from connectors.raw import AUTOMATION, AUTOMATION_CAUGHT_UP, EVENTS, RawBatch
from connectors.records import decode_event, history_json
from connectors.summary import SummarySink
from flows import metrics as job_metrics
from flows.dataflow import (
    DLQ_TALLY,
    Decisions,
    FlowSettings,
    Parcel,
    decide_parcels,
    new_board,
    without_bad_tombstones,
)
from flows.metrics import JobMetrics
from state.engine import Engine
from state.errors import ConfigError
from state.model import Rejection

FLOW = "crm_triggers"
STEP = "read_and_decide"
GROUPS_STEP = "decide"
"""The key-group job's decide step: its state in a recovery store is another shape."""

SNAPSHOT_TAG = "partition-task/1"

TALLY_EVERY_S = 0.25
"""A task hands its counts on at most this often: the summary is on one worker, and a
tally per batch would cross between processes as often as batches are read."""

TaskSnapshot = tuple[str, int, dict[int, int], bytes | None]
"""(tag, next events offset, next automation offsets, pickled board or None)."""

SEVERAL_ITEMS = Rejection(
    "invalid_record",
    "items: an event naming several items is decided where its partition is read; write it "
    "as one copy per item, keyed by that item (crm-triggers produce --per-item)",
)


class PartitionTasks(FixedPartitionedSource[Counter[str], TaskSnapshot]):
    """One task per partition of the events topic: it reads, decides and writes.

    Task 0 also reports what every task does alike: automation read, applied,
    rejected, and the caught-up marker.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Topics,
        producers: Producers,
        settings: FlowSettings,
        reading: Reading,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.producers = producers
        self.settings = settings
        self.reading = reading
        self.metrics = metrics

    def list_parts(self) -> list[str]:
        admin = admin_client(self.kafka)
        events = topic_partitions(admin, self.topics.events, self.kafka.brokers)
        topic_partitions(admin, self.topics.automation, self.kafka.brokers)
        return [f"{self.topics.events}:{p}" for p in events]

    def build_part(
        self, step_id: str, for_part: str, resume_state: TaskSnapshot | None
    ) -> PartitionTask:
        if resume_state is not None and (
            type(resume_state) is not tuple or resume_state[0] != SNAPSHOT_TAG
        ):
            raise ConfigError(
                f"the recovery store holds a state of {for_part!r} this job cannot read: "
                "start with a new --recovery-dir"
            )
        topic, _, which = for_part.rpartition(":")
        admin = admin_client(self.kafka)
        partitions = len(topic_partitions(admin, topic, self.kafka.brokers))
        automation = topic_partitions(admin, self.topics.automation, self.kafka.brokers)
        return PartitionTask(self, int(which), partitions, automation, resume_state)


class PartitionTask(StatefulSourcePartition[Counter[str], TaskSnapshot]):
    """An events partition, the automation topic, and the board of the partition's items."""

    def __init__(
        self,
        tasks: PartitionTasks,
        partition: int,
        partitions: int,
        automation_partitions: list[int],
        resume: TaskSnapshot | None,
    ) -> None:
        _, events_offset, automation_offsets, board = resume or (SNAPSHOT_TAG, None, None, None)
        self.settings = tasks.settings
        self.topics = tasks.topics
        self.partition = partition
        self.reports = partition == 0  # what every task does alike, task 0 counts
        self.one_partition = partitions == 1
        self.events = EventsPartition(
            tasks.kafka, tasks.topics.events, partition, events_offset, tasks.reading
        )
        self.metrics = tasks.metrics
        self.stop = tasks.reading.stop
        # Followed for as long as the task runs: the task's own stop ends both.
        self.automation = AutomationPartition(
            tasks.kafka,
            tasks.topics.automation,
            automation_partitions,
            automation_offsets,
            Reading(batch_size=tasks.reading.batch_size),
        )
        self.board: Engine = new_board(self.settings) if board is None else pickle.loads(board)
        # Whether to write it is this run's setting, not the snapshot's.
        self.board.write_history(history_json if self.settings.history else None)
        self.producer: WorkerProducer = tasks.producers.for_this_worker()
        self.ready = False
        self.finished = False
        self.tally: Counter[str] = Counter()
        self.tally_due = time.monotonic() + TALLY_EVERY_S

    def next_batch(self) -> list[Counter[str]]:
        if self.finished:
            raise StopIteration
        if self.stop is not None and self.stop():
            # Ends as at the end of its input: the counts not yet handed on go now.
            self.finished = True
            tally, self.tally = +self.tally, Counter()
            return [tally] if tally else []
        out = Decisions([], [], Counter())
        parcels: list[Parcel] = []
        for batch in self.automation.next_batch():
            if batch.stream == AUTOMATION_CAUGHT_UP:
                self.ready = True
                job_metrics.JOB.automation_caught_up()  # each process: its readiness
                if self.reports:
                    out.tally["automation_caught_up"] += 1
                continue
            parcels.append(self._automation_parcel(batch, out))
        if self.ready:
            try:
                events = self.events.next_batch()
            except StopIteration:  # read to its end (--until-end): stop after this batch,
                self.finished = True  # whose automation is decided and counted first
                events = []
            parcels.extend(self._events_parcel(batch, out) for batch in events)
        decided = decide_parcels(self.board, parcels, self.settings)
        decided.tally.update(out.tally)
        decided.dead_letters.extend(out.dead_letters)
        self._write(decided)
        self.tally.update(decided.tally)
        now = time.monotonic()
        if not self.tally or (now < self.tally_due and not self.finished):
            return []
        self.tally_due = now + TALLY_EVERY_S
        tally, self.tally = +self.tally, Counter()
        return [tally]

    def _automation_parcel(self, batch: RawBatch, out: Decisions) -> Parcel:
        """The batch as the parcel of a group: of group 0 (which reports) on task 0 only."""
        rejected = Decisions([], [], Counter())
        if None in batch.values:
            batch = without_bad_tombstones(batch, rejected)
        if self.reports:
            out.tally.update(rejected.tally)
            out.dead_letters.extend(rejected.dead_letters)
            out.tally[f"{AUTOMATION}_read"] += len(batch.values)
        seqs = range(batch.first_seq, batch.first_seq + len(batch.values))
        group = 0 if self.reports else 1
        return Parcel(
            group,
            AUTOMATION,
            batch.source,
            batch.partition,
            seqs,
            batch.positions,
            list(batch.values),
        )

    def _events_parcel(self, batch: RawBatch, out: Decisions) -> Parcel:
        """The batch as the parcel of the board's only group; with several partitions, an
        event naming several items is a dead letter instead."""
        values = list(batch.values)
        out.tally[f"{EVENTS}_read"] += len(values)
        if not self.one_partition:
            several = {
                index
                for index, raw in enumerate(values)
                if raw is not None and b'"items"' in raw and _names_several(raw)
            }
            for index in sorted(several):
                letter = DeadLetter(
                    SEVERAL_ITEMS.code,
                    SEVERAL_ITEMS.message,
                    values[index] or b"",
                    batch.origin(index),
                )
                out.dead_letters.append(((batch.first_seq + index, 0), letter))
                out.tally[f"{DLQ_TALLY[EVENTS]}{SEVERAL_ITEMS.code}"] += 1
            if several:
                keep = [i for i in range(len(values)) if i not in several]
                return Parcel(
                    0,
                    EVENTS,
                    batch.source,
                    batch.partition,
                    [batch.first_seq + i for i in keep],
                    [batch.positions[i] for i in keep],
                    [values[i] for i in keep],
                )
        seqs = range(batch.first_seq, batch.first_seq + len(values))
        return Parcel(0, EVENTS, batch.source, batch.partition, seqs, batch.positions, values)

    def _write(self, decided: Decisions) -> None:
        produce, topics = self.producer.produce, self.topics
        for key, (_, line) in decided.transitions:
            produce(topics.transitions, key, line)
        if self.metrics is not None and decided.transitions:
            self.metrics.transitions_written([decided.transitions[-1][1][1]])
        for key, (_, line) in decided.history:
            produce(topics.history, key, line)
        for _, letter in decided.dead_letters:
            produce(topics.dead_letters, letter.item or None, letter.to_json())
        for topic in (topics.transitions, topics.history, topics.dead_letters):
            self.producer.check(topic)

    def next_awake(self) -> datetime | None:
        if not self.ready:
            return self.automation.next_awake()
        return self.events.next_awake()

    def snapshot(self) -> TaskSnapshot:
        for topic in (self.topics.transitions, self.topics.history, self.topics.dead_letters):
            self.producer.wait(topic)
        board = None
        job_metrics.JOB.group_items(self.partition, len(self.board))  # sampled once per epoch
        if self.settings.snapshots:
            started = time.perf_counter()
            board = pickle.dumps(self.board, protocol=pickle.HIGHEST_PROTOCOL)
            job_metrics.JOB.snapshot_taken(len(board), time.perf_counter() - started)
        return (SNAPSHOT_TAG, self.events.snapshot(), self.automation.snapshot(), board)

    def close(self) -> None:
        for topic in (self.topics.transitions, self.topics.history, self.topics.dead_letters):
            self.producer.wait(topic)
        self.events.close()
        self.automation.close()


def _names_several(raw: bytes) -> bool:
    """Whether an event record names more than one item (a record that does not decode
    is left for the board, which dead-letters it with its own reason)."""
    event = decode_event(raw)
    return not isinstance(event, Rejection) and len(event.items) > 1


def tally_of(tally: Counter[str]) -> tuple[str, Counter[str]]:
    return ("summary", tally)


def build_partitioned_flow(tasks: PartitionTasks, summary: SummarySink) -> Dataflow:
    """The job in partition tasks: tallies are all that leaves them."""
    flow = Dataflow(FLOW)
    tallies = op.input(STEP, flow, tasks)
    op.output("summary", op.map("tally_of", tallies, tally_of), summary)
    return flow


def stored_steps(folder: Path) -> set[str]:
    """The steps a recovery store holds state of (Bytewax's SQLite partition files)."""
    steps: set[str] = set()
    for part in sorted(folder.glob("part-*.sqlite3")):
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
            steps.update(row[0] for row in db.execute("SELECT DISTINCT step_id FROM snaps"))
    return steps


def check_store(folder: Path, decide_in: str) -> None:
    """Refuse a recovery store written by the job deciding elsewhere: its state is of
    another shape, and resuming from a part of it would decide from the wrong offsets."""
    steps = stored_steps(folder) if folder.is_dir() else set()
    other = f"{FLOW}.{GROUPS_STEP}" if decide_in == "partitions" else f"{FLOW}.{STEP}"
    if other in steps:
        written_by = "groups" if decide_in == "partitions" else "partitions"
        raise ConfigError(
            f"--recovery-dir {str(folder)!r} was written by the job with --decide-in "
            f"{written_by}: run with --decide-in {written_by}, or start a new recovery "
            "directory (the job reads the topics again from the beginning)"
        )
