"""A simulation is logged to MLflow as an evaluation run with its metrics and files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import mlflow
import pytest

from redblue.adapters.mlflow.tracking import SIMULATIONS, log_simulation
from redblue.app.simulate import SimulationRequest, simulate
from redblue.core.arena import load_arena
from redblue.core.settings import Settings
from tests.factories import BASELINES

pytestmark = pytest.mark.integration


def test_simulation_is_logged_with_metrics_and_files(settings: Settings, run_id: str, tmp_path: Path) -> None:
    req = SimulationRequest(
        start=date(2024, 6, 3), days=5, arena=load_arena(BASELINES).with_symbols(("SAP",)), arena_path=BASELINES,
        run_id=run_id, out=tmp_path / "out",
    )  # fmt: skip
    result = simulate(settings, req, say=lambda _: None)
    store = Settings(
        home=tmp_path, stack_dir=tmp_path / "stack", mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    mlflow_run = log_simulation(store, result.summary, result.out)
    client = mlflow.MlflowClient(tracking_uri=store.mlflow_uri)
    logged = client.get_run(mlflow_run)
    assert client.get_experiment(logged.info.experiment_id).name == SIMULATIONS
    assert logged.data.params["run"] == run_id and logged.data.params["days"] == "5"
    assert logged.data.metrics["baseline.persistence.rel_mae"] == pytest.approx(1.0)
    assert logged.data.metrics["baseline.persistence.mase"] > 0
    assert "red.pnl" in logged.data.metrics
    files = {a.path for a in client.list_artifacts(mlflow_run)}
    assert {"forecasts.csv", "orders.csv", "fills.csv", "equity.csv", "summary.json"} <= files
