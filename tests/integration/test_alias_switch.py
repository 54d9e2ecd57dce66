"""A live worker picks up a moved ``champion`` alias without a restart; a simulation never does.

The registry is a throwaway sqlite MLflow store (the ``store`` fixture of test_registry); the
broker and Redis are the stack's. Half the bars are replayed with version 1 as champion, the
alias moves to version 2, and the second half is forecast by version 2 in a worker that follows
aliases (a live season), by version 1 in a simulation (versions pinned for the whole run).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from consumers.leaderboard import progress
from producers.replay import plan_replay, replay
from redblue.adapters.kafka import EventProducer, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.app.simulate import SimulationRequest, running_pipeline
from redblue.core.arena import load_arena
from redblue.core.bars import DATA_DIR
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.settings import Settings
from schemas import Forecast
from schemas.topics import FORECASTS
from tests.integration.test_registry import PREFIX, Store, store  # noqa: F401  (fixture)
from tests.unit.test_onnx_model import BIAS, contract_metadata, linear_model

pytestmark = pytest.mark.integration

ARENA = """
name: switch
symbols: [AAPL]
window: 30
baselines: [{name: persistence, kind: persistence}]
teams:
  red: {models: [{name: mlp, kind: ludwig}]}
"""


@pytest.mark.parametrize("live", [True, False], ids=["live-follows-the-alias", "simulation-is-pinned"])
def test_a_moved_alias_is_picked_up_live_and_never_in_a_simulation(
    store: Store,  # noqa: F811
    settings: Settings,
    run_id: str,
    tmp_path: Path,
    live: bool,
) -> None:
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA)
    arena = load_arena(path)
    local = settings.model_copy(
        update={"mlflow_tracking_uri": store.uri, "registry_prefix": PREFIX, "model_refresh_seconds": 1.0}
    )
    assert store.register("AAPL") == "1"
    req = SimulationRequest(date(2024, 3, 1), 20, arena, path, run_id=run_id, out=tmp_path, timeout=120)
    calendar = get_calendar()
    plan = plan_replay(DATA_DIR, arena.symbols, req.start, req.days, arena.window, calendar)
    half = next(i for i, r in enumerate(plan.rows) if r.date >= calendar.offset(req.start, 10))
    with running_pipeline(local, run_id, req, plan, tmp_path / "logs", follow_aliases=live) as pipeline:
        producer = EventProducer(local, run_id)
        replay(producer, plan.rows[:half], calendar, utc_now)
        _wait_for_bar(local, run_id, plan.rows[half - 1].date)
        assert store.register("AAPL", linear_model(bias=BIAS + 0.01, metadata=contract_metadata())) == "2"
        time.sleep(3 * local.model_refresh_seconds)
        replay(producer, plan.rows[half:], calendar, utc_now)
        pipeline.wait_until_complete()
    served = [e for e in read_topic(local, run_id, FORECASTS) if isinstance(e, Forecast) and e.team == "red"]
    versions = [f.model_version for f in sorted(served, key=lambda f: f.as_of)]
    assert len(versions) == 20
    if not live:
        assert versions == ["1"] * 20, "a simulation serves the version pinned at its start throughout"
        assert {f.model_trained_until for f in served} == {date(2023, 12, 29)}
        return
    assert versions == sorted(versions) and set(versions) == {"1", "2"}, versions
    # the bars of the first ten target days were replayed with version 1; the forecast made from
    # the last of them (as of day 10, for day 11) too, so version 2 made the last nine
    assert versions.count("2") == 9


def _wait_for_bar(settings: Settings, run: str, day: date, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    with RedisStore.from_settings(settings, run) as board:
        while progress(board).bars.get("AAPL", date.min) < day:
            assert time.monotonic() < deadline, f"the pipeline did not reach {day}"
            time.sleep(0.2)
