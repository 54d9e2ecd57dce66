"""A simulation checks every model's training cutoff before anything runs, and records what it served.

The registry is a throwaway sqlite MLflow store (the ``store`` fixture of test_registry) holding
small linear ONNX models with the serving contract's metadata; Kafka and Redis are the stack's.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import mlflow
import pytest

from processors.pins import CutoffError
from redblue.adapters.kafka import read_topic
from redblue.adapters.mlflow.tracking import log_simulation
from redblue.adapters.redis_store import RedisStore
from redblue.app.provision import reset_run
from redblue.app.simulate import SimulationRequest, default_run_id, simulate
from redblue.core.arena import load_arena
from redblue.core.settings import Settings
from schemas import Forecast
from schemas.topics import FORECASTS
from tests.integration.test_alias_switch import ARENA
from tests.integration.test_registry import PREFIX, Store, store  # noqa: F401  (fixture)
from tests.unit.test_onnx_model import contract_metadata, linear_model

pytestmark = pytest.mark.integration


def _request(tmp_path: Path, run_id: str | None, start: date) -> SimulationRequest:
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA)
    return SimulationRequest(start, 5, load_arena(path), path, run_id=run_id, out=tmp_path / "out", timeout=120)


def _local(settings: Settings, store: Store) -> Settings:  # noqa: F811
    return settings.model_copy(update={"mlflow_tracking_uri": store.uri, "registry_prefix": PREFIX})


def test_a_model_trained_on_the_simulated_days_is_refused_before_anything_runs(
    store: Store,  # noqa: F811
    settings: Settings,
    run_id: str,
    tmp_path: Path,
) -> None:
    store.register("AAPL", linear_model(metadata=contract_metadata() | {"redblue.trained_until": "2024-03-01"}))
    req = _request(tmp_path, run_id, date(2024, 3, 1))  # first as-of day 2024-02-29
    with pytest.raises(CutoffError) as err:
        simulate(_local(settings, store), req, say=lambda _: None)
    assert "red/mlp AAPL version 1 was trained on data up to 2024-03-01, after 2024-02-29" in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing ran: no output, no logs"
    with RedisStore.from_settings(settings, run_id) as board:
        assert run_id not in board.list_runs()
    later = _request(tmp_path, run_id, date(2024, 3, 4))  # first as-of day 2024-03-01: allowed
    assert simulate(_local(settings, store), later, say=lambda _: None).summary["counts"]["forecasts"] == 10  # type: ignore[index]


def test_the_versions_served_are_in_the_forecasts_the_summary_the_run_id_and_mlflow(
    store: Store,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    store.register("AAPL")  # trained until 2023-12-29
    local = _local(settings, store)
    req = _request(tmp_path, None, date(2024, 3, 1))
    result = simulate(local, req, say=lambda _: None)
    assert result.run.startswith("sim-20240301-5d-")
    served = {(p["team"], p["model"]): p for p in result.summary["served"]}  # type: ignore[index]
    assert served["red", "mlp"]["version"] == "1" and served["red", "mlp"]["trained_until"] == "2023-12-29"
    assert served["baseline", "persistence"]["version"] == "persistence-1"
    forecasts = [e for e in read_topic(local, result.run, FORECASTS) if isinstance(e, Forecast) and e.team == "red"]
    assert len(forecasts) == 5
    assert {(f.model_version, f.model_trained_until) for f in forecasts} == {("1", date(2023, 12, 29))}
    store.register("AAPL")  # a new champion: another run id
    again = simulate(local, req, say=lambda _: None)
    assert again.run != result.run
    mlflow_run = log_simulation(local, again.summary, again.out)
    params = mlflow.MlflowClient(tracking_uri=store.uri).get_run(mlflow_run).data.params
    assert params["version.red.mlp.AAPL"] == "2" and params["trained_until.red.mlp.AAPL"] == "2023-12-29"
    for run in (result.run, again.run):
        reset_run(local, run)
    assert default_run_id(req) != result.run  # the id depends on the versions
