"""The one order rule: every order is an ``opg`` (market-on-open) order, sent inside Alpaca's window.

An order decided from day D's bar must execute at its target session's open, like the simulated
broker's fill at the next bar's open. Alpaca's rules for ``opg`` (``TimeInForce.OPG``): an opg
order sent from 19:00 New York is queued for the next opening auction; one sent from two minutes
before the open (09:28 for a 09:30 open) until 19:00 is rejected. So an opg order for
``target`` may be sent

    from 19:00 + 1 min, New York, on the session before ``target``
    until the calendar's open of ``target`` - 2 min - 1 min (09:27 for a 09:30 open),

with one minute of margin on each side for clock skew, and, on the days in between (weekends,
holidays), only outside the daily refusal span (from the open's time of day - 3 min until 19:01).
The open comes from the calendar (late opens, DST); early closes do not move the window (19:00 is
Alpaca's time, not the exchange's). Nothing here depends on how late the pipeline runs: an order
decided before the window opens is *held* and sent when it opens; one decided after it closed is
*missed* — never sent as anything else (a ``day`` order would fill during the session, at another
price than the open the forecast was about).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from redblue.core.calendar import TradingCalendar

NEW_YORK = ZoneInfo("America/New_York")
OPG_QUEUED_FROM = time(19, 0)  # Alpaca queues opg orders sent from then for the next opening auction
OPG_REFUSED_BEFORE_OPEN = timedelta(minutes=2)  # ... and refuses them from two minutes before the open
MARGIN = timedelta(minutes=1)  # clock skew between us and Alpaca, on both sides
SEND_FROM = (datetime.combine(date(2000, 1, 1), OPG_QUEUED_FROM) + MARGIN).time()  # 19:01

Verdict = Literal["send", "hold", "missed"]


@dataclass(frozen=True)
class OpgWindow:
    """When an opg order for ``target``'s open may be sent (UTC instants, New York rules)."""

    target: date
    first: datetime  # the first moment to send
    last: datetime  # send strictly before this
    refused_from: time  # New York time of day from which Alpaca refuses opg orders (until 19:00)

    def verdict(self, at: datetime) -> Verdict:
        """``send`` now, ``hold`` until :meth:`next_chance`, or ``missed`` (too late for ever)."""
        if at.tzinfo is None:
            raise ValueError(f"submission time must be timezone-aware, got {at!r}")
        if at >= self.last:
            return "missed"
        if at < self.first or self._refused(at):
            return "hold"
        return "send"

    def next_chance(self, at: datetime) -> datetime | None:
        """The first moment from ``at`` on when the order may be sent; None once it is missed."""
        if self.verdict(at) == "missed":
            return None
        if at < self.first:
            return self.first
        if self._refused(at):
            evening = datetime.combine(_local(at).date(), SEND_FROM, tzinfo=NEW_YORK)
            return evening if evening < self.last else None
        return at

    def _refused(self, at: datetime) -> bool:
        return self.refused_from <= _local(at).time() < SEND_FROM

    def held(self) -> str:
        return f"held until {_shown(self.first)}, when the opg window for {self.target}'s open opens"

    def missed(self, at: datetime) -> str:
        return (
            f"missed the opg window for {self.target}'s open (it closed at {_shown(self.last)}); "
            f"decided at {_shown(at)}, too late to execute at that open, so not sent"
        )


def opg_window(target: date, calendar: TradingCalendar) -> OpgWindow:
    """The window for ``target``'s open: from 19:01 New York on the session before until open - 3 min."""
    before = calendar.previous_session(target)
    first = datetime.combine(before, SEND_FROM, tzinfo=NEW_YORK)
    last = calendar.open_time(target) - OPG_REFUSED_BEFORE_OPEN - MARGIN
    return OpgWindow(target, first, last, _local(last).time())


def _local(at: datetime) -> datetime:
    return at.astimezone(NEW_YORK)


def _shown(at: datetime) -> str:
    return f"{_local(at):%Y-%m-%d %H:%M} New York"
