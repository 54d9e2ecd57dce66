"""Benchmark: training the default arena, then ONE processor worker serving 0, 6, 30 and 100 models.

First the reference arena's Ludwig models (2 teams x AAPL, AMZN, SAP) are trained from scratch
(``--force``) into a throwaway MLflow store and the wall time is printed per model and in all.

Needs no stack: the models are registered in a throwaway MLflow store (sqlite + local artifacts)
under distinct names ``bench.{team}.{model}.{symbol}``, all copies of one model: the first
``champion`` found in the configured registry (a real Ludwig export), else a hand-built MLP of
the same shape as the red reference config (10 → 32 → 16 → 1). Each case runs in a fresh
process that builds the worker exactly as ``redblue`` does (``processors.app.create_app`` with a
:class:`~redblue.adapters.mlflow.registry.RegistrySource`, so Faust, MLflow's client and ONNX Runtime are all
loaded) and reports, side by side:

- its resident memory (``VmRSS``) after every model is loaded, and the peak (``VmHWM``);
- the memory per model, against the worker with no team model;
- the latency of one forecast (:meth:`OnnxForecaster.predict` on a 60-bar window, features
  included): median and p99 over 2000 calls.

The aim (issue 3): 100 models in under 512 MB.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from redblue.core.arena import Arena, ModelSpec, TeamSpec  # noqa: E402
from redblue.core.model_names import KIND  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from schemas import Bar  # noqa: E402

PREFIX = "bench"
CASES = {0: (1, 1, 1), 6: (2, 1, 3), 30: (5, 2, 3), 100: (5, 2, 10)}  # models: (teams, models each, symbols)
SYMBOLS = tuple(f"S{n:02d}" for n in range(10))
CALLS = 2000
AIM_MB = 512


def arena(models: int) -> Arena:
    """An arena with ``models`` team models (0: one team with only a baseline)."""
    teams, per_team, symbols = CASES[models]
    kind = KIND if models else "persistence"
    specs = tuple(ModelSpec(name=f"m{m}", kind=kind) for m in range(per_team))
    return Arena(name="bench", symbols=SYMBOLS[:symbols], teams={f"t{t}": TeamSpec(models=specs) for t in range(teams)})


def vm(field: str) -> float:
    """A ``/proc/self/status`` memory field in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def window(symbol: str, n: int = 60) -> list[Bar]:
    day, closes, out = date(2024, 1, 2), [100.0 * (1.001**k) * (1 + 0.01 * (-1) ** k) for k in range(n)], []
    for close in closes:
        stamp = datetime(day.year, day.month, day.day, 21, tzinfo=UTC)
        prices = {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}
        out.append(
            Bar(symbol=symbol, date=day, volume=1000, source="bench", ts_event=stamp, produced_at=stamp, **prices)
        )
        day += timedelta(days=1)
    return out


# -- one case, in its own process ---------------------------------------------------------------


def serve(models: int, uri: str, home: str) -> dict[str, Any]:
    """Build the worker for ``models`` team models; its memory and one model's forecast latency."""
    from processors.app import create_app
    from processors.forecasting import Horizon
    from redblue.adapters.mlflow.registry import RegistrySource
    from redblue.core.forecaster import ModelError

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("processors.book").addHandler(handler)
    settings = Settings(  # no broker: it never connects
        home=Path(home), stack_dir=Path(home) / "stack", mlflow_tracking_uri=uri, registry_prefix=PREFIX, security=False
    )
    source = RegistrySource(settings.mlflow_uri, settings.registry_prefix)
    began = time.perf_counter()
    create_app(settings, "bench", arena(models), Horizon(), {KIND: source})
    if not models:  # what a worker with models holds besides them: MLflow's client and store
        with contextlib.suppress(ModelError):
            source.version("t0", ModelSpec(name="m0", kind=KIND), SYMBOLS[0])
    loaded = time.perf_counter() - began
    result: dict[str, Any] = {
        "served": sum(line.startswith("serving t") for line in lines) if models else 0,  # not the baseline
        "errors": [line for line in lines if not line.startswith("serving ")],
        "load_s": loaded,
        "rss_mb": vm("VmRSS"),
        "hwm_mb": vm("VmHWM"),
    }
    if models:
        model = source.load("t0", ModelSpec(name="m0", kind=KIND), SYMBOLS[0])
        bars = window(SYMBOLS[0])
        for _ in range(100):
            model.predict(bars)
        times = []
        for _ in range(CALLS):
            start = time.perf_counter_ns()
            model.predict(bars)
            times.append(time.perf_counter_ns() - start)
        times.sort()
        result |= {"p50_us": statistics.median(times) / 1e3, "p99_us": times[int(0.99 * len(times))] / 1e3}
    return result


# -- the models and the report --------------------------------------------------------------------


def mlp_model(lookback: int = 10, hidden: tuple[int, ...] = (32, 16)) -> Any:
    """A ReLU MLP ``features [batch, lookback] → log_return [batch]`` with the contract's metadata."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from redblue.core.features import FEATURES_VERSION
    from redblue.core.model_names import onnx_metadata

    rng = np.random.default_rng(7)
    sizes, nodes, inits, x = [lookback, *hidden, 1], [], [], "features"
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        weights = rng.normal(0, 0.1 / n_in**0.5, (n_in, n_out)).astype(np.float32)
        bias = np.zeros(n_out, np.float32)
        inits += [numpy_helper.from_array(weights, f"w{k}"), numpy_helper.from_array(bias, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"h{k}"]))
        x = f"h{k}"
        if k < len(hidden):
            nodes.append(helper.make_node("Relu", [x], [f"a{k}"]))
            x = f"a{k}"
    inits.append(numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "flat"))
    nodes.append(helper.make_node("Reshape", [x, "flat"], ["log_return"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", lookback])],
        [helper.make_tensor_value_info("log_return", TensorProto.FLOAT, ["batch"])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    helper.set_model_props(proto, onnx_metadata("t0", "m0", SYMBOLS[0], lookback, FEATURES_VERSION, date(2023, 12, 29)))
    return proto


def reference_model(settings: Settings) -> tuple[Any, str]:
    """The first champion in the configured registry (a real export), else the hand-built MLP."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient

    uri = settings.mlflow_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return mlp_model(), "hand-built MLP 10→32→16→1 (no MLflow store to copy a champion from)"
    try:
        mlflow.set_registry_uri(uri)
        for found in MlflowClient(uri, uri).search_registered_models(f"name LIKE '{settings.registry_prefix}.%'"):
            if "champion" in found.aliases:
                version = found.aliases["champion"]
                proto = mlflow.onnx.load_model(f"models:/{found.name}/{version}")
                return proto, f"copies of {found.name} version {version} (a real export)"
    except Exception as err:  # an unreachable store or a broken model: fall back to the MLP
        return mlp_model(), f"hand-built MLP 10→32→16→1 (cannot copy a champion: {err})"
    return mlp_model(), "hand-built MLP 10→32→16→1 (no trained champion yet)"


def register_copies(uri: str, proto: Any, artifacts: Path) -> float:
    """Register one copy per (team, model, symbol) of the largest case; seconds taken."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient
    from onnx import ModelProto, helper

    from redblue.core.model_names import registry_name

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment("bench", artifact_location=artifacts.as_uri())
    began = time.perf_counter()
    for team, spec in arena(max(CASES)).all_models():
        for symbol in SYMBOLS:
            copy = ModelProto()
            copy.CopyFrom(proto)
            props = {p.key: p.value for p in copy.metadata_props}
            props |= {"redblue.team": team, "redblue.model": spec.name, "redblue.symbol": symbol}
            helper.set_model_props(copy, props)
            name = registry_name(PREFIX, team, spec.name, symbol)
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.onnx.log_model(
                    copy, name="model", registered_model_name=name, pip_requirements=["onnx", "onnxruntime"]
                )
            client.set_registered_model_alias(name, "champion", str(info.registered_model_version))
    return time.perf_counter() - began


def train_default_arena(tmp: Path) -> Settings:
    """Train the reference arena's team models from scratch into a store under ``tmp``; print the times."""
    from redblue.core.arena import load_arena
    from training.ludwig.fit import ludwig_api
    from training.train import train

    settings = Settings(home=tmp / "home", stack_dir=tmp / "stack", mlflow_tracking_uri=f"sqlite:///{tmp}/training.db")
    began = time.perf_counter()
    ludwig_api()
    imported = time.perf_counter() - began
    results = train(load_arena(), settings, date(2023, 12, 29), force=True, progress=False)
    total = time.perf_counter() - began
    print(f"training the default arena: {len(results)} models in {total:.0f} s (importing Ludwig: {imported:.0f} s)")
    print(f"{'model':28}{'rows':>7}{'train s':>9}{'export s':>10}{'ONNX KB':>9}{'val MAE':>9}{'MASE':>7}{'parity':>9}")
    for r in results:
        print(
            f"{r.name:28}{r.rows:>7}{r.train_seconds:>9.1f}{r.export_seconds:>10.1f}{r.onnx_bytes / 1024:>9.0f}"
            f"{r.val_mae or 0:>9.4f}{r.val_mase or 0:>7.3f}{r.parity_max_abs_diff or 0:>9.1e}"
        )
    return settings


def main() -> None:
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="redblue-bench-") as tmp:
        trained = train_default_arena(Path(tmp))
        uri = f"sqlite:///{tmp}/mlflow.db"
        proto, origin = reference_model(trained)
        took = register_copies(uri, proto, Path(tmp) / "artifacts")
        print(f"model: {origin}, {proto.ByteSize() / 1024:.1f} KB serialized; 100 copies registered in {took:.0f} s")
        results = {}
        for models in CASES:
            done = subprocess.run(
                [sys.executable, __file__, "--serve", str(models), uri, tmp],
                capture_output=True,
                text=True,
                cwd=tmp,
                check=False,
            )
            if done.returncode:
                sys.exit(f"case {models} failed:\n{done.stderr[-3000:]}")
            results[models] = json.loads(done.stdout.strip().splitlines()[-1])
    report(results)


def report(results: dict[int, dict[str, Any]]) -> None:
    base = results[0]["rss_mb"]
    heads = ("models", "served", "RSS MB", "peak MB", "MB/model", "load s", "p50 µs", "p99 µs")
    print("".join(f"{head:>9}" for head in heads))
    for models, r in results.items():
        per = f"{(r['rss_mb'] - base) / models:.2f}" if models else "-"
        p50, p99 = (f"{r['p50_us']:.0f}", f"{r['p99_us']:.0f}") if models else ("-", "-")
        cells = (models, r["served"], f"{r['rss_mb']:.0f}", f"{r['hwm_mb']:.0f}", per, f"{r['load_s']:.1f}", p50, p99)
        print("".join(f"{cell:>9}" for cell in cells))
        for error in r["errors"]:
            print(f"        ! {error}")
    big, mid = results[max(CASES)], results[30]
    print(f"marginal memory from 30 to 100 models: {(big['rss_mb'] - mid['rss_mb']) / 70:.2f} MB per model")
    print("(the first model also pays once for ONNX Runtime's first session and MLflow's onnx loader)")
    verdict = "meets" if big["rss_mb"] < AIM_MB else "MISSES"
    print(f"{max(CASES)} models in {big['rss_mb']:.0f} MB: {verdict} the aim of < {AIM_MB} MB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        logging.disable(logging.NOTSET)
        print(json.dumps(serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
    else:
        main()
