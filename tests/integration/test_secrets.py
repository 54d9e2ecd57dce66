"""No password of the stack is ever printed, logged, sent as an event or stored in MLflow.

A simulation runs through the CLI (as a user runs it, logging to MLflow), then every place a
secret could leak is scanned for every password of the stack's credentials file: what the
commands printed, the run's files and logs, the stack's own logs, every message of the run's
topics, and MLflow's store (params, tags, metrics and artifacts of the logged run, and the
store's files on disk).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from redblue.adapters.mlflow.auth import AsUser
from redblue.adapters.mlflow.tracking import SIMULATIONS
from redblue.core.arena import REPO_ROOT
from redblue.core.settings import Settings
from schemas import TOPICS, decode_all, topic_name
from tests.factories import BASELINES
from tests.leaks import files_under, leaks, raw_messages, stack_secrets

pytestmark = pytest.mark.integration


def test_no_secret_is_printed_logged_sent_or_stored(settings: Settings, run_id: str, tmp_path: Path) -> None:
    known = stack_secrets(settings)
    assert known, "no credentials: these checks need the secured stack"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "redblue", "-v", "simulate", "--arena", str(BASELINES), "--symbols", "SAP",
           "--start", "2024-06-03", "--days", "5", "--run-id", run_id, "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, cwd=REPO_ROOT, env=dict(os.environ), timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    status = subprocess.run([sys.executable, "-m", "redblue", "stack", "status"], capture_output=True, check=False)
    printed = done.stdout + done.stderr + status.stdout + status.stderr
    assert leaks(printed, known) == [], "a command printed a password"

    for path in files_under(out):  # the run's files and its logs/ (the processor's log)
        assert leaks(path.read_bytes(), known) == [], f"{path} holds a password"
    stack = settings.stack_home
    for log in [
        *files_under(stack / "kafka" / "logs"),
        stack / "redis" / "redis.log",
        *files_under(stack / "mlflow" / "logs"),
    ]:
        if log.is_file():
            assert leaks(log.read_bytes(), known) == [], f"the stack's log {log} holds a password"

    events = 0
    for spec in TOPICS:
        for key, value in raw_messages(settings, topic_name(settings.topic_prefix, run_id, spec)):
            events += len(decode_all(value))  # a message may carry a batch of events
            assert leaks(key + b"|" + value, known) == [], f"a {spec.suffix} message holds a password"
    assert events > 100

    client = AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), settings.mlflow_login())
    experiment = client.get_experiment_by_name(SIMULATIONS)
    logged = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == run_id]
    assert logged, "the simulation was not logged to MLflow"
    for found in logged:
        fields = {**found.data.params, **found.data.tags, **{k: str(v) for k, v in found.data.metrics.items()}}
        assert leaks(repr(fields), known) == [], "an MLflow param, tag or metric holds a password"
        local = mlflow_download(settings, found.info.run_id, tmp_path / "artifacts")
        for path in files_under(local):
            assert leaks(path.read_bytes(), known) == [], f"the MLflow artifact {path.name} holds a password"
    store = stack / "mlflow"
    for path in [store / "mlflow.db", *files_under(store / "artifacts")]:  # the store's files, if local
        if path.is_file():
            assert leaks(path.read_bytes(), known) == [], f"MLflow's store {path} holds a password"


def mlflow_download(settings: Settings, run_id: str, into: Path) -> Path:
    from redblue.adapters.mlflow.auth import logged_in

    into.mkdir(parents=True, exist_ok=True)
    with logged_in(settings.mlflow_login()):
        return Path(
            mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(into), tracking_uri=settings.mlflow_uri)
        )
