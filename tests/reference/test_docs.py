"""The figures that docs/decisions.md states are those the tests and the oracle use."""

from __future__ import annotations

import re
from pathlib import Path

from tests.state.test_native import EDGE_LINES

from .oracle import ECHO_WINDOW, SEEN_WINDOW

DECISIONS = (Path(__file__).resolve().parents[2] / "docs" / "decisions.md").read_text()


def test_the_number_of_raw_edge_cases_is_the_one_tested() -> None:
    stated = re.findall(r"(\d+) raw edge cases", DECISIONS)
    assert stated == [str(len(EDGE_LINES))]


def test_the_oracle_windows_are_the_documented_ones() -> None:
    """A change of the windows in the docs is a change of `oracle.SEEN_WINDOW`/`ECHO_WINDOW`."""
    assert re.findall(r"last (\d+) transitions \(`ECHO_WINDOW`\)", DECISIONS) == [str(ECHO_WINDOW)]
    assert re.findall(r"for the last (\d+) events\s+\(`--seen-window`", DECISIONS) == [
        str(SEEN_WINDOW)
    ]
