"""Walk-forward simulations and models trained for a simulation: never the champion, never past a cutoff.

A throwaway MLflow store with a tiny Ludwig model (red/mlp on AAPL, two epochs) whose champion
was trained up to 2023-06-30; Kafka and Redis are the stack's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import mlflow
import pytest

from processors.pins import CutoffError
from redblue.adapters.kafka import read_topic
from redblue.app.provision import reset_run
from redblue.app.simulate import SimulationRequest, simulate
from redblue.core import model_names as names
from redblue.core.arena import load_arena
from redblue.core.calendar import get_calendar
from redblue.core.settings import Settings
from schemas import Forecast
from schemas.topics import FORECASTS
from tests.integration.conftest import scratch_store
from training.train import train

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # each test trains Ludwig models

ARENA = """
name: walk
symbols: [AAPL]
window: 30
baselines: [{name: persistence, kind: persistence}]
teams:
  red:
    models:
      - {name: mlp, kind: ludwig, params: {config: training/configs/red_mlp.yaml, lookback: 10, epochs: 2,
         train_from: "2021-01-04"}}
"""
CHAMPION_UNTIL = date(2023, 6, 30)
CAL = get_calendar()


@pytest.fixture(scope="module")
def store(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    home = tmp_path_factory.mktemp("walk")
    local = scratch_store(settings, home)
    path = home / "arena.yaml"
    path.write_text(ARENA)
    [result] = train(load_arena(path), local, CHAMPION_UNTIL, progress=False)
    assert (result.status, result.version) == ("trained", "1")
    yield local, path
    shutil.rmtree(home, ignore_errors=True)


def registered(settings: Settings) -> tuple[list[str], str]:
    """Every version of red/mlp AAPL, and the one ``champion`` points at."""
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    name = names.registry_name(settings.registry_prefix, "red", "mlp", "AAPL")
    versions = sorted((v.version for v in client.search_model_versions(f"name = '{name}'")), key=int)
    return versions, str(client.get_model_version_by_alias(name, names.CHAMPION).version)


def team_forecasts(settings: Settings, run: str) -> list[Forecast]:
    found = [e for e in read_topic(settings, run, FORECASTS) if isinstance(e, Forecast) and e.team == "red"]
    return sorted(found, key=lambda f: f.as_of)


def test_walking_forward_retrains_on_expanding_windows_and_serves_each_version_after_its_cutoff(
    store: tuple[Settings, Path], run_id: str, tmp_path: Path
) -> None:
    settings, path = store
    req = SimulationRequest(
        date(2024, 1, 2), 25, load_arena(path), path, run_id=run_id, out=tmp_path / "a", timeout=300, retrain_every=10
    )
    first = simulate(settings, req, say=lambda _: None)
    first_as_of = date(2023, 12, 29)
    cutoffs = [first_as_of, CAL.offset(first_as_of, 10), CAL.offset(first_as_of, 20)]
    pins = [p for p in first.summary["served"] if p["team"] == "red"]  # type: ignore[index]
    assert [p["trained_until"] for p in pins] == [c.isoformat() for c in cutoffs]
    assert [p["serve_from"] for p in pins] == [None, *(CAL.next_session(c).isoformat() for c in cutoffs[1:])]
    forecasts = team_forecasts(settings, run_id)
    assert len(forecasts) == 25
    by_version = {p["version"]: date.fromisoformat(p["trained_until"]) for p in pins}
    assert len(by_version) == 3 and "1" not in by_version  # three new versions, none of them the champion
    for f in forecasts:
        assert f.model_trained_until == by_version[f.model_version] <= f.as_of
        latest = max(c for c in cutoffs if c == first_as_of or CAL.next_session(c) <= f.as_of)
        assert f.model_trained_until == latest, f  # served from the bar after its cutoff on
    versions, champion = registered(settings)
    assert champion == "1" and len(versions) == 4

    again = simulate(settings, req.__class__(**{**req.__dict__, "out": tmp_path / "b"}), say=lambda _: None)
    assert registered(settings)[0] == versions  # nothing retrained: the same versions serve again
    assert (tmp_path / "a" / "forecasts.csv").read_bytes() == (tmp_path / "b" / "forecasts.csv").read_bytes()
    assert again.run == first.run
    reset_run(settings, run_id)


def test_a_champion_trained_too_late_is_refused_unless_the_simulation_may_train_its_own(
    store: tuple[Settings, Path], run_id: str, tmp_path: Path
) -> None:
    settings, path = store
    req = SimulationRequest(date(2023, 3, 1), 5, load_arena(path), path, run_id=run_id, out=tmp_path, timeout=300)
    with pytest.raises(
        CutoffError, match=r"red/mlp AAPL version 1 was trained on data up to 2023-06-30, after 2023-02-28"
    ):
        simulate(settings, req, say=lambda _: None)
    before, _ = registered(settings)
    result = simulate(settings, req.__class__(**{**req.__dict__, "train_missing": True}), say=lambda _: None)
    [pin] = [p for p in result.summary["served"] if p["team"] == "red"]  # type: ignore[index]
    assert pin["trained_until"] == "2023-02-28" and pin["version"] not in before
    assert {(f.model_version, f.model_trained_until) for f in team_forecasts(settings, run_id)} == {
        (pin["version"], date(2023, 2, 28))
    }
    assert registered(settings)[1] == "1"  # the champion did not move
    reset_run(settings, run_id)
