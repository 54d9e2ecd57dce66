"""What ``redblue serve`` answers: JSON-ready views of a run, read from its leaderboard store alone.

Every function takes a :class:`~redblue.core.store.RunStores` (Redis in production, dicts in unit
tests) and the ids of a request, checks each id against a strict pattern and against what the
run holds *before* any key is built from it, and raises :class:`NotFound` or
:class:`BadRequest` with a message that says what exists. The metric columns are the fields of
:class:`~redblue.core.metrics.ForecastMetrics` and :class:`~redblue.core.metrics.TradingMetrics`, so a
metric added there appears in the API and on the page without a change here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from consumers.leaderboard import RANKED_METRICS, rankings, standings, team_trading, verdicts
from redblue.app.report import render_original
from redblue.core.arena import Arena
from redblue.core.errors import RedblueError
from redblue.core.metrics import (
    LOWER_IS_BETTER,
    ErrorSums,
    ForecastMetrics,
    TradingMetrics,
    drawdowns,
    forecast_metrics,
)
from redblue.core.runs import RunInfo, run_info
from redblue.core.store import LeaderboardStore, RunStores, Series
from schemas.events import NAME_PATTERN, SYMBOL_PATTERN
from schemas.topics import RUN_ID_PATTERN

RUN_ID = RUN_ID_PATTERN.pattern
NAME = NAME_PATTERN
SYMBOL = SYMBOL_PATTERN
SORTABLE_ALIASES = (*RANKED_METRICS, "trades")  # the CLI's metric names (``leaderboard --by``)
JSON = dict[str, Any]


class ViewError(RedblueError):
    """A request the views cannot answer; ``status`` is its HTTP status."""

    status = 400


class BadRequest(ViewError):
    status = 422


class NotFound(ViewError):
    status = 404


class NotDescribed(ViewError):
    """The run has scores but no description (made before runs were described)."""

    status = 409


@dataclass(frozen=True)
class Metric:
    """A column of the leaderboard: a metrics field, its group and which way is better."""

    name: str
    group: str  # forecast | trading
    lower_is_better: bool


def metric_columns() -> list[Metric]:
    """Every field of the forecast and trading metrics (``count`` and ``days`` are counts, not metrics)."""
    groups = (("forecast", ForecastMetrics), ("trading", TradingMetrics))
    return [
        Metric(f.name, group, f.name in LOWER_IS_BETTER)
        for group, cls in groups
        for f in dataclasses.fields(cls)
        if f.name not in {"count", "days"}
    ]


def _check(value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise BadRequest(f"malformed {what} {value!r}: must match {pattern}")
    return value


@dataclass(frozen=True)
class Run:
    """An opened run: its store, its description and its arena."""

    store: LeaderboardStore
    info: RunInfo
    arena: Arena


def open_run(stores: RunStores, run: str) -> Run:
    """The run ``run``; :class:`NotFound` if no store holds it."""
    store = stores.open(_check(run, RUN_ID, "run id"))
    info = run_info(run, store)
    if info.arena is None:
        known = stores.runs()
        if run not in known:
            raise NotFound(f"no run {run!r} (runs: {', '.join(known) or 'none'})")
        raise NotDescribed(
            f"run {run!r} has scores but no description (it predates 'redblue serve'): "
            f"re-run it, or rebuild it with: redblue leaderboard --run {run} --rebuild"
        )
    return Run(store, info, info.arena)


def _info(info: RunInfo) -> JSON:
    fields = dataclasses.asdict(info)
    fields["arena"] = info.arena.name if info.arena else None
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}


def run_list(stores: RunStores) -> list[JSON]:
    """Every run with its description and how far it got, newest start first."""
    rows = []
    for run in stores.runs():
        store = stores.open(run)
        bars = store.bar_dates()
        rows.append(_info(run_info(run, store)) | {"last_bar": _day(max(bars.values(), default=None))})
    return sorted(rows, key=lambda r: (r["started_at"] or "", r["run"]), reverse=True)


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def run_detail(stores: RunStores, run: str) -> JSON:
    """The run's description, arena outline, model versions and progress."""
    r = open_run(stores, run)
    arena = r.arena
    versions = r.store.model_versions()
    return _info(r.info) | {
        "arena": {
            "name": arena.name,
            "symbols": [{"symbol": s, "name": arena.display_name(s)} for s in arena.symbols],
            "teams": [
                {"team": team, "trading_model": spec.trading_model, "models": [m.name for m in spec.models]}
                for team, spec in sorted(arena.teams.items())
            ],
            "baselines": [m.name for m in arena.baselines],
            "initial_cash": arena.strategy.initial_cash,
        },
        "models": [
            {"team": team, "model": m.name, "kind": m.kind, "symbols": list(arena.symbols_of(m))}
            for team, m in arena.all_models()
        ],
        "versions": [
            {
                "team": s.team,
                "model": s.model,
                "symbol": s.symbol,
                "versions": {v: d.isoformat() for v, d in vs.items()},
            }
            for s, vs in versions.items()
        ],
        "progress": progress(r),
    }


def progress(r: Run) -> JSON:
    """How far the run got, and a ``stamp`` that changes whenever that does (the page polls it).

    Scores move only with a bar's progress and trading results only with an equity day (a fill
    comes before its day's mark), so an unchanged stamp means an unchanged leaderboard; a re-run
    of the same run id has a new ``started_at``.
    """
    bars = {s: d.isoformat() for s, d in sorted(r.store.bar_dates().items())}
    equity = {t: d.isoformat() for t, d in sorted(r.store.equity_dates().items())}
    arena = hashlib.sha1(r.arena.model_dump_json().encode(), usedforsecurity=False).hexdigest()
    text = repr((r.info.status, r.info.started_at, arena, sorted(bars.items()), sorted(equity.items())))
    return {
        "status": r.info.status,
        "bars": bars,
        "equity": equity,
        "stamp": hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16],
    }


def run_progress(stores: RunStores, run: str) -> JSON:
    return progress(open_run(stores, run))


def _values(fm: ForecastMetrics | None, tm: TradingMetrics | None) -> JSON:
    values: JSON = {m.name: None for m in metric_columns()}
    for metrics in (fm, tm):
        if metrics is not None:
            values |= {k: v for k, v in dataclasses.asdict(metrics).items() if k in values}
    return values


def _sort_value(metric: str) -> Callable[[JSON], float | None]:
    """How to read ``metric`` (a column, or one of the CLI's metric names) from a leaderboard row."""
    if metric in {m.name for m in metric_columns()}:
        return lambda row: row["values"][metric]
    if metric in SORTABLE_ALIASES:
        return lambda row: row["_standing"].value(metric)
    names = sorted({m.name for m in metric_columns()} | set(SORTABLE_ALIASES))
    raise BadRequest(f"unknown metric {metric!r}: use one of {', '.join(names)}")


class Memo:
    """Leaderboards kept while their run's progress stamp is unchanged (see :func:`progress`).

    A board is kept under the stamp read *before* it was computed, so a board that already holds
    newer scores is replaced at the next request after the stamp moves. At most ``size`` boards.
    """

    def __init__(self, size: int = 128) -> None:
        self._size = size
        self._kept: dict[tuple[str, str], tuple[str, JSON]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], stamp: str) -> JSON | None:
        with self._lock:
            found = self._kept.get(key)
        return found[1] if found and found[0] == stamp else None

    def put(self, key: tuple[str, str], stamp: str, value: JSON) -> None:
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = (stamp, value)
            while len(self._kept) > self._size:
                self._kept.pop(next(iter(self._kept)))


def leaderboard(stores: RunStores, run: str, by: str = "mase", memo: Memo | None = None) -> JSON:
    """Every model of the run, best first by ``by``; tied values share a rank, unknown values last."""
    _sort_value(by)
    r = open_run(stores, run)
    done = progress(r)
    kept = memo.get((run, by), done["stamp"]) if memo else None
    if kept is not None:
        return kept
    board = _leaderboard(r, by) | {"progress": done}
    if memo:
        memo.put((run, by), done["stamp"], board)
    return board


def _leaderboard(r: Run, by: str) -> JSON:
    value = _sort_value(by)
    lower = by in LOWER_IS_BETTER
    ranked = standings(r.store, r.arena)
    rows = [
        {
            "team": s.team,
            "model": s.model,
            "member": s.member,
            "trades": s.trading is not None,
            "symbols": list(s.symbols),
            "count": s.forecasts.count if s.forecasts else 0,
            "values": _values(s.forecasts, s.trading),
            "tests": s.significance.fields(),
            "_standing": s,
        }
        for s in ranked
    ]

    def key(row: JSON) -> tuple[bool, float, str]:
        v = value(row)
        return (True, 0.0, row["member"]) if v is None else (False, v if lower else -v, row["member"])

    rows.sort(key=key)
    previous: tuple[int, float | None] = (0, None)
    for i, row in enumerate(rows, 1):
        v = value(row)
        rank = previous[0] if v is not None and v == previous[1] else i
        row["rank"] = None if v is None else rank
        previous = (rank, v)
        del row["_standing"]
    return {
        "run": r.info.run,
        "by": by,
        "lower_is_better": lower,
        "metrics": [dataclasses.asdict(m) for m in metric_columns()],
        "rows": rows,
        "verdicts": verdicts(ranked),  # in words: is any model distinguishable from persistence, from chance?
    }


def ranking(stores: RunStores, run: str, metric: str, top: int | None = None) -> JSON:
    """A ranking as Redis keeps it (a sorted set): ``team/model`` or teams, best first."""
    if metric not in RANKED_METRICS:
        raise BadRequest(f"unknown ranking {metric!r}: use one of {', '.join(RANKED_METRICS)}")
    if top is not None and top < 1:
        raise BadRequest(f"top must be at least 1, not {top}")
    r = open_run(stores, run)
    entries = rankings(r.store, metric, top)
    return {"run": run, "metric": metric, "entries": [dataclasses.asdict(e) for e in entries]}


def _known_series(r: Run) -> dict[Series, ErrorSums]:
    sums = r.store.error_sums()
    expected = {Series(t, m.name, s) for t, m in r.arena.all_models() for s in r.arena.symbols_of(m)}
    return {s: sums.get(s, ErrorSums()) for s in sorted(expected | set(sums))}


def series_list(stores: RunStores, run: str) -> JSON:
    """Every team/model/symbol with its accuracy so far and the model versions that served it."""
    r = open_run(stores, run)
    versions = r.store.model_versions()
    scales = r.store.naive_scales()
    rows = [
        {
            **s._asdict(),
            "count": sums.count,
            "versions": {v: d.isoformat() for v, d in versions.get(s, {}).items()},
            "values": _values(forecast_metrics(sums, scales.get(s.symbol)), None),
        }
        for s, sums in _known_series(r).items()
    ]
    return {"run": run, "rows": rows}


def series_detail(stores: RunStores, run: str, team: str, model: str, symbol: str) -> JSON:
    """One series: forecast against actual for every scored target day, and its metrics."""
    _check(team, NAME, "team")
    _check(model, NAME, "model")
    _check(symbol, SYMBOL, "symbol")
    r = open_run(stores, run)
    series = Series(team, model, symbol)
    expected = {Series(t, m.name, s) for t, m in r.arena.all_models() for s in r.arena.symbols_of(m)}
    sums = r.store.error_sums_of(team, model).get(symbol)
    if series not in expected and sums is None:
        shown = ", ".join("/".join(s) for s in sorted(expected))
        raise NotFound(f"no series {'/'.join(series)} in run {run!r} (series: {shown})")
    sums = sums or ErrorSums()
    points = [
        {
            "as_of": s.as_of.isoformat(),
            "target": s.target.isoformat(),
            "predicted": s.predicted,
            "actual": s.actual,
            "last_close": s.last_close,
            "abs_error": s.abs_error,
            "direction_correct": s.direction_correct,
        }
        for s in r.store.scored(series)
    ]
    return {
        **series._asdict(),
        "run": run,
        "values": _values(forecast_metrics(sums, r.store.naive_scales().get(symbol)), None),
        "count": sums.count,
        "points": points,
    }


def _team(r: Run, team: str) -> str:
    _check(team, NAME, "team")
    if team not in r.arena.teams:
        raise NotFound(f"no team {team!r} in run {r.info.run!r} (teams: {', '.join(sorted(r.arena.teams))})")
    return team


def team_detail(stores: RunStores, run: str, team: str) -> JSON:
    """A team's trading metrics, its equity curve with the drawdown at each close, and ``halted``:
    why the trader stopped trading it (``null`` while it trades)."""
    _check(team, NAME, "team")
    r = open_run(stores, run)
    _team(r, team)
    curve = r.store.equity_history(team)
    falls = drawdowns(r.arena.strategy.initial_cash, [v for _, v in curve])
    metrics = team_trading(r.store, r.arena, team)
    return {
        "run": run,
        "team": team,
        "trading_model": r.arena.teams[team].trading_model,
        "initial_cash": r.arena.strategy.initial_cash,
        "halted": r.store.halts().get(team),
        "values": _values(None, metrics),
        "equity": [
            {"date": d.isoformat(), "equity": v, "drawdown": fall} for (d, v), fall in zip(curve, falls, strict=True)
        ],
    }


def team_fills(stores: RunStores, run: str, team: str) -> JSON:
    _check(team, NAME, "team")
    r = open_run(stores, run)
    fills = r.store.fills(_team(r, team))
    return {"run": run, "team": team, "fills": [f.model_dump(mode="json") for f in fills]}


def team_orders(stores: RunStores, run: str, team: str) -> JSON:
    _check(team, NAME, "team")
    r = open_run(stores, run)
    orders = r.store.orders(_team(r, team))
    return {"run": run, "team": team, "orders": [o.model_dump(mode="json") for o in orders]}


def symbol_detail(stores: RunStores, run: str, symbol: str) -> JSON:
    """A symbol's closes and every team's trades in it (the price chart)."""
    _check(symbol, SYMBOL, "symbol")
    r = open_run(stores, run)
    if symbol not in r.arena.symbols:
        raise NotFound(f"no symbol {symbol!r} in run {run!r} (symbols: {', '.join(r.arena.symbols)})")
    trades = [
        {"team": team, "date": f.date.isoformat(), "side": f.side, "quantity": f.quantity, "price": f.price}
        for team in sorted(r.arena.teams)
        for f in r.store.fills(team)
        if f.symbol == symbol
    ]
    closes = [{"date": d.isoformat(), "close": c} for d, c in r.store.closes(symbol)]
    return {"run": run, "symbol": symbol, "name": r.arena.display_name(symbol), "closes": closes, "trades": trades}


def latest_forecasts(stores: RunStores, run: str) -> JSON:
    """The latest forecast of every team/model/symbol (in a live season: tomorrow's)."""
    r = open_run(stores, run)
    return {"run": run, "forecasts": [f.model_dump(mode="json") for f in r.store.latest_forecasts()]}


def original(stores: RunStores, run: str) -> JSON:
    """The original project's block per symbol and model (see :func:`redblue.app.report.render_original`).

    A live season's period is its scored days so far.
    """
    r = open_run(stores, run)
    start, days = r.info.start, r.info.days
    if start is None or days is None:
        sums = r.store.error_sums()
        longest = max(sums, key=lambda s: (sums[s].count, s), default=None)
        scored = r.store.scored(longest) if longest else []
        if not scored:
            return {"run": run, "start": None, "days": 0, "text": "(nothing scored yet)"}
        start, days = scored[0].target, len(scored)
    text = render_original(r.store, r.arena, start, days)
    return {"run": run, "start": start.isoformat(), "days": days, "text": text}
