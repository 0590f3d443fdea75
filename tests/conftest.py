"""Shared fixtures: write JSON Lines inputs and run the replay flow in-process.

Hypothesis runs under the `ci` profile unless HYPOTHESIS_PROFILE names another: no
per-example deadline (a busy shared 2-core machine makes 200 ms deadlines flake), no
database, the reproducing blob printed on failure. `dev` keeps Hypothesis's deadline for
those who want to see slow examples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import cluster_main, run_main
from hypothesis import HealthCheck, settings

from connectors.summary import Summary
from flows.replay import replay_flow
from flows.settings import ReplaySettings

settings.register_profile(
    "ci",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def jsonl(lines: Iterable[Any]) -> bytes:
    """JSON Lines bytes from dicts (dumped) or bytes (kept as they are)."""
    return b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)


@dataclass
class ReplayResult:
    out: bytes
    dlq: bytes
    summary: Summary

    @property
    def transitions(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.out.splitlines()]

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.dlq.splitlines()]


Replay = Callable[..., ReplayResult]


@pytest.fixture
def replay(tmp_path: Path) -> Replay:
    """Run the replay dataflow on lists of records; `workers` > 1 runs a local cluster."""
    runs = iter(range(1_000_000))

    def run(
        automation: Iterable[Any], events: Iterable[Any], workers: int = 1, **options: Any
    ) -> ReplayResult:
        folder = tmp_path / f"run{next(runs)}"
        folder.mkdir()
        (folder / "automation.jsonl").write_bytes(jsonl(automation))
        (folder / "events.jsonl").write_bytes(jsonl(events))
        settings = ReplaySettings.build(
            {
                "automation": [str(folder / "automation.jsonl")],
                "events": [str(folder / "events.jsonl")],
                "out": str(folder / "out.jsonl"),
                "dlq": str(folder / "dlq.jsonl"),
                **options,
            }
        )
        summaries: list[Summary] = []
        flow = replay_flow(settings, summaries.append)
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
        return ReplayResult(
            (folder / "out.jsonl").read_bytes(), (folder / "dlq.jsonl").read_bytes(), summaries[0]
        )

    return run
