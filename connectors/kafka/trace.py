"""A timeline of the live job, to break its latency down (docs/performance.md, "Latency").

With `CRM_TRIGGERS_TRACE=PATH` in its environment, each process of the job
writes tab-separated lines to `PATH.<pid>`, times in ms since the epoch:

    read   <time> <partition> <first offset> <last offset> <ms since the partition's last read>
    write  <time> <topic> <records handed to the producer> <ms the write took>
    wait   <time> <topic> <ms waiting for acknowledgements (end of an epoch, close)>
    gc     <time> <generation> <ms the collection took>

`scripts/bench_kafka.py latency --breakdown` sets it and joins the lines with the
events it offered. Unset (the default) the job pays one test of a module global
per batch and writes nothing.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
import time
from typing import Any, TextIO

ENV = "CRM_TRIGGERS_TRACE"

_lock = threading.Lock()
_out: TextIO | None = None


def _open() -> TextIO | None:
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        out = open(f"{path}.{os.getpid()}", "a", buffering=1 << 16)  # noqa: SIM115 (closed at exit)
    except OSError as bad:
        print(f"error: {ENV}={path}: {bad.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    atexit.register(out.close)
    gc.callbacks.append(_collected)
    return out


def _collected(phase: str, info: dict[str, Any], started: list[float] = [0.0]) -> None:  # noqa: B006
    if phase == "start":
        started[0] = time.time()
    else:
        now = time.time()
        note("gc", info.get("generation", -1), round((now - started[0]) * 1000, 2), at=now)


def note(kind: str, *fields: object, at: float | None = None) -> None:
    """Write one line of `kind` with its fields, at `at` (seconds, default now)."""
    if _out is None:
        return
    stamp = round((time.time() if at is None else at) * 1000, 2)
    line = "\t".join((kind, str(stamp), *map(str, fields))) + "\n"
    with _lock:
        _out.write(line)


_out = _open()
ON = _out is not None
"""Whether this process writes the timeline (checked once per batch by the callers)."""
