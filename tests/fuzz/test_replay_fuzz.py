"""The replay under a seeded corpus of damaged lines: no crash, nothing lost, bounded
memory, and both engines writing the same bytes.

Each seed mutates about two thirds of the sample's 20,000 event lines and of its
automation records (every kind of `tests.fuzz.mutations`, in turn), then replays them
with the command line on each engine in its own process.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from state import native
from state.codes import MAX_ITEMS
from tests.fuzz.mutations import AUTOMATION_MUTATIONS, EVENT_MUTATIONS, mutate

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SEEDS = range(6)
SHARE = 0.85
"""Of the 6 x 20,000 event lines, about 102k are mutated."""
AUTOMATION_COPIES = 6
"""The sample's automation records, repeated: 270 lines per seed, most mutated."""
BASE_RSS_MB = 250
"""A replay of the sample takes about 150 MB."""
RSS_PER_BYTE = 4
"""Of input and output: the replay holds its outputs until the input ends. What bounds
the output is checked line by line: a line's dead letters are one (a record rejected
whole) or one per item, at most `MAX_ITEMS` (amplified, they took gigabytes for one
61 KB line)."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not native.available(), reason="crm_triggers_native not built"),
]


# Runs `python -m flows` and, at its exit, writes the process's own peak RSS (VmHWM, kB)
# to the file named first. The kernel's rusage of a child is no measure here: it keeps
# the high-water mark of the process it was forked from (pytest, large by the end of
# the suite) across the exec.
_PEAK_AT_EXIT = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)

def write_peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(kb)

atexit.register(write_peak)
sys.argv[0] = "flows"
runpy.run_module("flows", run_name="__main__", alter_sys=True)
"""


def _replay(engine: str, automation: Path, events: Path, out: Path) -> tuple[int, str, int]:
    """Exit status, standard error and peak RSS (kB) of one replay in its own process."""
    out.mkdir()
    command = [
        sys.executable,
        "-c",
        _PEAK_AT_EXIT,
        str(out / "peak"),
        "replay",
        "--engine",
        engine,
        "--automation",
        str(automation),
        "--events",
        str(events),
        "--out",
        str(out / "transitions.jsonl"),
        "--dlq",
        str(out / "dead-letters.jsonl"),
        # One process: its peak is the job's; with several, the first also holds the
        # others' outputs to merge them (tests/flows/test_replay_processes.py).
        "--workers",
        "1",
    ]
    with open(out / "stderr", "wb") as stderr:
        status = subprocess.call(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    return status, (out / "stderr").read_text(), int((out / "peak").read_text())


def _record(letter: dict[str, object]) -> bytes:
    text = str(letter["record"])
    return base64.b64decode(text) if letter["encoding"] == "base64" else text.encode()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_mutated_replay_is_balanced_bounded_and_the_same_on_both_engines(
    seed: int, tmp_path: Path
) -> None:
    lines = (SAMPLES / "events.jsonl").read_bytes().splitlines()
    events, kinds = mutate(lines, seed, SHARE, EVENT_MUTATIONS)
    assert min(kinds.values()) > 0, kinds
    automation_lines = (SAMPLES / "automation.jsonl").read_bytes().splitlines()
    automation, _ = mutate(automation_lines * AUTOMATION_COPIES, seed, SHARE, AUTOMATION_MUTATIONS)
    events_path, automation_path = tmp_path / "events.jsonl", tmp_path / "automation.jsonl"
    events_path.write_bytes(b"\n".join(events) + b"\n")
    automation_path.write_bytes(b"\n".join(automation) + b"\n")

    input_bytes = events_path.stat().st_size + automation_path.stat().st_size
    runs = {}
    for engine in ("native", "python"):
        status, stderr, peak_kb = _replay(engine, automation_path, events_path, tmp_path / engine)
        assert status == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "WARNING" not in stderr, stderr[-3000:]
        runs[engine] = (
            (tmp_path / engine / "transitions.jsonl").read_bytes(),
            (tmp_path / engine / "dead-letters.jsonl").read_bytes(),
            re.sub(r"time: .*", "", stderr),
        )
        written = len(runs[engine][0]) + len(runs[engine][1])
        limit_kb = BASE_RSS_MB * 1024 + RSS_PER_BYTE * (input_bytes + written) // 1024
        assert peak_kb < limit_kb, (engine, peak_kb, limit_kb)
    assert runs["native"] == runs["python"]  # transitions, dead letters and counts

    # Line by line: each dead letter carries its line's bytes exactly; a line rejected
    # whole has one dead letter, an item of a line at most one.
    transitions, dead_letters, summary = runs["native"]
    numbered = {"events.jsonl": events, "automation.jsonl": automation}
    whole: Counter[tuple[str, int]] = Counter()
    per_item: Counter[tuple[str, int, str]] = Counter()
    written_for: Counter[tuple[str, int]] = Counter()
    for raw in dead_letters.splitlines():
        letter = orjson.loads(raw)
        source = Path(letter["origin"]["file"]).name
        line = letter["origin"]["line"]
        assert _record(letter) == numbered[source][line - 1].rstrip(b"\r")
        written_for[(source, line)] += len(raw)
        if "item" in letter:
            per_item[(source, line, letter["item"])] += 1
        else:
            whole[(source, line)] += 1
    assert set(whole.values()) <= {1} and set(per_item.values()) <= {1}
    for (source, line), size in written_for.items():
        record = numbered[source][line - 1]
        assert size <= MAX_ITEMS * (6 * len(record) + 1024), (source, line, size)
    assert not {(s, n) for s, n, _ in per_item} & set(whole)
    counted = int(re.search(r"events read:\s+(\d+)", summary)[1])  # type: ignore[index]
    assert counted == sum(1 for line in events if line.strip())
    assert len(transitions.splitlines()) == int(re.search(r"transitions:\s+(\d+)", summary)[1])  # type: ignore[index]
