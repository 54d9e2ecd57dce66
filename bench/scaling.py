"""Benchmark: one worker serving 1, 10 and 100 team models (ONNX) per symbol, through a whole simulation.

Copies of a real export (the stack registry's ``redblue.red.mlp.AAPL`` champion, else the first
champion found) are registered in a throwaway MLflow store under distinct names
``scale.t0.m{i}.{symbol}``, each carrying its own team/model/symbol metadata, and an arena with one
team of N such models per symbol (it trades with ``m0``) is simulated over the reference period
(AAPL, AMZN, SAP, 2024-01-02 + 180 trading days) by ``bin/redblue simulate``, as a user runs it.
Reported side by side: simulation seconds, forecasts, forecasts per second of processing, the
processor's peak memory and CPU, the time its models took to load, and the cost per extra model.

Run with the stack up (``make bench``; the registry needs ``redblue train`` first).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import measure  # noqa: E402

from redblue.adapters.kafka import client_config  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from schemas import decode_all  # noqa: E402

PREFIX = "scale"
SYMBOLS = ("AAPL", "AMZN", "SAP")
CASES = (1, 10, 100)


def champion(settings: Settings) -> Any:
    """The ONNX proto of a real export in the stack's registry."""
    import mlflow.onnx
    from mlflow import MlflowClient

    from redblue.adapters.mlflow.auth import logged_in

    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    with logged_in(settings.for_service("admin").mlflow_login()):  # the stack's server asks who reads
        names = [f"{settings.registry_prefix}.red.mlp.AAPL"] + [
            m.name for m in client.search_registered_models() if "champion" in m.aliases
        ]
        for name in names:
            try:
                version = client.get_model_version_by_alias(name, "champion").version
            except Exception:  # not there: try the next one
                continue
            mlflow.set_registry_uri(settings.mlflow_uri)
            return mlflow.onnx.load_model(f"models:/{name}/{version}"), f"{name} version {version}"
    sys.exit("no champion in the registry: run bin/redblue train first")


def register(uri: str, proto: Any, folder: Path, models: int) -> float:
    """Register ``models`` copies per symbol (saved as MLflow models, versions made from them)."""
    import mlflow.onnx
    from mlflow import MlflowClient
    from onnx import ModelProto, helper

    client = MlflowClient(uri, uri)
    began = time.perf_counter()
    for m in range(models):
        for symbol in SYMBOLS:
            copy = ModelProto()
            copy.CopyFrom(proto)
            props = {p.key: p.value for p in copy.metadata_props}
            props |= {"redblue.team": "t0", "redblue.model": f"m{m}", "redblue.symbol": symbol}
            helper.set_model_props(copy, props)
            name = f"{PREFIX}.t0.m{m}.{symbol}"
            path = folder / name
            mlflow.onnx.save_model(
                copy, str(path), pip_requirements=["onnx", "onnxruntime"], save_as_external_data=False
            )
            client.create_registered_model(name)
            version = client.create_model_version(name, source=path.as_uri())
            client.set_registered_model_alias(name, "champion", version.version)
    return time.perf_counter() - began


def arena_file(folder: Path, models: int) -> Path:
    lines = [
        f"name: scale{models}",
        f"symbols: [{', '.join(SYMBOLS)}]",
        "window: 60",
        "baselines: []",
        "teams:",
        "  t0:",
        "    trade_with: m0",
        "    models:",
        *(f"      - {{name: m{m}, kind: ludwig}}" for m in range(models)),
    ]
    path = folder / f"scale{models}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def simulate(folder: Path, models: int, uri: str) -> dict[str, Any]:
    run = f"bench-scale{models}"
    env = dict(os.environ, REDBLUE_MLFLOW_TRACKING_URI=uri, REDBLUE_REGISTRY_PREFIX=PREFIX)
    cmd = [
        str(REPO / "bin" / "redblue"), "simulate", "--arena", str(arena_file(folder, models)),
        "--start", "2024-01-02", "--days", "180", "--run-id", run, "--out", str(folder / run), "--no-mlflow",
    ]  # fmt: skip
    done = measure.run(cmd, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"{models} models failed:\n" + "\n".join(line for _, line in done.lines[-30:]))
    settings = Settings()
    config = client_config(settings.for_service("admin"))
    forecasts = measure.topic_stats(config, f"{settings.topic_prefix}.{run}.forecasts")
    fills = measure.topic_stats(config, f"{settings.topic_prefix}.{run}.fills")
    log = (folder / run / "logs" / "processor.log").read_text()
    stamps = [time.mktime(time.strptime(s[:19], "%Y-%m-%d %H:%M:%S")) + int(s[20:23]) / 1000
              for s in re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})[^\n]*serving t0", log)]  # fmt: skip
    processor = next(p for p in done.procs if p.processor)
    return {
        "models": models,
        "sim_s": float(re.search(r"took ([0-9.]+)s", "\n".join(t for _, t in done.lines)).group(1)),  # type: ignore[union-attr]
        "forecasts": sum(1 for _, v in forecasts.payloads for e in decode_all(v) if e.TYPE == "forecast"),
        "processing_s": max(fills.last_ts, forecasts.last_ts) - forecasts.first_ts,
        "load_s": (max(stamps) - min(stamps)) if stamps else float("nan"),
        "rss_mb": processor.peak_rss_mb,
        "cpu_s": processor.cpu_s,
    }


def main() -> None:
    settings = Settings()
    proto, origin = champion(settings)
    with tempfile.TemporaryDirectory(prefix="redblue-scaling-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder}/mlflow.db"
        took = register(uri, proto, folder, max(CASES))
        print(f"model: copies of {origin}; {max(CASES) * len(SYMBOLS)} registered in {took:.0f} s\n")
        results = [simulate(folder, models, uri) for models in CASES]
    print("| models per symbol | forecasts | simulation s | processing s | forecasts/s | models load s "
          "| processor peak RSS MB | processor CPU s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rate = r["forecasts"] / r["processing_s"]
        print(f"| {r['models']} | {r['forecasts']:,} | {r['sim_s']:.1f} | {r['processing_s']:.2f} | {rate:,.0f} | "
              f"{r['load_s']:.1f} | {r['rss_mb']:.0f} | {r['cpu_s']:.1f} |")  # fmt: skip
    first, last = results[0], results[-1]
    extra = (last["models"] - first["models"]) * len(SYMBOLS)
    print(f"\nper extra model (of {extra}): {(last['rss_mb'] - first['rss_mb']) / extra:.2f} MB, "
          f"{(last['cpu_s'] - first['cpu_s']) / extra * 1000:.0f} ms processor CPU, "
          f"{(last['sim_s'] - first['sim_s']) / extra * 1000:.0f} ms simulation time")  # fmt: skip


if __name__ == "__main__":
    main()
