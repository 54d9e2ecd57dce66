"""Serving an exported model with ONNX Runtime: the contract is checked at load, forecasts match numpy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from redblue.adapters.onnx import OnnxForecaster
from redblue.core.features import FEATURES_VERSION, features
from redblue.core.forecaster import ModelError
from schemas import Bar
from tests.factories import bar, days

LOOKBACK = 5
WEIGHTS = [0.5, -0.25, 0.125, 0.0, 0.1]
BIAS = 0.001


def contract_metadata(
    team: str = "red", model: str = "mlp", symbol: str = "AAPL", lookback: int = LOOKBACK
) -> dict[str, str]:
    return {
        "redblue.lookback": str(lookback),
        "redblue.features_version": str(FEATURES_VERSION),
        "redblue.team": team,
        "redblue.model": model,
        "redblue.symbol": symbol,
        "redblue.trained_until": "2023-12-29",
    }


def linear_model(
    weights: list[float] = WEIGHTS,
    bias: float = BIAS,
    *,
    metadata: Mapping[str, str] | None = None,
    input_name: str = "features",
    output_name: str = "log_return",
    output_shape: list[str | int] | None = None,
    width: str | int | None = None,
) -> onnx.ModelProto:
    """``log_return = features @ weights + bias``, shaped and labelled as training exports it.

    ``output_shape`` ``None`` gives ``[batch]``; ``["batch", k]`` repeats the column ``k`` times
    (once for a named ``k``).
    """
    lookback = len(weights)
    columns = output_shape[1] if output_shape is not None and isinstance(output_shape[1], int) else 1
    w = np.tile(np.asarray(weights, dtype=np.float32).reshape(lookback, 1), (1, columns))
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.asarray([bias], dtype=np.float32), "b")]
    nodes = [helper.make_node("MatMul", [input_name, "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    if output_shape is None:
        inits.append(numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "flat"))
        nodes.append(helper.make_node("Reshape", ["y", "flat"], [output_name]))
    else:
        nodes.append(helper.make_node("Identity", ["y"], [output_name]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", lookback if width is None else width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape or ["batch"])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    meta = contract_metadata(lookback=lookback) if metadata is None else metadata
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def window(n: int = 30, symbol: str = "AAPL") -> list[Bar]:
    closes = [100 * math.exp(0.01 * math.sin(i)) for i in range(n)]
    return [bar(symbol, d, c) for d, c in zip(days(date(2024, 1, 2), n), closes, strict=True)]


def serve(proto: onnx.ModelProto, **kwargs: str) -> OnnxForecaster:
    return OnnxForecaster(proto, version=kwargs.pop("version", "3"), symbol=kwargs.pop("symbol", "AAPL"), **kwargs)


def test_predict_matches_the_same_computation_in_numpy() -> None:
    model = serve(linear_model())
    bars = window()
    expected_return = float(np.dot(features(bars, LOOKBACK), WEIGHTS) + BIAS)
    assert model.predict(bars) == pytest.approx(bars[-1].close * math.exp(expected_return), rel=1e-6)
    assert (model.version, model.lookback, model.min_history, model.trained_until) == ("3", 5, 6, date(2023, 12, 29))
    assert model.data_hash is None


def test_a_batch_by_one_output_and_serialized_bytes_serve_the_same() -> None:
    bars = window()
    flat = serve(linear_model()).predict(bars)
    column = OnnxForecaster(
        linear_model(output_shape=["batch", 1]).SerializeToString(), version="1", symbol="AAPL"
    ).predict(bars)
    assert column == pytest.approx(flat, rel=1e-7)


def test_only_the_last_lookback_returns_are_used() -> None:
    model = serve(linear_model())
    bars = window(40)
    assert model.predict(bars) == model.predict(bars[-model.min_history :])


def test_a_short_window_is_a_model_error() -> None:
    model = serve(linear_model())
    with pytest.raises(ModelError, match="need 6 bars"):
        model.predict(window(5))


def test_team_model_and_symbol_must_be_the_ones_it_is_served_for() -> None:
    proto = linear_model()
    assert serve(proto, team="red", name="mlp").version == "3"
    with pytest.raises(ModelError, match="trained for symbol 'AAPL', not 'SAP'"):
        serve(proto, symbol="SAP")
    with pytest.raises(ModelError, match="trained for team 'red', not 'blue'"):
        serve(proto, team="blue")
    with pytest.raises(ModelError, match="trained for model 'mlp', not 'seq'"):
        serve(proto, name="seq")


def test_another_features_version_is_refused_with_a_hint_to_retrain() -> None:
    meta = contract_metadata() | {"redblue.features_version": str(FEATURES_VERSION + 1)}
    with pytest.raises(ModelError, match=f"features version {FEATURES_VERSION + 1}.*retrain"):
        serve(linear_model(metadata=meta))


@pytest.mark.parametrize("key", sorted(contract_metadata()))
def test_missing_metadata_is_refused(key: str) -> None:
    meta = {k: v for k, v in contract_metadata().items() if k != key}
    with pytest.raises(ModelError, match=f"lacks {key}"):
        serve(linear_model(metadata=meta))


@pytest.mark.parametrize("lookback", ["0", "five", "-1"])
def test_a_bad_lookback_is_refused(lookback: str) -> None:
    with pytest.raises(ModelError, match="positive integer"):
        serve(linear_model(metadata=contract_metadata() | {"redblue.lookback": lookback}))


def test_a_lookback_that_disagrees_with_the_input_width_is_refused() -> None:
    with pytest.raises(ModelError, match=r"must be float32 \[batch, 4\]"):
        serve(linear_model(metadata=contract_metadata(lookback=4)))


def test_a_symbolic_input_width_is_accepted_and_checked_by_a_trial_run() -> None:
    assert serve(linear_model(width="lookback")).lookback == LOOKBACK
    with pytest.raises(ModelError, match=r"fails on a \[1, 4\] input"):
        serve(linear_model(width="lookback", metadata=contract_metadata(lookback=4)))


def test_wrong_input_or_output_names_are_refused() -> None:
    with pytest.raises(ModelError, match=r"one input 'features', it takes \['x'\]"):
        serve(linear_model(input_name="x"))
    with pytest.raises(ModelError, match=r"no output 'log_return'.*'price'"):
        serve(linear_model(output_name="price"))


def test_a_named_output_width_is_accepted_when_it_runs_as_one_column() -> None:
    assert serve(linear_model(output_shape=["batch", "k"])).predict(window()) == pytest.approx(
        serve(linear_model()).predict(window()), rel=1e-7
    )


def test_a_wide_output_is_refused() -> None:
    with pytest.raises(ModelError, match=r"output 'log_return' must be float32 \[batch\] or \[batch, 1\]"):
        serve(linear_model(output_shape=["batch", 2]))


def test_bytes_that_are_not_onnx_are_refused() -> None:
    with pytest.raises(ModelError, match=r"cannot serve \?/\? AAPL version 1: not a valid ONNX model"):
        OnnxForecaster(b"not a model", version="1", symbol="AAPL")


def test_a_model_that_returns_nan_is_refused() -> None:
    with pytest.raises(ModelError, match="returned"):
        serve(linear_model(bias=float("nan")))


def test_a_batch_of_windows_predicts_what_each_window_predicts_alone() -> None:
    model = serve(linear_model())
    history = window(80)
    windows = [history[: n + 1] for n in range(model.min_history - 1, 80, 7)]
    assert model.predict_many(windows) == [model.predict(w) for w in windows]  # bit for bit
    with pytest.raises(ModelError, match="need"):
        model.predict_many([history, history[:3]])


def test_the_training_cutoff_and_data_hash_are_read_and_must_agree() -> None:
    model = serve(linear_model(metadata=contract_metadata() | {"redblue.data_hash": "f00d"}), data_hash="f00d")
    assert (model.trained_until, model.data_hash) == (date(2023, 12, 29), "f00d")
    assert serve(linear_model(), data_hash="beef").data_hash == "beef"  # older exports: the registry's tag
    with pytest.raises(ModelError, match="its metadata says training data f00d, the registry beef"):
        serve(linear_model(metadata=contract_metadata() | {"redblue.data_hash": "f00d"}), data_hash="beef")
    with pytest.raises(ModelError, match=r"redblue\.trained_until must be an ISO date, got 'yesterday'"):
        serve(linear_model(metadata=contract_metadata() | {"redblue.trained_until": "yesterday"}))
