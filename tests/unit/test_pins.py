"""Pinned versions and the cutoff rule: a version may serve forecasts as of its cutoff day or later."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from processors.pins import CutoffError, Pin, check_cutoffs, read_pins, serve_from, walk_forward_cutoffs, write_pins
from redblue.core.calendar import get_calendar
from redblue.core.errors import RedblueError

FIRST_AS_OF = date(2023, 12, 29)  # a simulation from 2024-01-02


def pin(until: date | None, serve_from: date | None = None, version: str = "3") -> Pin:
    return Pin("red", "mlp", "AAPL", version, until, None if until is None else "ab" * 32, serve_from)


def test_a_model_trained_up_to_the_first_as_of_day_may_serve() -> None:
    check_cutoffs([pin(FIRST_AS_OF), pin(date(2020, 1, 2)), pin(None)], FIRST_AS_OF)  # None: a baseline


def test_a_model_trained_past_the_first_as_of_day_is_refused_by_name_version_and_dates() -> None:
    with pytest.raises(CutoffError) as err:
        check_cutoffs([pin(FIRST_AS_OF), pin(date(2024, 3, 28), version="7")], FIRST_AS_OF)
    message = str(err.value)
    assert isinstance(err.value, RedblueError)
    assert "1 model version(s)" in message
    assert "red/mlp AAPL version 7 was trained on data up to 2024-03-28, after 2023-12-29" in message
    assert "bin/redblue train --until 2023-12-29" in message and "--train-missing" in message


def test_a_walk_forward_version_is_checked_against_the_day_it_starts_serving() -> None:
    check_cutoffs([pin(date(2024, 2, 1), serve_from=date(2024, 2, 1))], FIRST_AS_OF)
    with pytest.raises(CutoffError, match=r"up to 2024-02-02, after 2024-02-01"):
        check_cutoffs([pin(date(2024, 2, 2), serve_from=date(2024, 2, 1))], FIRST_AS_OF)


def test_pins_round_trip_through_their_file(tmp_path: Path) -> None:
    pins = [pin(date(2024, 2, 1), serve_from=date(2024, 2, 1), version="4"), pin(FIRST_AS_OF), pin(None)]
    write_pins(tmp_path / "served.json", pins)
    assert read_pins(tmp_path / "served.json") == [pins[1], pins[2], pins[0]]  # by key, then serve_from
    (tmp_path / "bad.json").write_text("[{}]")
    with pytest.raises(RedblueError, match="cannot read pinned model versions"):
        read_pins(tmp_path / "bad.json")


def test_walk_forward_cutoffs_every_n_sessions_from_the_first_as_of_day() -> None:
    cal = get_calendar()
    first, last = date(2023, 12, 29), date(2024, 2, 1)  # 23 sessions apart
    cutoffs = walk_forward_cutoffs(first, last, 10, cal)
    assert cutoffs == [first, cal.offset(first, 10), cal.offset(first, 20)]
    assert [serve_from(c, first, cal) for c in cutoffs] == [None, cal.offset(first, 11), cal.offset(first, 21)]
    assert walk_forward_cutoffs(first, cal.offset(first, 20), 10, cal)[-1] == cal.offset(first, 10)  # 20 serves nothing
    with pytest.raises(RedblueError, match="at least 1"):
        walk_forward_cutoffs(first, last, 0, cal)
    pins = [pin(c, serve_from(c, first, cal), version=str(i)) for i, c in enumerate(cutoffs)]
    check_cutoffs(pins, first)  # each version serves only after its cutoff
