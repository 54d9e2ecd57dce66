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
from redblue.core.forecaster import Forecaster, predict_many
from redblue.core.spans import Spans
from schemas import Bar, BarProcessed, BarRevision, Forecast

log = logging.getLogger(__name__)

Verdict = Literal["ok", "redelivered", "duplicate", "stale", "conflict", "not_a_session"]


@dataclass(frozen=True)
class Horizon:
    """Which targets a run forecasts: ``first``..``last`` inclusive (``None``: open-ended, live).

    With ``spans`` (a simulation whose symbols start or end at different dates) a symbol's
    targets must also lie in its own span; a symbol without a span is not forecast.
    """

    first: date | None = None
    last: date | None = None
    spans: Spans | None = None

    def covers(self, symbol: str, target: date) -> bool:
        if self.spans is not None:
            span = self.spans.get(symbol)
            if span is None or not span.targets(target):
                return False
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
    return forecast_many(run, [window], models, calendar, horizon, now)[0]


def forecast_many(
    run: str,
    windows: Sequence[Sequence[Bar]],
    models: Sequence[ServedModel],
    calendar: TradingCalendar,
    horizon: Horizon,
    now: datetime,
) -> list[tuple[list[Forecast], list[str]]]:
    """:func:`forecast` for several windows (of any symbols): each model predicts all of its
    symbol's windows in one call (see :func:`~redblue.core.forecaster.predict_many`).

    Per window the forecasts and failures come in the order of ``models``, exactly as one
    :func:`forecast` per window would give them; each window is still all a model sees of it.
    """
    targets = [_target(window, calendar, horizon) for window in windows]
    results: list[tuple[list[Forecast], list[str]]] = [([], []) for _ in windows]
    for model in models:
        mine = [
            i
            for i, w in enumerate(windows)
            if targets[i] is not None and w[-1].symbol == model.symbol and model.serves(w[-1].date)
        ]
        if not mine:
            continue
        for i, outcome in zip(mine, _predict(model, [windows[i] for i in mine]), strict=True):
            if isinstance(outcome, float):
                results[i][0].append(_forecast(run, model, windows[i], targets[i], outcome, now))  # type: ignore[arg-type]
            elif outcome:
                results[i][1].append(model.key)
                log.warning("model %s failed on %s %s: %s", model.key, model.symbol, windows[i][-1].date, outcome)
    return results


def _target(window: Sequence[Bar], calendar: TradingCalendar, horizon: Horizon) -> date | None:
    """The session after the window's last day, if the run forecasts it."""
    last = window[-1]
    try:
        target = calendar.next_session(last.date)
    except CalendarError:
        return None
    return target if horizon.covers(last.symbol, target) else None


def _predict(model: ServedModel, windows: list[Sequence[Bar]]) -> list[float | str]:
    """Per window: the predicted close, an error message, or "" when it needs more history.

    A batch that fails is retried window by window, so one bad window fails alone.
    """
    if model.forecaster is None:
        return [model.error] * len(windows)
    forecaster = model.forecaster
    refused = [_seen_the_answer(forecaster.version, model.trained_until, w[-1].date) for w in windows]
    ready = [w for w, why in zip(windows, refused, strict=True) if not why and len(w) >= forecaster.min_history]
    try:
        predicted: list[float | str] = [_checked(p) for p in predict_many(forecaster, ready)]
    except Exception:  # a broken model must not stop the others: find the window(s) it fails on
        predicted = [_predict_one(forecaster, w) for w in ready]
    found = iter(predicted)
    return [
        why or (next(found) if len(w) >= forecaster.min_history else "")
        for w, why in zip(windows, refused, strict=True)
    ]


def _seen_the_answer(version: str, until: date | None, as_of: date) -> str:
    """Why a version trained on data up to ``until`` may not forecast as of ``as_of`` ("" if it may)."""
    if until is None or until <= as_of:
        return ""
    return f"version {version} was trained on data up to {until}: it cannot forecast as of {as_of}"


def _predict_one(forecaster: Forecaster, window: Sequence[Bar]) -> float | str:
    try:
        return _checked(float(forecaster.predict(window)))
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def _checked(predicted: float) -> float | str:
    if not math.isfinite(predicted) or predicted <= 0:
        return f"invalid prediction {predicted!r}"
    return predicted


def _forecast(
    run: str, model: ServedModel, window: Sequence[Bar], target: date, predicted: float, now: datetime
) -> Forecast:
    assert model.forecaster is not None
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
    windows = {bar.symbol: list(window)}
    return step_many(run, windows, [bar], models, size=size, calendar=calendar, horizon=horizon, now=now)[0]


def step_many(
    run: str,
    windows: dict[str, list[Bar]],
    bars: Sequence[Bar],
    models: Sequence[ServedModel],
    *,
    size: int,
    calendar: TradingCalendar,
    horizon: Horizon,
    now: datetime,
) -> list[Step]:
    """:func:`step` for each of ``bars`` in order (a batch, e.g. a day of every symbol or a
    stretch of a replay), the models predicting the whole batch at once.

    ``windows`` holds each symbol's window and is moved along; each bar's forecasts are made
    from its symbol's window as it was right after that bar (never a later bar of the batch).
    """
    moved: list[tuple[list[Bar], list[Bar], Verdict]] = []  # (window forecast from, window after, verdict)
    for bar in bars:
        before = windows.get(bar.symbol, [])
        window, verdict = advance(before, bar, size, calendar)
        if verdict == "duplicate" and (seen := _as_it_was(before, bar, size)) is not None:
            moved.append((seen, list(before), "redelivered"))
            continue
        if verdict == "ok":
            windows[bar.symbol] = window
        moved.append((window, window, verdict))
    fresh = [window for window, _, verdict in moved if verdict in ("ok", "redelivered")]
    made = iter(forecast_many(run, fresh, models, calendar, horizon, now))
    steps = []
    for bar, (_, after, verdict) in zip(bars, moved, strict=True):
        if verdict not in ("ok", "redelivered"):
            steps.append(Step(after, [], verdict))
            continue
        forecasts, failed = next(made)
        marker = BarProcessed(run=run, bar=bar, forecasts=len(forecasts), failed=tuple(failed), produced_at=now)
        steps.append(Step(after, [*forecasts, marker], verdict))
    return steps


def _as_it_was(window: Sequence[Bar], bar: Bar, size: int) -> list[Bar] | None:
    """The window right after ``bar`` (already in it) first came, if it can be rebuilt exactly."""
    index = next(i for i, b in enumerate(window) if b.date == bar.date)
    if index == len(window) - 1 or len(window) < size:
        return list(window[: index + 1])
    return None
