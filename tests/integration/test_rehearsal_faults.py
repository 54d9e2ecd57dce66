"""A short season through misbehaving vendors, through the real services (``scripts/rehearse.py --vendor-faults``).

Six sessions, every service a process of its own (``season up``), on the replayed clock: the data
stand-in offers partial intraday bars and bars without the closing auction, prints three closes
1 % off and fixes them overnight, serves one session the next morning and one only after the next
day's close, answers 429/503 bursts, a lasting outage and a too-slow answer; team red's trading
stand-in answers 503/429 bursts, a secret-echoing 500 and a too-slow order POST
(:mod:`tests.standins.faults`). The season must end as the clean replay of the same sessions
except where the plan says it may not (the forecasts made from a first print, the orders and
positions they and the missed session disrupt), with every fault actually served, and no key,
secret or password in any service log, any event or MLflow.
"""

from __future__ import annotations

from datetime import date

import pytest

from redblue.core.calendar import get_calendar
from redblue.core.settings import Settings
from scripts.rehearse import BASELINES, Chaos, rehearse, verdict_text
from tests.standins.faults import FaultPlan

pytestmark = pytest.mark.integration
START, DAYS = date(2024, 1, 2), 6
CAL = get_calendar()
PLAN = FaultPlan.spread(CAL.sessions(START, CAL.offset(START, DAYS - 1)), ["AAPL", "AMZN", "SAP"], "red")


def test_a_season_through_misbehaving_vendors_ends_as_the_clean_replay_apart_from_the_revisions(
    settings: Settings, run_id: str
) -> None:
    outcome, _ = rehearse(settings, run_id, BASELINES, START, DAYS, Chaos(), say=lambda _: None, faults=True)
    v = outcome.verdict
    assert v is not None
    assert v.checks == dict.fromkeys(v.checks, True), verdict_text(v)

    figures = v.figures
    shown = figures["market shown (vendor rows by kind)"]
    assert shown.get("partial", 0) > 0 and shown.get("before auction", 0) > 0  # offered, never published
    assert shown.get("first print", 0) > 0 and shown.get("withheld", 0) > 0
    data = figures["data API scripted answers"]  # a burst (429, echo), a slow answer, an outage (4 x 503)
    assert data == {"bars 429": 1, "bars echo": 1, "bars slow": 1, "bars 503": 4}
    red = figures["red's trading API scripted answers"]  # the lookups' 503, echo, 429; the POSTs' trouble
    assert {"order 503": 1, "order echo": 1, "order 429": 1}.items() <= red.items() and len(red) >= 4
    assert figures["retries logged"] >= 7
    assert figures["outages reported (a poll, or its re-asking for a missing session, failed)"] >= 1
    assert figures["client timeouts logged"] >= 1  # the slow answer outlasted the clients' REDBLUE_*_ALPACA_TIMEOUT
    paused = {(s, date.fromisoformat(d)) for s, d in figures["symbol pauses (symbol, session)"]}
    assert {PLAN.late, PLAN.missed} <= paused
    assert len(figures["bar_revision events"]) == 3
    assert figures["forecasts made from a first print"] == 3 * 3  # persistence, drift, trend of each revised session
    assert figures["forecasts"] == figures["clean forecasts"] == 3 * 3 * (DAYS + 1)  # as of the warm-up's last day on
    assert outcome.accepted == outcome.submitted_events  # every order event is one order at Alpaca, once
