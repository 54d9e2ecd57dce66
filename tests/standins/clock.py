"""A clock a test moves by hand: every component of a rehearsal reads the same ``now``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` New York time (DST handled by the zone), timezone-aware."""
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


class ReplayClock:
    """A :data:`~redblue.core.clock.Clock` whose time only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a replay clock needs a timezone-aware start")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        if moment < self.now:
            raise ValueError(f"time does not run backwards: {moment} < {self.now}")
        self.now = moment.astimezone(UTC)

    def advance(self, step: timedelta) -> None:
        self.set(self.now + step)
