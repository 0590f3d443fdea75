"""Two processes (a Bytewax cluster) against the real broker, on a log with multi-item
events: the transitions a replay writes, item by item, byte for byte. Multi-item events
go in as they are (one partition: every item's events in one order) or as one copy per
item (`produce --per-item`: four partitions, each item's events in its own)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import KafkaSettings, Topics, per_item_copies, produce_records
from tests.conftest import Replay
from tests.integration.conftest import (
    FINAL_EVENTS,
    StartJob,
    produce_lines,
    read_all,
    read_json,
)
from tests.integration.test_recovery_breadth import Cluster
from tests.integration.test_stop_and_faults import free_port, get
from tests.reference.randlog import random_scenario

pytestmark = pytest.mark.integration


def produce_events(kafka: KafkaSettings, topic: str, lines: list[bytes], copies: bool) -> None:
    if copies:
        produce_records(kafka, topic, (c for line in lines for c in per_item_copies(line)))
    else:
        produce_lines(kafka, topic, lines)


def per_item(lines: list[bytes]) -> dict[str, list[bytes]]:
    """Transition lines by item, in order, each id once (a repeat must be identical)."""
    out: defaultdict[str, list[bytes]] = defaultdict(list)
    first: dict[str, bytes] = {}
    for line in lines:
        move = orjson.loads(line)
        if move["id"] in first:
            assert first[move["id"]] == line, move["id"]
            continue
        first[move["id"]] = line
        item = move["item"]
        out[f"{move['tenant']}/{item['entity']}/{item['id']}"].append(line)
    return dict(out)


def written(kafka: KafkaSettings, topics: Topics) -> list[bytes]:
    return [message.value() for message in read_all(kafka, topics.transitions)]


def scenario() -> tuple[list[bytes], list[bytes]]:
    automation, events = random_scenario(31, n_events=6000, n_items=600)
    assert sum(b'"items":' in line for line in events) > 100
    return automation, events


DECIDE_IN = pytest.mark.parametrize("decide_in", ["groups", "partitions"])


@DECIDE_IN
@pytest.mark.parametrize(
    "copies, partitions",
    [pytest.param(False, 1, id="as they are, 1 partition"), pytest.param(True, 4, id="copies")],
)
def test_two_processes_write_what_a_replay_writes(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    replay: Replay,
    copies: bool,
    partitions: int,
    decide_in: str,
) -> None:
    automation, events = scenario()
    topics = make_topics(partitions=partitions)
    produce_lines(kafka, topics.automation, automation)
    produce_events(kafka, topics.events, events, copies)

    options = ["--key-groups", "16", "--batch-size", "200", "--decide-in", decide_in]
    cluster = Cluster(start_job, topics, 2, *options)
    cluster.start(until_end=True)
    cluster.finish()

    expected = per_item(replay(automation, events, key_groups=16).out.splitlines())
    assert sum(map(len, expected.values())) > 200
    assert per_item(written(kafka, topics)) == expected


@DECIDE_IN
def test_sigkill_of_one_process_of_two_and_a_restart_of_both(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    replay: Replay,
    tmp_path: Path,
    decide_in: str,
) -> None:
    automation, events = scenario()
    topics = make_topics(partitions=4)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery), "2"],
        check=True,
        capture_output=True,
    )
    options = [
        *("--recovery-dir", str(recovery), "--key-groups", "16", "--batch-size", "100"),
        *("--decide-in", decide_in),
    ]
    produce_lines(kafka, topics.automation, automation)
    first, rest = events[: len(events) // 2], events[len(events) // 2 :]
    produce_events(kafka, topics.events, first, copies=True)

    cluster = Cluster(start_job, topics, 2, *options)
    cluster.start()
    cluster.wait_until_up()
    cluster.jobs[0].wait_until(lambda c: c["transitions"] > 0)
    time.sleep(2.5)  # a couple of 1 s epochs: their snapshots are committed
    produce_events(kafka, topics.events, rest, copies=True)
    cluster.jobs[1].kill()  # most likely while the cluster reads `rest`
    survivor = cluster.jobs[0]
    try:
        survivor.process.wait(30)  # a cluster does not run on without one of its processes
    except subprocess.TimeoutExpired:
        survivor.kill()
    assert survivor.process.returncode != 0

    cluster.start(until_end=True)
    logs = cluster.finish()

    expected = per_item(replay(automation, events, key_groups=16).out.splitlines())
    assert per_item(written(kafka, topics)) == expected
    # the restart resumed from the snapshots rather than reading everything again
    copies = sum(len(per_item_copies(line)) for line in events)
    read_last = sum(int(n) for log in logs for n in FINAL_EVENTS.findall(log))
    assert 0 < read_last < copies, logs


def test_deciding_in_partitions_an_event_naming_several_items_is_a_dead_letter(
    kafka: KafkaSettings, make_topics: Any, start_job: StartJob, replay: Replay
) -> None:
    automation, events = scenario()
    several = [line for line in events if b'"items":' in line and len(per_item_copies(line)) > 1]
    topics = make_topics(partitions=4)
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, events)

    start_job(topics, "--decide-in", "partitions", until_end=True).finish()

    letters = [d for d in read_json(kafka, topics.dead_letters) if "copy per item" in d["message"]]
    assert sorted(d["record"].encode() for d in letters) == sorted(several)
    assert {d["code"] for d in letters} == {"invalid_record"}
    # every other event is decided as a replay of the log without them decides it
    kept = [line for line in events if line not in set(several)]
    expected = per_item(replay(automation, kept).out.splitlines())
    assert per_item(written(kafka, topics)) == expected


@pytest.mark.parametrize("first, then", [("groups", "partitions"), ("partitions", "groups")])
def test_a_recovery_store_of_the_other_placement_is_refused(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    tmp_path: Path,
    first: str,
    then: str,
) -> None:
    automation, events = scenario()
    topics = make_topics(partitions=2)
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, [line for line in events if b'"items":' not in line])
    recovery = ["--recovery-dir", str(tmp_path / "recovery")]

    start_job(topics, *recovery, "--decide-in", first, until_end=True).finish()
    refused = start_job(topics, *recovery, "--decide-in", then, until_end=True)

    assert refused.process.wait(60) == 2
    output = refused.output()
    assert f"was written by the job with --decide-in {first}" in output
    assert "Traceback" not in output


def test_deciding_in_partitions_a_sigterm_stops_cleanly_with_metrics_served_meanwhile(
    kafka: KafkaSettings,
    make_topics: Any,
    start_job: StartJob,
    replay: Replay,
    tmp_path: Path,
) -> None:
    """The partition tasks feed the metrics and stop on a signal as the key groups do: the
    last snapshot covers every event read, and a restart reads on from there."""
    automation, events = scenario()
    first, rest = events[:4000], events[4000:]
    topics = make_topics(partitions=4)
    produce_lines(kafka, topics.automation, automation)
    copies = sum(1 for line in first for _ in per_item_copies(line))
    produce_events(kafka, topics.events, first, copies=True)
    recovery = ["--recovery-dir", str(tmp_path / "recovery"), "--decide-in", "partitions"]
    port = free_port()
    job = start_job(topics, *recovery, "--metrics-port", str(port), "--snapshot-interval", "30")
    job.wait_until(lambda c: c["events_read"] >= copies)
    deadline = time.monotonic() + 30
    while (status := get(f"http://127.0.0.1:{port}/readyz")[0]) != 200:
        assert time.monotonic() < deadline, f"never ready: {status}\n{job.output()}"
        time.sleep(0.1)
    _, metrics = get(f"http://127.0.0.1:{port}/metrics")
    read_metric = f'crm_triggers_records_read_total{{topic="{topics.events}"}} {copies}.0'
    assert read_metric.encode() in metrics, metrics.decode()
    for partition in range(4):
        assert f'crm_triggers_consumer_lag{{partition="{partition}"'.encode() in metrics
    # No snapshot was due (every 30 s): only the stop writes the one that counts.
    assert job.stop() == 0
    output = job.output()
    assert "panicked" not in output and "Traceback" not in output
    assert "SIGTERM: stopping" in output
    assert job.events_read_in_total() == copies  # the final summary

    produce_events(kafka, topics.events, rest, copies=True)
    resumed = start_job(topics, *recovery, until_end=True)
    resumed.finish()
    assert resumed.events_read_in_total() == sum(
        1 for line in rest for _ in per_item_copies(line)
    )  # read on exactly where the stop left off
    expected = per_item(replay(automation, events).out.splitlines())
    assert per_item(written(kafka, topics)) == expected
