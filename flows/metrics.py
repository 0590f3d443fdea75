"""What an operator sees of a running job: Prometheus metrics and health on one port.

`crm-triggers run --metrics-port PORT` serves `/metrics` (Prometheus text),
`/healthz` (liveness: the workers' last cycle is recent) and `/readyz`
(readiness: live, and the automation topic was read to its end, so events are
being decided). Counts come from the tallies the summary already adds up (one
update per batch, not per record); lag, items held and snapshots are sampled
at the end of each epoch; latency from one transition per written batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from connectors.summary import DECIDED_REASONS
from flows.logs import notable
from state.errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

STALL_AFTER_S = 60.0
"""Liveness fails when no worker cycle ran for this long (a stuck job is restarted)."""

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Families:
    """The job's Prometheus metrics, in one registry."""

    def __init__(self, registry: CollectorRegistry, items_held: Callable[[], float]) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Gauge, Histogram

        self.registry = registry
        r = registry
        self.records_read = PromCounter(
            "crm_triggers_records_read", "Records read, by topic", ["topic"], registry=r
        )
        self.records_written = PromCounter(
            "crm_triggers_records_written",
            "Records written, by output (transitions, dead_letters, history)",
            ["output"],
            registry=r,
        )
        self.decisions = PromCounter(
            "crm_triggers_decisions",
            "Outcomes of (event, item) decisions: moved, a no-move reason, or dead_letter",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = PromCounter(
            "crm_triggers_dead_letters",
            "Dead letters by input (events, automation) and code",
            ["input", "code"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "crm_triggers_consumer_lag",
            "Records behind the end of each partition (sampled once per epoch)",
            ["topic", "partition"],
            registry=r,
        )
        self.items_held = Gauge(
            "crm_triggers_items_held",
            "Items whose state the job keeps (sampled per epoch)",
            registry=r,
        )
        self.items_held.set_function(items_held)
        self.snapshot_seconds = Histogram(
            "crm_triggers_snapshot_seconds",
            "Time to serialise one key group's state for a snapshot",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.snapshot_bytes = PromCounter(
            "crm_triggers_snapshot_bytes", "Bytes of state written to snapshots", registry=r
        )
        self.latency = Histogram(
            "crm_triggers_end_to_end_latency_seconds",
            "Event time (occurred_at) to the write of its transition, one transition per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.caught_up = Gauge(
            "crm_triggers_automation_caught_up",
            "1 once the automation topic was read to its end and events are decided",
            registry=r,
        )
        self.last_cycle = Gauge(
            "crm_triggers_last_cycle_timestamp_seconds",
            "Unix time of the latest worker cycle (a source poll)",
            registry=r,
        )


class JobMetrics:
    """The job's metrics, in a registry of its own (tests make as many as they like).

    The Prometheus metrics are made when first fed or read: a replay, which only
    samples the items it holds, never loads the Prometheus client.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = registry
        self._families: Families | None = None
        self._making = threading.Lock()
        self._cycle = time.monotonic()
        self._caught_up = False
        self._items: dict[int, int] = {}
        self._topics = {"events_read": "events", "automation_read": "automation"}
        self._targets: dict[str, list[Any]] = {}
        self._unlogged: list[float] = [0, 0, 0.0]  # groups, bytes, seconds since the last line

    @property
    def families(self) -> Families:
        """The Prometheus metrics, made once by whichever thread first feeds or reads them."""
        made = self._families
        if made is None:
            with self._making:
                if self._families is None:
                    from prometheus_client import CollectorRegistry

                    registry = self._registry or CollectorRegistry()
                    self._families = Families(registry, lambda: sum(self._items.values()))
                made = self._families
        return made

    @property
    def registry(self) -> CollectorRegistry:
        return self.families.registry

    # Fed by the job ---------------------------------------------------------------------

    def name_topics(self, events: str, automation: str) -> None:
        self._topics = {"events_read": events, "automation_read": automation}
        self._targets.clear()

    def add_tally(self, tally: Counter[str]) -> None:
        """Counts of decisions (the summary sink's tallies, merged per batch it gets)."""
        for key, value in tally.items():
            if not value:
                continue
            targets = self._targets.get(key)
            if targets is None:
                targets = self._targets[key] = self._targets_of(key)
            for child in targets:
                child.inc(value)
            if key == "automation_caught_up":
                self.automation_caught_up()

    def _targets_of(self, key: str) -> list[Any]:
        """The metric children a tally key adds to (looked up once per key: labels() is slow)."""
        if key in self._topics:
            return [self.families.records_read.labels(self._topics[key])]
        if key == "transition":
            return [
                self.families.records_written.labels("transitions"),
                self.families.decisions.labels("moved"),
            ]
        if key == "history":
            return [self.families.records_written.labels("history")]
        if key in DECIDED_REASONS:
            return [self.families.decisions.labels(key)]
        if key.startswith("dlq."):
            return [
                self.families.dead_letters.labels("events", key[4:]),
                self.families.decisions.labels("dead_letter"),
                self.families.records_written.labels("dead_letters"),
            ]
        if key.startswith("automation_dlq."):
            return [
                self.families.dead_letters.labels("automation", key[15:]),
                self.families.records_written.labels("dead_letters"),
            ]
        return []

    def automation_caught_up(self) -> None:
        """Events are decided from now on (a key group of this process saw the marker)."""
        self.families.caught_up.set(1)
        self._caught_up = True

    def cycle(self) -> None:
        """A worker polled its source: the job is alive (called every cycle: kept cheap)."""
        self._cycle = time.monotonic()

    def partition_lag(self, topic: str, partition: int, lag: int) -> None:
        self.families.consumer_lag.labels(topic, str(partition)).set(max(lag, 0))

    def group_items(self, group: int, items: int) -> None:
        self._items[group] = items  # read at a scrape

    def snapshot_taken(self, size: int, seconds: float) -> None:
        self.families.snapshot_seconds.observe(seconds)
        self.families.snapshot_bytes.inc(size)
        self._unlogged[0] += 1
        self._unlogged[1] += size
        self._unlogged[2] += seconds

    def log_snapshot(self) -> None:
        """One log line for the key groups snapshotted since the last (once per epoch)."""
        groups, size, seconds = self._unlogged
        if not groups:
            return
        self._unlogged = [0, 0, 0.0]
        notable(
            "snapshot",
            f"snapshot: {int(groups)} key groups, {int(size):,} bytes in {seconds:.3f} s",
            groups=int(groups),
            bytes=int(size),
            seconds=round(seconds, 4),
        )

    def transitions_written(self, lines: Iterable[bytes]) -> None:
        """The latency of the last transition of a written batch (one per batch: cheap)."""
        last = None
        for last in lines:  # noqa: B007
            pass
        if last is None:
            return
        try:
            at = orjson.loads(last)["event"]["occurred_at"]
            self.families.latency.observe(
                max(0.0, time.time() - datetime.fromisoformat(at).timestamp())
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return

    # Read by the orchestrator -----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        stalled = time.monotonic() - self._cycle
        self.families.last_cycle.set(time.time() - stalled)
        live = stalled < STALL_AFTER_S
        return {
            "live": live,
            "ready": live and self._caught_up,
            "last_cycle_s": round(stalled, 3),
        }


def wsgi_app(metrics: JobMetrics) -> Callable[..., Iterable[bytes]]:
    """`/healthz` and `/readyz` (200 or 503 with a JSON body); anything else: the metrics."""
    from prometheus_client import make_wsgi_app

    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            health = metrics.health()
            ok = health["live"] if path == "/healthz" else health["ready"]
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(health).encode()]
        return prometheus(environ, start_response)

    return app


def serve(metrics: JobMetrics, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """Serve metrics and health on `port` from a daemon thread; ConfigError if it is taken."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not a notable event

    try:
        server = make_server(host, port, wsgi_app(metrics), Server, handler_class=QuietHandler)
    except OSError as bad:
        raise ConfigError(f"--metrics-port {port}: cannot listen: {bad.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server


JOB = JobMetrics()
"""The metrics of the job this process runs (`crm-triggers run`)."""
