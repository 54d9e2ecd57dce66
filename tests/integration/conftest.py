"""Integration tests leave nothing behind: every test run id starts with ``t-`` and is reset at the end."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from redblue.adapters.redis_store import RedisStore
from redblue.app.provision import reset_run
from redblue.core.arena import DEFAULT_ARENA, load_arena
from redblue.core.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def _remove_test_runs(settings: Settings) -> Iterator[None]:
    yield
    with RedisStore.from_settings(settings, "t-cleanup") as store:
        runs = [r for r in store.list_runs() if r.startswith("t-")]
    for run in runs:
        reset_run(settings, run)


@dataclass(frozen=True)
class TrainedStore:
    """A throwaway MLflow store holding the reference arena's Ludwig team models, trained up to ``until``."""

    settings: Settings
    until: date


def scratch_store(settings: Settings, home: Path) -> Settings:
    """``settings`` with a throwaway MLflow store (and registry prefix) under ``home``; Kafka and Redis unchanged."""
    uri, prefix = f"sqlite:///{home}/mlflow.db", f"t{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={"home": home, "mlflow_tracking_uri": uri, "registry_prefix": prefix})


@pytest.fixture(scope="session")
def ludwig_store(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedStore]:
    """Trained once per test session (six models, about two minutes on two idle cores): shared by every test
    that runs the team models through the pipeline. Kafka and Redis are the stack's."""
    from training.train import train

    home = tmp_path_factory.mktemp("ludwig-store")
    local = scratch_store(settings, home)
    until = date(2023, 12, 29)
    results = train(load_arena(DEFAULT_ARENA), local, until, progress=False)
    assert {r.status for r in results} == {"trained"} and len(results) == 6
    yield TrainedStore(local, until)
    shutil.rmtree(home, ignore_errors=True)
