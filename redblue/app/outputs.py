"""A simulation's files and printed report, read back from its topics and its leaderboard.

``forecasts.csv``, ``orders.csv`` and ``fills.csv`` come from the Kafka topics (the events as
they were published); ``equity.csv`` and ``summary.json`` from the Redis leaderboard the scorer
built. No wall-clock field is written, so the same simulation always gives identical files.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from consumers.leaderboard import scored_forecasts, standings, summary
from processors.pins import Pin, sorted_pins
from producers.replay import ReplayPlan
from redblue.adapters.kafka import read_topics
from redblue.adapters.redis_store import RedisStore
from redblue.app import report
from redblue.app.coverage import render_symbol_counts, symbol_counts
from redblue.core.arena import Arena
from redblue.core.calendar import get_calendar
from redblue.core.metrics import score_forecast
from redblue.core.settings import Settings
from redblue.core.store import LeaderboardStore, StoreError
from schemas import BarProcessed, BarRevision, DeadLetter, Fill, Forecast, Order, PositionMark, SchemaError, TopicSpec
from schemas.topics import DEADLETTER, FILLS, FORECASTS, ORDERS


@dataclass(frozen=True)
class Written:
    summary: dict[str, Any]
    report: str


def _first_of_each(stream: list[Any]) -> list[Forecast]:
    """Each model's forecast per symbol and day once: a bar the processor re-sent after a crash
    (at-least-once) repeats its forecasts; the first one counts, as for the trader."""
    first: dict[tuple[str, str, str, date], Forecast] = {}
    for e in stream:
        if isinstance(e, Forecast):
            first.setdefault((e.team, e.model, e.symbol, e.as_of), e)
    return list(first.values())


def _read_complete(settings: Settings, run: str, plan: ReplayPlan, attempts: int = 10) -> dict[TopicSpec, list[Any]]:
    """The run's topics, read until the forecasts topic holds a ``bar_processed`` marker for every
    replayed bar.

    The scorer said the run is complete, so every marker was written; a read that misses some
    (a broker still settling the run's freshly re-created topics) is repeated, and if it never
    sees them all the run fails loudly instead of writing incomplete files.
    """
    wanted = {(row.symbol, row.date) for row in plan.rows}
    for attempt in range(attempts):
        topics = read_topics(settings, run, [FORECASTS, FILLS, ORDERS, DEADLETTER])
        seen = {(e.bar.symbol, e.bar.date) for e in topics[FORECASTS] if isinstance(e, BarProcessed)}
        if wanted <= seen:
            return topics
        time.sleep(0.5 * (attempt + 1))
    raise StoreError(
        f"run {run}: the forecasts topic holds markers for {len(seen & wanted)} of {len(wanted)} replayed bars "
        "although the scorer reported the run complete; the files were not written"
    )


def write(
    settings: Settings,
    run: str,
    arena: Arena,
    plan: ReplayPlan,
    out: Path,
    end: date | None = None,
    served: Sequence[Pin] = (),
) -> Written:
    """Write every file of the run into ``out`` and return the summary and the printed report.

    ``served`` are the model versions the run served (``summary.json``: ``served``).
    ``end``: the run was asked for up to this day (``--end``) rather than a number of days. When
    the symbols' spans differ, the summary has a ``coverage`` entry per symbol (its span and
    counts); the printed report always ends with that table.
    """
    out.mkdir(parents=True, exist_ok=True)
    topics = _read_complete(settings, run, plan)
    stream, trades = topics[FORECASTS], topics[FILLS]
    orders = [e for e in topics[ORDERS] if isinstance(e, Order)]
    letters = [e for e in topics[DEADLETTER] if isinstance(e, DeadLetter)]
    forecasts = _first_of_each(stream)
    markers = {(e.bar.symbol, e.bar.date): e for e in stream if isinstance(e, BarProcessed)}  # once per bar
    failed = Counter(f"{key}/{e.bar.symbol}" for e in markers.values() for key in e.failed)
    closes = {(e.bar.symbol, e.bar.date): e.bar.close for e in stream if isinstance(e, BarProcessed | BarRevision)}
    _csv(out / "forecasts.csv", FORECAST_COLUMNS, sorted(_forecast_rows(forecasts, closes)))
    _csv(out / "orders.csv", ORDER_COLUMNS, sorted(_rows(orders, ORDER_COLUMNS)))
    fills = [e for e in trades if isinstance(e, Fill)]
    _csv(out / "fills.csv", FILL_COLUMNS, sorted(_rows(fills, FILL_COLUMNS)))
    calendar = get_calendar(arena.calendar)
    scored = [f for f in forecasts if (f.symbol, f.target) in closes]
    per_symbol = symbol_counts(plan, forecasts, scored, fills, calendar)
    with RedisStore.from_settings(settings, run) as store:
        _csv(out / "equity.csv", EQUITY_COLUMNS, _equity_rows(run, store, arena))
        tested = scored_forecasts(store)  # what the tests read: once for the board and the summary
        ranked = standings(store, arena, tested)
        result = {
            "run": run,
            "start": plan.first_target.isoformat(),
            "last_target": plan.last_target.isoformat(),
            "days": plan.days,
            "symbols": list(arena.symbols),
            "counts": {
                "bars": len(closes),
                "forecasts": len(forecasts),
                "orders": len(orders),
                "fills": len(fills),
                "position_marks": sum(isinstance(e, PositionMark) for e in trades),
                "dead_letters": len(letters),
                "undecodable": sum(isinstance(e, SchemaError) for e in (*stream, *trades)),
            },
            "failed_forecasts": dict(sorted(failed.items())),
            "served": [pin.as_json() for pin in sorted_pins(served)],
            **summary(store, arena, ranked, tested),
        }
        if not plan.uniform:
            result["coverage"] = per_symbol
        text = report.render_original(store, arena, plan.first_target, plan.days, end=end and plan.last_target)
        text += "\n\n" + report.render_leaderboard(ranked)
        text += "\n\n" + render_symbol_counts(per_symbol)
        text += "".join(
            f"\nwarning: {series} could not forecast on {n} day(s); see {out / 'logs' / 'processor.log'}"
            for series, n in sorted(failed.items())
        )
    (out / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return Written(result, text)


def leaderboard_text(settings: Settings, run: str, arena: Arena, by: str, top: int) -> str:
    with RedisStore.from_settings(settings, run) as store:
        known = store.list_runs()
        if run not in known:
            shown = ", ".join(known) or "none"
            raise StoreError(f"no run {run!r} in the leaderboard at {settings.redis_url} (runs: {shown})")
        return report.leaderboard_text(store, arena, sort_by=by, top=top)


FORECAST_COLUMNS = (
    "run",
    "team",
    "model",
    "model_version",
    "symbol",
    "as_of",
    "target",
    "predicted_close",
    "last_close",
    "actual_close",
    "abs_error",
    "direction_correct",
)
ORDER_COLUMNS = (
    "run",
    "team",
    "model",
    "symbol",
    "as_of",
    "target",
    "side",
    "quantity",
    "reference_price",
    "client_order_id",
    "status",
    "reason",
)
FILL_COLUMNS = ("run", "team", "symbol", "date", "side", "quantity", "price", "commission", "client_order_id")
EQUITY_COLUMNS = ("run", "team", "date", "equity")


def _forecast_rows(forecasts: list[Forecast], closes: dict[Any, float]) -> Iterable[tuple[Any, ...]]:
    for f in forecasts:
        actual = closes.get((f.symbol, f.target))
        scored = None if actual is None else score_forecast(f, actual)
        yield (
            f.run,
            f.team,
            f.model,
            f.model_version,
            f.symbol,
            f.as_of.isoformat(),
            f.target.isoformat(),
            repr(f.predicted_close),
            repr(f.last_close),
            "" if actual is None else repr(actual),
            "" if scored is None else repr(scored.abs_error),
            "" if scored is None else int(scored.direction_correct),
        )


def _rows(events: Sequence[Any], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return [tuple(_cell(getattr(e, c)) for c in columns) for e in events]


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else str(value)


def _equity_rows(run: str, store: LeaderboardStore, arena: Arena) -> list[tuple[Any, ...]]:
    return [
        (run, team, day.isoformat(), repr(value))
        for team in sorted(arena.teams)
        for day, value in store.equity_history(team)
    ]


def _csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
