"""Train the arena's Ludwig models: one per (team, model, symbol), tracked in MLflow, served as ONNX.

For every model of kind ``ludwig`` and each of its symbols, :func:`train`

1. builds the training rows up to ``until`` (:mod:`training.dataset`) and skips the model when
   its registered ``champion`` was trained from the same config, data, ``until`` and feature
   version (unless ``force``);
2. trains a ``LudwigModel`` on a fixed, time-ordered split (the last 15% of the rows validate:
   Ludwig shuffles batches within the training days only, so no validation day precedes a
   training day), in ONE MLflow run that gets the parameters, the effective Ludwig config, the
   data range and hash, and per-epoch metrics logged from this thread by :class:`EpochMetrics`
   (not Ludwig's MlflowCallback, which logs from a background thread into a stray run);
3. measures validation MAE and MASE in price space against persistence, exports the served ONNX
   graph (:mod:`training.export`), proves parity with ``LudwigModel.predict`` on the validation
   rows (metric ``parity_max_abs_diff``; above 1e-5 the run fails and nothing is registered),
   logs it with ``mlflow.onnx.log_model`` in the same run, registers it as
   ``{prefix}.{team}.{model}.{symbol}``, moves the alias ``champion`` to it and tags the version.

Ludwig and MLflow are imported inside functions: importing this module costs neither.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from producers.bars import DATA_DIR, Row, read_rows
from redblue.arena import REPO_ROOT, Arena
from redblue.calendar import get_calendar
from redblue.errors import RedblueError
from redblue.settings import Settings
from training import names
from training.dataset import (
    AS_OF,
    DEFAULT_TRAIN_FROM,
    LABEL,
    SPLIT,
    VALIDATION_FRACTION,
    TrainingData,
    validation_metrics,
)
from training.dataset import build_dataset as build_rows
from training.export import export_onnx, input_layout, onnx_predict, sequence_inputs
from training.features import FEATURES_VERSION

PARITY_TOLERANCE = 1e-5
SEED = 42
LUDWIG_MODEL_FILES = ("model_hyperparameters.json", "training_set_metadata.json", "model_weights.safetensors")


class TrainingError(RedblueError):
    """A model cannot be trained, exported or registered; the message says which and why."""


@dataclass(frozen=True)
class Job:
    """One model to train: a team's Ludwig model for one symbol, with its effective config."""

    team: str
    model: str
    symbol: str
    config_path: Path  # as the arena names it: relative to the repository root
    config: dict[str, Any]  # as trained: the file, plus the epochs override and the time-ordered split
    lookback: int
    train_from: date

    @property
    def label(self) -> str:
        return f"{self.team}/{self.model} {self.symbol}"

    @property
    def config_hash(self) -> str:
        """sha256 of what the model is trained from apart from the data."""
        spec = {"config": self.config, "lookback": self.lookback, "train_from": self.train_from.isoformat()}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


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


def plan(arena: Arena, only: str | None = None) -> list[Job]:
    """Every (team, Ludwig model, symbol) of the arena, or of ``only`` (``TEAM/MODEL``)."""
    jobs: list[Job] = []
    for team, spec in arena.all_models():
        if spec.kind != names.KIND or (only is not None and only != f"{team}/{spec.name}"):
            continue
        params = spec.params
        if "config" not in params or "lookback" not in params:
            raise TrainingError(f"{team}/{spec.name}: a ludwig model needs params.config and params.lookback")
        path = Path(str(params["config"]))
        lookback = int(params["lookback"])
        config = load_config(REPO_ROOT / path, lookback, params.get("epochs"))
        train_from = date.fromisoformat(str(params.get("train_from", DEFAULT_TRAIN_FROM.isoformat())))
        jobs.extend(Job(team, spec.name, s, path, config, lookback, train_from) for s in arena.symbols_of(spec))
    if only is not None and not jobs:
        raise TrainingError(f"--only {only}: no ludwig model of that name in arena {arena.name!r} (use TEAM/MODEL)")
    return jobs


def load_config(path: Path, lookback: int, epochs: int | None = None) -> dict[str, Any]:
    """The Ludwig config as trained: ``path``, the ``epochs`` override and the time-ordered split."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TrainingError(f"cannot read Ludwig config {path}: {err}") from err
    if not isinstance(config, dict):
        raise TrainingError(f"Ludwig config {path} is not a mapping")
    input_layout(config, lookback)  # refuses what the served model could not be fed
    config.setdefault("preprocessing", {})["split"] = {"type": "fixed", "column": SPLIT}
    if epochs is not None:
        config.setdefault("trainer", {})["epochs"] = int(epochs)
    return config


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
    import mlflow

    from redblue.tracking import ensure_experiment

    jobs = plan(arena, only)
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    experiment = ensure_experiment(client, settings, names.EXPERIMENT)
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
        current = _champion(client, name) if not force else None
        if current is not None and all(current.tags.get(k) == v for k, v in version_tags(job, data, until).items()):
            _say(progress, f"{job.label}: up to date ({name} version {current.version})")
            results.append(_result(job, data, name, "up_to_date", str(current.version), str(current.run_id)))
            continue
        results.append(_train_one(job, data, until, name, client, experiment, settings, progress))
    return results


def version_tags(job: Job, data: TrainingData, until: date) -> dict[str, str]:
    """The tags of a registered version that decide whether it is up to date."""
    return {
        names.TAG_CONFIG_HASH: job.config_hash,
        names.TAG_DATA_HASH: data.data_hash,
        names.TAG_UNTIL: until.isoformat(),
        names.TAG_FEATURES_VERSION: str(FEATURES_VERSION),
        names.TAG_LOOKBACK: str(job.lookback),
    }


def _train_one(
    job: Job,
    data: TrainingData,
    until: date,
    name: str,
    client: Any,
    experiment: str,
    settings: Settings,
    progress: bool,
) -> TrainResult:
    tags = {"redblue.kind": "training", "redblue.team": job.team, "redblue.model": job.model}
    run_id = str(client.create_run(experiment, run_name=name, tags={**tags, "redblue.symbol": job.symbol}).info.run_id)
    try:
        _log_inputs(client, run_id, job, data, until)
        proto, metrics = _fit_and_export(job, data, until, client, run_id, progress)
        _log_metrics(client, run_id, metrics)
        if not metrics["parity_max_abs_diff"] <= PARITY_TOLERANCE:
            raise TrainingError(
                f"{job.label}: ONNX and Ludwig predictions differ by {metrics['parity_max_abs_diff']:.3g} "
                f"> {PARITY_TOLERANCE}; nothing registered (run {run_id})"
            )
        version = _publish(proto, job, data, until, name, run_id, settings)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    _say(
        progress,
        f"{job.label}: {name} version {version}, validation MAE {metrics['val_mae']:.4f} "
        f"MASE {metrics['val_mase']:.3f}, parity {metrics['parity_max_abs_diff']:.1e}, "
        f"{metrics['train_seconds']:.1f} s training",
    )
    return _result(job, data, name, "trained", version, run_id, metrics)


def _fit_and_export(
    job: Job, data: TrainingData, until: date, client: Any, run_id: str, progress: bool
) -> tuple[Any, dict[str, float]]:
    """Train in a temporary directory, export, check parity; log the Ludwig model files. Returns ONNX and metrics."""
    ludwig_api()  # imported before the clock starts
    with tempfile.TemporaryDirectory(prefix="redblue-ludwig-") as tmp:
        started = time.perf_counter()
        ludwig_model, model_dir = _fit(job, data, Path(tmp), client, run_id, progress)
        train_seconds = time.perf_counter() - started
        predicted = _ludwig_predict(ludwig_model, data.validation, Path(tmp))
        started = time.perf_counter()
        proto = export_onnx(ludwig_model, job.lookback, contract_metadata(job, until, data.data_hash))
        export_seconds = time.perf_counter() - started
        served = onnx_predict(proto, data.matrix(data.validation))
        for file in LUDWIG_MODEL_FILES:  # not the checkpoints: the weights suffice to reload the model
            client.log_artifact(run_id, str(model_dir / file), "ludwig_model")
    metrics = validation_metrics(data.validation, predicted)
    metrics.update(
        parity_max_abs_diff=float(np.max(np.abs(served - predicted))),
        train_seconds=train_seconds,
        export_seconds=export_seconds,
        onnx_bytes=float(proto.ByteSize()),
    )
    return proto, metrics


def _log_inputs(client: Any, run_id: str, job: Job, data: TrainingData, until: date) -> None:
    from mlflow.entities import Param

    params = {
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
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_dict(run_id, job.config, "ludwig_config.yaml")


def _log_metrics(client: Any, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def _fit(job: Job, data: TrainingData, tmp: Path, client: Any, run_id: str, progress: bool) -> tuple[Any, Path]:
    """Train ``job`` on ``data`` in ``tmp``; per-epoch metrics go to ``run_id``. Returns the model and its dir."""
    from tqdm import tqdm

    api = ludwig_api()
    epochs = int(job.config.get("trainer", {}).get("epochs", 100))
    with tqdm(total=epochs, desc=job.label, unit="epoch", disable=not progress, file=sys.stderr) as bar:
        callback = _epoch_metrics_callback(client, run_id, bar)
        model = api.LudwigModel(job.config, logging_level=logging.ERROR, callbacks=[callback])
        trained = model.train(
            dataset=data.frame,
            output_directory=str(tmp),
            skip_save_processed_input=True,
            skip_save_log=True,
            skip_save_progress=True,
            random_seed=SEED,
        )
    return model, Path(trained.output_directory) / "model"


def _epoch_metrics_callback(client: Any, run_id: str, bar: Any) -> Any:
    """A Ludwig callback that logs each epoch's metrics into ``run_id`` (step = epoch) from the training thread."""
    from ludwig.callbacks import Callback

    class EpochMetrics(Callback):
        def on_epoch_end(self, trainer: Any, progress_tracker: Any, save_path: str, **kwargs: Any) -> None:
            epoch = int(progress_tracker.epoch)
            metrics = epoch_metrics(progress_tracker, epoch)
            _log_metrics(client, run_id, metrics, step=epoch)
            bar.update(1)
            if "validation.next_return.mean_absolute_error" in metrics:
                bar.set_postfix(val_mae=f"{metrics['validation.next_return.mean_absolute_error']:.4f}")

    return EpochMetrics()


def epoch_metrics(progress_tracker: Any, epoch: int) -> dict[str, float]:
    """``{split}.{feature}.{metric}`` of the evaluation at the end of ``epoch``, and the learning rate."""
    metrics = {"learning_rate": float(progress_tracker.learning_rate)}
    tables = {"train": progress_tracker.train_metrics, "validation": progress_tracker.validation_metrics}
    for split, table in tables.items():
        for feature, by_metric in table.items():
            for metric, history in by_metric.items():
                if history and history[-1].epoch == epoch:
                    metrics[f"{split}.{feature}.{metric}"] = float(history[-1].value)
    return metrics


def _ludwig_predict(model: Any, frame: pd.DataFrame, tmp: Path) -> np.ndarray:
    predictions, _ = model.predict(dataset=frame, output_directory=str(tmp / "predict"))
    return np.asarray(predictions[f"{LABEL}_predictions"], dtype=np.float64)


def _publish(proto: Any, job: Job, data: TrainingData, until: date, name: str, run_id: str, settings: Settings) -> str:
    """Log the ONNX model in ``run_id`` (ending the run), register it, move ``champion``; return the version."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, job.lookback), names.INPUT_NAME)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,), names.OUTPUT_NAME)]),
    )
    tags = version_tags(job, data, until)
    with _tracking_uri(settings.mlflow_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(
            proto,
            name="onnx",
            signature=signature,
            pip_requirements=mlflow.onnx.get_default_pip_requirements(),
            save_as_external_data=False,
            metadata=contract_metadata(job, until, data.data_hash),
        )
        version = mlflow.register_model(info.model_uri, name, tags=tags)
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    client.set_registered_model_alias(name, names.CHAMPION, version.version)
    return str(version.version)


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) at ``uri``, restoring the process-wide URI afterwards."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def contract_metadata(job: Job, until: date, data_hash: str | None = None) -> dict[str, str]:
    """The ONNX ``metadata_props`` of the served model (the serving contract), with the training data's hash."""
    return names.onnx_metadata(job.team, job.model, job.symbol, job.lookback, FEATURES_VERSION, until, data_hash)


def _champion(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, names.CHAMPION)
    except MlflowException:
        return None


def ludwig_api() -> Any:
    """``ludwig.api``, imported only when a model is trained (≈20 s, ≈1.4 GB), without its progress bars.

    (Ludwig imports torchaudio, whose last release, 2.11, loads only next to a torch built for
    the same CUDA version: requirements.in pins torch 2.11 for that reason.)
    """
    import ludwig.api
    import ludwig.globals

    ludwig.globals.set_disable_progressbar(True)  # type: ignore[no-untyped-call]
    return ludwig.api


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
