"""Text reports of a run's leaderboard.

:func:`render_original` prints the original project's simulation block, so its results
(Apple MAE 43.5727 / 44.44 %, ...) can be compared line by line; :func:`render_leaderboard`
prints the table of every model with accuracy, the tests against persistence and chance, and,
for trading models, trading results, followed by the tests' verdicts in words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from consumers.leaderboard import ModelStanding, standings, verdicts
from consumers.significance import DIRECTION_TEST, DM_TEST
from redblue.core.arena import Arena
from redblue.core.metrics import FORECAST_METRICS, LOWER_IS_BETTER, TRADING_METRICS, ErrorSums, forecast_metrics
from redblue.core.store import LeaderboardStore, Series

SORTABLE = (*FORECAST_METRICS, *TRADING_METRICS, "trades")


def render_original(store: LeaderboardStore, arena: Arena, start: date, days: int, end: date | None = None) -> str:
    """The original simulation's block: per symbol (arena order) and model, MAE and direction share.

    ``start`` and ``days`` (and ``end`` for a run asked up to a day) only label the period
    (``days`` = trading days = forecasts per symbol). Series with no scored forecast are left
    out. No trailing newline.
    """
    sums = store.error_sums()
    period = f"+ {days} days" if end is None else f"to {end.isoformat()} ({days:,} trading days)"
    lines = [f"Simulation period: {start.isoformat()} {period}"]
    for symbol in arena.symbols:
        for team, model in arena.all_models():
            metrics = forecast_metrics(sums.get(Series(team, model.name, symbol), ErrorSums()))
            if metrics is None:
                continue
            lines += [
                "",
                f"{arena.display_name(symbol)}, {team}/{model.name}",
                f"Mean Absolute Error (MAE): {round(metrics.mae, 4)}",
                f"Percentage of correct Gain/Loss predictions: {round(metrics.direction_pct, 2)}%",
            ]
    return "\n".join(lines)


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


_COLUMNS: tuple[tuple[str, Callable[[ModelStanding], str]], ...] = (
    ("team/model", lambda s: s.member),
    ("MAE", lambda s: _fmt(s.value("mae"), ".4f")),
    ("rel MAE", lambda s: _fmt(s.value("rel_mae"), ".3f")),
    ("MASE", lambda s: _fmt(s.value("mase"), ".3f")),
    ("DM p", lambda s: _fmt(s.significance.dm_adjusted, ".3f")),
    ("direction %", lambda s: _fmt(s.value("direction"), ".2f")),
    ("dir p", lambda s: _fmt(s.significance.direction_adjusted, ".3f")),
    ("P&L", lambda s: _fmt(s.value("pnl"), "+,.2f")),
    ("return %", lambda s: _fmt(s.value("return"), "+.2f", 100.0)),
    ("Sharpe", lambda s: _fmt(s.value("sharpe"), ".2f")),
    ("max drawdown %", lambda s: _fmt(s.value("max_drawdown"), ".2f", 100.0)),
    ("trades", lambda s: _fmt(s.value("trades"), ".0f")),
)


def _sort_key(metric: str) -> Callable[[ModelStanding], tuple[bool, float, str]]:
    def key(s: ModelStanding) -> tuple[bool, float, str]:
        value = s.value(metric)
        if value is None:
            return True, 0.0, s.member
        return False, value if metric in LOWER_IS_BETTER else -value, s.member

    return key


def render_leaderboard(rows: Sequence[ModelStanding], sort_by: str = "mase", top: int | None = None) -> str:
    """A table of ``rows`` best first by ``sort_by`` (models without a value last), at most ``top``.

    Models that do not trade (baselines, a team's other models) show ``-`` in trading columns.
    ``rel MAE`` is MAE / persistence MAE and ``MASE`` MAE / in-sample naive MAE (both per symbol,
    then averaged); ``DM p`` and ``dir p`` are the Holm-adjusted p-values of the Diebold-Mariano
    test against persistence and of the direction test; the verdicts follow the table.
    """
    if sort_by not in SORTABLE:
        raise ValueError(f"cannot sort by {sort_by!r}: use one of {', '.join(SORTABLE)}")
    if top is not None and top < 1:
        raise ValueError(f"--top must be at least 1, not {top}")
    ranked = sorted(rows, key=_sort_key(sort_by))[:top]
    table = [["#", *(title for title, _ in _COLUMNS)]]
    table += [[str(i), *(cell(s) for _, cell in _COLUMNS)] for i, s in enumerate(ranked, 1)]
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    better = "lower" if sort_by in LOWER_IS_BETTER else "higher"
    lines = [f"Leaderboard by {sort_by} ({better} is better)"]
    for row in table:
        cells = [v.ljust(w) if c == 1 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.append("DM p, dir p: Holm-adjusted p-values (raw ones in summary.json); rel MAE, MASE: per symbol, averaged")
    dm, direction = verdicts(rows)
    lines += [dm, f"  test: {DM_TEST}", direction, f"  test: {DIRECTION_TEST}"]
    return "\n".join(lines)


def leaderboard_text(store: LeaderboardStore, arena: Arena, sort_by: str = "mase", top: int | None = None) -> str:
    """:func:`render_leaderboard` of every model in ``arena`` as the store holds it now."""
    return render_leaderboard(standings(store, arena), sort_by, top)
