"""Team models served from a real MLflow registry (a fresh sqlite store per test, no Kafka).

Models are registered the way ``training/`` does it (``mlflow.onnx.log_model`` with a registered
name, alias ``champion``); :class:`RegistrySource` and the :class:`ModelBook` serve them, follow a
moved alias, keep serving when a new version is broken, and say clearly what is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.onnx
import onnx
import pytest
from mlflow import MlflowClient

from processors.book import ModelBook
from redblue.adapters.mlflow.registry import RegistrySource
from redblue.core.arena import REPO_ROOT, Arena, ModelSpec, TeamSpec
from redblue.core.features import features
from redblue.core.forecaster import ModelError
from redblue.core.model_names import KIND
from tests.unit.test_onnx_model import BIAS, WEIGHTS, contract_metadata, linear_model, window

pytestmark = pytest.mark.integration

PREFIX = "redblue-test"
SYMBOLS = ("AAPL", "AMZN", "SAP")
ARENA = Arena(
    name="registry",
    symbols=SYMBOLS,
    teams={"red": TeamSpec(models=(ModelSpec(name="mlp", kind=KIND),))},
)
MLP = ARENA.teams["red"].models[0]
PIP = ["onnx", "onnxruntime"]  # given, so MLflow does not spend seconds inferring them in a subprocess


@dataclass
class Store:
    """A throwaway MLflow tracking + registry store, and how training would fill it."""

    uri: str
    client: MlflowClient
    experiment: str
    root: Path

    def register(self, symbol: str, proto: onnx.ModelProto | None = None, *, champion: bool = True) -> str:
        """Log ``proto`` (default: the linear model for ``symbol``) as a new version; return its number."""
        name = f"{PREFIX}.red.mlp.{symbol}"
        if proto is None:
            proto = linear_model(metadata=contract_metadata(symbol=symbol))
        with mlflow.start_run(experiment_id=self.experiment):
            info = mlflow.onnx.log_model(proto, name="model", registered_model_name=name, pip_requirements=PIP)
        version = str(info.registered_model_version)
        if champion:
            self.client.set_registered_model_alias(name, "champion", version)
        return version


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # log_model uses the global URIs; restored after the test
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment("training", artifact_location=(tmp_path / "artifacts").as_uri())
    yield Store(uri, client, experiment, tmp_path)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None unsets it (typed str, handled at runtime)
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def served(book: ModelBook) -> dict[str, str]:
    return {m.symbol: (m.forecaster.version if m.forecaster else f"error: {m.error}") for m in book.models}


def linear_close(bias: float = BIAS) -> float:
    bars = window()
    return bars[-1].close * math.exp(sum(w * r for w, r in zip(WEIGHTS, features(bars, 5), strict=True)) + bias)


def test_every_champion_is_served_and_forecasts(store: Store) -> None:
    for symbol in SYMBOLS:
        store.register(symbol)
    book = ModelBook(ARENA, {KIND: RegistrySource(store.uri, PREFIX)})
    assert served(book) == {"AAPL": "1", "AMZN": "1", "SAP": "1"}
    model = next(m for m in book.models if m.symbol == "AAPL")
    assert model.forecaster is not None
    assert model.forecaster.predict(window()) == pytest.approx(linear_close(), rel=1e-6)


def test_a_moved_alias_is_picked_up_on_refresh(store: Store) -> None:
    for symbol in SYMBOLS:
        store.register(symbol)
    book = ModelBook(ARENA, {KIND: RegistrySource(store.uri, PREFIX)})
    assert book.refresh() == []
    store.register("AMZN", linear_model(bias=0.02, metadata=contract_metadata(symbol="AMZN")), champion=False)
    assert book.refresh() == [], "a new version is not served until the alias points at it"
    store.client.set_registered_model_alias(f"{PREFIX}.red.mlp.AMZN", "champion", "2")
    assert book.refresh() == ["serving red/mlp AMZN version 2 (was 1)"]
    amzn = next(m for m in book.models if m.symbol == "AMZN")
    assert amzn.forecaster is not None
    assert amzn.forecaster.predict(window(symbol="AMZN")) == pytest.approx(linear_close(0.02), rel=1e-6)


def test_a_broken_version_keeps_the_previous_one_serving_and_the_others_unaffected(store: Store) -> None:
    for symbol in SYMBOLS:
        store.register(symbol)
    book = ModelBook(ARENA, {KIND: RegistrySource(store.uri, PREFIX)})
    store.register("AAPL", linear_model(input_name="x"))
    store.register("SAP")
    changes = book.refresh()
    assert changes[0] == (
        "red/mlp AAPL: keeping version 1: cannot serve red/mlp AAPL version 2: it must take one input 'features', "
        f"it takes ['x'] (registered model {PREFIX}.red.mlp.AAPL)"
    )
    assert changes[1:] == ["serving red/mlp SAP version 2 (was 1)"]
    assert served(book) == {"AAPL": "1", "AMZN": "1", "SAP": "2"}


def test_missing_models_and_aliases_are_clear_errors_while_the_others_serve(store: Store) -> None:
    store.register("AAPL")
    store.register("SAP", champion=False)
    book = ModelBook(ARENA, {KIND: RegistrySource(store.uri, PREFIX)})
    entries = served(book)
    assert entries["AAPL"] == "1"
    assert entries["AMZN"] == (
        f"error: no registered model {PREFIX}.red.mlp.AMZN in {store.uri}: train it: bin/redblue train --only red/mlp"
    )
    assert entries["SAP"].startswith(f"error: registered model {PREFIX}.red.mlp.SAP has no alias 'champion'")
    store.register("AMZN")
    store.client.set_registered_model_alias(f"{PREFIX}.red.mlp.SAP", "champion", "1")
    assert sorted(book.refresh()) == ["serving red/mlp AMZN version 1", "serving red/mlp SAP version 1"]


def test_a_model_trained_for_another_symbol_is_refused(store: Store) -> None:
    store.register("AAPL", linear_model(metadata=contract_metadata(symbol="SAP")))
    source = RegistrySource(store.uri, PREFIX)
    with pytest.raises(ModelError, match="trained for symbol 'SAP', not 'AAPL'"):
        source.load("red", MLP, "AAPL")


def test_a_fetched_version_is_not_downloaded_again(store: Store) -> None:
    store.register("AAPL")
    source = RegistrySource(store.uri, PREFIX)
    first = source.load("red", MLP, "AAPL")
    shutil.rmtree(store.root / "artifacts")
    again = source.load("red", MLP, "AAPL")
    assert again.predict(window()) == first.predict(window())


def test_a_store_that_is_missing_or_unreachable_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = RegistrySource(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}", PREFIX)
    with pytest.raises(ModelError, match=r"no MLflow store at .*bin/redblue stack up"):
        missing.version("red", MLP, "AAPL")
    assert not (tmp_path / "nowhere").exists(), "a missing sqlite store must not be created"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = RegistrySource("http://127.0.0.1:9", PREFIX)
    with pytest.raises(ModelError, match=r"cannot ask the MLflow registry at http://127.0.0.1:9 for redblue-test"):
        down.version("red", MLP, "AAPL")


SERVE_WITHOUT_TORCH = """
import json, sys
import processors.app, redblue.adapters.onnx, redblue.adapters.mlflow.registry
from redblue.adapters.mlflow.registry import RegistrySource
from redblue.core.arena import ModelSpec
model = RegistrySource(sys.argv[1], sys.argv[2]).load("red", ModelSpec(name="mlp", kind="ludwig"), "AAPL")
print(json.dumps({"version": model.version, "heavy": sorted(m for m in ("torch", "ludwig") if m in sys.modules)}))
"""


def test_serving_never_imports_torch_or_ludwig(store: Store) -> None:
    store.register("AAPL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_TORCH, store.uri, PREFIX],
        capture_output=True,
        text=True,
        env=env,
        cwd=store.root,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"version": "1", "heavy": []}


def test_a_local_store_is_read_without_mlflow_and_agrees_with_it(store: Store, tmp_path: Path) -> None:
    from redblue.adapters.mlflow import local_store

    store.register("AAPL")
    version = store.register("AAPL")  # the alias moves to version 2
    name = f"{PREFIX}.red.mlp.AAPL"
    assert local_store.alias_version(store.uri, name, "champion") == version == "2"
    assert local_store.alias_version(store.uri, name, "nope") is None
    assert local_store.version_tags(store.uri, name, version) == dict(
        mlflow.MlflowClient(store.uri, store.uri).get_model_version(name, version).tags
    )
    assert local_store.version_tags(store.uri, name, "9") is None
    quick = local_store.model_bytes(store.uri, name, version)
    assert quick is not None
    assert onnx.load_from_string(quick) == mlflow.onnx.load_model(f"models:/{name}/{version}")
    empty = tmp_path / "other.db"
    sqlite3.connect(empty).close()  # a sqlite file without MLflow's tables: ask MLflow instead
    assert local_store.alias_version(f"sqlite:///{empty}", name, "champion") is None
    assert local_store.model_bytes(f"sqlite:///{empty}", name, "1") is None
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PYTHONPATH": str(REPO_ROOT)}
    code = SERVE_WITHOUT_TORCH.replace('"torch", "ludwig"', '"torch", "ludwig", "mlflow"')
    done = subprocess.run([sys.executable, "-c", code, store.uri, PREFIX], capture_output=True, text=True, env=env,
                          cwd=store.root, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"version": "2", "heavy": []}  # not even MLflow
