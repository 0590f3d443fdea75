"""Every flow test runs on both engines, as Bytewax's own tests run each flow under
`run_main` and `cluster_main`: the dataflow must not care which board it has."""

from __future__ import annotations

import pytest

from state import native


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest) -> str:
    """The decision engine (`--engine`) a flow test runs with."""
    if request.param == "native" and not native.available():
        pytest.skip(f"native engine: {native.problem()}")
    return str(request.param)
