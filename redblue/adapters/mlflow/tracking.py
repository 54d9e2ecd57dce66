"""MLflow for the arena's own runs: each simulation is logged as an evaluation run.

MLflow is imported lazily (≈4.5 s): only commands that log pay for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from redblue.adapters.mlflow.auth import AsUser
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings

SIMULATIONS = "redblue-simulations"


class TrackingError(RedblueError):
    """MLflow could not be reached or refused to log."""


def ensure_experiment(client: Any, settings: Settings, name: str) -> str:
    """The id of experiment ``name``; created with its artifacts next to the local store if needed."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    remote = settings.mlflow_uri.startswith(("http://", "https://"))
    location = None if remote else (settings.stack_home / "mlflow" / "artifacts" / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def init_store(uri: str, artifacts: Path, experiment: str) -> None:
    """Create a store's tables and ``experiment``, its artifacts in ``artifacts`` (idempotent)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment, artifact_location=artifacts.as_uri())
    except MlflowException as err:
        raise TrackingError(f"cannot initialise the MLflow store at {uri}: {err}") from err


def preload() -> None:
    """Import what :func:`log_simulation` needs (e.g. in a thread while the simulation runs)."""
    import mlflow  # noqa: F401
    from mlflow.entities import Metric  # noqa: F401


def log_simulation(settings: Settings, summary: dict[str, Any], out: Path) -> str:
    """Log one simulation (parameters, every metric of its summary, its files); return the MLflow run id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client = AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), settings.mlflow_login())
        experiment = ensure_experiment(client, settings, SIMULATIONS)
        run = client.create_run(experiment, run_name=summary["run"], tags={"redblue.kind": "simulation"})
        run_id = str(run.info.run_id)
        params = {key: str(summary[key]) for key in ("run", "start", "last_target", "days", "arena")}
        params |= {"symbols": ",".join(summary["symbols"])} | served_params(summary)
        log_batches(client, run_id, params, simulation_metrics(summary))
        client.log_artifacts(run_id, str(out))
        client.set_terminated(run_id)
    except MlflowException as err:
        raise TrackingError(f"could not log the simulation to MLflow at {settings.mlflow_uri}: {err}") from err
    return run_id


def log_batches(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    """Log ``params`` and ``metrics`` in as few requests as MLflow's batch limits allow.

    Each request to an authenticating server costs a password check (tens of ms of its CPU):
    one request per value made the reference simulation's logging ~80 requests long.
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    stamp = int(time.time() * 1000)
    param_list = [Param(k, v) for k, v in params.items()]
    metric_list = [Metric(k, v, stamp, 0) for k, v in metrics.items()]
    while param_list or metric_list:
        some_params, param_list = param_list[:MAX_PARAMS_TAGS_PER_BATCH], param_list[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_METRICS_PER_BATCH - len(some_params)  # entities per request: metrics + params
        some_metrics, metric_list = metric_list[:room], metric_list[room:]
        client.log_batch(run_id, metrics=some_metrics, params=some_params)


def served_params(summary: dict[str, Any]) -> dict[str, str]:
    """The versions served, as MLflow parameters: ``version.team.model.symbol`` (walking forward:
    ``version@serve_from`` per period) and ``trained_until.team.model.symbol``."""
    versions: dict[str, list[str]] = {}
    cutoffs: dict[str, list[str]] = {}
    for pin in summary.get("served", []):
        key = f"{pin['team']}.{pin['model']}.{pin['symbol']}"
        versions.setdefault(key, []).append(pin["version"] + (f"@{pin['serve_from']}" if pin["serve_from"] else ""))
        if pin["trained_until"]:
            cutoffs.setdefault(key, []).append(pin["trained_until"])
    return {f"version.{k}": ",".join(v) for k, v in versions.items()} | {
        f"trained_until.{k}": ",".join(v) for k, v in cutoffs.items()
    }


def simulation_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics from a simulation summary: ``team.model.metric`` and ``team.metric``."""
    metrics: dict[str, float] = {}
    for row in summary["models"]:
        for key in ("mae", "rmse", "mape", "rel_mae", "mase", "direction_pct", "dm_pvalue", "direction_pvalue"):
            if row.get(key) is not None:
                metrics[f"{row['team']}.{row['model']}.{key}"] = float(row[key])
    for row in summary["teams"]:
        for key in ("pnl", "total_return", "sharpe", "max_drawdown", "trades", "commission"):
            if row.get(key) is not None:
                metrics[f"{row['team']}.{key}"] = float(row[key])
    return metrics
