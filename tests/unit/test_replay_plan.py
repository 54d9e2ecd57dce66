"""Planning a replay: each symbol's span when data start or end at different dates; --days or --end."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from processors.forecasting import Horizon
from producers.replay import plan_replay
from redblue.core.bars import DataError
from redblue.core.calendar import get_calendar
from redblue.core.spans import Span

CAL = get_calendar()
SESSIONS = CAL.sessions(date(2024, 1, 2), date(2024, 6, 28))


def write_bars(folder: Path, symbol: str, first: int, last: int) -> None:
    with (folder / f"{symbol}.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["date", "open", "high", "low", "close", "adj_close", "volume"])
        for i, day in enumerate(SESSIONS[first : last + 1]):
            out.writerow([day.isoformat(), 10 + i, 11 + i, 9 + i, 10 + i, 10 + i, 100])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_bars(tmp_path, "OLD", 0, 100)  # all along
    write_bars(tmp_path, "NEW", 30, 100)  # begins late
    write_bars(tmp_path, "GONE", 0, 60)  # ends early
    return tmp_path


def test_every_symbol_gets_its_own_warm_up_and_end(data: Path) -> None:
    plan = plan_replay(data, ("OLD", "NEW", "GONE"), SESSIONS[20], None, 10, CAL, end=SESSIONS[100])
    assert plan.spans["OLD"] == Span(SESSIONS[10], SESSIONS[19], SESSIONS[20], SESSIONS[100])
    assert plan.spans["NEW"] == Span(SESSIONS[30], SESSIONS[39], SESSIONS[40], SESSIONS[100])
    assert plan.spans["GONE"] == Span(SESSIONS[10], SESSIONS[19], SESSIONS[20], SESSIONS[60])
    assert not plan.uniform
    assert (plan.first_target, plan.last_target, plan.warmup_first) == (SESSIONS[20], SESSIONS[100], SESSIONS[10])
    assert plan.days == 81
    rows = {s: [r.date for r in plan.rows if r.symbol == s] for s in plan.spans}
    assert rows["NEW"] == SESSIONS[30:101] and rows["GONE"] == SESSIONS[10:61] and rows["OLD"] == SESSIONS[10:101]
    assert [(r.date, r.symbol) for r in plan.rows] == sorted((r.date, r.symbol) for r in plan.rows)


def test_days_and_end_give_the_same_plan(data: Path) -> None:
    by_days = plan_replay(data, ("OLD", "NEW"), SESSIONS[20], 30, 10, CAL)
    by_end = plan_replay(data, ("OLD", "NEW"), SESSIONS[20], None, 10, CAL, end=SESSIONS[49])
    assert by_days == by_end
    weekend_end = plan_replay(data, ("OLD",), SESSIONS[20], None, 10, CAL, end=date(2024, 3, 3))  # a Sunday
    assert weekend_end.last_target == date(2024, 3, 1)


def test_a_run_where_every_symbol_covers_the_window_is_uniform(data: Path) -> None:
    plan = plan_replay(data, ("OLD", "NEW"), SESSIONS[50], 20, 10, CAL)
    assert plan.uniform and plan.spans["OLD"] == plan.spans["NEW"]
    assert (plan.first_as_of, plan.warmup_first) == (SESSIONS[49], SESSIONS[40])


@pytest.mark.parametrize(
    ("days", "end", "message"),
    [
        (None, None, "either a number of trading days or an end date"),
        (5, SESSIONS[40], "either a number of trading days or an end date"),
        (0, None, "--days must be at least 1"),
        (None, SESSIONS[10], "is before --start"),
    ],
)
def test_bad_lengths_are_refused(data: Path, days: int | None, end: date | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        plan_replay(data, ("OLD",), SESSIONS[20], days, 10, CAL, end=end)


def test_a_symbol_without_a_single_target_day_is_refused(data: Path) -> None:
    with pytest.raises(DataError, match=r"GONE: its data .* leave no target day"):
        plan_replay(data, ("OLD", "GONE"), SESSIONS[70], 10, 10, CAL)


def test_the_horizon_keeps_each_symbol_in_its_span() -> None:
    spans = {"NEW": Span(SESSIONS[30], SESSIONS[39], SESSIONS[40], SESSIONS[100])}
    horizon = Horizon(SESSIONS[20], SESSIONS[100], spans)
    assert not horizon.covers("NEW", SESSIONS[39])  # still warming up
    assert horizon.covers("NEW", SESSIONS[40]) and horizon.covers("NEW", SESSIONS[100])
    assert not horizon.covers("OTHER", SESSIONS[50])  # not in the run
    assert Horizon(SESSIONS[20], None).covers("OTHER", SESSIONS[50])  # live: no spans
