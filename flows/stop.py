"""A clean stop of the live job on SIGINT or SIGTERM.

Bytewax 0.21.1 turns a Ctrl-C into a Python `KeyboardInterrupt` raised inside a
worker: the worker panics (Rust prints the panic and a backtrace), the sinks
are not closed, no final snapshot is written and no summary printed. Here the
first signal only sets a flag; the sources read it at their next poll and end
as at the end of their input, so the dataflow finishes as a catch-up run does:
the last epoch closes, the sinks wait for the broker's acknowledgements, the
recovery store commits the final snapshot and the summary is printed (exit 0).
A second signal exits at once with 130 (the state is then that of the last
committed snapshot, as after a crash).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from flows.logs import notable

EXIT_INTERRUPTED = 130

_requested = threading.Event()


def requested() -> bool:
    """Whether a stop was asked for (the sources poll this every cycle)."""
    return _requested.is_set()


def request(signum: int, frame: Any = None) -> None:
    """The signal handler: stop cleanly at the first signal, at once at the second."""
    name = signal.Signals(signum).name
    if _requested.is_set():
        sys.stderr.write(f"crm-triggers: {name} again: stopping now, without a final snapshot\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    _requested.set()
    notable(
        "stopping",
        f"{name}: stopping: flushing outputs and writing the last snapshot (again to stop at once)",
        signal=name,
    )


def install() -> None:
    """Handle SIGINT and SIGTERM in this process (call from the main thread)."""
    _requested.clear()
    signal.signal(signal.SIGINT, request)
    signal.signal(signal.SIGTERM, request)
