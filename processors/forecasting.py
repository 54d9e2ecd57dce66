"""The processor's pure core: a bar arrives, the window moves, every model forecasts."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from processors.baselines import ServedModel
from redblue.core.calendar import CalendarError, TradingCalendar
from schemas import Bar, BarProcessed, BarRevision, Forecast

log = logging.getLogger(__name__)

Verdict = Literal["ok", "redelivered", "duplicate", "stale", "conflict", "not_a_session"]


@dataclass(frozen=True)
class Horizon:
    """Which targets a run forecasts: ``first``..``last`` inclusive (``None``: open-ended, live)."""

    first: date | None = None
    last: date | None = None

    def covers(self, target: date) -> bool:
        return (self.first is None or target >= self.first) and (self.last is None or target <= self.last)


def advance(window: Sequence[Bar], bar: Bar, size: int, calendar: TradingCalendar) -> tuple[list[Bar], Verdict]:
    """The window after ``bar`` (at most ``size`` bars), and whether ``bar`` was new.

    A bar equal to one already seen is a ``duplicate`` (a replayed message); one with the same
    day but other values is a ``conflict``; one older than the newest is ``stale``.
    """
    if not calendar.is_session(bar.date):
        return list(window), "not_a_session"
    if window and bar.date <= window[-1].date:
        seen = next((b for b in window if b.date == bar.date), None)
        if seen is not None and _same_values(seen, bar):
            return list(window), "duplicate"
        return list(window), "conflict" if seen is not None else "stale"
    return [*window, bar][-size:], "ok"


def revise(window: Sequence[Bar], revision: BarRevision) -> list[Bar]:
    """The window with the revised session's new values (unchanged if the session is not in it).

    Forecasts made later see the corrected bar, as a replay of final data would; forecasts
    already made from the old values stay as they were.
    """
    return [revision.bar if b.date == revision.bar.date else b for b in window]


def _same_values(a: Bar, b: Bar) -> bool:
    return (a.open, a.high, a.low, a.close, a.volume) == (b.open, b.high, b.low, b.close, b.volume)


def forecast(
    run: str,
    window: Sequence[Bar],
    models: Sequence[ServedModel],
    calendar: TradingCalendar,
    horizon: Horizon,
    now: datetime,
) -> tuple[list[Forecast], list[str]]:
    """Every model's forecast of the session after ``window[-1]``, and the models that failed.

    Only the window is passed to a model, so nothing dated after the as-of day can be seen.
    """
    last = window[-1]
    try:
        target = calendar.next_session(last.date)
    except CalendarError:
        return [], []
    if not horizon.covers(target):
        return [], []
    made: list[Forecast] = []
    failed: list[str] = []
    for model in models:
        if last.symbol != model.symbol:
            continue
        result = _one(run, model, window, target, now)
        if isinstance(result, Forecast):
            made.append(result)
        elif result:
            failed.append(model.key)
            log.warning("model %s failed on %s %s: %s", model.key, last.symbol, last.date, result)
    return made, failed


def _one(run: str, model: ServedModel, window: Sequence[Bar], target: date, now: datetime) -> Forecast | str:
    """A forecast, an error message, or "" when the model needs more history than there is."""
    if model.forecaster is None:
        return model.error
    if model.trained_until is not None and model.trained_until > window[-1].date:
        version, until = model.forecaster.version, model.trained_until
        return f"version {version} was trained on data up to {until}: it cannot forecast as of {window[-1].date}"
    if len(window) < model.forecaster.min_history:
        return ""
    try:
        predicted = float(model.forecaster.predict(window))
    except Exception as err:  # a broken model must not stop the others
        return f"{type(err).__name__}: {err}"
    if not math.isfinite(predicted) or predicted <= 0:
        return f"invalid prediction {predicted!r}"
    last = window[-1]
    return Forecast(
        run=run,
        team=model.team,
        model=model.name,
        model_version=model.forecaster.version,
        symbol=last.symbol,
        as_of=last.date,
        target=target,
        predicted_close=predicted,
        last_close=last.close,
        model_trained_until=model.trained_until,
        produced_at=now,
    )


@dataclass(frozen=True)
class Step:
    """What one bar did: the new window, the events to publish (in order) and the verdict."""

    window: list[Bar]
    events: list[Forecast | BarProcessed]
    verdict: Verdict


def step(
    run: str,
    window: Sequence[Bar],
    bar: Bar,
    models: Sequence[ServedModel],
    *,
    size: int,
    calendar: TradingCalendar,
    horizon: Horizon,
    now: datetime,
) -> Step:
    """Advance the window with ``bar``; if it is new, forecast and then mark the bar processed.

    The ``BarProcessed`` marker comes after the forecasts it completes, on the same key, so a
    consumer sees every forecast made from bar D before it learns bar D.

    A bar already in the window (a redelivery: the worker stored the window and then died
    before its forecasts and marker were sent) is ``redelivered``: its forecasts and marker are
    made again from the window as it was when the bar first came (consumers are idempotent).
    Only when that window cannot be rebuilt exactly (an older bar of a full window, whose
    predecessors have been dropped) is it a ``duplicate`` that yields nothing.
    """
    moved, verdict = advance(window, bar, size, calendar)
    if verdict == "duplicate" and (seen := _as_it_was(window, bar, size)) is not None:
        moved, verdict = seen, "redelivered"
    elif verdict != "ok":
        return Step(moved, [], verdict)
    made, failed = forecast(run, moved, models, calendar, horizon, now)
    marker = BarProcessed(run=run, bar=bar, forecasts=len(made), failed=tuple(failed), produced_at=now)
    return Step(moved if verdict == "ok" else list(window), [*made, marker], verdict)


def _as_it_was(window: Sequence[Bar], bar: Bar, size: int) -> list[Bar] | None:
    """The window right after ``bar`` (already in it) first came, if it can be rebuilt exactly."""
    index = next(i for i, b in enumerate(window) if b.date == bar.date)
    if index == len(window) - 1 or len(window) < size:
        return list(window[: index + 1])
    return None
