"""Shared fixtures. Integration tests (tests/integration) need the local stack:
``bin/redblue stack up`` (``make test`` does it). Each test gets a fresh run id, so its topics
and Redis keys are its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from redblue.core.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    """A fresh run id per test (used as topic and Redis key prefix)."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:30].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_url(settings: Settings) -> Iterator[str]:
    """The stack's Redis; fails loudly (not skip) when it is not running."""
    import redis

    login = settings.redis_login()  # the admin (the default service): tests set up and clean up
    auth = {} if login is None else {"username": login.username, "password": login.password.get_secret_value()}
    client = redis.Redis.from_url(settings.redis_url, **auth)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as err:
        pytest.fail(f"Redis at {settings.redis_url} is not running; start the stack: bin/redblue stack up ({err})")
    finally:
        client.close()
    yield settings.redis_url
