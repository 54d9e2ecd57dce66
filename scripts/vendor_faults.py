"""A rehearsal through misbehaving vendors (``scripts/rehearse.py --vendor-faults``).

The fault plan and what it may change are :mod:`tests.standins.faults` (shared with the in-process
season test). Here is what the rehearsal adds to serve them through the real services, and to judge
the outcome:

- **clients' patience**: every service's Alpaca clients wait :data:`TIMEOUT` s for an answer
  (``REDBLUE_ALPACA_TIMEOUT``, ``REDBLUE_<TEAM>_ALPACA_TIMEOUT``) and a slow answer comes after
  :data:`SLOW` s, so a slow answer is a client timeout (retried; for an order POST the order was
  taken, and the retry's 422 confirms it);
- **extra clock steps** per session D, before the close and the evening (:meth:`VendorFaults.steps`):
  09:00 (a revision fixed overnight and a session served late are seen; the day's trouble is
  scripted to start here), 12:00 (the vendor offers D's **partial** bar) and close + 20 min (D's bar
  **without the closing auction**). The driver waits at 12:00 and close + 20 min until the producer
  has polled the data stand-in at that time (a few requests); the bar is in the answer when the
  source's request reaches D (Alpaca's ends at midnight after the last final session: not on a
  Monday or after a holiday). The producer must not publish it;
- **the verdict** (:func:`verdict`): the clean in-process replay of the same sessions must have the
  same forecasts except those made from a first print, and the same orders (with their status) and
  positions except where :meth:`~tests.standins.faults.FaultPlan.disrupted`; every bar published
  has the values the vendor finally shows except the revised sessions' first prints, each revised
  by exactly one ``bar_revision`` with the final values; no stand-in key or secret and no stack
  password appears in a service log, the rehearsal's files, any message of the run's topics, or
  MLflow's store and logs (:func:`leaked`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from redblue.core.calendar import TradingCalendar
from redblue.core.settings import Settings
from schemas import TOPICS, Bar, BarRevision, Event, Forecast, Order, topic_name
from tests.leaks import files_under, leaks, raw_messages, stack_secrets
from tests.standins.alpaca import AlpacaStandIn
from tests.standins.clock import ny
from tests.standins.faults import FaultPlan, credentials, effective, values
from tests.standins.market import Timeline

TIMEOUT = 2.0  # seconds the services' Alpaca clients wait for an answer in a faulty rehearsal
SLOW = 3.0  # a slow answer's delay: past the clients' timeout
OFFERED = ("midday", "auction")  # steps where the data stand-in offers a bar the producer must not publish
POLLED = 3  # bars requests answered at such a step's time before it is done (a poll may have begun earlier)


@dataclass
class VendorFaults:
    """The trouble of one rehearsal: its plan, and the stand-ins and market serving it."""

    plan: FaultPlan
    calendar: TradingCalendar
    market: Timeline | None = None
    data: AlpacaStandIn | None = None
    troubled: AlpacaStandIn | None = None

    @classmethod
    def of(
        cls, season: Sequence[date], symbols: Sequence[str], teams: Sequence[str], calendar: TradingCalendar
    ) -> VendorFaults:
        troubled = "red" if "red" in teams else sorted(teams)[0]
        return cls(FaultPlan.spread(season, symbols, troubled), calendar)

    def serve(self, market: Timeline, data: AlpacaStandIn, teams: dict[str, AlpacaStandIn]) -> None:
        """Script the market's first prints and skips; slow answers on the stand-ins."""
        self.plan.script(market, self.calendar)
        self.market, self.data, self.troubled = market, data, teams[self.plan.troubled]
        for standin in (data, *teams.values()):
            standin.slow_seconds = SLOW

    def env(self, teams: Iterable[str]) -> dict[str, str]:
        """The services' Alpaca clients' timeout."""
        return {"REDBLUE_ALPACA_TIMEOUT": str(TIMEOUT)} | {
            f"REDBLUE_{team.upper()}_ALPACA_TIMEOUT": str(TIMEOUT) for team in teams
        }

    def steps(self, day: date) -> list[tuple[str, datetime, date]]:
        """The extra clock steps of session ``day``, before its close."""
        auction = self.calendar.close_time(day) + timedelta(minutes=20)
        return [("morning", ny(day, 9), day), ("midday", ny(day, 12), day), ("auction", auction, day)]

    def before(self, what: str, moment: datetime, day: date) -> None:
        """Before the clock moves to ``moment``: the day's trouble starts at its morning step."""
        if what == "morning":
            assert self.data is not None and self.troubled is not None
            self.plan.trouble(self.plan.season.index(day), self.data, self.troubled, since=moment)

    def offered(self, moment: datetime) -> bool:
        """At a midday or auction step: has the producer polled at ``moment`` (a few times)?

        Whether the session's partial bar (or the one without the closing auction) was in the
        answer depends on the source's request: Alpaca's ends at midnight after the last final
        session, so it covers today only when that session was yesterday (not on a Monday).
        :attr:`Timeline.shown` counts how often it was.
        """
        assert self.data is not None
        return self.data.answered[("bars", moment)] >= POLLED

    def secrets(self, teams: Iterable[str]) -> dict[str, str]:
        found = {}
        for who in ("data", *teams):
            key, secret = credentials(who)
            found |= {f"{who} key": key, f"{who} secret": secret}
        return found


@dataclass
class Verdict:
    """What a faulty rehearsal did and whether it ended as it must."""

    checks: dict[str, bool]
    figures: dict[str, Any] = field(default_factory=dict)
    differed: list[str] = field(default_factory=list)


def verdict(
    settings: Settings,
    run: str,
    faults: VendorFaults,
    topics: dict[str, list[Event]],
    clean: tuple[list[Forecast], list[Event]],
    symbols: Sequence[str],
    teams: Sequence[str],
    logs: Sequence[Path],
) -> Verdict:
    """The rehearsal's topics (``bars``, ``forecasts``, ``orders``, ``fills``) against the clean replay's
    forecasts and trading events; the services' ``logs`` and everything else scanned for secrets."""
    plan, market = faults.plan, faults.market
    assert market is not None and faults.data is not None and faults.troubled is not None
    published = [e for e in topics["bars"] if isinstance(e, Bar | BarRevision)]
    season = set(plan.season)
    bars = [b for b in published if isinstance(b, Bar) and b.date in season]
    revisions = [e for e in published if isinstance(e, BarRevision)]
    truth = {(s, d): values(market.final(s, d)) for s in symbols for d in plan.season}
    firsts = {k: values(p.row) for k, p in market.revisions().items()}
    forecasts = [f for f in topics["forecasts"] if isinstance(f, Forecast)]
    trading = [*topics["orders"], *topics["fills"]]
    same_orders, changed = plan.same_orders(trading, clean[1], teams)
    text = "\n".join(p.read_text(errors="replace") for p in logs if p.is_file())
    checks = {
        "every session published once, in order": all(
            [b.date for b in bars if b.symbol == s] == list(plan.season) for s in symbols
        ),
        "no partial or pre-auction bar published": {
            k: values(b) for b in bars if (k := (b.symbol, b.date)) not in plan.revised
        }
        == {k: v for k, v in truth.items() if k not in plan.revised},
        "revised sessions first published as first printed": {
            (b.symbol, b.date): values(b) for b in bars if (b.symbol, b.date) in plan.revised
        }
        == firsts,
        "each revised session one bar_revision, to the final values": sorted(
            (r.bar.symbol, r.bar.date) for r in revisions
        )
        == sorted(plan.revised)
        and {k: v for k, v in effective(published).items() if k[1] in season} == truth,
        "forecasts as the clean replay, apart from those from first prints": plan.same_forecasts(forecasts, clean[0]),
        "orders and positions as the clean replay, apart from the disrupted": same_orders,
        "the missed session's orders rejected (missed the opg window)": all(
            o.status == "rejected" and o.reason.startswith("missed the opg window")
            for o in trading
            if isinstance(o, Order) and o.as_of == plan.missed[1]
        ),
        "the troubled team's other orders all submitted": all(
            o.status == "submitted"
            for o in trading
            if isinstance(o, Order) and o.team == plan.troubled and o.as_of != plan.missed[1]
        ),
    }
    known = {**faults.secrets(teams), **stack_secrets(settings)}
    where = leaked(settings, run, known, logs)
    checks["no key, secret or password in logs, events or MLflow"] = not where
    figures = _figures(faults, revisions, forecasts, clean[0], trading, changed, text)
    differed = [f"leak: {w}" for w in where] + _differences(plan, forecasts, clean[0], trading, clean[1], changed)
    return Verdict(checks, figures, differed)


def _figures(
    faults: VendorFaults,
    revisions: list[BarRevision],
    forecasts: list[Forecast],
    clean: list[Forecast],
    trading: list[Event],
    changed: set[tuple[str, str, date]],
    text: str,
) -> dict[str, Any]:
    assert faults.market is not None and faults.data is not None and faults.troubled is not None
    orders = [o for o in trading if isinstance(o, Order)]
    reasons = Counter(o.reason.split(" (")[0] for o in orders if o.reason and o.team == faults.plan.troubled)
    paused = set(re.findall(r"(\w+) paused at (\d{4}-\d\d-\d\d)", text))
    return {
        "market shown (vendor rows by kind)": dict(faults.market.shown),
        "data API scripted answers": dict(faults.data.served),
        f"{faults.plan.troubled}'s trading API scripted answers": dict(faults.troubled.served),
        "retries logged": text.count("trying again"),
        "client timeouts logged": text.count("timed out ("),
        "outages reported (a poll, or its re-asking for a missing session, failed)": sum(
            "Alpaca unreachable" in line and "trying again" not in line for line in text.splitlines()
        ),
        "symbol pauses (symbol, session)": sorted(paused),
        "bar_revision events": [f"{r.bar.symbol} {r.bar.date}: {', '.join(r.changed)}" for r in revisions],
        "forecasts made from a first print": sum(faults.plan.from_first_print(f) for f in forecasts),
        "forecasts": len({(f.team, f.model, f.symbol, f.as_of) for f in forecasts}),
        "clean forecasts": len({(f.team, f.model, f.symbol, f.as_of) for f in clean}),
        "orders": len(orders),
        f"{faults.plan.troubled}'s order reasons": dict(reasons),
        "disrupted (team, symbol, day)s": len(changed),
    }


def _differences(
    plan: FaultPlan,
    forecasts: list[Forecast],
    clean: list[Forecast],
    trading: list[Event],
    clean_trading: list[Event],
    changed: set[tuple[str, str, date]],
) -> list[str]:
    """What differs from the clean replay, one line each (all of it allowed when the checks pass)."""
    theirs = {(f.team, f.model, f.symbol, f.as_of): f.predicted_close for f in clean}
    lines = [
        f"forecast {f.team}/{f.model} {f.symbol} as of {f.as_of}: {f.predicted_close:.4f} "
        f"(clean {theirs.get((f.team, f.model, f.symbol, f.as_of), float('nan')):.4f}) from the first print"
        for f in sorted(
            {f.team + f.model + f.symbol + str(f.as_of): f for f in forecasts}.values(),
            key=lambda f: (f.as_of, f.symbol, f.team),
        )
        if plan.from_first_print(f)
    ]

    def keyed(events: list[Event]) -> set[tuple[Any, ...]]:
        return {(o.team, o.symbol, o.as_of, o.side, o.quantity, o.status) for o in events if isinstance(o, Order)}

    def shown(o: tuple[Any, ...]) -> str:
        allowed = "disrupted" if o[:3] in changed else "NOT ALLOWED"
        return f"{o[0]} {o[1]} as of {o[2]}: {o[3]} {o[4]} {o[5]} ({allowed})"

    ours, clean_orders = keyed(trading), keyed(clean_trading)
    lines += [f"order only in the rehearsal: {shown(o)}" for o in sorted(ours - clean_orders)]
    lines += [f"order only in the clean replay: {shown(o)}" for o in sorted(clean_orders - ours)]
    return lines


def leaked(settings: Settings, run: str, known: dict[str, str], logs: Sequence[Path]) -> list[str]:
    """Where any of ``known`` appears: the services' logs, the rehearsal's and the season's files,
    every message of the run's topics, MLflow's store and logs."""
    found = [f"{p}: {', '.join(names)}" for p in logs if p.is_file() and (names := leaks(p.read_bytes(), known))]
    for spec in TOPICS:
        for key, value in raw_messages(settings, topic_name(settings.topic_prefix, run, spec)):
            if names := leaks(key + b"|" + value, known):
                found.append(f"a {spec.suffix} message: {', '.join(names)}")
    store = settings.stack_home / "mlflow"
    for path in [*files_under(store / "logs"), store / "mlflow.db", *files_under(store / "artifacts")]:
        if path.is_file() and (names := leaks(path.read_bytes(), known)):
            found.append(f"{path}: {', '.join(names)}")
    return found
