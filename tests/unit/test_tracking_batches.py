"""A simulation's parameters and metrics reach MLflow in few requests, each within MLflow's limits."""

from __future__ import annotations

from typing import Any

from mlflow.utils.validation import MAX_ENTITIES_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from redblue.adapters.mlflow.tracking import log_batches


class _Client:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], list[Any]]] = []

    def log_batch(self, run_id: str, metrics: list[Any], params: list[Any]) -> None:
        assert run_id == "r1"
        self.calls.append((metrics, params))


def test_every_value_is_logged_once_in_requests_within_the_limits() -> None:
    client = _Client()
    params = {f"p{i}": str(i) for i in range(250)}
    metrics = {f"m{i}": float(i) for i in range(2500)}
    log_batches(client, "r1", params, metrics)
    for ms, ps in client.calls:
        assert len(ms) <= MAX_METRICS_PER_BATCH and len(ps) <= MAX_PARAMS_TAGS_PER_BATCH
        assert len(ms) + len(ps) <= MAX_ENTITIES_PER_BATCH
    assert [p.key for _, ps in client.calls for p in ps] == list(params)
    assert {m.key: m.value for ms, _ in client.calls for m in ms} == metrics
    assert sum(len(ms) for ms, _ in client.calls) == len(metrics)
    assert len(client.calls) == 3  # 250 + 2,500 values in three requests, not 2,750


def test_a_small_simulation_is_one_request() -> None:
    client = _Client()
    log_batches(client, "r1", {"run": "x", "days": "5"}, {"red.pnl": 1.5})
    assert len(client.calls) == 1


def test_the_commands_logging_thread_returns_the_run_id_or_raises_the_error(monkeypatch: Any) -> None:
    """The simulate command logs while its services stop; what the logging says reaches the caller."""
    from types import SimpleNamespace

    import pytest

    from redblue.adapters.mlflow import tracking
    from redblue.app.commands import _Logging
    from redblue.core.settings import Settings

    result = SimpleNamespace(summary={"run": "x"}, out="/nowhere")
    monkeypatch.setattr(tracking, "log_simulation", lambda settings, summary, out: f"id-of-{summary['run']}")
    logging = _Logging(Settings())
    logging.start(result)
    assert logging.result() == "id-of-x"

    def refuse(*_: Any) -> str:
        raise tracking.TrackingError("could not log the simulation to MLflow at http://x: refused")

    monkeypatch.setattr(tracking, "log_simulation", refuse)
    failing = _Logging(Settings())
    failing.start(result)
    with pytest.raises(tracking.TrackingError, match="refused"):
        failing.result()
