"""Where the leaderboard lives: the :class:`LeaderboardStore` interface and its in-memory fake.

Redis implements the same interface in :mod:`redblue.adapters.redis_store`. Every write is idempotent
(a forecast key or a fill's ``client_order_id`` counts once), so replaying topics into a store
that already holds them changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import NamedTuple, Protocol

from redblue.core.errors import RedblueError
from redblue.core.metrics import LOWER_IS_BETTER, ErrorSums, NaiveScale, ScoredForecast
from schemas import Fill, Forecast, Order, PositionMark
from schemas.topics import check_run_id


class StoreError(RedblueError):
    """The leaderboard store failed; the message says what and where."""


class StoreUnavailable(StoreError):
    """The leaderboard store cannot be reached (e.g. the stack is not running)."""


class StoreRefused(StoreError):
    """The store refused the login or the command (this service's user may not do that)."""


class Series(NamedTuple):
    """One forecast series: a team's model on one symbol."""

    team: str
    model: str
    symbol: str

    @property
    def member(self) -> str:
        """The ``team/model`` name used in rankings."""
        return f"{self.team}/{self.model}"

    @classmethod
    def of(cls, forecast: Forecast) -> Series:
        return cls(forecast.team, forecast.model, forecast.symbol)


class LeaderboardStore(Protocol):
    """Where one run's leaderboard lives. Every write is idempotent."""

    def add_score(self, scored: ScoredForecast) -> bool:
        """Record a scored forecast and add it to its series' sums; ``False`` if already scored."""
        ...

    def revise_score(self, scored: ScoredForecast) -> bool:
        """Replace the series' score for ``scored.target`` (a revised actual close) and recompute
        the series' sums in target order, as if it had been scored so; ``False`` if there was no
        score for that target or it already had these values."""
        ...

    def scored(self, series: Series) -> list[ScoredForecast]:
        """The series' scored forecasts in target order."""
        ...

    def scored_many(self, series: Sequence[Series]) -> dict[Series, list[ScoredForecast]]:
        """:meth:`scored` of several series at once (one round trip to Redis)."""
        ...

    def error_sums(self) -> dict[Series, ErrorSums]:
        """The sums of every series that has scores."""
        ...

    def error_sums_of(self, team: str, model: str) -> dict[str, ErrorSums]:
        """One model's sums, by symbol."""
        ...

    def add_insample_close(self, symbol: str, day: date, close: float) -> None:
        """Add a close of ``symbol``'s training period to its :class:`NaiveScale` (ignored unless after the last)."""
        ...

    def naive_scales(self) -> dict[str, NaiveScale]:
        """Every symbol's in-sample naive scale so far."""
        ...

    def add_fill(self, fill: Fill) -> bool:
        """Record a fill once per ``client_order_id`` and execution; ``False`` if already recorded."""
        ...

    def fills(self, team: str) -> list[Fill]:
        """The team's fills ordered by (date, symbol, client_order_id, execution)."""
        ...

    def set_mark(self, mark: PositionMark) -> None:
        """Record a team's mark of one symbol on one day, once: the first mark of a (team, day,
        symbol) stays, so a restarted trader can never overwrite a day (e.g. with an empty book)."""
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

    def batch(self) -> AbstractContextManager[None]:
        """Writes made inside happen together when the block ends (atomically where the store can).

        Reads inside the block do not see them yet.
        """
        ...

    def note_forecasts(self, forecasts: Sequence[Forecast]) -> None:
        """Keep each series' latest forecast (by ``as_of``) and the first ``as_of`` of each model version."""
        ...

    def latest_forecasts(self) -> list[Forecast]:
        """The latest forecast of every series, ordered by series."""
        ...

    def model_versions(self) -> dict[Series, dict[str, date]]:
        """Per series, each model version that forecast and the first ``as_of`` it served."""
        ...

    def add_order(self, order: Order) -> bool:
        """Record an order once per ``client_order_id`` (the first answer wins); ``False`` if known."""
        ...

    def orders(self, team: str) -> list[Order]:
        """The team's orders ordered by (as_of, symbol, client_order_id)."""
        ...

    def set_halt(self, team: str, reason: str) -> None:
        """Record why the trader does not trade ``team`` (the latest state wins; "" clears it)."""
        ...

    def halts(self) -> dict[str, str]:
        """Each halted team's reason, by team."""
        ...

    def set_close(self, symbol: str, day: date, close: float) -> None:
        """Record ``symbol``'s close on ``day`` (the price chart)."""
        ...

    def closes(self, symbol: str) -> list[tuple[date, float]]:
        """``symbol``'s closes in date order."""
        ...

    def set_meta(self, fields: Mapping[str, str], *, only_missing: bool = False) -> None:
        """Describe the run (see :mod:`consumers.runs`); ``only_missing`` keeps fields already set."""
        ...

    def meta(self) -> dict[str, str]:
        """The run's description as written by :meth:`set_meta`."""
        ...


class RunStores(Protocol):
    """The stores of every run under one key prefix (what ``redblue serve`` reads)."""

    def runs(self) -> list[str]:
        """The run ids that have a store."""
        ...

    def open(self, run: str) -> LeaderboardStore:
        """The store of ``run`` (``ValueError`` for an invalid run id)."""
        ...


class InMemoryStore:
    """A dict-based :class:`LeaderboardStore` for unit tests and one-off reports."""

    def __init__(self) -> None:
        self._scored: dict[Series, dict[date, ScoredForecast]] = {}
        self._sums: dict[Series, ErrorSums] = {}
        self._scales: dict[str, NaiveScale] = {}
        self._fills: dict[str, dict[str, Fill]] = {}
        self._marks: dict[tuple[str, date, str], PositionMark] = {}
        self._equity: dict[str, dict[date, float]] = {}
        self._bars: dict[str, date] = {}
        self._ranks: dict[str, dict[str, float]] = {}
        self._latest: dict[Series, Forecast] = {}
        self._versions: dict[Series, dict[str, date]] = {}
        self._orders: dict[str, dict[str, Order]] = {}
        self._halts: dict[str, str] = {}
        self._closes: dict[str, dict[date, float]] = {}
        self._meta: dict[str, str] = {}

    @property
    def written(self) -> bool:
        """Whether anything was written (a run is listed once it was, as in Redis)."""
        parts = (self._scored, self._fills, self._marks, self._equity, self._bars, self._ranks, self._latest)
        return any(parts) or bool(self._orders or self._halts or self._closes or self._meta)

    def add_score(self, scored: ScoredForecast) -> bool:
        series = Series(scored.team, scored.model, scored.symbol)
        done = self._scored.setdefault(series, {})
        if scored.target in done:
            return False
        done[scored.target] = scored
        self._sums[series] = self._sums.get(series, ErrorSums()).add(scored)
        return True

    def revise_score(self, scored: ScoredForecast) -> bool:
        series = Series(scored.team, scored.model, scored.symbol)
        done = self._scored.get(series, {})
        if done.get(scored.target, scored) == scored:
            return False
        done[scored.target] = scored
        self._sums[series] = sums_of(self.scored(series))
        return True

    def scored(self, series: Series) -> list[ScoredForecast]:
        return [s for _, s in sorted(self._scored.get(series, {}).items())]

    def scored_many(self, series: Sequence[Series]) -> dict[Series, list[ScoredForecast]]:
        return {s: self.scored(s) for s in series}

    def error_sums(self) -> dict[Series, ErrorSums]:
        return dict(self._sums)

    def error_sums_of(self, team: str, model: str) -> dict[str, ErrorSums]:
        return {s.symbol: v for s, v in self._sums.items() if (s.team, s.model) == (team, model)}

    def add_insample_close(self, symbol: str, day: date, close: float) -> None:
        self._scales[symbol] = self._scales.get(symbol, NaiveScale()).add(day, close)

    def naive_scales(self) -> dict[str, NaiveScale]:
        return dict(self._scales)

    def add_fill(self, fill: Fill) -> bool:
        known = self._fills.setdefault(fill.team, {})
        if fill.key in known:
            return False
        known[fill.key] = fill
        return True

    def fills(self, team: str) -> list[Fill]:
        return sorted(self._fills.get(team, {}).values(), key=fill_order)

    def set_mark(self, mark: PositionMark) -> None:
        self._marks.setdefault((mark.team, mark.as_of, mark.symbol), mark)

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

    def batch(self) -> AbstractContextManager[None]:
        return nullcontext()  # a dict write is already immediate and cannot be seen half-done

    def note_forecasts(self, forecasts: Sequence[Forecast]) -> None:
        for f in forecasts:
            series = Series.of(f)
            known = self._latest.get(series)
            if known is None or known.as_of < f.as_of:
                self._latest[series] = f
            versions = self._versions.setdefault(series, {})
            versions[f.model_version] = min(f.as_of, versions.get(f.model_version, f.as_of))

    def latest_forecasts(self) -> list[Forecast]:
        return [self._latest[s] for s in sorted(self._latest)]

    def model_versions(self) -> dict[Series, dict[str, date]]:
        return {s: dict(sorted(v.items())) for s, v in sorted(self._versions.items())}

    def add_order(self, order: Order) -> bool:
        known = self._orders.setdefault(order.team, {})
        if order.client_order_id in known:
            return False
        known[order.client_order_id] = order
        return True

    def orders(self, team: str) -> list[Order]:
        return sorted(self._orders.get(team, {}).values(), key=lambda o: (o.as_of, o.symbol, o.client_order_id))

    def set_halt(self, team: str, reason: str) -> None:
        if reason:
            self._halts[team] = reason
        else:
            self._halts.pop(team, None)

    def halts(self) -> dict[str, str]:
        return dict(sorted(self._halts.items()))

    def set_close(self, symbol: str, day: date, close: float) -> None:
        self._closes.setdefault(symbol, {})[day] = close

    def closes(self, symbol: str) -> list[tuple[date, float]]:
        return sorted(self._closes.get(symbol, {}).items())

    def set_meta(self, fields: Mapping[str, str], *, only_missing: bool = False) -> None:
        for name, value in fields.items():
            if not (only_missing and name in self._meta):
                self._meta[name] = value

    def meta(self) -> dict[str, str]:
        return dict(self._meta)


class InMemoryStores:
    """A dict of :class:`InMemoryStore` per run: the :class:`RunStores` fake."""

    def __init__(self) -> None:
        self.stores: dict[str, InMemoryStore] = {}

    def runs(self) -> list[str]:
        return sorted(run for run, store in self.stores.items() if store.written)

    def open(self, run: str) -> InMemoryStore:
        check_run_id(run)
        return self.stores.setdefault(run, InMemoryStore())


def sums_of(scored: Sequence[ScoredForecast]) -> ErrorSums:
    """A series' sums, added in the given (target) order: the same floats as scoring them one by one."""
    sums = ErrorSums()
    for one in scored:
        sums = sums.add(one)
    return sums


def fill_order(fill: Fill) -> tuple[date, str, str, int]:
    """How a team's fills are listed: by date, symbol, order and execution."""
    return (fill.date, fill.symbol, fill.client_order_id, fill.execution)


def rank_score(metric: str, value: float) -> float:
    """Rankings store lower-is-better scores: values of higher-is-better metrics are negated."""
    return value if metric in LOWER_IS_BETTER else -value + 0.0
