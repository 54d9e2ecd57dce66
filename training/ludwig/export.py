"""The served form of a Ludwig model: one ONNX graph from raw features to a de-scaled log return.

Ludwig's own exports do not fit serving (``torch_export`` wants a batch of exactly 2 and leaves
out the scaling; ``onnx`` needs its inputs as keyword arguments). So :class:`ServedModel` chains
the pieces Ludwig itself uses at prediction time, and ``torch.onnx.export`` traces that chain:

    features [batch, lookback] ─▶ each input feature's preprocessing module (z-score, …)
      ─▶ Ludwig's model (encoders, combiner, decoder) ─▶ its prediction module (clip)
      ─▶ the output feature's postprocessing module (de-scaling) ─▶ log_return [batch]

How the feature matrix (``redblue.core.features.features``: ``ret_1`` first) maps to Ludwig's inputs:
a ``number`` input named ``ret_k`` is column ``k-1``; a ``timeseries`` input is the whole row,
oldest first and in percent (as ``training.dataset.sequence_text`` writes it for training). Any other input
is refused by :func:`input_layout` before training starts.

ONNX Runtime runs the result (:func:`redblue.adapters.onnx.onnx_predict`) without Ludwig or torch.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from redblue.core.errors import RedblueError
from redblue.core.model_names import INPUT_NAME, OUTPUT_NAME
from training.dataset import LABEL, SEQUENCE_SCALE

OPSET = 18
_RET = re.compile(r"^ret_([1-9][0-9]*)$")


class ExportError(RedblueError):
    """A Ludwig config or model that cannot be served under the contract, or a failed export."""


def input_layout(config: Mapping[str, Any], lookback: int) -> list[tuple[str, str, int]]:
    """``(name, type, column)`` per Ludwig input feature; column is -1 for a timeseries input.

    Raises :class:`ExportError` for inputs the served feature matrix cannot feed, and when the
    output is not the single number feature ``next_return``.
    """
    layout: list[tuple[str, str, int]] = []
    for feature in config.get("input_features", []):
        name, kind = feature.get("name"), feature.get("type")
        match = _RET.match(str(name))
        if kind == "number" and match and int(match.group(1)) <= lookback:
            layout.append((name, kind, int(match.group(1)) - 1))
        elif kind == "timeseries":
            layout.append((name, kind, -1))
        else:
            raise ExportError(
                f"input feature {name!r} ({kind}) cannot be served: use number features ret_1..ret_{lookback} "
                "or a timeseries feature of the returns"
            )
    outputs = [(f.get("name"), f.get("type")) for f in config.get("output_features", [])]
    if outputs != [(LABEL, "number")]:
        raise ExportError(f"the output must be one number feature {LABEL!r}, got {outputs}")
    if not layout:
        raise ExportError("the config has no input features")
    return layout


def sequence_inputs(config: Mapping[str, Any]) -> list[str]:
    """The names of the config's timeseries inputs (the dataset adds a column for each)."""
    return [f["name"] for f in config.get("input_features", []) if f.get("type") == "timeseries"]


def _served_module(ludwig_model: Any, lookback: int) -> Any:
    """A ``torch.nn.Module``: features ``[batch, lookback]`` → de-scaled ``log_return [batch]``."""
    import torch

    ecd = ludwig_model.model
    metadata = ludwig_model.training_set_metadata
    layout = input_layout(ludwig_model.config, lookback)
    output = ecd.output_features.get(LABEL)

    class ServedModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ecd = ecd
            self.scalers = torch.nn.ModuleDict(
                {
                    name: ecd.input_features.get(name).create_preproc_module(metadata[name])
                    for name, kind, _ in layout
                    if kind == "number"
                }
            )
            self.predict = output.prediction_module
            self.descale = output.create_postproc_module(metadata[LABEL])

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            inputs: dict[str, torch.Tensor] = {}
            for name, kind, column in layout:
                if kind == "number":
                    inputs[name] = self.scalers[name](features[:, column])
                else:
                    inputs[name] = torch.flip(features, dims=[1]) * SEQUENCE_SCALE
            outputs = self.ecd(inputs)
            predictions = self.predict(outputs, LABEL)["predictions"]
            descaled = self.descale({f"{LABEL}::predictions": predictions}, LABEL)["predictions"]
            return torch.reshape(descaled, (-1,))

    return ServedModel().eval()


def export_onnx(ludwig_model: Any, lookback: int, metadata: Mapping[str, str]) -> Any:
    """The served ONNX ``ModelProto`` of a trained ``LudwigModel``, with ``metadata`` as metadata_props.

    Input ``features`` float32 ``[batch, lookback]`` (raw ``ret_1..ret_L``), output ``log_return``
    float32 ``[batch]`` (de-scaled); the batch dimension is dynamic.
    """
    import onnx
    import torch

    module = _served_module(ludwig_model, lookback)
    sample = torch.zeros((4, lookback), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module,
                (sample,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        if program is None:
            raise ExportError("torch.onnx.export returned no program")
        proto = program.model_proto
    except ExportError:
        raise
    except Exception as err:  # torch raises many unrelated types here
        raise ExportError(f"ONNX export failed: {type(err).__name__}: {err}") from err
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto)
    return proto


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporter's chatter (onnxscript's optimizer log, torch's deprecation warnings) off the console."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
