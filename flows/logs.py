"""The job's log: one line per notable event, as text or JSON, repeats throttled.

Notable events are start, automation caught up, snapshot, broker lost and back,
and stop; `--log-format json` writes each as one JSON object for log shippers.
A warning that repeats (librdkafka retrying a lost broker many times a second)
is said once, then at most once every `REPEAT_INTERVAL_S` seconds while it
lasts, with how many times it came meanwhile. Nothing logged here carries a
secret: Kafka options are only ever shown masked (`connectors.kafka.masked`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.summary import Summary

ROOT = "crm_triggers"
FORMATS = ("text", "json")
REPEAT_INTERVAL_S = 10.0
"""A repeated warning is said at most once in this many seconds while it lasts."""

log = logging.getLogger(f"{ROOT}.job")

_NUMBERS = re.compile(r"\d+")


class Throttle(logging.Filter):
    """Lets a warning through once, then once per `interval` while it keeps coming.

    Messages that differ only in their numbers (times, offsets, broker ids) count
    as one. The line that ends a quiet spell says how many were held back.
    """

    def __init__(self, interval: float = REPEAT_INTERVAL_S) -> None:
        super().__init__()
        self.interval = interval
        self.seen: dict[str, list[float]] = {}  # key: [last shown, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = record.name + ":" + _NUMBERS.sub("#", record.getMessage())
        now = time.monotonic()
        entry = self.seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        if entry is not None and entry[1]:
            held, since = int(entry[1]), now - entry[0]
            record.msg = f"{record.getMessage()} (and {held} more like it in {since:.0f} s)"
            record.args = ()
        if len(self.seen) > 1000:
            self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.interval}
        self.seen[key] = [now, 0]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged (not when it was set up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(log_format: str = "text", level: int = logging.INFO) -> logging.Handler:
    """Send the project's log (and librdkafka's, through it) to stderr in `log_format`."""
    handler = StderrHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(Throttle())
    root = logging.getLogger(ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler


def notable(event: str, message: str, **fields: Any) -> None:
    """Log one notable event of the job (`start`, `caught_up`, `snapshot`, `stop`, ...)."""
    log.info(message, extra={"event": event, "fields": fields})


def progress_log(line: str) -> None:
    """The running counts of a live job, as a log line (JSON with `--log-format json`)."""
    logging.getLogger(f"{ROOT}.progress").info(line, extra={"event": "progress"})


def summary_log(summary: Summary) -> None:
    """The final summary of a live job as one log event (with `--log-format json`)."""
    counts = {key: value for key, value in sorted(summary.counts.items()) if value}
    notable(
        "summary",
        f"events read {summary.events_read}, transitions {summary.counts['transition']}, "
        f"dead letters {sum(summary.dead_letters.values())}",
        counts=counts,
        seconds=round(summary.seconds, 3),
        balanced=summary.balanced(),
    )
