"""The leaderboard: a projection of one run's forecasts, bars, fills and position marks.

:class:`Scoreboard` turns events into small, idempotent writes to a :class:`LeaderboardStore`
(see :mod:`redblue.core.store`: Redis in production, an in-memory fake in unit tests). Replaying the
topics into a store that already holds them changes nothing, so the leaderboard can be rebuilt
from Kafka at any time. Reading functions (:func:`rankings`, :func:`standings`,
:func:`summary`, :func:`progress`) compute everything from the store in a fixed order, so the
answer does not depend on how Kafka interleaved the symbols.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from consumers import significance
from consumers.equity import EquityBook
from consumers.significance import DieboldMariano, DirectionTest
from redblue.core.arena import Arena
from redblue.core.metrics import (
    FORECAST_METRICS,
    TRADING_METRICS,
    ErrorSums,
    ForecastMetrics,
    NaiveScale,
    ScoredForecast,
    TradingMetrics,
    TradingTrack,
    forecast_metrics,
    metric_value,
    model_metrics,
    score_forecast,
    trading_metrics,
)
from redblue.core.spans import Spans
from redblue.core.store import LeaderboardStore, Series, rank_score, sums_of
from schemas import BarProcessed, BarRevision, Event, Fill, Forecast, Order, PositionMark, TeamState

RANKED_METRICS = (*FORECAST_METRICS, *TRADING_METRICS)


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
        entries.append(RankEntry(rank, member, rank_score(metric, score)))
        previous = score
    return entries


def rank_of(store: LeaderboardStore, metric: str, member: str) -> RankEntry | None:
    """Where ``member`` (a ``team/model`` or a team) stands by ``metric``."""
    _check_metric(metric)
    found = store.rank(metric, member)
    return None if found is None else RankEntry(found[0], member, rank_score(metric, found[1]))


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
    close. A symbol's bars before its first target day (a replay's warm-up) are its training
    period: their closes make its :class:`~redblue.core.metrics.NaiveScale` (MASE's denominator).
    Within a partition every forecast made from bar D comes before D's marker, so the first
    target is known before any bar on or after it arrives. A team's equity for day D is
    computed once every symbol it trades (that takes part on D, see
    :class:`~consumers.equity.EquityBook`) is marked. The rankings are kept from running totals
    in memory (error sums per series, naive scales per symbol,
    :class:`~redblue.core.metrics.TradingTrack` per team), so an event costs the same however
    long the run is; the store is only written. Memory is rebuilt by reading the topics from the
    start (the store's writes are idempotent), which is what the scorer does on every start. A
    run has one scorer.

    Inside :meth:`batch` the store's writes and the ranking updates are collected and applied
    together at the end (with Redis: one atomic round trip). For the web page it also keeps each
    symbol's closes, every model's latest forecast (noted in one write per bar, when the bar's
    marker arrives) and the orders.
    """

    def __init__(self, store: LeaderboardStore, arena: Arena, spans: Spans | None = None) -> None:
        self._store = store
        self._arena = arena
        self._spans = spans
        self._pending: dict[tuple[str, date], dict[str, Forecast]] = {}
        self._closes: dict[tuple[str, date], float] = {}
        self._scored: dict[Series, dict[date, ScoredForecast]] = {}  # what each series scored, by target
        self._first_target: dict[str, date] = {}
        self._scales: dict[str, NaiveScale] = store.naive_scales()  # MASE's denominators, kept up to date
        self._fresh: dict[str, list[Forecast]] = {}  # symbol -> forecasts not yet noted as latest
        self._sums: dict[tuple[str, str], dict[str, ErrorSums]] = {}  # (team, model) -> symbol -> sums
        self._equity: dict[str, EquityBook] = {}
        self._trading: dict[str, TradingTrack] = {}
        self._fills: set[tuple[str, str]] = set()  # (team, fill key: an order's execution)
        self._dirty: set[tuple[str, str]] = set()  # ("model", "team/model") or ("team", team) to re-rank
        self._deferred = False

    @property
    def pending(self) -> int:
        """Forecasts waiting for their target day's bar."""
        return sum(len(waiting) for waiting in self._pending.values())

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply the writes and ranking updates of the events handled inside together, at the end."""
        with self._store.batch():
            self._deferred = True
            try:
                yield
            finally:
                self._deferred = False
            self._rank_dirty()

    def handle(self, event: Event) -> None:
        """Dispatch any event of the forecasts and fills topics; others are ignored."""
        if isinstance(event, Forecast):
            self.on_forecast(event)
        elif isinstance(event, BarProcessed):
            self.on_bar_processed(event)
        elif isinstance(event, BarRevision):
            self.on_bar_revision(event)
        elif isinstance(event, Fill):
            self.on_fill(event)
        elif isinstance(event, PositionMark):
            self.on_position_mark(event)
        elif isinstance(event, Order):
            self.on_order(event)
        elif isinstance(event, TeamState):
            self._store.set_halt(event.team, event.halted)

    def on_forecast(self, forecast: Forecast) -> ScoredForecast | None:
        """Hold ``forecast`` until its target bar; score it now if that bar was already seen."""
        first = self._first_target.get(forecast.symbol)
        if first is None or forecast.target < first:
            self._first_target[forecast.symbol] = forecast.target
        self._fresh.setdefault(forecast.symbol, []).append(forecast)
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
        first = self._first_target.get(bar.symbol)
        if first is None or bar.date < first:
            self._store.add_insample_close(bar.symbol, bar.date, bar.close)
            self._scales[bar.symbol] = self._scales.get(bar.symbol, NaiveScale()).add(bar.date, bar.close)
        self._store.note_forecasts(self._fresh.pop(bar.symbol, []))
        self._store.set_close(bar.symbol, bar.date, bar.close)
        waiting = self._pending.pop((bar.symbol, bar.date), {})
        scored = self._score([waiting[key] for key in sorted(waiting)], bar.close)
        self._store.advance_bar(bar.symbol, bar.date)
        return scored

    def on_bar_revision(self, event: BarRevision) -> list[ScoredForecast]:
        """The vendor revised a processed bar: score its day's forecasts against the new close.

        Forecasts already scored against the old close are re-scored (their series' sums are
        recomputed in target order, so they come out as if the new close had been known from
        the start); forecasts that arrive later use the new close. Forecasts made *from* the
        revised day keep the last close they were made with. Returns the re-scored forecasts.
        """
        bar = event.bar
        if (bar.symbol, bar.date) not in self._closes:
            return []  # the bar itself never reached the scorer: nothing was scored against it
        self._closes[(bar.symbol, bar.date)] = bar.close
        self._store.set_close(bar.symbol, bar.date, bar.close)
        rescored = []
        for series in sorted(s for s in self._scored if s.symbol == bar.symbol):
            done = self._scored[series]
            old = done.get(bar.date)
            new = replace(old, actual=bar.close) if old is not None else None
            if new is None or new == old:
                continue
            done[bar.date] = new
            self._store.revise_score(new)
            self._sums[(series.team, series.model)][series.symbol] = sums_of([done[day] for day in sorted(done)])
            self._changed("model", series.member)
            rescored.append(new)
        return rescored

    def on_order(self, order: Order) -> bool:
        """Record ``order``; ``False`` if its ``client_order_id`` was already recorded."""
        return self._store.add_order(order)

    def on_fill(self, fill: Fill) -> bool:
        """Record ``fill``; ``False`` if its order was already recorded."""
        self._store.add_fill(fill)
        if (fill.team, fill.key) in self._fills:
            return False
        self._fills.add((fill.team, fill.key))
        self._track(fill.team).add_fill(fill)
        return True

    def on_position_mark(self, mark: PositionMark) -> float | None:
        """Record ``mark``; return the team's equity if this completed its day, else ``None``."""
        self._store.set_mark(mark)
        book = self._equity.get(mark.team)
        if book is None:
            book = EquityBook(self._arena.strategy.initial_cash, traded_symbols(self._arena, mark.team), self._spans)
            self._equity[mark.team] = book
        completed = book.add(mark)
        for day, value in completed:
            self._store.set_equity(mark.team, day, value)
            self._track(mark.team).add_close(value)
        if not completed:
            return None
        self._changed("team", mark.team)
        return next((value for day, value in completed if day == mark.as_of), None)

    def refresh_rankings(self) -> None:
        """Write every ranking again from the running totals."""
        self._dirty |= {("model", f"{team}/{model}") for team, model in self._sums}
        self._dirty |= {("team", team) for team in self._arena.teams}
        self._rank_dirty()

    def _track(self, team: str) -> TradingTrack:
        return self._trading.setdefault(team, TradingTrack(self._arena.strategy.initial_cash))

    def _score(self, forecasts: list[Forecast], actual: float) -> list[ScoredForecast]:
        fresh = []
        for forecast in forecasts:
            scored = score_forecast(forecast, actual)
            self._store.add_score(scored)
            done = self._scored.setdefault(Series.of(forecast), {})
            if scored.target in done:
                continue
            done[scored.target] = scored
            by_symbol = self._sums.setdefault((scored.team, scored.model), {})
            by_symbol[scored.symbol] = by_symbol.get(scored.symbol, ErrorSums()).add(scored)
            self._changed("model", f"{scored.team}/{scored.model}")
            fresh.append(scored)
        return fresh

    def _changed(self, kind: str, member: str) -> None:
        self._dirty.add((kind, member))
        if not self._deferred:
            self._rank_dirty()

    def _rank_dirty(self) -> None:
        for kind, member in sorted(self._dirty):
            if kind == "model":
                team, model = member.split("/")
                metrics = model_metrics(self._sums.get((team, model), {}), self._scales)
                for metric in FORECAST_METRICS:
                    self._set_rank(metric, member, metric_value(metric, metrics, None))
            else:
                track = self._trading.get(member)
                trading = track.metrics() if track is not None and track.days else None
                for metric in TRADING_METRICS:
                    self._set_rank(metric, member, metric_value(metric, None, trading))
        self._dirty.clear()

    def _set_rank(self, metric: str, member: str, value: float | None) -> None:
        self._store.set_rank(metric, member, None if value is None else rank_score(metric, value))


@dataclass(frozen=True)
class Significance:
    """The tests of a model (or series) against persistence and chance (:mod:`consumers.significance`).

    ``*_adjusted`` are Holm-adjusted over every model of the board that has the test.
    """

    dm: DieboldMariano | None = None
    direction: DirectionTest | None = None
    dm_adjusted: float | None = None
    direction_adjusted: float | None = None

    def fields(self) -> dict[str, Any]:
        """The JSON fields of :func:`summary` rows (the Holm-adjusted ones ``null`` for a series)."""
        dm, direction = self.dm, self.direction
        return {
            "dm_days": None if dm is None else dm.days,
            "dm_mean_differential": None if dm is None else dm.mean,
            "dm_statistic": None if dm is None else dm.statistic,
            "dm_pvalue": None if dm is None else dm.pvalue,
            "direction_trials": None if direction is None else direction.trials,
            "direction_hits": None if direction is None else direction.hits,
            "direction_pvalue": None if direction is None else direction.pvalue,
            "dm_pvalue_holm": self.dm_adjusted,
            "direction_pvalue_holm": self.direction_adjusted,
        }


@dataclass(frozen=True)
class ModelStanding:
    """A model's accuracy over all its symbols and, for a team's trading model, the team's trading."""

    team: str
    model: str
    symbols: tuple[str, ...]  # the symbols scored so far
    forecasts: ForecastMetrics | None
    trading: TradingMetrics | None
    significance: Significance = Significance()

    @property
    def member(self) -> str:
        return f"{self.team}/{self.model}"

    def value(self, metric: str) -> float | None:
        """The value of ``metric`` (``None`` if not applicable or not known yet)."""
        return metric_value(metric, self.forecasts, self.trading)


def scored_forecasts(store: LeaderboardStore) -> dict[Series, list[ScoredForecast]]:
    """Every scored forecast of the run, per series (what the tests read): a read-time cost,
    never a per-event one; read it once for :func:`standings` and :func:`summary` both."""
    return store.scored_many(sorted(store.error_sums()))


def standings(
    store: LeaderboardStore, arena: Arena, scored: Mapping[Series, list[ScoredForecast]] | None = None
) -> list[ModelStanding]:
    """Every arena model (and any other scored one), ordered by ``team/model``, with its tests
    (``scored``: :func:`scored_forecasts`, if the caller has read them already)."""
    grouped: dict[tuple[str, str], dict[str, ErrorSums]] = {}
    for series, value in store.error_sums().items():
        grouped.setdefault((series.team, series.model), {})[series.symbol] = value
    scales = store.naive_scales()
    trading = {team: team_trading(store, arena, team) for team in arena.teams}
    members = sorted({(team, m.name) for team, m in arena.all_models()} | set(grouped))
    scored = scored_forecasts(store) if scored is None else scored
    tests = {
        (team, model): _model_tests(team, model, grouped.get((team, model), {}), scored, scales)
        for team, model in members
    }
    dm_adjusted = significance.holm({f"{k[0]}/{k[1]}": t.dm.pvalue for k, t in tests.items() if t.dm})
    dir_adjusted = significance.holm({f"{k[0]}/{k[1]}": t.direction.pvalue for k, t in tests.items() if t.direction})
    return [
        ModelStanding(
            team,
            model,
            tuple(sorted(grouped.get((team, model), {}))),
            model_metrics(grouped.get((team, model), {}), scales),
            trading.get(team) if team in arena.teams and arena.teams[team].trading_model == model else None,
            replace(
                tests[team, model],
                dm_adjusted=dm_adjusted.get(f"{team}/{model}"),
                direction_adjusted=dir_adjusted.get(f"{team}/{model}"),
            ),
        )
        for team, model in members
    ]


def _model_tests(
    team: str,
    model: str,
    sums: dict[str, ErrorSums],
    scored: Mapping[Series, list[ScoredForecast]],
    scales: dict[str, NaiveScale],
) -> Significance:
    mine = {symbol: scored[Series(team, model, symbol)] for symbol in sorted(sums)}
    pooled = significance.pooled_differentials(mine, scales)
    return Significance(
        dm=None if pooled is None else significance.diebold_mariano(pooled),
        direction=significance.direction_test([s for symbol in sorted(mine) for s in mine[symbol]]),
    )


def _series_tests(scored: list[ScoredForecast]) -> Significance:
    return Significance(
        dm=significance.diebold_mariano(significance.differentials(scored)),
        direction=significance.direction_test(scored),
    )


def verdicts(rows: Sequence[ModelStanding], alpha: float = significance.ALPHA) -> list[str]:
    """In words: which models are distinguishable from persistence, and from a coin flip (Holm-adjusted).

    Two sentences: the Diebold-Mariano verdict, then the direction verdict.
    """
    dm = {s.member: (s.significance.dm_adjusted, s.significance.dm) for s in rows if s.significance.dm}
    direction = {s.member: (s.significance.direction_adjusted, s.significance.direction) for s in rows
                 if s.significance.direction}  # fmt: skip
    dm_hits = [
        f"{member} {'better' if test.mean < 0 else 'worse'} (p = {p:.4f})"
        for member, (p, test) in sorted(dm.items())
        if p is not None and p < alpha
    ]
    dir_hits = [
        f"{member} {100 * test.hits / test.trials:.2f} % of {test.trials} (p = {p:.4f})"
        for member, (p, test) in sorted(direction.items())
        if p is not None and p < alpha
    ]
    dm_verdict = _verdict(dm_hits, len(dm), alpha, _DM_WORDS)
    if dm_hits and not any(" better " in hit for hit in dm_hits):
        dm_verdict += " No model beats persistence."
    return [dm_verdict, _verdict(dir_hits, len(direction), alpha, _DIRECTION_WORDS)]


# (nothing tested, nothing distinguishable, something distinguishable)
_DM_WORDS = (
    "No model has enough scored days for a test against persistence.",
    "No model is distinguishable from persistence",
    "Distinguishable from persistence",
)
_DIRECTION_WORDS = (
    "No model has enough days with a move for a direction test.",
    "No model's direction accuracy is distinguishable from a coin flip",
    "Direction accuracy distinguishable from a coin flip",
)


def _verdict(hits: list[str], tested: int, alpha: float, words: tuple[str, str, str]) -> str:
    if tested == 0:
        return words[0]
    family = f"at the {100 * alpha:g} % level, Holm-adjusted over {tested} model{'s' if tested > 1 else ''}"
    if not hits:
        return f"{words[1]} ({family})."
    return f"{words[2]} ({family}): {', '.join(hits)}; no other model is."


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


def _series_rows(
    store: LeaderboardStore, arena: Arena, scored: Mapping[Series, list[ScoredForecast]]
) -> list[dict[str, Any]]:
    sums = store.error_sums()
    scales = store.naive_scales()
    expected = {Series(t, m.name, s) for t, m in arena.all_models() for s in arena.symbols_of(m)}
    rows = []
    for series in sorted(expected | set(sums)):
        value = sums.get(series, ErrorSums())
        scale = scales.get(series.symbol)
        metrics = forecast_metrics(value, scale)
        tests = _series_tests(scored[series]) if value.count else Significance()
        rows.append(
            {**series._asdict(), **_fields(ForecastMetrics, metrics), "count": value.count}
            | {"mase_scale": None if scale is None else scale.mae, **tests.fields()}
        )
    return rows


def _model_rows(ranked: list[ModelStanding]) -> list[dict[str, Any]]:
    return [
        {"team": s.team, "model": s.model, "symbols": s.symbols, **_fields(ForecastMetrics, s.forecasts)}
        | {"count": s.forecasts.count if s.forecasts else 0, "trading": s.trading is not None}
        | s.significance.fields()
        for s in ranked
    ]


def _statistics(store: LeaderboardStore, ranked: list[ModelStanding]) -> dict[str, Any]:
    scales = {
        symbol: {"first": scale.first, "last": scale.last, "bars": scale.count + 1, "naive_mae": scale.mae}
        for symbol, scale in store.naive_scales().items()
    }
    return {
        "dm_test": significance.DM_TEST,
        "loss": significance.LOSS,
        "direction_test": significance.DIRECTION_TEST,
        "alpha": significance.ALPHA,
        "adjustment": "holm",
        "mase_scale": scales,
        "verdicts": verdicts(ranked),
    }


def _team_row(store: LeaderboardStore, arena: Arena, team: str) -> dict[str, Any]:
    curve = store.equity_history(team)
    return {
        "team": team,
        "model": arena.teams[team].trading_model,
        "last_date": curve[-1][0] if curve else None,
        "equity": [{"date": day, "equity": value} for day, value in curve],
    } | _fields(TradingMetrics, team_trading(store, arena, team))


def summary(
    store: LeaderboardStore,
    arena: Arena,
    ranked: list[ModelStanding] | None = None,
    scored: Mapping[Series, list[ScoredForecast]] | None = None,
) -> dict[str, Any]:
    """The whole leaderboard as JSON-ready data: sorted keys and rows, floats rounded, no wall clock.

    ``series`` has one row per team/model/symbol, ``models`` one per team/model over all its
    symbols (``trading``: it is its team's trading model), ``teams`` one per team (trading
    metrics and the equity curve), ``rankings`` every ranking best first, ``statistics`` how the
    tests were made, each symbol's MASE scale and the verdicts in words. Series and model rows
    carry ``rel_mae``, ``mase``, the Diebold-Mariano test against persistence (``dm_*``) and the
    direction test (``direction_*``; model rows add Holm-adjusted p-values). Metrics not known
    yet are ``null``. ``ranked``: the :func:`standings`, ``scored``: the :func:`scored_forecasts`,
    if the caller has them already.
    """
    done = progress(store)
    scored = scored_forecasts(store) if scored is None else scored
    ranked = standings(store, arena, scored) if ranked is None else ranked
    result = {
        "arena": arena.name,
        "initial_cash": arena.strategy.initial_cash,
        "series": _series_rows(store, arena, scored),
        "models": _model_rows(ranked),
        "statistics": _statistics(store, ranked),
        "teams": [_team_row(store, arena, team) for team in sorted(arena.teams)],
        "rankings": {m: [asdict(e) for e in rankings(store, m)] for m in RANKED_METRICS},
        "progress": {"bars": done.bars, "equity": done.equity},
    }
    return dict(_clean(result))
