"""MLflow for training: one run per trained model, its registration and the ``champion`` alias.

MLflow is imported inside the methods (≈4.5 s), so importing this module costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from redblue.adapters.mlflow.auth import AsUser, logged_in
from redblue.adapters.mlflow.tracking import TrackingError, ensure_experiment
from redblue.core import model_names as names
from redblue.core.credentials import Login
from redblue.core.settings import Settings


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version as training needs to see it."""

    version: str
    run_id: str
    tags: Mapping[str, str]


class TrainingRuns:
    """The training experiment of one tracking store: runs, their logs and the registry."""

    def __init__(self, settings: Settings, experiment: str = names.EXPERIMENT, login: Login | None = None) -> None:
        """``login``: the team's MLflow user (on the stack's server it may register and alias only
        ``<prefix>.<team>.…`` models, and writes only to its own experiment)."""
        import mlflow

        self._uri = settings.mlflow_uri
        self._login = login
        self._client = AsUser(mlflow.MlflowClient(tracking_uri=self._uri), login)
        self._experiment = ensure_experiment(self._client, settings, experiment)

    def champion(self, name: str) -> RegisteredVersion | None:
        """The version the ``champion`` alias of ``name`` points at, if any."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.get_model_version_by_alias(name, names.CHAMPION)
        except MlflowException:
            return None
        return RegisteredVersion(str(found.version), str(found.run_id), dict(found.tags))

    def find_version(self, name: str, tags: Mapping[str, str]) -> RegisteredVersion | None:
        """The newest registered version of ``name`` carrying all of ``tags`` (e.g. trained from the same data)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return None
        matching = [v for v in found if all(v.tags.get(k) == t for k, t in tags.items())]
        if not matching:
            return None
        best = max(matching, key=lambda v: int(v.version))
        return RegisteredVersion(str(best.version), str(best.run_id), dict(best.tags))

    def start(self, name: str, tags: Mapping[str, str]) -> str:
        """A new run named ``name`` in the training experiment; its id."""
        return str(self._client.create_run(self._experiment, run_name=name, tags=dict(tags)).info.run_id)

    def fail(self, run_id: str) -> None:
        self._client.set_terminated(run_id, "FAILED")

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        self._client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_dict(self, run_id: str, content: dict[str, Any], file: str) -> None:
        self._client.log_dict(run_id, content, file)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_files(self, run_id: str, files: Sequence[Path], folder: str) -> None:
        for file in files:
            self._client.log_artifact(run_id, str(file), folder)

    def publish(
        self,
        run_id: str,
        proto: Any,
        name: str,
        lookback: int,
        metadata: dict[str, str],
        tags: dict[str, str],
        promote: bool = True,
    ) -> str:
        """Log the ONNX model in ``run_id`` (ending the run), register it as ``name``, tag the version
        and, with ``promote``, move ``champion`` to it; return the version."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, lookback), names.INPUT_NAME)]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,), names.OUTPUT_NAME)]),
        )
        try:
            with logged_in(self._login), _tracking_uri(self._uri), mlflow.start_run(run_id=run_id):
                info = mlflow.onnx.log_model(
                    proto,
                    name="onnx",
                    signature=signature,
                    pip_requirements=mlflow.onnx.get_default_pip_requirements(),
                    save_as_external_data=False,
                    metadata=metadata,
                )
                version = mlflow.register_model(info.model_uri, name, tags=tags)
            if promote:
                self._client.set_registered_model_alias(name, names.CHAMPION, version.version)
        except MlflowException as err:
            raise TrackingError(f"could not register {name} in MLflow at {self._uri}: {err}") from err
        return str(version.version)


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) at ``uri``, restoring the process-wide URI afterwards."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield
