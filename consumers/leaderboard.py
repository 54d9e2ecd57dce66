"""The leaderboard: a projection of one run's forecasts, bars, fills and position marks.

:class:`Scoreboard` turns events into small, idempotent writes to a :class:`LeaderboardStore`
(Redis in :mod:`redblue.redis_store`, :class:`InMemoryStore` in unit tests). Replaying the
topics into a store that already holds them changes nothing, so the leaderboard can be rebuilt
from Kafka at any time. Reading functions (:func:`rankings`, :func:`standings`,
:func:`summary`, :func:`progress`) compute everything from the store in a fixed order, so the
answer does not depend on how Kafka interleaved the symbols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, NamedTuple, Protocol

from consumers.metrics import (
    FORECAST_METRICS,
    LOWER_IS_BETTER,
    TRADING_METRICS,
    ErrorSums,
    ForecastMetrics,
    ScoredForecast,
    TradingMetrics,
    combine,
    equity,
    forecast_metrics,
    metric_value,
    score_forecast,
    trading_metrics,
)
from redblue.arena import Arena
from redblue.errors import RedblueError
from schemas import BarProcessed, Event, Fill, Forecast, PositionMark

RANKED_METRICS = (*FORECAST_METRICS, *TRADING_METRICS)


class StoreError(RedblueError):
    """The leaderboard store failed; the message says what and where."""


class StoreUnavailable(StoreError):
    """The leaderboard store cannot be reached (e.g. the stack is not running)."""


class Series(NamedTuple):
    """One forecast series: a team's model on one symbol."""

    team: str
    model: str
    symbol: str

    @property
    def member(self) -> str:
        """The ``team/model`` name used in rankings."""
        return f"{self.team}/{self.model}"


class LeaderboardStore(Protocol):
    """Where one run's leaderboard lives. Every write is idempotent."""

    def add_score(self, scored: ScoredForecast) -> bool:
        """Record a scored forecast and add it to its series' sums; ``False`` if already scored."""
        ...

    def scored(self, series: Series) -> list[ScoredForecast]:
        """The series' scored forecasts in target order."""
        ...

    def error_sums(self) -> dict[Series, ErrorSums]:
        """The sums of every series that has scores."""
        ...

    def error_sums_of(self, team: str, model: str) -> dict[str, ErrorSums]:
        """One model's sums, by symbol."""
        ...

    def add_fill(self, fill: Fill) -> bool:
        """Record a fill once per ``client_order_id``; ``False`` if already recorded."""
        ...

    def fills(self, team: str) -> list[Fill]:
        """The team's fills ordered by (date, symbol, client_order_id)."""
        ...

    def set_mark(self, mark: PositionMark) -> None:
        """Record (or overwrite with the same content) a team's mark of one symbol on one day."""
        ...

    def marks(self, team: str, day: date, symbols: Sequence[str]) -> dict[str, PositionMark]:
        """The team's marks on ``day`` among ``symbols`` (those recorded so far)."""
        ...

    def set_equity(self, team: str, day: date, value: float) -> None:
        """Record the team's equity at ``day``'s close and advance its equity progress."""
        ...

    def equity_history(self, team: str) -> list[tuple[date, float]]:
        """The team's equity curve in date order."""
        ...

    def equity_dates(self) -> dict[str, date]:
        """The last day with a known equity, per team."""
        ...

    def advance_bar(self, symbol: str, day: date) -> None:
        """Note that ``symbol``'s bar ``day`` is known and scored (keeps the latest day)."""
        ...

    def bar_dates(self) -> dict[str, date]:
        """The last processed bar day, per symbol."""
        ...

    def set_rank(self, metric: str, member: str, score: float | None) -> None:
        """Place ``member`` in ``metric``'s ranking at ``score`` (lower is better); ``None`` removes it."""
        ...

    def ranking(self, metric: str, limit: int | None = None) -> list[tuple[str, float]]:
        """Members best first (ascending score, ties by name), at most ``limit``."""
        ...

    def rank(self, metric: str, member: str) -> tuple[int, float] | None:
        """``(1 + number of members with a strictly better score, score)``; ``None`` if unranked."""
        ...


class InMemoryStore:
    """A dict-based :class:`LeaderboardStore` for unit tests and one-off reports."""

    def __init__(self) -> None:
        self._scored: dict[Series, dict[date, ScoredForecast]] = {}
        self._sums: dict[Series, ErrorSums] = {}
        self._fills: dict[str, dict[str, Fill]] = {}
        self._marks: dict[tuple[str, date, str], PositionMark] = {}
        self._equity: dict[str, dict[date, float]] = {}
        self._bars: dict[str, date] = {}
        self._ranks: dict[str, dict[str, float]] = {}

    def add_score(self, scored: ScoredForecast) -> bool:
        series = Series(scored.team, scored.model, scored.symbol)
        done = self._scored.setdefault(series, {})
        if scored.target in done:
            return False
        done[scored.target] = scored
        self._sums[series] = self._sums.get(series, ErrorSums()).add(scored)
        return True

    def scored(self, series: Series) -> list[ScoredForecast]:
        return [s for _, s in sorted(self._scored.get(series, {}).items())]

    def error_sums(self) -> dict[Series, ErrorSums]:
        return dict(self._sums)

    def error_sums_of(self, team: str, model: str) -> dict[str, ErrorSums]:
        return {s.symbol: v for s, v in self._sums.items() if (s.team, s.model) == (team, model)}

    def add_fill(self, fill: Fill) -> bool:
        known = self._fills.setdefault(fill.team, {})
        if fill.client_order_id in known:
            return False
        known[fill.client_order_id] = fill
        return True

    def fills(self, team: str) -> list[Fill]:
        return sorted(self._fills.get(team, {}).values(), key=lambda f: (f.date, f.symbol, f.client_order_id))

    def set_mark(self, mark: PositionMark) -> None:
        self._marks[(mark.team, mark.as_of, mark.symbol)] = mark

    def marks(self, team: str, day: date, symbols: Sequence[str]) -> dict[str, PositionMark]:
        found = {s: self._marks.get((team, day, s)) for s in symbols}
        return {s: m for s, m in found.items() if m is not None}

    def set_equity(self, team: str, day: date, value: float) -> None:
        self._equity.setdefault(team, {})[day] = value

    def equity_history(self, team: str) -> list[tuple[date, float]]:
        return sorted(self._equity.get(team, {}).items())

    def equity_dates(self) -> dict[str, date]:
        return {team: max(curve) for team, curve in self._equity.items() if curve}

    def advance_bar(self, symbol: str, day: date) -> None:
        self._bars[symbol] = max(day, self._bars.get(symbol, day))

    def bar_dates(self) -> dict[str, date]:
        return dict(self._bars)

    def set_rank(self, metric: str, member: str, score: float | None) -> None:
        board = self._ranks.setdefault(metric, {})
        if score is None:
            board.pop(member, None)
        else:
            board[member] = score

    def ranking(self, metric: str, limit: int | None = None) -> list[tuple[str, float]]:
        ordered = sorted(self._ranks.get(metric, {}).items(), key=lambda item: (item[1], item[0]))
        return ordered if limit is None else ordered[: max(limit, 0)]

    def rank(self, metric: str, member: str) -> tuple[int, float] | None:
        board = self._ranks.get(metric, {})
        if member not in board:
            return None
        score = board[member]
        return 1 + sum(1 for other in board.values() if other < score), score


def _rank_score(metric: str, value: float) -> float:
    """Rankings store lower-is-better scores: values of higher-is-better metrics are negated."""
    return value if metric in LOWER_IS_BETTER else -value + 0.0


@dataclass(frozen=True)
class RankEntry:
    """A place in a ranking: ``rank`` 1 is the leader, tied values share a rank."""

    rank: int
    member: str
    value: float


def rankings(store: LeaderboardStore, metric: str, top: int | None = None) -> list[RankEntry]:
    """Who leads by ``metric``: ``team/model`` for forecast metrics, teams for trading metrics."""
    _check_metric(metric)
    entries: list[RankEntry] = []
    previous: float | None = None
    for i, (member, score) in enumerate(store.ranking(metric, top)):
        rank = entries[-1].rank if score == previous else i + 1
        entries.append(RankEntry(rank, member, _rank_score(metric, score)))
        previous = score
    return entries


def rank_of(store: LeaderboardStore, metric: str, member: str) -> RankEntry | None:
    """Where ``member`` (a ``team/model`` or a team) stands by ``metric``."""
    _check_metric(metric)
    found = store.rank(metric, member)
    return None if found is None else RankEntry(found[0], member, _rank_score(metric, found[1]))


def _check_metric(metric: str) -> None:
    if metric not in RANKED_METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(RANKED_METRICS)}")


def team_trading(store: LeaderboardStore, arena: Arena, team: str) -> TradingMetrics | None:
    """The team's trading metrics so far; ``None`` before its first complete equity day."""
    curve = store.equity_history(team)
    if not curve:
        return None
    return trading_metrics(arena.strategy.initial_cash, [v for _, v in curve], store.fills(team))


def traded_symbols(arena: Arena, team: str) -> tuple[str, ...]:
    """The symbols whose marks make up ``team``'s equity: those of its trading model."""
    spec = arena.teams.get(team)
    if spec is None:
        return arena.symbols
    model = next(m for m in spec.models if m.name == spec.trading_model)
    return arena.symbols_of(model)


class Scoreboard:
    """Projects one run's events into a :class:`LeaderboardStore`.

    Forecasts wait in memory until the ``bar_processed`` of their target day brings the actual
    close. A team's equity for day D is computed once marks of all its traded symbols for D are in.
    Rankings are recomputed from the store after each write that changes them; they are a
    read-modify-write, so a run has one scorer (or calls :meth:`refresh_rankings` at the end).
    """

    def __init__(self, store: LeaderboardStore, arena: Arena) -> None:
        self._store = store
        self._arena = arena
        self._pending: dict[tuple[str, date], dict[str, Forecast]] = {}
        self._closes: dict[tuple[str, date], float] = {}

    @property
    def pending(self) -> int:
        """Forecasts waiting for their target day's bar."""
        return sum(len(waiting) for waiting in self._pending.values())

    def handle(self, event: Event) -> None:
        """Dispatch any event of the forecasts and fills topics; others are ignored."""
        if isinstance(event, Forecast):
            self.on_forecast(event)
        elif isinstance(event, BarProcessed):
            self.on_bar_processed(event)
        elif isinstance(event, Fill):
            self.on_fill(event)
        elif isinstance(event, PositionMark):
            self.on_position_mark(event)

    def on_forecast(self, forecast: Forecast) -> ScoredForecast | None:
        """Hold ``forecast`` until its target bar; score it now if that bar was already seen."""
        slot = (forecast.symbol, forecast.target)
        close = self._closes.get(slot)
        if close is None:
            self._pending.setdefault(slot, {}).setdefault(forecast.key, forecast)
            return None
        scored = self._score([forecast], close)
        return scored[0] if scored else None

    def on_bar_processed(self, event: BarProcessed) -> list[ScoredForecast]:
        """Score every forecast waiting for this bar; return those scored for the first time."""
        bar = event.bar
        self._closes[(bar.symbol, bar.date)] = bar.close
        waiting = self._pending.pop((bar.symbol, bar.date), {})
        scored = self._score([waiting[key] for key in sorted(waiting)], bar.close)
        self._store.advance_bar(bar.symbol, bar.date)
        return scored

    def on_fill(self, fill: Fill) -> bool:
        """Record ``fill``; ``False`` if its order was already recorded."""
        return self._store.add_fill(fill)

    def on_position_mark(self, mark: PositionMark) -> float | None:
        """Record ``mark``; return the team's equity if this completed its day, else ``None``."""
        self._store.set_mark(mark)
        symbols = traded_symbols(self._arena, mark.team)
        marks = self._store.marks(mark.team, mark.as_of, symbols)
        if mark.symbol not in symbols or len(marks) < len(symbols):
            return None
        value = equity(
            self._arena.strategy.initial_cash, {s: m.net_cash_flow + m.market_value for s, m in marks.items()}
        )
        self._store.set_equity(mark.team, mark.as_of, value)
        self._rank_team(mark.team)
        return value

    def refresh_rankings(self) -> None:
        """Recompute every ranking from the store's sums and equity curves."""
        for team, model in sorted({(s.team, s.model) for s in self._store.error_sums()}):
            self._rank_model(team, model)
        for team in sorted(self._arena.teams):
            self._rank_team(team)

    def _score(self, forecasts: list[Forecast], actual: float) -> list[ScoredForecast]:
        fresh = [s for s in (score_forecast(f, actual) for f in forecasts) if self._store.add_score(s)]
        for team, model in sorted({(s.team, s.model) for s in fresh}):
            self._rank_model(team, model)
        return fresh

    def _rank_model(self, team: str, model: str) -> None:
        metrics = forecast_metrics(combine(self._store.error_sums_of(team, model)))
        for metric in FORECAST_METRICS:
            self._set_rank(metric, f"{team}/{model}", metric_value(metric, metrics, None))

    def _rank_team(self, team: str) -> None:
        metrics = team_trading(self._store, self._arena, team)
        for metric in TRADING_METRICS:
            self._set_rank(metric, team, metric_value(metric, None, metrics))

    def _set_rank(self, metric: str, member: str, value: float | None) -> None:
        self._store.set_rank(metric, member, None if value is None else _rank_score(metric, value))


@dataclass(frozen=True)
class ModelStanding:
    """A model's accuracy over all its symbols and, for a team's trading model, the team's trading."""

    team: str
    model: str
    symbols: tuple[str, ...]  # the symbols scored so far
    forecasts: ForecastMetrics | None
    trading: TradingMetrics | None

    @property
    def member(self) -> str:
        return f"{self.team}/{self.model}"

    def value(self, metric: str) -> float | None:
        """The value of ``metric`` (``None`` if not applicable or not known yet)."""
        return metric_value(metric, self.forecasts, self.trading)


def standings(store: LeaderboardStore, arena: Arena) -> list[ModelStanding]:
    """Every arena model (and any other scored one), ordered by ``team/model``."""
    grouped: dict[tuple[str, str], dict[str, ErrorSums]] = {}
    for series, value in store.error_sums().items():
        grouped.setdefault((series.team, series.model), {})[series.symbol] = value
    trading = {team: team_trading(store, arena, team) for team in arena.teams}
    return [
        ModelStanding(
            team,
            model,
            tuple(sorted(grouped.get((team, model), {}))),
            forecast_metrics(combine(grouped.get((team, model), {}))),
            trading.get(team) if team in arena.teams and arena.teams[team].trading_model == model else None,
        )
        for team, model in sorted({(team, m.name) for team, m in arena.all_models()} | set(grouped))
    ]


@dataclass(frozen=True)
class Progress:
    """How far a run's scoring got: what an orchestrator polls to know a simulation is done."""

    scored: dict[str, int]  # "team/model/symbol" -> forecasts scored
    bars: dict[str, date]  # symbol -> last processed bar
    equity: dict[str, date]  # team -> last day with a complete equity


def progress(store: LeaderboardStore) -> Progress:
    """The run's progress counters."""
    scored = {"/".join(series): sums.count for series, sums in store.error_sums().items()}
    return Progress(
        dict(sorted(scored.items())),
        dict(sorted(store.bar_dates().items())),
        dict(sorted(store.equity_dates().items())),
    )


def _clean(value: Any) -> Any:
    """ISO dates, sorted dict keys, recursively: the JSON form used by :func:`summary`.

    Floats keep full precision (they are deterministic), so the file can be checked exactly.
    """
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _fields(cls: type[Any], metrics: ForecastMetrics | TradingMetrics | None) -> dict[str, Any]:
    return dict.fromkeys(cls.__dataclass_fields__) if metrics is None else asdict(metrics)


def _series_rows(store: LeaderboardStore, arena: Arena) -> list[dict[str, Any]]:
    sums = store.error_sums()
    expected = {Series(t, m.name, s) for t, m in arena.all_models() for s in arena.symbols_of(m)}
    rows = []
    for series in sorted(expected | set(sums)):
        value = sums.get(series, ErrorSums())
        rows.append({**series._asdict(), **_fields(ForecastMetrics, forecast_metrics(value)), "count": value.count})
    return rows


def _model_rows(ranked: list[ModelStanding]) -> list[dict[str, Any]]:
    return [
        {"team": s.team, "model": s.model, "symbols": s.symbols, **_fields(ForecastMetrics, s.forecasts)}
        | {"count": s.forecasts.count if s.forecasts else 0, "trading": s.trading is not None}
        for s in ranked
    ]


def _team_row(store: LeaderboardStore, arena: Arena, team: str) -> dict[str, Any]:
    curve = store.equity_history(team)
    return {
        "team": team,
        "model": arena.teams[team].trading_model,
        "last_date": curve[-1][0] if curve else None,
        "equity": [{"date": day, "equity": value} for day, value in curve],
    } | _fields(TradingMetrics, team_trading(store, arena, team))


def summary(store: LeaderboardStore, arena: Arena) -> dict[str, Any]:
    """The whole leaderboard as JSON-ready data: sorted keys and rows, floats rounded, no wall clock.

    ``series`` has one row per team/model/symbol, ``models`` one per team/model over all its
    symbols (``trading``: it is its team's trading model), ``teams`` one per team (trading
    metrics and the equity curve), ``rankings`` every ranking best first. Metrics not known yet
    are ``null``.
    """
    done = progress(store)
    result = {
        "arena": arena.name,
        "initial_cash": arena.strategy.initial_cash,
        "series": _series_rows(store, arena),
        "models": _model_rows(standings(store, arena)),
        "teams": [_team_row(store, arena, team) for team in sorted(arena.teams)],
        "rankings": {m: [asdict(e) for e in rankings(store, m)] for m in RANKED_METRICS},
        "progress": {"bars": done.bars, "equity": done.equity},
    }
    return dict(_clean(result))
