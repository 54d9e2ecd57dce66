"""Training data without Ludwig: no look-ahead past --until, and the same features as serving."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from redblue.core.arena import REPO_ROOT, Arena
from redblue.core.bars import DATA_DIR, DataError, Row, read_rows
from redblue.core.calendar import get_calendar
from redblue.core.features import feature_names, features
from redblue.core.model_names import registry_name
from tests.factories import bar
from training.dataset import (
    AS_OF,
    LABEL,
    NEXT_CLOSE,
    SPLIT,
    TARGET,
    TRAINING,
    VALIDATION,
    build_dataset,
    sequence_text,
    validation_metrics,
)
from training.ludwig.export import ExportError, input_layout, sequence_inputs
from training.plan import TrainingError, load_config, plan

UNTIL = date(2023, 12, 29)
CAL = get_calendar("XNYS")


@pytest.fixture(scope="module")
def aapl() -> list[Row]:
    return read_rows(DATA_DIR, "AAPL")


def test_the_dataset_ends_at_until_and_no_label_comes_from_after_it(aapl: list[Row]) -> None:
    data = build_dataset(aapl, 10, UNTIL, train_from=date(2022, 1, 3), calendar=CAL)
    frame = data.frame
    assert frame[TARGET].max() == UNTIL == data.last_target
    assert frame[AS_OF].max() == CAL.offset(UNTIL, -1)  # the last as-of day is the one whose label is until
    assert (frame[TARGET] <= UNTIL).all() and (frame[AS_OF] < frame[TARGET]).all()
    assert frame[AS_OF].min() == date(2022, 1, 3) == data.first
    assert aapl[-1].date > UNTIL, "the bundled data must reach past --until for this test to mean something"
    assert frame[NEXT_CLOSE].iloc[-1] == next(r.close for r in aapl if r.date == UNTIL)


def test_until_on_a_non_session_day_uses_the_last_session_before_it(aapl: list[Row]) -> None:
    data = build_dataset(aapl, 10, date(2023, 12, 31), train_from=date(2023, 1, 3))
    assert data.last_target == UNTIL


def test_bars_after_until_change_nothing_poisoning(aapl: list[Row]) -> None:
    clean = build_dataset(aapl, 20, UNTIL, train_from=date(2021, 1, 4), sequence_columns=["returns"], calendar=CAL)
    poisoned_rows = [replace(r, close=r.close * 3, high=r.high * 3) if r.date > UNTIL else r for r in aapl]
    poisoned_rows += [replace(aapl[-1], date=date(2031, 1, 2), close=1e6, high=1e6)]
    poisoned = build_dataset(
        poisoned_rows, 20, UNTIL, train_from=date(2021, 1, 4), sequence_columns=["returns"], calendar=CAL
    )
    assert poisoned.data_hash == clean.data_hash
    assert poisoned.frame.equals(clean.frame)
    edited = [replace(r, close=r.close * 1.001, high=r.high * 1.001) if r.date == UNTIL else r for r in aapl]
    assert build_dataset(edited, 20, UNTIL, train_from=date(2021, 1, 4)).data_hash != clean.data_hash  # the control


def test_features_in_training_equal_features_in_serving(aapl: list[Row]) -> None:
    """Each row holds exactly what ``features()`` returns for the bars a processor would hold at D."""
    data = build_dataset(aapl, 10, UNTIL, train_from=date(2023, 6, 1), sequence_columns=["returns"])
    by_day = {r.date: i for i, r in enumerate(aapl)}
    for _, row in data.frame.iloc[::17].iterrows():
        i = by_day[row[AS_OF]]
        window = [bar("AAPL", r.date, r.close) for r in aapl[i - 59 : i + 1]]  # the processor's 60-bar window
        served = features(window, 10)
        assert list(row[feature_names(10)]) == served
        assert np.array_equal(data.matrix(data.frame.loc[[row.name]])[0], np.asarray(served, dtype=np.float32))
        parsed = np.asarray(row["returns"].split(), dtype=np.float32)
        assert np.allclose(parsed, np.asarray(served[::-1]) * 100, rtol=1e-6, atol=0)  # oldest first, in percent
        assert row[LABEL] == math.log(aapl[i + 1].close / aapl[i].close)


def test_validation_is_the_last_part_in_time(aapl: list[Row]) -> None:
    data = build_dataset(aapl, 10, UNTIL, train_from=date(2020, 1, 2))
    frame = data.frame
    assert set(frame[SPLIT]) == {TRAINING, VALIDATION}
    assert data.training[TARGET].max() <= data.validation[AS_OF].min()
    assert len(data.validation) == round(len(frame) * 0.15)
    assert list(frame[AS_OF]) == sorted(frame[AS_OF])


def test_a_missing_session_is_refused(aapl: list[Row]) -> None:
    holed = [r for r in aapl if r.date != date(2023, 6, 5)]
    with pytest.raises(DataError, match="1 trading day"):
        build_dataset(holed, 10, UNTIL, train_from=date(2023, 1, 3), calendar=CAL)


def test_too_few_rows_are_refused(aapl: list[Row]) -> None:
    with pytest.raises(DataError, match="only 5 training rows"):
        build_dataset(aapl, 10, UNTIL, train_from=date(2023, 12, 21))


def test_sequence_text_is_the_vector_oldest_first_in_percent() -> None:
    vector = [0.1, -1 / 3, 2e-9]
    assert [float(x) for x in sequence_text(vector).split()] == pytest.approx([2e-7, -100 / 3, 10.0], rel=1e-15)


def test_validation_metrics_against_persistence(aapl: list[Row]) -> None:
    data = build_dataset(aapl, 10, UNTIL, train_from=date(2023, 1, 3))
    frame = data.validation
    persistence = validation_metrics(frame, np.zeros(len(frame)))
    assert persistence["val_mase"] == pytest.approx(1.0)
    perfect = validation_metrics(frame, frame[LABEL].to_numpy())
    assert perfect["val_mae"] == pytest.approx(0.0, abs=1e-9) and perfect["val_direction_pct"] == 100.0


def arena(params: dict[str, object]) -> Arena:
    model = {"name": "m", "kind": "ludwig", "params": params}
    teams = {"red": {"models": [model, {"name": "drift", "kind": "drift"}]}}
    return Arena.model_validate({"name": "t", "symbols": ["AAPL", "SAP"], "teams": teams})


def test_plan_the_reference_configs() -> None:
    red = plan(arena({"config": "training/configs/red_mlp.yaml", "lookback": 10, "epochs": 3}))
    assert [(j.team, j.model, j.symbol) for j in red] == [("red", "m", "AAPL"), ("red", "m", "SAP")]
    assert red[0].config["trainer"]["epochs"] == 3
    assert red[0].config["preprocessing"]["split"] == {"type": "fixed", "column": SPLIT}
    assert [c for _, _, c in input_layout(red[0].config, 10)] == list(range(10))
    blue = plan(arena({"config": "training/configs/blue_seq.yaml", "lookback": 20}), only="red/m")
    assert sequence_inputs(blue[0].config) == ["returns"]
    assert blue[0].config["trainer"]["epochs"] == 30
    assert (
        blue[0].config_hash != plan(arena({"config": "training/configs/blue_seq.yaml", "lookback": 30}))[0].config_hash
    )


def test_plan_refuses_what_cannot_be_served(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="'ret_6'"):
        plan(arena({"config": "training/configs/red_mlp.yaml", "lookback": 5}))
    with pytest.raises(TrainingError, match=r"params\.config and params\.lookback"):
        plan(arena({"config": "training/configs/red_mlp.yaml"}))
    with pytest.raises(TrainingError, match="no ludwig model"):
        plan(arena({"config": "training/configs/red_mlp.yaml", "lookback": 10}), only="red/drift")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "input_features: [{name: volume, type: number}]\noutput_features: [{name: next_return, type: number}]"
    )
    with pytest.raises(ExportError, match="volume"):
        load_config(bad, 10)


def test_registry_name() -> None:
    assert registry_name("redblue", "red", "mlp", "AAPL") == "redblue.red.mlp.AAPL"


def test_training_modules_import_neither_ludwig_nor_torch_nor_mlflow() -> None:
    code = (
        "import sys, training, training.train, training.ludwig.export, training.dataset\n"
        "print(sorted(m for m in ('ludwig', 'torch', 'mlflow', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
