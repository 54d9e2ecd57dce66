"""A trained team model, exported to ONNX, served with ONNX Runtime (never Ludwig or torch).

The contract with ``training/`` (one model per team, model and symbol):

- input ``features``: float32 ``[batch, lookback]``, exactly :func:`redblue.core.features.features`
  of the window;
- output ``log_return``: float32 ``[batch]`` or ``[batch, 1]``, already de-scaled; the predicted
  close is :func:`redblue.core.features.price_from_return` of the last close and that return;
- metadata: ``redblue.lookback``, ``redblue.features_version`` (must equal
  :data:`redblue.core.features.FEATURES_VERSION`), ``redblue.team``, ``redblue.model``,
  ``redblue.symbol`` and ``redblue.trained_until`` (an ISO date: the training cutoff); models
  exported since the cutoff checks also carry ``redblue.data_hash`` (the training data's sha256).

A model that breaks any of it is refused at load with a :class:`~redblue.core.forecaster.ModelError`
saying what is wrong, so a bad export never reaches a forecast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime

from redblue.core.features import FEATURES_VERSION, features, min_bars, price_from_return
from redblue.core.forecaster import ModelError
from redblue.core.model_names import (
    INPUT_NAME,
    META_DATA_HASH,
    META_FEATURES_VERSION,
    META_LOOKBACK,
    META_MODEL,
    META_SYMBOL,
    META_TEAM,
    META_TRAINED_UNTIL,
    OUTPUT_NAME,
)
from schemas import Bar

if TYPE_CHECKING:
    from onnx import ModelProto

INPUT, OUTPUT = INPUT_NAME, OUTPUT_NAME
# the metadata_props every served model carries, by the short names used here
METADATA = {
    "lookback": META_LOOKBACK,
    "features_version": META_FEATURES_VERSION,
    "team": META_TEAM,
    "model": META_MODEL,
    "symbol": META_SYMBOL,
    "trained_until": META_TRAINED_UNTIL,
}


class OnnxForecaster:
    """One exported model in one small ONNX Runtime session (one thread, no thread pool).

    ``version`` is the registry version it was loaded from (e.g. ``"3"``). ``symbol`` (and,
    when given, ``team`` and ``name``) is what it is served for: a model whose metadata says
    otherwise is refused, so a model registered under the wrong name cannot forecast.
    ``data_hash`` is the training data's hash as the registry recorded it; it must agree with
    the model's own ``redblue.data_hash`` metadata when that exists.
    """

    def __init__(
        self,
        model: bytes | ModelProto,
        *,
        version: str,
        symbol: str,
        team: str | None = None,
        name: str | None = None,
        data_hash: str | None = None,
    ) -> None:
        self._version = version
        self._label = f"{team or '?'}/{name or '?'} {symbol} version {version}"
        self._session = self._open(model if isinstance(model, bytes) else model.SerializeToString())
        self.metadata: Mapping[str, str] = self._read_metadata()
        expected = {"symbol": symbol, "team": team, "model": name}
        for key, wanted in expected.items():
            found = self.metadata[key]
            if wanted is not None and found != wanted:
                raise self._error(f"it was trained for {key} {found!r}, not {wanted!r}")
        self.lookback = self._read_lookback()
        self._trained_until = self._read_trained_until()
        self._data_hash = self._read_data_hash(data_hash)
        self._check_signature()
        self._check_runs()

    @property
    def version(self) -> str:
        return self._version

    @property
    def min_history(self) -> int:
        return min_bars(self.lookback)

    @property
    def trained_until(self) -> date:
        """The last day of its training data, as the export recorded it."""
        return self._trained_until

    @property
    def data_hash(self) -> str | None:
        """sha256 of its training data (``None`` if neither the export nor the registry recorded it)."""
        return self._data_hash

    def predict(self, window: Sequence[Bar]) -> float:
        """The next session's close from the window's last ``min_history`` bars."""
        return self.predict_many([window])[0]

    def predict_many(self, windows: Sequence[Sequence[Bar]]) -> list[float]:
        """:meth:`predict` for each window, in one ONNX Runtime call (row i depends on window i only)."""
        try:
            rows = [features(window, self.lookback) for window in windows]
        except ValueError as err:
            raise ModelError(f"{self._label}: {err}") from err
        returns = self.log_returns(np.asarray(rows, dtype=np.float32))
        return [price_from_return(w[-1].close, float(r)) for w, r in zip(windows, returns, strict=True)]

    def log_returns(self, rows: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The model's raw output for a ``[batch, lookback]`` float32 batch of feature rows."""
        out = self._session.run([OUTPUT], {INPUT: rows})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(rows))

    def __repr__(self) -> str:
        return f"OnnxForecaster({self._label}, lookback={self.lookback}, trained_until={self.trained_until})"

    # -- validation at load ---------------------------------------------------------------------

    def _error(self, why: str) -> ModelError:
        return ModelError(f"cannot serve {self._label}: {why}")

    def _open(self, data: bytes) -> Any:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only; a warning per session would flood the log
        try:
            return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors for invalid graphs
            raise self._error(f"not a valid ONNX model: {err}") from err

    def _read_metadata(self) -> dict[str, str]:
        props: Mapping[str, str] = self._session.get_modelmeta().custom_metadata_map
        found = {short: props[key] for short, key in METADATA.items() if key in props}
        missing = [key for short, key in METADATA.items() if short not in found]
        if missing:
            raise self._error(f"its metadata lacks {', '.join(missing)} (export it with training/)")
        if found["features_version"] != str(FEATURES_VERSION):
            raise self._error(
                f"it was trained on features version {found['features_version']}, but serving computes "
                f"version {FEATURES_VERSION}: retrain it (bin/redblue train)"
            )
        return found

    def _read_lookback(self) -> int:
        raw = self.metadata["lookback"]
        try:
            lookback = int(raw)
        except ValueError:
            lookback = 0
        if lookback < 1:
            raise self._error(f"redblue.lookback must be a positive integer, got {raw!r}")
        return lookback

    def _read_trained_until(self) -> date:
        raw = self.metadata["trained_until"]
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise self._error(f"redblue.trained_until must be an ISO date, got {raw!r}") from None

    def _read_data_hash(self, given: str | None) -> str | None:
        props: Mapping[str, str] = self._session.get_modelmeta().custom_metadata_map
        recorded = props.get(META_DATA_HASH)
        if recorded is not None and given is not None and recorded != given:
            raise self._error(f"its metadata says training data {recorded[:12]}, the registry {given[:12]}")
        return recorded or given

    def _check_signature(self) -> None:
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != [INPUT]:
            raise self._error(f"it must take one input {INPUT!r}, it takes {[i.name for i in inputs]}")
        shape = inputs[0].shape
        width_ok = len(shape) == 2 and (shape[1] == self.lookback or _symbolic(shape))
        if inputs[0].type != "tensor(float)" or not width_ok:
            raise self._error(
                f"input {INPUT!r} must be float32 [batch, {self.lookback}], it is {inputs[0].type} {shape}"
            )
        outputs = {o.name: o for o in self._session.get_outputs()}
        out = outputs.get(OUTPUT)
        if out is None:
            raise self._error(f"it has no output {OUTPUT!r} (outputs: {sorted(outputs)})")
        # a symbolic width (like the batch) is left to the trial run in _check_runs
        column_ok = len(out.shape) == 1 or out.shape[1:] == [1] or _symbolic(out.shape)
        if out.type != "tensor(float)" or not column_ok:
            raise self._error(f"output {OUTPUT!r} must be float32 [batch] or [batch, 1], it is {out.type} {out.shape}")

    def _check_runs(self) -> None:
        """One forecast on a flat window: the graph must run and give one finite return."""
        try:
            out = self._session.run([OUTPUT], {INPUT: np.zeros((1, self.lookback), dtype=np.float32)})[0]
        except Exception as err:  # onnxruntime's runtime errors are not typed either
            raise self._error(f"it fails on a [1, {self.lookback}] input: {err}") from err
        values = np.asarray(out, dtype=np.float64).reshape(-1)
        if values.shape != (1,) or not math.isfinite(values[0]):
            raise self._error(f"on a [1, {self.lookback}] input it returned {np.asarray(out).shape} {values}")


def _symbolic(shape: Sequence[Any]) -> bool:
    """Whether the second dimension of an ONNX Runtime shape is named or unknown (not a number)."""
    return len(shape) == 2 and not isinstance(shape[1], int)


def onnx_predict(model_proto: Any, matrix: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Run the served model with ONNX Runtime: ``matrix`` ``[rows, lookback]`` → ``[rows]`` log returns."""
    session = onnxruntime.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (result,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(matrix, dtype=np.float32)})
    return np.asarray(result, dtype=np.float32).reshape(-1)
