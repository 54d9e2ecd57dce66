"""Train the arena's Ludwig models: one per (team, model, symbol), tracked in MLflow, served as ONNX.

For every model of kind ``ludwig`` and each of its symbols, :func:`train`

1. builds the training rows up to ``until`` (:mod:`training.dataset`) and skips the model when
   its registered ``champion`` was trained from the same config, data, ``until`` and feature
   version (:mod:`training.plan`; unless ``force``);
2. trains a ``LudwigModel`` (:mod:`training.ludwig.fit`) on a fixed, time-ordered split (the
   last 15% of the rows validate: Ludwig shuffles batches within the training days only, so no
   validation day precedes a training day), in ONE MLflow run that gets the parameters, the
   effective Ludwig config, the data range and hash, and per-epoch metrics;
3. measures validation MAE and MASE in price space against persistence, exports the served ONNX
   graph (:mod:`training.ludwig.export`), proves parity with ``LudwigModel.predict`` on the
   validation rows (metric ``parity_max_abs_diff``; above 1e-5 the run fails and nothing is
   registered), then logs, registers and crowns it ``champion``
   (:class:`~redblue.adapters.mlflow.training.TrainingRuns`).

Ludwig and MLflow are imported inside functions: importing this module costs neither.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from redblue.adapters.mlflow.training import TrainingRuns
from redblue.core import model_names as names
from redblue.core.arena import Arena
from redblue.core.bars import DATA_DIR, Row, read_rows
from redblue.core.calendar import get_calendar
from redblue.core.features import FEATURES_VERSION
from redblue.core.settings import Settings, team_mlflow_login
from training.dataset import AS_OF, VALIDATION_FRACTION, TrainingData, validation_metrics
from training.dataset import build_dataset as build_rows
from training.ludwig.export import export_onnx, sequence_inputs
from training.ludwig.fit import LUDWIG_MODEL_FILES, SEED, fit, ludwig_api, ludwig_predict
from training.plan import Job, TrainingError, contract_metadata, plan, version_tags

PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class TrainResult:
    """What happened to one model: ``trained`` now, or ``up_to_date`` (its champion was kept)."""

    team: str
    model: str
    symbol: str
    name: str  # the registered model
    status: str
    version: str
    run_id: str
    data_hash: str
    rows: int
    val_mae: float | None = None  # price space, validation days
    val_mase: float | None = None  # val_mae / persistence MAE on the same days
    parity_max_abs_diff: float | None = None
    train_seconds: float = 0.0
    export_seconds: float = 0.0
    onnx_bytes: int = 0


def train(
    arena: Arena,
    settings: Settings,
    until: date,
    only: str | None = None,
    data_dir: Path = DATA_DIR,
    force: bool = False,
    progress: bool = True,
) -> list[TrainResult]:
    """Train what is missing or out of date (everything with ``force``); return one result per model.

    With ``progress`` a bar per model counts its epochs on stderr. Raises :class:`TrainingError`
    (after marking the model's run FAILED) when a model cannot be trained, exported or registered.
    """
    jobs = plan(arena, only)
    team_runs: dict[str, TrainingRuns] = {}
    calendar = get_calendar(arena.calendar)
    bars: dict[str, list[Row]] = {}
    results = []
    for job in jobs:
        if job.symbol not in bars:
            bars[job.symbol] = read_rows(data_dir, job.symbol)
        data = build_rows(
            bars[job.symbol], job.lookback, until, job.train_from, sequence_inputs(job.config), calendar=calendar
        )
        name = names.registry_name(settings.registry_prefix, job.team, job.model, job.symbol)
        runs = _runs_of(settings, job.team, team_runs)
        current = runs.champion(name) if not force else None
        if current is not None and all(current.tags.get(k) == v for k, v in version_tags(job, data, until).items()):
            _say(progress, f"{job.label}: up to date ({name} version {current.version})")
            results.append(_result(job, data, name, "up_to_date", current.version, current.run_id))
            continue
        results.append(_train_one(job, data, until, name, runs, progress))
    return results


def train_versions(
    arena: Arena,
    settings: Settings,
    untils: Sequence[date],
    data_dir: Path = DATA_DIR,
    keys: Collection[tuple[str, str, str]] | None = None,
    progress: bool = True,
) -> list[tuple[date, TrainResult]]:
    """A version of every Ludwig model (or of ``keys``: ``(team, model, symbol)``) per cutoff in ``untils``.

    For simulations (walking forward, or a model without an eligible champion): each version is
    trained on the bars of ``data_dir`` up to its cutoff only and registered WITHOUT moving
    ``champion``, so a live season is not touched. A version already registered from the same
    config, data and cutoff is reused (status ``up_to_date``), so re-running a simulation trains
    nothing and serves the same versions.
    """
    jobs = [j for j in plan(arena) if keys is None or (j.team, j.model, j.symbol) in keys]
    team_runs: dict[str, TrainingRuns] = {}
    calendar = get_calendar(arena.calendar)
    bars = {symbol: read_rows(data_dir, symbol) for symbol in sorted({j.symbol for j in jobs})}
    results = []
    for job in jobs:
        name = names.registry_name(settings.registry_prefix, job.team, job.model, job.symbol)
        for until in sorted(set(untils)):
            data = build_rows(
                bars[job.symbol], job.lookback, until, job.train_from, sequence_inputs(job.config), calendar=calendar
            )
            runs = _runs_of(settings, job.team, team_runs)
            known = runs.find_version(name, version_tags(job, data, until))
            if known is not None:
                _say(progress, f"{job.label} until {until}: reusing {name} version {known.version}")
                result = _result(job, data, name, "up_to_date", known.version, known.run_id)
            else:
                result = _train_one(job, data, until, name, runs, progress, promote=False)
            results.append((until, result))
    return results


def _runs_of(settings: Settings, team: str, cache: dict[str, TrainingRuns]) -> TrainingRuns:
    """The team's training runs: each team trains as its own MLflow user, into its own experiment."""
    if team not in cache:
        cache[team] = TrainingRuns(settings, names.training_experiment(team), team_mlflow_login(settings, team))
    return cache[team]


def _train_one(
    job: Job, data: TrainingData, until: date, name: str, runs: TrainingRuns, progress: bool, promote: bool = True
) -> TrainResult:
    tags = {"redblue.kind": "training", "redblue.team": job.team, "redblue.model": job.model}
    run_id = runs.start(name, {**tags, "redblue.symbol": job.symbol})
    try:
        runs.log_params(run_id, training_params(job, data, until))
        runs.log_dict(run_id, job.config, "ludwig_config.yaml")
        proto, metrics = _fit_and_export(job, data, until, runs, run_id, progress)
        runs.log_metrics(run_id, metrics)
        if not metrics["parity_max_abs_diff"] <= PARITY_TOLERANCE:
            raise TrainingError(
                f"{job.label}: ONNX and Ludwig predictions differ by {metrics['parity_max_abs_diff']:.3g} "
                f"> {PARITY_TOLERANCE}; nothing registered (run {run_id})"
            )
        metadata, version_tag = contract_metadata(job, until, data.data_hash), version_tags(job, data, until)
        version = runs.publish(run_id, proto, name, job.lookback, metadata, version_tag, promote)
    except BaseException:
        runs.fail(run_id)
        raise
    _say(
        progress,
        f"{job.label}: {name} version {version}, validation MAE {metrics['val_mae']:.4f} "
        f"MASE {metrics['val_mase']:.3f}, parity {metrics['parity_max_abs_diff']:.1e}, "
        f"{metrics['train_seconds']:.1f} s training",
    )
    return _result(job, data, name, "trained", version, run_id, metrics)


def _fit_and_export(
    job: Job, data: TrainingData, until: date, runs: TrainingRuns, run_id: str, progress: bool
) -> tuple[Any, dict[str, float]]:
    """Train in a temporary directory, export, check parity; log the Ludwig model files. Returns ONNX and metrics."""
    from redblue.adapters.onnx import onnx_predict  # ONNX Runtime only once a model is trained

    ludwig_api()  # imported before the clock starts

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        runs.log_metrics(run_id, metrics, step=epoch)

    with tempfile.TemporaryDirectory(prefix="redblue-ludwig-") as tmp:
        started = time.perf_counter()
        ludwig_model, model_dir = fit(job.config, data.frame, Path(tmp), job.label, on_epoch, progress)
        train_seconds = time.perf_counter() - started
        predicted = ludwig_predict(ludwig_model, data.validation, Path(tmp))
        started = time.perf_counter()
        proto = export_onnx(ludwig_model, job.lookback, contract_metadata(job, until, data.data_hash))
        export_seconds = time.perf_counter() - started
        served = onnx_predict(proto, data.matrix(data.validation))
        runs.log_files(run_id, [model_dir / file for file in LUDWIG_MODEL_FILES], "ludwig_model")
    metrics = validation_metrics(data.validation, predicted)
    metrics.update(
        parity_max_abs_diff=float(np.max(np.abs(served - predicted))),
        train_seconds=train_seconds,
        export_seconds=export_seconds,
        onnx_bytes=float(proto.ByteSize()),
    )
    return proto, metrics


def training_params(job: Job, data: TrainingData, until: date) -> dict[str, object]:
    """The MLflow parameters of a training run: what it was trained from, and how."""
    return {
        "team": job.team,
        "model": job.model,
        "symbol": job.symbol,
        "config": str(job.config_path),
        "config_hash": job.config_hash,
        "lookback": job.lookback,
        "train_from": job.train_from.isoformat(),
        "until": until.isoformat(),
        "epochs": job.config.get("trainer", {}).get("epochs", ""),
        "seed": SEED,
        "features_version": FEATURES_VERSION,
        "validation_fraction": VALIDATION_FRACTION,
        "data_first_as_of": data.first.isoformat(),
        "data_last_target": data.last_target.isoformat(),
        "data_rows": len(data.frame),
        "data_training_rows": len(data.training),
        "data_validation_rows": len(data.validation),
        "data_validation_from": data.validation[AS_OF].iloc[0].isoformat(),
        "data_hash": data.data_hash,
        "ludwig_version": importlib.metadata.version("ludwig"),
    }


def _result(
    job: Job,
    data: TrainingData,
    name: str,
    status: str,
    version: str,
    run_id: str,
    metrics: dict[str, float] | None = None,
) -> TrainResult:
    m = metrics or {}
    return TrainResult(
        *(job.team, job.model, job.symbol, name, status, version, run_id, data.data_hash, len(data.frame)),
        val_mae=m.get("val_mae"),
        val_mase=m.get("val_mase"),
        parity_max_abs_diff=m.get("parity_max_abs_diff"),
        train_seconds=m.get("train_seconds", 0.0),
        export_seconds=m.get("export_seconds", 0.0),
        onnx_bytes=int(m.get("onnx_bytes", 0)),
    )


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)
