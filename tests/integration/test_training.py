"""Training end to end on a real (temporary) MLflow store: one tiny model per reference config.

Checks what serving relies on: one run per model with its per-epoch metrics, a registered version
behind the alias ``champion`` that loads as ONNX and predicts what Ludwig predicts, and that bars
after ``--until`` change neither the training data nor Ludwig's normalisation statistics.
"""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from redblue.adapters.onnx import onnx_predict
from redblue.core import model_names as names
from redblue.core.arena import Arena
from redblue.core.bars import DATA_DIR, read_rows
from redblue.core.features import FEATURES_VERSION, feature_names
from redblue.core.settings import Settings
from training.dataset import LABEL, TrainingData, build_dataset
from training.ludwig.export import sequence_inputs
from training.ludwig.fit import ludwig_api
from training.plan import Job, plan
from training.train import TrainResult, train

pytestmark = pytest.mark.integration

UNTIL = date(2023, 12, 29)
CONFIGS = {("red", "mlp"): ("red_mlp.yaml", 10), ("blue", "seq"): ("blue_seq.yaml", 20)}


def tiny_arena() -> Arena:
    teams = {
        team: {
            "models": [
                {
                    "name": model,
                    "kind": "ludwig",
                    "params": {
                        "config": f"training/configs/{file}",
                        "lookback": lookback,
                        "epochs": 2,
                        "train_from": "2021-01-04",
                    },
                }
            ]
        }
        for (team, model), (file, lookback) in CONFIGS.items()
    }
    return Arena.model_validate({"name": "tiny", "symbols": ["AAPL"], "teams": teams})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list[TrainResult]]]:
    home = tmp_path_factory.mktemp("mlflow")
    settings = Settings(
        home=home,
        stack_dir=home / "stack",
        mlflow_tracking_uri=f"sqlite:///{home}/mlflow.db",
        registry_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    results = train(tiny_arena(), settings, UNTIL, progress=False)
    yield settings, results
    shutil.rmtree(home, ignore_errors=True)


def client(settings: Settings) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)


def runs(settings: Settings) -> list[Any]:
    c = client(settings)
    experiments = [c.get_experiment_by_name(names.training_experiment(team)) for team in ("blue", "red")]
    return list(c.search_runs([e.experiment_id for e in experiments]))


def test_one_run_per_model_with_params_and_per_epoch_metrics(store: tuple[Settings, list[TrainResult]]) -> None:
    settings, results = store
    assert sorted((r.team, r.model, r.symbol, r.status) for r in results) == [
        ("blue", "seq", "AAPL", "trained"),
        ("red", "mlp", "AAPL", "trained"),
    ]
    found = runs(settings)
    assert sorted(r.info.run_id for r in found) == sorted(r.run_id for r in results)
    c = client(settings)
    for run in found:
        params, metrics = run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert params["until"] == "2023-12-29" and params["data_last_target"] == "2023-12-29"
        assert params["data_first_as_of"] == "2021-01-04" and len(params["data_hash"]) == 64
        assert params["epochs"] == "2" and params["features_version"] == str(FEATURES_VERSION)
        history = c.get_metric_history(run.info.run_id, "validation.next_return.mean_absolute_error")
        assert sorted(m.step for m in history) == [1, 2]
        assert {"val_mae", "val_mase", "parity_max_abs_diff", "train_seconds"} <= set(metrics)
        assert metrics["parity_max_abs_diff"] < 1e-5 and 0.5 < metrics["val_mase"] < 2.0
        artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert {"ludwig_config.yaml", "ludwig_model"} <= artifacts


def test_champion_loads_as_onnx_and_predicts_what_ludwig_predicts(
    store: tuple[Settings, list[TrainResult]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.onnx

    settings, results = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_uri)  # where models:/ URIs resolve
    c = client(settings)
    api = ludwig_api()
    for result, job in zip(results, plan(tiny_arena()), strict=True):
        version = c.get_model_version_by_alias(result.name, names.CHAMPION)
        assert result.name == names.registry_name(settings.registry_prefix, job.team, job.model, "AAPL")
        assert str(version.version) == result.version and version.run_id == result.run_id
        assert version.tags[names.TAG_DATA_HASH] == result.data_hash
        (tmp_path / result.name).mkdir()
        proto = mlflow.onnx.load_model(names.champion_uri(result.name), dst_path=str(tmp_path / result.name))
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta[names.META_LOOKBACK] == str(job.lookback) and meta[names.META_TRAINED_UNTIL] == "2023-12-29"
        assert (meta[names.META_TEAM], meta[names.META_MODEL], meta[names.META_SYMBOL]) == (job.team, job.model, "AAPL")
        assert meta[names.META_FEATURES_VERSION] == str(FEATURES_VERSION)

        local = c.download_artifacts(result.run_id, "ludwig_model", str(tmp_path / result.name))
        ludwig_model = api.LudwigModel.load(local)
        data = build_dataset(
            read_rows(DATA_DIR, "AAPL"), job.lookback, UNTIL, date(2021, 1, 4), sequence_inputs(job.config)
        )
        rows = data.frame.iloc[::7]
        expected, _ = ludwig_model.predict(dataset=rows, output_directory=str(tmp_path / "predict"))
        served = onnx_predict(proto, data.matrix(rows))
        assert np.max(np.abs(served - expected[f"{LABEL}_predictions"].to_numpy())) < 1e-5
        assert onnx_predict(proto, data.matrix(rows.iloc[:1])).shape == (1,)  # any batch size


def dataset(data_dir: Path, job: Job) -> TrainingData:
    return build_dataset(read_rows(data_dir, "AAPL"), job.lookback, UNTIL, job.train_from, sequence_inputs(job.config))


def poison(source: Path, target: Path) -> None:
    """Copy AAPL's bars, tripling every price after UNTIL."""
    target.mkdir()
    with (source / "AAPL.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["date"] > UNTIL.isoformat():
            for key in ("open", "high", "low", "close", "adj_close"):
                row[key] = str(float(row[key]) * 3)
    with (target / "AAPL.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_bars_after_until_change_neither_training_data_nor_normalisation(
    store: tuple[Settings, list[TrainResult]], tmp_path: Path
) -> None:
    settings, results = store
    poisoned = tmp_path / "bars"
    poison(DATA_DIR, poisoned)
    before = {r.info.run_id for r in runs(settings)}
    again = train(tiny_arena(), settings, UNTIL, data_dir=poisoned, progress=False)
    assert [(r.status, r.data_hash, r.version) for r in again] == [
        ("up_to_date", r.data_hash, r.version) for r in results
    ]
    assert {r.info.run_id for r in runs(settings)} == before  # nothing was retrained

    c = client(settings)
    api = ludwig_api()
    for result, job in zip(results, plan(tiny_arena()), strict=True):
        data = build_dataset(
            read_rows(poisoned, "AAPL"), job.lookback, UNTIL, job.train_from, sequence_inputs(job.config)
        )
        assert data.data_hash == result.data_hash
        statistics = api.LudwigModel(job.config).preprocess(dataset=data.frame).training_set_metadata
        logged = c.download_artifacts(result.run_id, "ludwig_model/training_set_metadata.json", str(tmp_path))
        trained = json.loads(Path(logged).read_text())
        for feature in [*feature_names(job.lookback), LABEL]:
            if feature in trained:
                assert float(statistics[feature]["mean"]) == pytest.approx(trained[feature]["mean"], abs=0, rel=1e-7)
                assert float(statistics[feature]["std"]) == pytest.approx(trained[feature]["std"], abs=0, rel=1e-7)


def test_a_forced_retrain_moves_the_champion(store: tuple[Settings, list[TrainResult]]) -> None:
    settings, results = store
    (again,) = train(tiny_arena(), settings, UNTIL, only="red/mlp", force=True, progress=False)
    before = next(r for r in results if r.team == "red")
    assert again.status == "trained" and int(again.version) == int(before.version) + 1
    version = client(settings).get_model_version_by_alias(again.name, names.CHAMPION)
    assert str(version.version) == again.version and version.run_id == again.run_id != before.run_id
