"""A short chaos rehearsal of a live season through the real services (``scripts/rehearse.py``).

Six sessions, each service process started by ``season up`` (supervised), the producer on the
Alpaca data stand-in, every team on its own Alpaca stand-in account, all on the replayed clock.
The stormy season gets ``kill -9`` of the trader, processor and producer at random moments, one
broker restart and one Redis wipe of the run's keys (with the scorer killed: it rebuilds the
leaderboard from Kafka); it must end exactly as the undisturbed season: the same forecasts,
orders, fills, marks, equity and leaderboard, and no order accepted twice by the stand-ins; and
the calm one has the forecasts and orders of the clean replay of the same sessions.

The broker is a brand-new one of the test's own (its restart disturbs nobody); Redis is the
stack's (only the run's keys are deleted).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from redblue.core.settings import Settings
from scripts.rehearse import BASELINES, Chaos, against_clean_replay, differences, rehearse
from tests.integration.test_fresh_broker import brand_new_broker

pytestmark = pytest.mark.integration
START, DAYS = date(2024, 1, 2), 6


@pytest.fixture
def own_broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("rehearsal-home")
    with brand_new_broker(settings, home, topic_prefix=f"t{uuid.uuid4().hex[:6]}") as own:
        yield own


def test_a_season_under_kills_a_broker_restart_and_a_redis_wipe_ends_as_the_calm_one(
    own_broker: Settings, run_id: str
) -> None:
    quiet = lambda _: None  # noqa: E731
    calm, _ = rehearse(own_broker, f"{run_id}-calm", BASELINES, START, DAYS, Chaos(), say=quiet)
    chaos = Chaos(kills=3, broker_restart=True, redis_flush=True, seed=3, victims=("trader", "processor", "producer"))
    storm, kills = rehearse(own_broker, f"{run_id}-storm", BASELINES, START, DAYS, chaos, say=quiet)

    assert sorted(k.service for k in kills) == ["processor", "producer", "scorer", "trader"]
    assert all(k.recovered is not None for k in kills), kills
    assert len(calm.orders) >= 5 and len(calm.forecasts) >= 3 * 3 * DAYS  # it traded, and forecast every day
    assert differences(calm, storm) == dict.fromkeys(differences(calm, calm), True)
    assert storm.accepted == storm.submitted_events == calm.accepted  # every order event is one order at Alpaca
    # the calm rehearsal: the forecasts and orders of the clean in-process replay of the same sessions
    assert against_clean_replay(own_broker, calm, BASELINES, START, DAYS) == {
        "forecasts as the clean replay": True, "orders as the clean replay": True,
    }  # fmt: skip
