"""Integration tests leave nothing behind: every test run id starts with ``t-`` and is reset at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redblue.adapters.redis_store import RedisStore
from redblue.app.provision import reset_run
from redblue.core.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def _remove_test_runs(settings: Settings) -> Iterator[None]:
    yield
    with RedisStore.from_settings(settings, "t-cleanup") as store:
        runs = [r for r in store.list_runs() if r.startswith("t-")]
    for run in runs:
        reset_run(settings, run)
