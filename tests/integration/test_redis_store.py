"""The leaderboard store contract, run against the in-memory store and against the stack's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from consumers.leaderboard import Scoreboard, summary
from redblue.adapters.redis_store import RedisStore
from redblue.core.metrics import ErrorSums, NaiveScale, ScoredForecast
from redblue.core.settings import Settings
from redblue.core.store import InMemoryStore, LeaderboardStore, Series, StoreError, StoreUnavailable, sums_of
from tests.unit.test_leaderboard import (
    ARENA,
    WARMUP,
    D,
    fill,
    forecast,
    interleave,
    mark,
    order,
    play,
    simulated_streams,
)

SERIES = Series("red", "drift", "AAPL")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, run_id: str) -> Iterator[LeaderboardStore]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    login = request.getfixturevalue("settings").redis_login()
    redis_store = RedisStore(request.getfixturevalue("redis_url"), "redblue-test", run_id, login=login)
    yield redis_store
    redis_store.delete_run()
    redis_store.close()


def scored(i: int, predicted: float, actual: float, series: Series = SERIES) -> ScoredForecast:
    return ScoredForecast(series.team, series.model, series.symbol, D[i], D[i + 1], predicted, 100.0, actual)


AWKWARD = [scored(i, 100.0 + 0.1 * (i + 1) + 1 / 3, 100.0 + 0.7 / (i + 1)) for i in range(8)]


def test_a_forecast_is_scored_once(store: LeaderboardStore) -> None:
    assert store.add_score(AWKWARD[0]) is True
    assert store.add_score(AWKWARD[0]) is False
    assert store.error_sums() == {SERIES: ErrorSums().add(AWKWARD[0])}
    assert store.scored(SERIES) == [AWKWARD[0]]


def test_a_revised_score_recomputes_the_sums_as_if_scored_so(store: LeaderboardStore) -> None:
    for s in AWKWARD:
        store.add_score(s)
    new = replace(AWKWARD[3], actual=AWKWARD[3].actual + 1 / 7)
    assert store.revise_score(new) is True
    assert store.revise_score(new) is False  # a replayed revision changes nothing
    assert store.revise_score(scored(20, 100.0, 101.0)) is False  # never scored: nothing to revise
    expected = [*AWKWARD[:3], new, *AWKWARD[4:]]
    assert store.scored(SERIES) == expected
    assert store.error_sums()[SERIES] == sums_of(expected)  # bit for bit, in target order


def test_sums_are_the_exact_floats_of_python(store: LeaderboardStore) -> None:
    expected = ErrorSums()
    for s in AWKWARD:
        store.add_score(s)
        expected = expected.add(s)
    assert store.error_sums()[SERIES] == expected  # bit for bit, not approximately
    assert store.scored(SERIES) == AWKWARD


def test_sums_of_one_model_by_symbol(store: LeaderboardStore) -> None:
    other_model = Series("red", "drift2", "AAPL")
    store.add_score(scored(0, 101.0, 100.5))
    store.add_score(scored(0, 101.0, 100.5, Series("red", "drift", "SAP")))
    store.add_score(scored(0, 101.0, 100.5, other_model))
    assert sorted(store.error_sums_of("red", "drift")) == ["AAPL", "SAP"]
    assert list(store.error_sums_of("red", "drift2")) == ["AAPL"]
    assert store.error_sums_of("blue", "drift") == {}
    assert set(store.error_sums()) == {SERIES, Series("red", "drift", "SAP"), other_model}


def test_naive_scales_are_the_exact_floats_of_python_and_ignore_replays(store: LeaderboardStore) -> None:
    closes = [100.0 + 1 / (i + 3) for i in range(6)]
    expected = NaiveScale()
    for i, close in enumerate(closes):
        store.add_insample_close("AAPL", D[i], close)
        expected = expected.add(D[i], close)
    store.add_insample_close("AAPL", D[2], 1e6)  # a replayed day
    store.add_insample_close("SAP.DE", D[0], 50.0)
    assert store.naive_scales() == {"AAPL": expected, "SAP.DE": NaiveScale().add(D[0], 50.0)}


def test_a_fill_is_recorded_once_per_order(store: LeaderboardStore) -> None:
    late, early = fill("red", "AAPL", 2, "b-order", 101.0), fill("red", "SAP", 1, "a-order", 50.0)
    assert store.add_fill(late) and store.add_fill(early)
    assert not store.add_fill(fill("red", "AAPL", 2, "b-order", 999.0))
    assert store.fills("red") == [early, late]
    assert store.fills("blue") == []


def test_marks_of_a_day(store: LeaderboardStore) -> None:
    a, b = mark("red", "AAPL", 0, 2, 100.0, -200.0), mark("red", "SAP", 0, 0, 50.0, 0.0)
    store.set_mark(a)
    store.set_mark(b)
    store.set_mark(mark("red", "AAPL", 1, 3, 100.0, -300.0))
    store.set_mark(a)  # a replay
    store.set_mark(mark("red", "AAPL", 0, 0, 100.0, 0.0))  # a restarted trader's empty book: not written
    assert store.marks("red", D[0], ["AAPL", "AMZN", "SAP"]) == {"AAPL": a, "SAP": b}
    assert store.marks("blue", D[0], ["AAPL"]) == {}


def test_marks_set_in_a_batch_are_written_once_too(store: LeaderboardStore) -> None:
    a, b = mark("red", "AAPL", 0, 2, 100.0, -200.0), mark("red", "SAP", 0, 1, 50.0, -50.0)
    store.set_mark(a)
    with store.batch():  # the scorer's units: the batch's marks go in one call
        store.set_mark(mark("red", "AAPL", 0, 0, 100.0, 0.0))  # set before the batch: kept
        store.set_mark(b)
        store.set_mark(mark("red", "SAP", 0, 5, 50.0, -250.0))  # set earlier in the batch: kept
        store.set_mark(mark("blue", "SAP", 0, 1, 50.0, -50.0))
    assert store.marks("red", D[0], ["AAPL", "SAP"]) == {"AAPL": a, "SAP": b}
    assert list(store.marks("blue", D[0], ["SAP"])) == ["SAP"]


def test_equity_history_and_progress_keep_the_latest_day(store: LeaderboardStore) -> None:
    store.set_equity("red", D[1], 1001.5)
    store.set_equity("red", D[0], 999.25)
    assert store.equity_history("red") == [(D[0], 999.25), (D[1], 1001.5)]
    assert store.equity_dates() == {"red": D[1]}
    store.advance_bar("AAPL", D[3])
    store.advance_bar("AAPL", D[2])
    store.advance_bar("SAP", D[0])
    assert store.bar_dates() == {"AAPL": D[3], "SAP": D[0]}


def test_rankings(store: LeaderboardStore) -> None:
    for member, score in [("red/drift", 2.5), ("blue/trend", 1.25), ("blue/alt", 2.5), ("gone", 0.1)]:
        store.set_rank("mae", member, score)
    store.set_rank("mae", "gone", None)
    store.set_rank("mae", "red/drift", 2.5)  # idempotent
    assert store.ranking("mae") == [("blue/trend", 1.25), ("blue/alt", 2.5), ("red/drift", 2.5)]
    assert store.ranking("mae", 1) == [("blue/trend", 1.25)]
    assert store.ranking("mae", 0) == store.ranking("mae", -1) == []
    assert store.rank("mae", "red/drift") == (2, 2.5)  # tied with blue/alt
    assert store.rank("mae", "gone") is None
    assert store.ranking("sharpe") == []


def test_a_whole_run_gives_the_same_summary_in_every_store(store: LeaderboardStore) -> None:
    events = interleave(simulated_streams(n_days=12, warmup=WARMUP), seed=11)
    expected = summary(play(events), ARENA)
    assert summary(play(events, store), ARENA) == expected
    assert summary(play(events, store), ARENA) == expected  # a rebuild changes nothing


def test_batched_writes_give_the_same_summary_and_land_only_at_the_end(store: LeaderboardStore) -> None:
    events = interleave(simulated_streams(n_days=12), seed=12)
    expected = summary(play(events), ARENA)
    board = Scoreboard(store, ARENA)
    for start in range(0, len(events), 37):
        with board.batch():
            for event in events[start : start + 37]:
                board.handle(event)
            if start == 0 and isinstance(store, RedisStore):
                assert store.error_sums() == {}  # nothing visible before the batch ends
    assert summary(store, ARENA) == expected


@pytest.mark.integration
def test_delete_run_removes_every_key_of_the_run(settings: Settings, redis_url: str, run_id: str) -> None:
    import redis

    login = settings.redis_login()
    with (
        RedisStore(redis_url, "redblue-test", run_id, login=login) as doomed,
        RedisStore(redis_url, "redblue-test", f"{run_id}-x", login=login) as kept,
    ):
        play(interleave(simulated_streams(n_days=4), seed=1), doomed)
        kept.set_equity("red", D[0], 1000.0)
        assert {run_id, f"{run_id}-x"} <= set(doomed.list_runs())
        assert doomed.delete_run() > 0
        auth = {} if login is None else {"username": login.username, "password": login.password.get_secret_value()}
        client = redis.Redis.from_url(redis_url, **auth)
        assert client.keys(f"redblue-test:{run_id}:*") == []
        assert kept.equity_history("red") == [(D[0], 1000.0)]
        assert run_id not in doomed.list_runs()
        kept.delete_run()
        client.close()


def test_an_unreachable_redis_raises_a_clear_error(run_id: str) -> None:
    store = RedisStore("redis://user:secret@127.0.0.1:1/0", "redblue-test", run_id)
    with pytest.raises(StoreUnavailable, match=r"Redis at redis://127.0.0.1:1/0 is not reachable.*stack up") as err:
        store.ping()
    assert "secret" not in str(err.value)
    with pytest.raises(StoreUnavailable):
        store.add_score(AWKWARD[0])


def test_redis_store_is_a_leaderboard_store() -> None:
    store: LeaderboardStore = RedisStore("redis://127.0.0.1:1/0", "redblue-test", "typecheck")
    assert isinstance(store, RedisStore)


def test_invalid_run_ids_and_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid run id"):
        RedisStore("redis://127.0.0.1:1/0", "redblue-test", "a:b")
    with pytest.raises(StoreError, match="invalid Redis URL"):
        RedisStore("http://127.0.0.1:1/0", "redblue-test", "ok")


def test_latest_forecasts_and_model_versions(store: LeaderboardStore) -> None:
    v1 = [forecast("red", "drift", s, i, 101.0 + i, 100.0) for i in (1, 0) for s in ("SAP", "AAPL")]
    v2 = forecast("red", "drift", "AAPL", 2, 105.0, 100.0).model_copy(update={"model_version": "2"})
    same_day_again = v2.model_copy(update={"predicted_close": 1.0})
    store.note_forecasts(v1)
    store.note_forecasts([v2, same_day_again, v1[0]])
    assert store.latest_forecasts() == [v2, v1[0]]  # AAPL then SAP; the first of a tie stays
    assert store.model_versions() == {
        Series("red", "drift", "AAPL"): {"1": D[0], "2": D[2]},
        Series("red", "drift", "SAP"): {"1": D[0]},
    }
    store.note_forecasts([])


def test_an_order_is_recorded_once(store: LeaderboardStore) -> None:
    first = order("red", "AAPL", 1, "b", "submitted")
    store.add_order(first)
    assert store.add_order(order("red", "SAP", 0, "a", "rejected"))
    assert not store.add_order(order("red", "AAPL", 1, "b", "duplicate"))
    assert [(o.client_order_id, o.status) for o in store.orders("red")] == [("a", "rejected"), ("b", "submitted")]
    assert store.orders("blue") == []


def test_closes_and_the_run_description(store: LeaderboardStore) -> None:
    store.set_close("AAPL", D[1], 101.25)
    store.set_close("AAPL", D[0], 1 / 3)
    store.set_close("AAPL", D[1], 101.25)
    assert store.closes("AAPL") == [(D[0], 1 / 3), (D[1], 101.25)]
    assert store.closes("SAP") == []
    assert store.meta() == {}
    store.set_meta({"kind": "simulation", "status": "running"})
    store.set_meta({"kind": "live", "arena": "{}"}, only_missing=True)
    store.set_meta({"status": "complete"})
    assert store.meta() == {"kind": "simulation", "status": "complete", "arena": "{}"}
