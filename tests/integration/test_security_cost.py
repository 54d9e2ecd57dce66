"""Security changes who may do what, never what comes out: the reference simulation (AAPL, AMZN,
SAP, 2024-01-02 + 180 trading days) gives byte-identical files on the secured stack and on a
scratch stack without any authentication.

The baselines arena is compared: a scratch stack has no MLflow server, so it cannot serve the
teams' registry models (their serving as the read-only reader is proven in test_security.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from redblue import stack
from redblue.app.simulate import SimulationRequest, simulate
from redblue.core.arena import load_arena
from redblue.core.settings import Settings
from redblue.stack.scratch import scratch_settings
from tests.factories import BASELINES

pytestmark = pytest.mark.integration

FILES = ("forecasts.csv", "orders.csv", "fills.csv", "equity.csv", "summary.json")


@pytest.fixture
def plain(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A scratch Kafka and Redis without authentication, stopped at the end."""
    found = scratch_settings(settings, tmp_path_factory.mktemp("plain"), security=False)
    found = stack.up(found, out=lambda _: None)
    try:
        yield found
    finally:
        stack.down(found, out=lambda _: None)


def test_the_reference_simulation_is_identical_with_and_without_security(
    settings: Settings, plain: Settings, run_id: str, tmp_path: Path
) -> None:
    assert settings.security and not plain.security
    arena = load_arena(BASELINES)
    outputs = {}
    for name, where in (("secured", settings), ("plain", plain)):
        req = SimulationRequest(
            date(2024, 1, 2), 180, arena, BASELINES, run_id=run_id, out=tmp_path / name, timeout=180
        )
        result = simulate(where, req, say=lambda _: None)
        assert {r["count"] for r in result.summary["series"]} == {180}  # type: ignore[index, union-attr]
        outputs[name] = {file: (tmp_path / name / file).read_bytes() for file in FILES}
    for file in FILES:
        assert outputs["secured"][file] == outputs["plain"][file], f"{file} differs"
