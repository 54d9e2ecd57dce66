"""Where the leaderboard lives: the :class:`LeaderboardStore` interface and its in-memory fake.

Redis implements the same interface in :mod:`redblue.adapters.redis_store`. Every write is idempotent
(a forecast key or a fill's ``client_order_id`` counts once), so replaying topics into a store
that already holds them changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple, Protocol

from redblue.core.errors import RedblueError
from redblue.core.metrics import LOWER_IS_BETTER, ErrorSums, NaiveScale, ScoredForecast
from schemas import Fill, PositionMark


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
        self._scales: dict[str, NaiveScale] = {}
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


def fill_order(fill: Fill) -> tuple[date, str, str, int]:
    """How a team's fills are listed: by date, symbol, order and execution."""
    return (fill.date, fill.symbol, fill.client_order_id, fill.execution)


def rank_score(metric: str, value: float) -> float:
    """Rankings store lower-is-better scores: values of higher-is-better metrics are negated."""
    return value if metric in LOWER_IS_BETTER else -value + 0.0
