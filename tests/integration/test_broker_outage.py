"""A broker stopped and started again mid-run, on a broker of this test's own.

Never the shared broker: this one runs on two free ports of its own (given to
scripts/kafka/broker.sh as CRM_KAFKA_PORT and CRM_KAFKA_CONTROLLER_PORT) with
its data under `.cache/kafka-faults` (CRM_KAFKA_HOME), so stopping it disturbs
no other test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaSettings, Topics, create_topics, delete_topics, topic_plans
from tests.conftest import Replay
from tests.integration.conftest import BROKER_SCRIPT, REPO, StartJob, produce_lines
from tests.integration.test_crash_resume import generated
from tests.integration.test_stop_and_faults import assert_complete, free_port

pytestmark = pytest.mark.integration

OUTAGE_S = 20


class OwnBroker:
    """A broker on two free ports (or CRM_FAULTS_KAFKA_PORT and ..._CONTROLLER_PORT)."""

    def __init__(self) -> None:
        port = os.environ.get("CRM_FAULTS_KAFKA_PORT") or str(free_port())
        controller = os.environ.get("CRM_FAULTS_KAFKA_CONTROLLER_PORT") or str(free_port())
        self.env = {
            **os.environ,
            "CRM_KAFKA_PORT": port,
            "CRM_KAFKA_CONTROLLER_PORT": controller,
            "CRM_KAFKA_HOME": str(REPO / ".cache" / "kafka-faults"),
            "CRM_KAFKA_PYTHON": sys.executable,
        }
        self.address = f"127.0.0.1:{port}"

    def run(self, action: str) -> None:
        done = subprocess.run(
            ["bash", str(BROKER_SCRIPT), action], capture_output=True, text=True, env=self.env
        )
        assert done.returncode == 0, f"broker.sh {action}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def own_broker() -> Iterator[OwnBroker]:
    if (
        "java" not in os.environ.get("PATH", "")
        and subprocess.run(["sh", "-c", "command -v java"], capture_output=True).returncode
    ):
        pytest.skip("no java to run a broker of this test's own")
    broker = OwnBroker()
    broker.run("stop")  # one left by an interrupted session, on other ports
    broker.run("start")
    yield broker
    broker.run("stop")


def test_a_broker_outage_loses_nothing_and_is_said_once(
    own_broker: OwnBroker, start_job: Any, replay: Replay, tmp_path: Path
) -> None:
    kafka = KafkaSettings(own_broker.address)
    tag = f"outage-{os.urandom(6).hex()}"
    topics = Topics(f"{tag}.events", f"{tag}.automation", f"{tag}.transitions", f"{tag}.dlq")
    create_topics(kafka, topic_plans(topics, 1), replication_factor=1)
    automation, events = generated(tmp_path / "input", 30_000)
    first, rest = events[:15_000], events[15_000:]
    produce_lines(kafka, topics.automation, automation)
    produce_lines(kafka, topics.events, first)

    recovery = ["--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", "1"]
    start: StartJob = start_job
    job = start(topics, *recovery, "--brokers", own_broker.address)
    job.wait_until(lambda c: c["events_read"] >= len(first))
    lines_before = len(job.output().splitlines())

    own_broker.run("stop")
    stopped = time.monotonic()
    time.sleep(OUTAGE_S)
    own_broker.run("start")
    outage = time.monotonic() - stopped
    produce_lines(kafka, topics.events, rest)
    job.wait_until(lambda c: c["events_read"] >= len(events), timeout=120)
    assert job.stop() == 0

    log = job.output()
    during = log.splitlines()[lines_before:]
    assert any("broker lost" in line for line in during), log
    assert "Traceback" not in log and "panicked" not in log
    # Said once, then every 10 s while it lasts: a few lines per client, not thousands.
    assert len(during) < 80, "\n".join(during)
    print(f"outage of {outage:.0f} s: {len(during)} stderr lines from the stop to the end:")
    print("\n".join(during))

    reference = {t["id"]: t for t in replay(automation, events).transitions}
    repeats = assert_complete(kafka, topics.transitions, reference)
    print(f"{len(reference)} transitions, none missing, {repeats} repeated copies")
    delete_topics(kafka, topics.all())
