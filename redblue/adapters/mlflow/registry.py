"""Team models from the MLflow model registry: the only processors module that imports MLflow.

Each (team, model, symbol) is a registered model named by :func:`redblue.core.model_names.registry_name`
(``{prefix}.{team}.{model}.{symbol}``) whose alias (``champion``) points at the version to serve.
:meth:`RegistrySource.version` asks the registry where the alias points (one cheap call), so the
:class:`~processors.book.ModelBook` notices a moved alias on its next refresh;
:meth:`RegistrySource.load` fetches *that version* (by number, not by alias, so a concurrent move
cannot hand it a different one) and serves it as an :class:`~redblue.adapters.onnx.OnnxForecaster`
that carries its training cutoff (ONNX metadata ``redblue.trained_until``, which must agree with
the version's tag) and the hash of its training data (the version's ``redblue.data_hash`` tag).

MLflow's exceptions (a missing model or alias, an unreachable store, a broken artifact) become
:class:`~redblue.core.forecaster.ModelError` with the registered name and what to do about it.
For a local sqlite store, or the files of the stack's own server on this machine (``files``), the
alias and the ONNX file are read directly first (:mod:`redblue.adapters.mlflow.local_store`),
without importing MLflow; anything it cannot read is asked of MLflow (logged in as ``login``).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from redblue.adapters.mlflow import local_store
from redblue.adapters.mlflow.auth import logged_in
from redblue.adapters.onnx import OnnxForecaster
from redblue.core.arena import ModelSpec
from redblue.core.credentials import Login
from redblue.core.forecaster import ModelError
from redblue.core.model_names import CHAMPION, TAG_DATA_HASH, TAG_UNTIL, registry_name

SQLITE = "sqlite:///"


def _mlflow() -> Any:
    """MLflow, imported on first use (it takes seconds: a worker starts meanwhile)."""
    import mlflow.artifacts
    import mlflow.exceptions
    import mlflow.onnx

    return mlflow


class RegistrySource:
    """A :class:`~processors.book.ModelSource` for trained models served from the MLflow registry.

    Nothing is imported or contacted until the first :meth:`version`. The serialized ONNX of the last version
    fetched per registered name is kept, so retrying a version that failed validation does not
    download it again.
    """

    def __init__(
        self,
        tracking_uri: str,
        prefix: str,
        alias: str = CHAMPION,
        login: Login | None = None,
        files: local_store.StoreFiles | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self._files = files or local_store.StoreFiles(tracking_uri)  # read directly when they are here
        self.prefix = prefix
        self.alias = alias
        self._login = login  # serving reads: the stack's read-only ``reader``
        self._client: Any = None
        self._lock = threading.Lock()
        self._fetched: dict[str, tuple[str, bytes]] = {}

    def name(self, team: str, spec: ModelSpec, symbol: str) -> str:
        """The registered model name of one team model for one symbol."""
        return registry_name(self.prefix, team, spec.name, symbol)

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        """The version number the alias points at now, e.g. ``"3"``."""
        name = self.name(team, spec, symbol)
        quick = local_store.alias_version(self._files.uri, name, self.alias)
        if quick is not None:
            return quick
        try:
            with logged_in(self._login):
                found = self._registry().get_model_version_by_alias(name, self.alias)
        except _mlflow().exceptions.MlflowException as err:
            raise self._translate(err, team, spec, name) from err
        except ModelError:
            raise
        except Exception as err:  # the store's own driver errors (sqlalchemy, requests, ...)
            raise self._unreachable(name, err) from err
        return str(found.version)

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str | None = None) -> OnnxForecaster:
        """The forecaster of ``version`` (default: the one the alias points at), validated against the contract."""
        name = self.name(team, spec, symbol)
        version = version or self.version(team, spec, symbol)
        data = self._fetch(name, version)
        tags = self._tags(name, version)
        try:
            model = OnnxForecaster(
                data, version=version, symbol=symbol, team=team, name=spec.name, data_hash=tags.get(TAG_DATA_HASH)
            )
        except ModelError as err:
            raise ModelError(f"{err} (registered model {name})") from err
        tagged = tags.get(TAG_UNTIL)
        if tagged is not None and tagged != model.trained_until.isoformat():
            raise ModelError(
                f"{name} version {version}: its ONNX metadata says trained until {model.trained_until}, "
                f"its registry tag {tagged}: refusing a model whose cutoff is unclear"
            )
        return model

    # -- MLflow --------------------------------------------------------------------------------

    def _registry(self) -> Any:
        """The MLflow client, built on first use; a sqlite store that does not exist is not created."""
        with self._lock:
            if self._client is None:
                if self.tracking_uri.startswith(SQLITE) and not Path(self.tracking_uri[len(SQLITE) :]).exists():
                    raise ModelError(
                        f"no MLflow store at {self.tracking_uri}: start the stack (bin/redblue stack up) "
                        "and train the models (bin/redblue train)"
                    )
                self._client = _mlflow().MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            return self._client

    def _tags(self, name: str, version: str) -> dict[str, str]:
        """The registered version's tags."""
        quick = local_store.version_tags(self._files.uri, name, version)
        if quick is not None:
            return quick
        try:
            with logged_in(self._login):
                found = self._registry().get_model_version(name, version)
        except Exception as err:  # MLflow and the store's driver errors alike
            raise ModelError(f"cannot read {name} version {version} from {self.tracking_uri}: {err}") from err
        return dict(found.tags or {})

    def _fetch(self, name: str, version: str) -> bytes:
        """The serialized ONNX model of ``name`` version ``version`` (downloaded once)."""
        cached = self._fetched.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        files = self._files
        data = local_store.model_bytes(files.uri, name, version, files.artifacts) or self._download(name, version)
        self._fetched[name] = (version, data)
        return data

    def _download(self, name: str, version: str) -> bytes:
        try:
            with logged_in(self._login), tempfile.TemporaryDirectory(prefix="redblue-model-") as tmp:
                uri = self._registry().get_model_version_download_uri(name, version)
                local = _mlflow().artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                proto = _mlflow().onnx.load_model(local)
        except ModelError:
            raise
        except Exception as err:  # MLflow, onnx (checker, protobuf) and storage errors alike
            raise ModelError(
                f"cannot load {name} version {version} from {self.tracking_uri}: {type(err).__name__}: {err}"
            ) from err
        data: bytes = proto.SerializeToString()
        return data

    def _translate(self, err: Any, team: str, spec: ModelSpec, name: str) -> ModelError:
        code = getattr(err, "error_code", "")
        train = f"train it: bin/redblue train --only {team}/{spec.name}"
        if code == "RESOURCE_DOES_NOT_EXIST":
            return ModelError(f"no registered model {name} in {self.tracking_uri}: {train}")
        if code == "INVALID_PARAMETER_VALUE" and "alias" in str(err).lower():
            return ModelError(f"registered model {name} has no alias {self.alias!r}: {train}, or set the alias")
        return self._unreachable(name, err)

    def _unreachable(self, name: str, err: Exception) -> ModelError:
        return ModelError(
            f"cannot ask the MLflow registry at {self.tracking_uri} for {name}: {type(err).__name__}: {err} "
            "(is the stack up? bin/redblue stack up)"
        )
