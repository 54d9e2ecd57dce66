"""Train one ``LudwigModel`` and predict with it; each epoch's metrics go to a callback.

Ludwig is imported inside :func:`ludwig_api` (≈20 s, ≈1.4 GB), only when a model is trained.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import LABEL

SEED = 42
# what reloads a trained model (not the checkpoints): logged with the training run
LUDWIG_MODEL_FILES = ("model_hyperparameters.json", "training_set_metadata.json", "model_weights.safetensors")

EpochSink = Callable[[int, dict[str, float]], None]


def ludwig_api() -> Any:
    """``ludwig.api``, without its progress bars.

    (Ludwig imports torchaudio, whose last release, 2.11, loads only next to a torch built for
    the same CUDA version: requirements.in pins torch 2.11 for that reason.)
    """
    import ludwig.api
    import ludwig.globals

    ludwig.globals.set_disable_progressbar(True)  # type: ignore[no-untyped-call]
    return ludwig.api


def fit(
    config: dict[str, Any], frame: pd.DataFrame, out: Path, label: str, on_epoch: EpochSink, progress: bool
) -> tuple[Any, Path]:
    """Train on ``frame`` in ``out``; ``on_epoch(epoch, metrics)`` after each epoch, from this thread.

    Returns the model and the directory of its files (:data:`LUDWIG_MODEL_FILES`).
    """
    from tqdm import tqdm

    api = ludwig_api()
    epochs = int(config.get("trainer", {}).get("epochs", 100))
    with tqdm(total=epochs, desc=label, unit="epoch", disable=not progress, file=sys.stderr) as bar:
        model = api.LudwigModel(config, logging_level=logging.ERROR, callbacks=[_callback(on_epoch, bar)])
        trained = model.train(
            dataset=frame,
            output_directory=str(out),
            skip_save_processed_input=True,
            skip_save_log=True,
            skip_save_progress=True,
            random_seed=SEED,
        )
    return model, Path(trained.output_directory) / "model"


def _callback(on_epoch: EpochSink, bar: Any) -> Any:
    """A Ludwig callback handing each epoch's metrics to ``on_epoch`` (step = epoch) and moving the bar.

    Not Ludwig's MlflowCallback: that one logs from a background thread into a stray run.
    """
    from ludwig.callbacks import Callback

    class EpochMetrics(Callback):
        def on_epoch_end(self, trainer: Any, progress_tracker: Any, save_path: str, **kwargs: Any) -> None:
            epoch = int(progress_tracker.epoch)
            metrics = epoch_metrics(progress_tracker, epoch)
            on_epoch(epoch, metrics)
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


def ludwig_predict(model: Any, frame: pd.DataFrame, tmp: Path) -> np.ndarray:
    """The model's own predictions of the label on ``frame`` (the reference for ONNX parity)."""
    predictions, _ = model.predict(dataset=frame, output_directory=str(tmp / "predict"))
    return np.asarray(predictions[f"{LABEL}_predictions"], dtype=np.float64)
